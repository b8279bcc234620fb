/*-------------------------------------------------------------------------
 *
 * send.c
 *	  courier.send and courier.send_batch: append messages to a topic's log.
 *
 * A send is one heap insert (plus its index entries) into the topic's
 * current segment, in the caller's transaction: the message becomes
 * receivable when that transaction commits and never if it rolls back.
 *
 * Ids and the allocation mark
 * ---------------------------
 * Ids are handed out while holding the topic's LWLock, so they increase
 * in the order sends are made; the topic's sequence is moved past them in
 * one step per send (nextval, or setval for a batch), so a restart never
 * hands out an id twice.  Receivers walk the
 * log in id order (walk.c) and must never step over an id whose row is not
 * in the heap *yet*: a transaction could insert it a moment later and the
 * receiver would have passed it for good.  So, before releasing the LWLock,
 * the sender publishes a mark (ids lo..hi, its transaction id) in its slot
 * of shared memory, and clears it once the rows and their index entries are
 * in place.  A walker reads next_id and all marks under the same LWLock
 * before it looks at the log: an id below next_id with no row is either
 * marked (the walker treats it as in progress) or gone for good (its
 * transaction aborted).  Once a row is in the heap, its inserting
 * transaction is visible to the walker's dirty snapshot as in progress until
 * it commits or aborts.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/table.h"
#include "access/xlog.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/array.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "pg_courier.h"

PG_FUNCTION_INFO_V1(courier_send);
PG_FUNCTION_INFO_V1(courier_send_batch);
PG_FUNCTION_INFO_V1(courier_next_id);

#define COURIER_MAX_KEYS	64
#define COURIER_MAX_BATCH	100000

/* What every message of one send call shares */
typedef struct SendArgs
{
	Datum		tag;
	bool		tag_null;
	Datum		keys;
	bool		keys_null;
	Datum		headers;
	bool		headers_null;
	bool		has_deliver_at;
	TimestampTz deliver_at;
} SendArgs;

static void check_common_args(FunctionCallInfo fcinfo, CourierTopic *topic, int tagarg,
							  int keysarg, int headersarg, int delayarg, int atarg,
							  SendArgs *args);
static void check_size(Jsonb *body, SendArgs *args);
static void send_messages(CourierTopic *topic, int n, Datum *bodies, SendArgs *args,
						  int64 *ids);
static CourierTopic *choose_segment(int32 topic_id, CourierSegment *out);
static void take_ids(CourierTopicShared *ts, const char *topic_name, int n, int64 *ids);
static void check_writable(void);

/*
 * check_common_args
 *		Validate tag, keys, headers and the delay arguments.
 */
static void
check_common_args(FunctionCallInfo fcinfo, CourierTopic *topic, int tagarg, int keysarg,
				  int headersarg, int delayarg, int atarg, SendArgs *args)
{
	memset(args, 0, sizeof(SendArgs));

	args->tag_null = PG_ARGISNULL(tagarg);
	if (!args->tag_null)
	{
		text	   *tag = PG_GETARG_TEXT_PP(tagarg);
		int			len = VARSIZE_ANY_EXHDR(tag);

		if (len == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("tag must not be empty"),
					 errhint("Pass NULL for an untagged message.")));
		if (len > COURIER_MAX_TAG_LEN)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("tag is too long"),
					 errdetail("Tags are at most %d bytes.", COURIER_MAX_TAG_LEN)));
		if (memchr(VARDATA_ANY(tag), '|', len) != NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("tag must not contain \"|\""),
					 errdetail("\"||\" separates tags in subscription filters.")));
		args->tag = PointerGetDatum(tag);
	}

	args->keys_null = (keysarg < 0) || PG_ARGISNULL(keysarg);
	if (!args->keys_null)
	{
		ArrayType  *keys = PG_GETARG_ARRAYTYPE_P(keysarg);
		int			nkeys = ArrayGetNItems(ARR_NDIM(keys), ARR_DIMS(keys));

		if (ARR_NDIM(keys) > 1)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("keys must be a one-dimensional array")));
		if (array_contains_nulls(keys))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("keys must not contain NULL")));
		if (nkeys > COURIER_MAX_KEYS)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("too many keys"),
					 errdetail("A message has at most %d keys.", COURIER_MAX_KEYS)));
		{
			Datum	   *elems;
			bool	   *enulls;
			int			n;
			int			i;

			deconstruct_array(keys, TEXTOID, -1, false, TYPALIGN_INT, &elems, &enulls, &n);
			for (i = 0; i < n; i++)
			{
				int			len = VARSIZE_ANY_EXHDR(DatumGetPointer(elems[i]));

				if (len == 0)
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("keys must not be empty strings")));
				if (len > COURIER_MAX_KEY_LEN)
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("key is too long"),
							 errdetail("Each key is at most %d bytes.", COURIER_MAX_KEY_LEN)));
			}
		}
		if (nkeys == 0)
			args->keys_null = true;
		else
			args->keys = PointerGetDatum(keys);
	}

	args->headers_null = PG_ARGISNULL(headersarg);
	if (!args->headers_null)
	{
		Jsonb	   *headers = PG_GETARG_JSONB_P(headersarg);

		if (!JB_ROOT_IS_OBJECT(headers) || JB_ROOT_IS_SCALAR(headers))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("headers must be a JSON object")));
		args->headers = PointerGetDatum(headers);
	}

	if (!PG_ARGISNULL(delayarg) && !PG_ARGISNULL(atarg))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("delay and deliver_at cannot both be given")));
	if (!PG_ARGISNULL(delayarg))
	{
		Interval   *delay = PG_GETARG_INTERVAL_P(delayarg);

		if (CourierIntervalIsNegative(delay))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("delay must not be negative")));
		args->has_deliver_at = true;
		args->deliver_at = CourierTimestampPlus(GetCurrentTimestamp(), delay);
	}
	else if (!PG_ARGISNULL(atarg))
	{
		args->has_deliver_at = true;
		args->deliver_at = PG_GETARG_TIMESTAMPTZ(atarg);
		if (TIMESTAMP_NOT_FINITE(args->deliver_at))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("deliver_at must be a finite timestamp")));
	}
	if (args->has_deliver_at)
	{
		TimestampTz limit = CourierTimestampPlus(GetCurrentTimestamp(), &topic->retention);

		if (args->deliver_at > limit)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("delivery time is beyond the retention of topic \"%s\"",
							topic->name),
					 errdetail("A message can be delayed by at most the topic's retention."),
					 errhint("Create the topic with a longer retention.")));
		if (args->deliver_at <= GetCurrentTimestamp())
			args->has_deliver_at = false;	/* due already: an ordinary message */
	}
}

/*
 * check_size
 *		Refuse bodies (with headers) over courier.max_body_size.
 */
static void
check_size(Jsonb *body, SendArgs *args)
{
	Size		size = VARSIZE(body);

	if (!args->headers_null)
		size += VARSIZE(DatumGetPointer(args->headers));
	if (size > (Size) courier_max_body_size)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("message is too large"),
				 errdetail("The message has %zu bytes; courier.max_body_size is %d.",
						   size, courier_max_body_size)));
}

/*
 * choose_segment
 *		The segment senders insert into: the newest one of the catalog, once
 *		we hold RowExclusiveLock on it.  The lock waits for the transaction
 *		that created it (a rotation) to finish and makes us take in its
 *		invalidations; a segment that a drop removed meanwhile is gone from
 *		the catalog when we look again, and we move on.  Returns the topic
 *		as the current cache has it.
 */
static CourierTopic *
choose_segment(int32 topic_id, CourierSegment *out)
{
	for (;;)
	{
		CourierTopic *topic = CourierFindTopicById(topic_id);
		CourierSegment seg;
		int			newest;

		CHECK_FOR_INTERRUPTS();
		if (topic == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("topic %d does not exist", topic_id)));
		if ((newest = CourierNewestCommittedSegment(topic)) < 0)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("cannot send to topic \"%s\" in the transaction that purged it",
							topic->name),
					 errhint("Commit the purge first.")));
		/* never a segment of our own uncommitted rotation: it may roll back */
		seg = topic->segments[newest];
		LockRelationOid(seg.relid, RowExclusiveLock);
		topic = CourierFindTopicById(topic_id);
		if (topic != NULL && (newest = CourierNewestCommittedSegment(topic)) >= 0 &&
			topic->segments[newest].relid == seg.relid)
		{
			*out = seg;
			return topic;
		}
		/* a newer segment appeared, or ours was dropped: look again */
	}
}

/*
 * take_ids
 *		Hand out ids next_id .. next_id + n - 1, moving the topic's sequence
 *		past them in one step (nextval for one id, setval for a batch): the
 *		sequence is WAL-logged, so a restart continues above every id ever
 *		handed out, and after a clean restart or a restore ids go on without
 *		a gap.  Caller holds the topic's LWLock exclusively and the
 *		sequence's RowExclusiveLock.
 *
 *		Ids end at COURIER_MAX_MSG_ID, well below the int64 limit, so that
 *		next_id and every "id + 1" of the walk and the claims stay exact.
 *		Only a setval() far up (by the topic's owner or an admin) gets
 *		there; past it send fails instead of wrapping next_id round to a
 *		negative number, which lost the message and let a later setval()
 *		hand out old ids again (review 43).
 */
static void
take_ids(CourierTopicShared *ts, const char *topic_name, int n, int64 *ids)
{
	int64		first;
	int			i;

	if (n == 1)
	{
		first = nextval_internal(ts->seq_relid, false);

		/*
		 * The topic's owner (and roles with admin, UPDATE on the sequence:
		 * acl.c) may setval() it backwards.  Never hand out an id twice: go
		 * on from our own mark and move the sequence past it again.
		 */
		if (first < ts->next_id)
		{
			first = ts->next_id;
			(void) DirectFunctionCall2(setval_oid, ObjectIdGetDatum(ts->seq_relid),
									   Int64GetDatum(first));
		}
	}
	else
	{
		first = ts->next_id;
		(void) DirectFunctionCall2(setval_oid, ObjectIdGetDatum(ts->seq_relid),
								   Int64GetDatum(first + n - 1));
	}
	if (first > COURIER_MAX_MSG_ID - n + 1)
		ereport(ERROR,
				(errcode(ERRCODE_SEQUENCE_GENERATOR_LIMIT_EXCEEDED),
				 errmsg("topic \"%s\" has run out of message ids", topic_name),
				 errdetail("Message ids end at " INT64_FORMAT "; the next one would be " INT64_FORMAT ".",
						   COURIER_MAX_MSG_ID, first),
				 errhint("Its sequence was moved up with setval(); ids never go back, "
						 "so send to a new topic.")));
	for (i = 0; i < n; i++)
		ids[i] = first + i;
	ts->next_id = first + n;
	ts->reserved = first + n - 1;
}

/*
 * send_messages
 *		Allocate n ids and append the messages to the current segment.
 *
 *		Protocol (see also segment.c and walk.c): we lock the newest segment
 *		first, then, under the topic's LWLock, make sure no sender has moved
 *		to a newer one than we know (cur_seg_no only grows), take the ids and
 *		publish our allocation mark; the rows are inserted after the LWLock
 *		is released, and the mark is cleared once they and their index
 *		entries are in place.
 */
static void
send_messages(CourierTopic *topic, int n, Datum *bodies, SendArgs *args, int64 *ids)
{
	int32		topic_id = topic->topic_id;
	CourierTopicShared *ts = CourierTopicSharedGet(topic_id);
	CourierSenderMark *mark = CourierMyMark();
	Oid			instance = CourierInstanceId();
	TransactionId xid;
	CourierSegment seg;
	Relation	rel;
	Relation	idx;
	CourierInserter ins;
	Datum	   *values;
	bool	   *nulls;
	TimestampTz now = GetCurrentTimestamp();
	int			chunk;
	int			done;
	int			i;

	if (!ts->valid)
		CourierTopicSharedLoad(topic, ts);

	/* take every heavyweight lock before the LWLock */
	LockRelationOid(ts->seq_relid, RowExclusiveLock);
	xid = GetTopTransactionId();

	for (;;)
	{
		topic = choose_segment(topic_id, &seg);
		LWLockAcquire(&ts->lock, LW_EXCLUSIVE);
		if (ts->cur_seg_no <= seg.seg_no)
			break;
		/* another sender already writes to a segment we do not know yet */
		LWLockRelease(&ts->lock);
		CHECK_FOR_INTERRUPTS();
		CourierCacheCheck();
	}
	ts->cur_seg_no = seg.seg_no;
	take_ids(ts, topic->name, n, ids);
	mark->dbid = MyDatabaseId;
	mark->instance = instance;
	mark->lo = ids[0];
	mark->hi = ids[n - 1];
	mark->xid = xid;
	pg_write_barrier();
	mark->topic_id = topic_id;
	LWLockRelease(&ts->lock);

	/* we hold RowExclusiveLock on it: nobody can drop it now */
	if (!CourierOpenSegment(&seg, RowExclusiveLock, &rel, &idx))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("log segment of topic \"%s\" vanished", topic->name)));
	index_close(idx, NoLock);
	CourierInserterBegin(&ins, rel);
	chunk = Min(n, COURIER_MULTI_INSERT_MAX);
	values = palloc(sizeof(Datum) * Natts_seg * chunk);
	nulls = palloc(sizeof(bool) * Natts_seg * chunk);
	for (i = 0; i < chunk; i++)
	{
		Datum	   *v = &values[i * Natts_seg];
		bool	   *nl = &nulls[i * Natts_seg];

		nl[Anum_seg_id - 1] = false;
		nl[Anum_seg_sent_at - 1] = false;
		v[Anum_seg_sent_at - 1] = TimestampTzGetDatum(now);
		nl[Anum_seg_deliver_at - 1] = !args->has_deliver_at;
		v[Anum_seg_deliver_at - 1] = TimestampTzGetDatum(args->deliver_at);
		nl[Anum_seg_tag - 1] = args->tag_null;
		v[Anum_seg_tag - 1] = args->tag;
		nl[Anum_seg_keys - 1] = args->keys_null;
		v[Anum_seg_keys - 1] = args->keys;
		nl[Anum_seg_headers - 1] = args->headers_null;
		v[Anum_seg_headers - 1] = args->headers;
		nl[Anum_seg_body - 1] = false;
	}
	for (done = 0; done < n; done += chunk)
	{
		int			k = Min(n - done, chunk);

		for (i = 0; i < k; i++)
		{
			values[i * Natts_seg + Anum_seg_id - 1] = Int64GetDatum(ids[done + i]);
			values[i * Natts_seg + Anum_seg_body - 1] = bodies[done + i];
		}
		/* a batch goes in page by page (one WAL record per heap page) */
		if (k == 1)
			CourierInserterInsert(&ins, values, nulls, Natts_seg);
		else
			CourierInserterInsertMany(&ins, k, values, nulls, Natts_seg);
		CHECK_FOR_INTERRUPTS();
	}
	CourierInserterEnd(&ins);
	table_close(rel, NoLock);

	/* the rows and their index entries are in place: drop the mark */
	pg_write_barrier();
	mark->topic_id = 0;

	CourierWakeAtCommitSent(topic_id, ids[n - 1]);
}

/*
 * check_writable
 *		A send writes: refuse it on a standby and in a read-only transaction
 *		the way PostgreSQL refuses an INSERT (SQLSTATE 25006).
 */
static void
check_writable(void)
{
	PreventCommandIfReadOnly("courier.send");
	PreventCommandDuringRecovery("courier.send");
}

/*
 * CourierClearMark
 *		Drop this backend's allocation mark (at abort: the rows never came).
 */
void
CourierClearMark(void)
{
	if (CourierState != NULL && MyBackendId >= 1 && MyBackendId <= CourierState->nmarks)
		CourierState->marks[MyBackendId - 1].topic_id = 0;
}

/*
 * send_body
 *		send(topic, body, tag, keys, headers, delay, deliver_at) -> id
 */
static Datum
send_body(PG_FUNCTION_ARGS)
{
	char	   *topic_name = CourierTextArg(fcinfo, 0, "topic");
	CourierTopic *topic;
	SendArgs	args;
	Jsonb	   *body;
	Datum		bodyd;
	int64		id;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("message body must not be NULL")));
	check_writable();
	topic = CourierGetTopic(topic_name);
	CourierCheckTopicPrivilege(topic, COURIER_PRIV_SEND);
	CourierRequireWorker();
	check_common_args(fcinfo, topic, 2, 3, 4, 5, 6, &args);
	body = PG_GETARG_JSONB_P(1);
	check_size(body, &args);
	bodyd = PointerGetDatum(body);
	send_messages(topic, 1, &bodyd, &args, &id);
	PG_RETURN_INT64(id);
}

/* courier_send: the SQL entry point, send_body as the extension owner (acl.c) */
Datum
courier_send(PG_FUNCTION_ARGS)
{
	return CourierRunAsOwner(fcinfo, send_body);
}

/*
 * send_batch_body
 *		send_batch(topic, bodies[], tag, headers, delay, deliver_at, keys)
 *		-> one id per body, in array order
 */
static Datum
send_batch_body(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *topic_name = CourierTextArg(fcinfo, 0, "topic");
	CourierTopic *topic;
	SendArgs	args;
	ArrayType  *arr;
	Datum	   *bodies;
	bool	   *bnulls;
	int			n;
	int64	   *ids;
	int			i;

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("bodies must not be NULL")));
	check_writable();
	topic = CourierGetTopic(topic_name);
	CourierCheckTopicPrivilege(topic, COURIER_PRIV_SEND);
	CourierRequireWorker();
	check_common_args(fcinfo, topic, 2, 6, 3, 4, 5, &args);
	arr = PG_GETARG_ARRAYTYPE_P(1);
	if (ARR_NDIM(arr) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("bodies must be a one-dimensional array")));
	deconstruct_array(arr, JSONBOID, -1, false, TYPALIGN_INT, &bodies, &bnulls, &n);
	if (n == 0)
		return (Datum) 0;
	if (n > COURIER_MAX_BATCH)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("too many messages in one batch"),
				 errdetail("send_batch takes at most %d messages.", COURIER_MAX_BATCH)));
	for (i = 0; i < n; i++)
	{
		if (bnulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("message body must not be NULL"),
					 errdetail("Element %d of bodies is NULL.", i + 1)));
		bodies[i] = PointerGetDatum(PG_DETOAST_DATUM(bodies[i]));
		check_size((Jsonb *) DatumGetPointer(bodies[i]), &args);
	}

	ids = palloc(sizeof(int64) * n);
	send_messages(topic, n, bodies, &args, ids);

	for (i = 0; i < n; i++)
	{
		Datum		v = Int64GetDatum(ids[i]);
		bool		isnull = false;

		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, &v, &isnull);
	}
	return (Datum) 0;
}

/* courier_send_batch: the SQL entry point, send_batch_body as the extension owner (acl.c) */
Datum
courier_send_batch(PG_FUNCTION_ARGS)
{
	return CourierRunAsOwner(fcinfo, send_batch_body);
}

/*
 * CourierNextIdOf
 *		The first id of the topic not handed out yet.
 */
int64
CourierNextIdOf(CourierTopic *topic)
{
	CourierSenderMark *marks = palloc(sizeof(CourierSenderMark) * CourierState->nmarks);
	int64		next;

	(void) CourierReadAllocation(topic, &next, NULL, marks);
	pfree(marks);
	return next;
}

/*
 * courier_next_id
 *		_next_id(topic_id): the id the next message of the topic will get
 *		at the earliest (used by create_group(start_from => 'latest')).
 */
Datum
courier_next_id(PG_FUNCTION_ARGS)
{
	int32		topic_id = PG_GETARG_INT32(0);
	CourierTopic *topic = CourierGetTopicById(topic_id);

	if (topic == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("topic %d does not exist", topic_id)));
	PG_RETURN_INT64(CourierNextIdOf(topic));
}

/*
 * CourierIntervalIsNegative
 *		Whether an interval is below zero (as interval comparison sees it).
 */
bool
CourierIntervalIsNegative(Interval *iv)
{
	return CourierIntervalUsec(iv) < 0;
}

/*
 * CourierTimestampPlus
 *		ts + iv, with calendar arithmetic for months and days.
 */
TimestampTz
CourierTimestampPlus(TimestampTz ts, Interval *iv)
{
	return DatumGetTimestampTz(DirectFunctionCall2(timestamptz_pl_interval,
												   TimestampTzGetDatum(ts),
												   IntervalPGetDatum(iv)));
}
