/*-------------------------------------------------------------------------
 *
 * ops.c
 *	  What an operator sees and does: the statistics behind the topics and
 *	  groups views and courier.metrics(), and the C helpers of seek.
 *
 * Cheap counts (issue 9: the views answer in milliseconds with a
 * 10-million-message backlog)
 * -------------------------------------------------------------------
 * A group's backlog is what it has not looked at yet: the ids from its
 * frontier P to the topic's next id, plus its recheck and hole spans
 * (walk.c).  When that is at most courier.stats_exact_limit ids, a
 * counting walk gives the exact number (it applies the filter, skips
 * rolled-back ids and tells delayed messages apart).  Above, that many ids
 * are sampled in windows spread over the unwalked range (committed rows,
 * filter applied) and the result is scaled to the whole range -- an
 * estimate, flagged as such (backlog_exact = false).  The cost is bounded
 * by the limit, never by the backlog.
 *
 * A topic's message count is exact (count(*) of its segments) when it holds
 * at most the limit, else the number of ids between its oldest and newest
 * retained message (which counts the ids of rolled-back sends too).
 * "Messages sent in the last minute" finds the first id sent within the
 * minute by binary search on the id index (ids grow with time), and counts
 * exactly below the limit.
 *
 * Everything here reads under the caller's snapshot except the shared
 * position, the log and claims a counting walk reads (dirty snapshot) and
 * the group's lease and claim counts beside it (latest snapshot); nothing
 * here changes anything but the group's position cache (which any counting
 * walk may rebuild).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "pg_courier.h"

PG_FUNCTION_INFO_V1(courier_group_info);
PG_FUNCTION_INFO_V1(courier_topic_info);
PG_FUNCTION_INFO_V1(courier_invalidate_group);

int			courier_stats_exact_limit = 10000;

static SPIPlanPtr plan_lease_stats = NULL;
static SPIPlanPtr plan_claim_stats = NULL;
static SPIPlanPtr plan_oldest_ids = NULL;

/*
 * CourierGroupTouch
 *		Remember when the group last delivered (ack = false) or acked
 *		something, for the views.  Shared memory only: reset by a restart.
 */
void
CourierGroupTouch(int32 group_id, bool ack)
{
	CourierGroupShared *gs = CourierGroupSharedFind(group_id);
	uint64		now = (uint64) GetCurrentTimestamp();

	if (gs == NULL)
		return;
	if (ack)
		pg_atomic_write_u64(&gs->last_ack, now);
	else
		pg_atomic_write_u64(&gs->last_receive, now);
}

/*
 * segment_name
 *		The quoted, qualified name of a segment, or NULL if it is gone.  The
 *		segment is locked first (AccessShareLock, to the end of the
 *		transaction): retention could drop it between our reading its name
 *		and the query on it (42P01).
 */
static char *
segment_name(CourierSegment *seg)
{
	Relation	rel = try_table_open(seg->relid, AccessShareLock);
	char	   *relname;

	if (rel == NULL)
		return NULL;
	relname = pstrdup(RelationGetRelationName(rel));
	table_close(rel, NoLock);
	return quote_qualified_identifier("courier", relname);
}

/*
 * spi_latest
 *		Run one statement under the latest snapshot, not the caller's: under
 *		REPEATABLE READ the caller's snapshot misses rows committed since it
 *		was taken, and positions (seek), counts (purge, alter_topic, seek)
 *		and the rows a seek or a drop deletes must not depend on the
 *		isolation level.  expect: the SPI result it must give.  Inside SPI.
 */
static void
spi_latest(const char *sql, int nargs, Oid *types, Datum *args, int expect)
{
	SPIPlanPtr	plan = SPI_prepare(sql, nargs, types);

	if (plan == NULL)
		elog(ERROR, "could not prepare \"%s\": %s", sql, SPI_result_code_string(SPI_result));
	if (SPI_execute_snapshot(plan, args, NULL, GetLatestSnapshot(), InvalidSnapshot,
							 expect == SPI_OK_SELECT, false, 0) != expect)
		elog(ERROR, "could not run \"%s\"", sql);
	SPI_freeplan(plan);
}

/*
 * seg_row
 *		The first (forward) or last visible row of a segment with id >= from
 *		(forward) or <= from (backward); false if none.  Inside SPI.
 */
static bool
seg_row(CourierSegment *seg, bool forward, int64 from, int64 *id, TimestampTz *sent_at)
{
	char	   *name = segment_name(seg);
	char	   *sql;
	Oid			types[1] = {INT8OID};
	Datum		args[1];
	bool		isnull;

	if (name == NULL)
		return false;
	sql = psprintf("SELECT id, sent_at FROM %s WHERE id OPERATOR(pg_catalog.%s) $1 "
				   "ORDER BY id %s LIMIT 1", name, forward ? ">=" : "<=",
				   forward ? "ASC" : "DESC");
	args[0] = Int64GetDatum(from);
	spi_latest(sql, 1, types, args, SPI_OK_SELECT);
	if (SPI_processed == 0)
		return false;
	*id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	*sent_at = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2,
												 &isnull));
	return true;
}

/*
 * seg_row_dirty
 *		Like seg_row, but committed and in-progress rows alike (a dirty
 *		snapshot on the id index, as walkers read the log): a message whose
 *		transaction is still open counts as sent.
 */
static bool
seg_row_dirty(CourierSegment *seg, bool forward, int64 from, int64 *id, TimestampTz *sent_at)
{
	Relation	rel;
	Relation	idx;
	SnapshotData dirty;
	IndexScanDesc scan;
	TupleTableSlot *slot;
	ScanKeyData key;
	bool		found = false;

	if (!CourierOpenSegment(seg, AccessShareLock, &rel, &idx))
		return false;			/* reclaimed meanwhile */
	slot = table_slot_create(rel, NULL);
	InitDirtySnapshot(dirty);
	if (forward)
		ScanKeyInit(&key, 1, BTGreaterEqualStrategyNumber, F_INT8GE, Int64GetDatum(from));
	else
		ScanKeyInit(&key, 1, BTLessEqualStrategyNumber, F_INT8LE, Int64GetDatum(from));
	scan = index_beginscan(rel, idx, &dirty, 1, 0);
	index_rescan(scan, &key, 1, NULL, 0);
	if (index_getnext_slot(scan, forward ? ForwardScanDirection : BackwardScanDirection, slot))
	{
		bool		isnull;

		*id = DatumGetInt64(slot_getattr(slot, Anum_seg_id, &isnull));
		*sent_at = DatumGetTimestampTz(slot_getattr(slot, Anum_seg_sent_at, &isnull));
		found = true;
	}
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	CourierCloseSegment(rel, idx);
	return found;
}

/*
 * topic_row
 *		The first message of the topic with id >= from (forward), or the
 *		last with id <= from: committed ones under the latest snapshot, or
 *		(dirty) committed and in-progress ones.  Inside SPI.
 */
static bool
topic_row(CourierTopic *topic, bool forward, int64 from, int64 *id, TimestampTz *sent_at,
		  bool dirty)
{
	int			i;

	if (forward)
	{
		for (i = 0; i < topic->nsegments; i++)
			if (dirty ? seg_row_dirty(&topic->segments[i], true, from, id, sent_at) :
				seg_row(&topic->segments[i], true, from, id, sent_at))
				return true;
	}
	else
	{
		for (i = topic->nsegments - 1; i >= 0; i--)
			if (dirty ? seg_row_dirty(&topic->segments[i], false, from, id, sent_at) :
				seg_row(&topic->segments[i], false, from, id, sent_at))
				return true;
	}
	return false;
}

/*
 * topic_count
 *		count(*) of the topic's messages with id >= from and sent at or
 *		after since (0: any time).  Inside SPI.
 */
static int64
topic_count(CourierTopic *topic, int64 from, TimestampTz since)
{
	int64		total = 0;
	int			i;
	Oid			types[2] = {INT8OID, TIMESTAMPTZOID};
	Datum		args[2];

	args[0] = Int64GetDatum(from);
	args[1] = TimestampTzGetDatum(since);
	for (i = 0; i < topic->nsegments; i++)
	{
		char	   *name = segment_name(&topic->segments[i]);
		bool		isnull;
		char	   *sql;

		if (name == NULL)
			continue;
		sql = psprintf("SELECT pg_catalog.count(*) FROM %s WHERE id OPERATOR(pg_catalog.>=) $1%s",
					   name, since != 0 ? " AND sent_at OPERATOR(pg_catalog.>=) $2" : "");
		spi_latest(sql, since != 0 ? 2 : 1, types, args, SPI_OK_SELECT);
		total += DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	}
	return total;
}

/*
 * first_sent_since
 *		The lowest id of a message sent at or after since, assuming sent_at
 *		grows with id (binary search between lo and hi, both visible ids).
 *		Inside SPI.
 */
static int64
first_sent_since(CourierTopic *topic, int64 lo, int64 hi, TimestampTz since, bool dirty)
{
	/* invariant: the answer is in (lo, hi]; sent_at(hi) >= since */
	while (hi - lo > 1)
	{
		int64		mid = lo + (hi - lo) / 2;
		int64		id;
		TimestampTz ts;

		CHECK_FOR_INTERRUPTS();
		if (!topic_row(topic, true, mid, &id, &ts, dirty) || id > hi)
			break;
		if (ts >= since)
			hi = id;
		else
			lo = id;
		if (id == hi && id != mid)
		{
			/* nothing visible in [mid, hi): the answer is hi or below mid */
			int64		id2;
			TimestampTz ts2;

			if (topic_row(topic, false, mid - 1, &id2, &ts2, dirty) && id2 > lo)
			{
				if (ts2 >= since)
					hi = id2;
				else
					lo = id2;
			}
			else
				break;
		}
	}
	return hi;
}

/*
 * courier_topic_info
 *		_topic_info(topic_id) -> (messages, counts_exact, segments, bytes,
 *		oldest, newest, sent_last_minute, next_id); NULL if the caller may
 *		not see the topic.
 */
Datum
courier_topic_info(PG_FUNCTION_ARGS)
{
	int32		topic_id = PG_GETARG_INT32(0);
	CourierTopic *topic = CourierGetTopicById(topic_id);
	TupleDesc	desc;
	Datum		values[8];
	bool		nulls[8];
	int64		next_id;
	int64		first_id,
				last_id;
	TimestampTz oldest,
				newest;
	int64		messages = 0;
	int64		last_minute = 0;
	bool		exact = true;
	int64		bytes = 0;
	int			i;
	int64		limit = courier_stats_exact_limit;

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	if (topic == NULL || !CourierMaySeeTopic(topic))
		PG_RETURN_NULL();
	memset(nulls, 0, sizeof(nulls));
	next_id = CourierNextIdOf(topic);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	for (i = 0; i < topic->nsegments; i++)
	{
		bool		isnull;
		Datum		d;
		Oid			types[1] = {OIDOID};
		Datum		args[1];

		args[0] = ObjectIdGetDatum(topic->segments[i].relid);
		if (CourierExecuteOnce("SELECT pg_catalog.pg_total_relation_size($1::pg_catalog.regclass)",
							   1, types, args, NULL, true, 1) != SPI_OK_SELECT)
			elog(ERROR, "could not size a segment");
		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		if (!isnull)
			bytes += DatumGetInt64(d);
	}
	if (topic_row(topic, true, 0, &first_id, &oldest, false) &&
		topic_row(topic, false, PG_INT64_MAX, &last_id, &newest, false))
	{
		TimestampTz since = GetCurrentTimestamp() - 60 * USECS_PER_SEC;

		if (last_id - first_id + 1 <= limit)
		{
			messages = topic_count(topic, 0, 0);
			last_minute = newest >= since ? topic_count(topic, 0, since) : 0;
		}
		else
		{
			exact = false;
			messages = last_id - first_id + 1;
			if (newest < since)
				last_minute = 0;
			else if (oldest >= since)
				last_minute = messages;
			else
			{
				int64		from = first_sent_since(topic, first_id, last_id, since, false);

				if (last_id - from + 1 <= limit)
					last_minute = topic_count(topic, from, since);
				else
					last_minute = last_id - from + 1;
			}
		}
		values[4] = TimestampTzGetDatum(oldest);
		values[5] = TimestampTzGetDatum(newest);
	}
	else
	{
		nulls[4] = true;
		nulls[5] = true;
	}
	SPI_finish();

	values[0] = Int64GetDatum(messages);
	values[1] = BoolGetDatum(exact);
	values[2] = Int32GetDatum(topic->nsegments);
	values[3] = Int64GetDatum(bytes);
	values[6] = Int64GetDatum(last_minute);
	values[7] = Int64GetDatum(next_id);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
}

/*
 * sent_at_of
 *		When message id was sent (the log, or a redriven copy in the lease
 *		table); false if unknown.  Outside SPI.
 */
static bool
sent_at_of(CourierTopic *topic, CourierGroup *group, int64 id, TimestampTz *sent_at)
{
	CourierPayload msg;
	bool		found = false;

	if (CourierFetchMessage(topic, id, &msg))
	{
		*sent_at = msg.sent_at;
		return true;
	}
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	{
		Oid			types[2] = {INT4OID, INT8OID};
		Datum		args[2];
		bool		isnull;

		args[0] = Int32GetDatum(group->group_id);
		args[1] = Int64GetDatum(id);
		if (CourierExecuteOnce("SELECT sent_at FROM courier.lease WHERE group_id OPERATOR(pg_catalog.=) $1 "
							   "AND msg_id OPERATOR(pg_catalog.=) $2 AND sent_at IS NOT NULL",
							   2, types, args, NULL, true, 1) == SPI_OK_SELECT && SPI_processed == 1)
		{
			*sent_at = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0],
														 SPI_tuptable->tupdesc, 1, &isnull));
			found = true;
		}
	}
	SPI_finish();
	return found;
}

#define SAMPLE_WINDOWS	16

/*
 * sample_backlog
 *		Estimate a group's unwalked backlog: read SAMPLE_WINDOWS windows of
 *		ids spread evenly over [frontier, next_id), courier.stats_exact_limit
 *		ids in all, count the committed messages that match the group's
 *		filter (due now, or delayed), and scale to the unwalked ids.
 *		Spread windows, not a prefix: producers often send in runs (a batch
 *		of one kind, then another), and a prefix would see only the first.
 */
static void
sample_backlog(CourierTopic *topic, CourierGroup *group, int64 frontier, int64 next_id,
			   int64 unwalked, CourierWalkResult *res)
{
	int64		range = next_id - frontier;
	int64		width = Max(courier_stats_exact_limit / SAMPLE_WINDOWS, 1);
	int64		sampled = 0;
	int64		due = 0;
	int64		delayed = 0;
	int64	   *seg_lo;
	int64	   *seg_hi;
	TimestampTz now = GetCurrentTimestamp();
	Oid			types[2] = {INT8OID, INT8OID};
	int			i,
				k;

	memset(res, 0, sizeof(CourierWalkResult));
	if (range <= 0)
		return;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	seg_lo = palloc0(sizeof(int64) * Max(topic->nsegments, 1));
	seg_hi = palloc0(sizeof(int64) * Max(topic->nsegments, 1));
	for (i = 0; i < topic->nsegments; i++)
	{
		TimestampTz ts;

		if (!seg_row(&topic->segments[i], true, 0, &seg_lo[i], &ts) ||
			!seg_row(&topic->segments[i], false, PG_INT64_MAX, &seg_hi[i], &ts))
			seg_lo[i] = seg_hi[i] = -1;		/* empty */
	}
	for (k = 0; k < SAMPLE_WINDOWS; k++)
	{
		int64		a = frontier + (int64) ((double) range * k / SAMPLE_WINDOWS);
		int64		b = Min(a + width, next_id);
		Datum		args[2];

		if (k > 0 && a < frontier + (int64) ((double) range * (k - 1) / SAMPLE_WINDOWS) + width)
			a = Min(frontier + (int64) ((double) range * (k - 1) / SAMPLE_WINDOWS) + width, b);
		if (a >= b)
			continue;
		sampled += b - a;
		args[0] = Int64GetDatum(a);
		args[1] = Int64GetDatum(b);
		for (i = 0; i < topic->nsegments; i++)
		{
			char	   *name;
			uint64		j;

			if (seg_lo[i] < 0 || seg_hi[i] < a || seg_lo[i] >= b)
				continue;
			name = segment_name(&topic->segments[i]);
			if (name == NULL)
				continue;
			if (CourierExecuteOnce(psprintf("SELECT deliver_at, tag, headers FROM %s "
											   "WHERE id OPERATOR(pg_catalog.>=) $1 "
											   "AND id OPERATOR(pg_catalog.<) $2", name),
								   2, types, args, NULL, true, 0) != SPI_OK_SELECT)
				elog(ERROR, "could not read segment %s", name);
			for (j = 0; j < SPI_processed; j++)
			{
				HeapTuple	tup = SPI_tuptable->vals[j];
				TupleDesc	desc = SPI_tuptable->tupdesc;
				bool		dnull,
							tnull,
							hnull;
				Datum		d = SPI_getbinval(tup, desc, 1, &dnull);
				Datum		tag = SPI_getbinval(tup, desc, 2, &tnull);
				Datum		headers = SPI_getbinval(tup, desc, 3, &hnull);

				if (group->filter != NULL &&
					CourierEvalFilter(group->filter, hnull ? (Datum) 0 : headers,
									  tnull ? (Datum) 0 : tag) != CF_TRUE)
					continue;
				if (!dnull && DatumGetTimestampTz(d) > now)
					delayed++;
				else
					due++;
			}
		}
	}
	SPI_finish();
	if (sampled > 0)
	{
		double		scale = (double) unwalked / (double) sampled;

		res->backlog = (int64) (due * scale + 0.5);
		res->delayed = (int64) (delayed * scale + 0.5);
	}
}

/*
 * courier_group_info
 *		_group_info(group_id) -> (backlog, backlog_exact, delayed, in_flight,
 *		retrying, oldest_undelivered, oldest_unacked, last_receive,
 *		last_ack); NULL if the caller may not see the topic.  See the file
 *		header for what is exact.
 */
Datum
courier_group_info(PG_FUNCTION_ARGS)
{
	int32		group_id = PG_GETARG_INT32(0);
	CourierTopic *topic;
	CourierGroup *group = CourierGetGroupWithTopic(group_id, &topic);
	CourierWalkResult res;
	TupleDesc	desc;
	Datum		values[9];
	bool		nulls[9];
	Oid			types[2] = {INT4OID, TIMESTAMPTZOID};
	Datum		args[2];
	TimestampTz now = GetCurrentTimestamp();
	int64		frontier,
				lowest,
				span_ids,
				next_id,
				unwalked;
	int64		backlog,
				delayed,
				in_flight,
				retrying;
	int64		undelivered_id = 0,
				unacked_id = 0,
				first_id;
	TimestampTz ts;
	bool		exact = true;
	bool		isnull;
	HeapTuple	tup;
	CourierGroupShared *gs;
	CourierDeferredCount deferred;
	uint64		t;
	Snapshot	latest;
	Datum		d;

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	if (group == NULL || !CourierMaySeeTopic(topic))
		PG_RETURN_NULL();
	memset(nulls, 0, sizeof(nulls));

	/*
	 * The snapshot the lease and claim rows are counted under (below): the
	 * latest, taken before the position is read.  Not the caller's: under
	 * REPEATABLE READ the transaction's snapshot missed leases committed
	 * since it was taken, and messages the walk no longer counted as
	 * backlog were counted nowhere (review 51).  Not one taken after the
	 * walk: a receive committing in between was counted twice, as backlog
	 * and in flight (review 52).  Taken before, a receive that commits
	 * after it counts as backlog, if the walk read the position before the
	 * receive published it, or in neither column, as one still in progress
	 * does -- never in both.
	 */
	latest = RegisterSnapshot(GetLatestSnapshot());

	/*
	 * The log part of the backlog: exact below the limit, else scaled (the
	 * deferred spans say how many delayed messages they hold).
	 */
	CourierGroupPosition(group, &frontier, &lowest, &span_ids, &deferred);
	next_id = CourierNextIdOf(topic);
	unwalked = Max(next_id - frontier, 0) + span_ids;
	if (unwalked <= courier_stats_exact_limit)
		CourierWalk(topic, group, WALK_COUNT, 0, 0, 0, &res);
	else
	{
		sample_backlog(topic, group, frontier, next_id, unwalked - deferred.ids, &res);
		res.backlog += deferred.due;
		res.delayed += deferred.delayed;
		exact = false;
	}
	backlog = res.backlog;
	delayed = res.delayed;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	CourierPrepare(&plan_lease_stats,
				   "SELECT pg_catalog.count(*) FILTER (WHERE attempt OPERATOR(pg_catalog.=) 0 "
				   "         AND (state OPERATOR(pg_catalog.=) 'q' OR visible_at OPERATOR(pg_catalog.<=) $2)), "
				   "       pg_catalog.count(*) FILTER (WHERE attempt OPERATOR(pg_catalog.=) 0 "
				   "         AND state OPERATOR(pg_catalog.<>) 'q' AND visible_at OPERATOR(pg_catalog.>) $2), "
				   "       pg_catalog.count(*) FILTER (WHERE state OPERATOR(pg_catalog.=) 'l' "
				   "         AND visible_at OPERATOR(pg_catalog.>) $2), "
				   "       pg_catalog.count(*) FILTER (WHERE attempt OPERATOR(pg_catalog.>) 0 "
				   "         AND NOT (state OPERATOR(pg_catalog.=) 'l' AND visible_at OPERATOR(pg_catalog.>) $2)) "
				   "FROM courier.lease WHERE group_id OPERATOR(pg_catalog.=) $1",
				   2, types);
	CourierPrepare(&plan_claim_stats,
				   "SELECT coalesce(pg_catalog.sum(pg_catalog.cardinality(pending)) "
				   "         FILTER (WHERE lease_until OPERATOR(pg_catalog.>) $2), 0)::pg_catalog.int8, "
				   "       coalesce(pg_catalog.sum(pg_catalog.cardinality(pending)) "
				   "         FILTER (WHERE lease_until OPERATOR(pg_catalog.<=) $2), 0)::pg_catalog.int8 "
				   "FROM courier.claim WHERE group_id OPERATOR(pg_catalog.=) $1",
				   2, types);
	CourierPrepare(&plan_oldest_ids,
				   "SELECT (SELECT pg_catalog.min(msg_id) FROM courier.lease "
				   "        WHERE group_id OPERATOR(pg_catalog.=) $1 AND attempt OPERATOR(pg_catalog.=) 0), "
				   "       LEAST((SELECT pg_catalog.min(msg_id) FROM courier.lease "
				   "              WHERE group_id OPERATOR(pg_catalog.=) $1 AND attempt OPERATOR(pg_catalog.>) 0), "
				   "             (SELECT pg_catalog.min(p) FROM courier.claim c, pg_catalog.unnest(c.pending) p "
				   "              WHERE c.group_id OPERATOR(pg_catalog.=) $1)) "
				   "WHERE $2 IS NOT NULL",
				   2, types);
	args[0] = Int32GetDatum(group_id);
	args[1] = TimestampTzGetDatum(now);

	if (SPI_execute_snapshot(plan_lease_stats, args, NULL, latest, InvalidSnapshot, true, false, 1) !=
		SPI_OK_SELECT)
		elog(ERROR, "could not count leases");
	tup = SPI_tuptable->vals[0];
	backlog += DatumGetInt64(SPI_getbinval(tup, SPI_tuptable->tupdesc, 1, &isnull));
	delayed += DatumGetInt64(SPI_getbinval(tup, SPI_tuptable->tupdesc, 2, &isnull));
	in_flight = DatumGetInt64(SPI_getbinval(tup, SPI_tuptable->tupdesc, 3, &isnull));
	retrying = DatumGetInt64(SPI_getbinval(tup, SPI_tuptable->tupdesc, 4, &isnull));
	if (SPI_execute_snapshot(plan_claim_stats, args, NULL, latest, InvalidSnapshot, true, false, 1) !=
		SPI_OK_SELECT)
		elog(ERROR, "could not count claims");
	tup = SPI_tuptable->vals[0];
	in_flight += DatumGetInt64(SPI_getbinval(tup, SPI_tuptable->tupdesc, 1, &isnull));
	retrying += DatumGetInt64(SPI_getbinval(tup, SPI_tuptable->tupdesc, 2, &isnull));
	if (SPI_execute_snapshot(plan_oldest_ids, args, NULL, latest, InvalidSnapshot, true, false, 1) !=
		SPI_OK_SELECT)
		elog(ERROR, "could not read the oldest messages");
	tup = SPI_tuptable->vals[0];
	d = SPI_getbinval(tup, SPI_tuptable->tupdesc, 1, &isnull);
	if (!isnull)
		undelivered_id = DatumGetInt64(d);
	d = SPI_getbinval(tup, SPI_tuptable->tupdesc, 2, &isnull);
	if (!isnull)
		unacked_id = DatumGetInt64(d);
	/* the oldest message the group has not looked at yet, or has deferred */
	if (backlog + delayed > 0 && topic_row(topic, true, frontier, &first_id, &ts, false) &&
		(undelivered_id == 0 || first_id < undelivered_id))
		undelivered_id = first_id;
	if (deferred.first > 0 && (undelivered_id == 0 || deferred.first < undelivered_id))
		undelivered_id = deferred.first;
	SPI_finish();
	UnregisterSnapshot(latest);

	nulls[5] = !(undelivered_id > 0 && sent_at_of(topic, group, undelivered_id, &ts));
	if (!nulls[5])
		values[5] = TimestampTzGetDatum(ts);
	nulls[6] = !(unacked_id > 0 && sent_at_of(topic, group, unacked_id, &ts));
	if (!nulls[6])
		values[6] = TimestampTzGetDatum(ts);

	gs = CourierGroupSharedFind(group_id);
	t = gs ? pg_atomic_read_u64(&gs->last_receive) : 0;
	nulls[7] = (t == 0);
	values[7] = TimestampTzGetDatum((TimestampTz) t);
	t = gs ? pg_atomic_read_u64(&gs->last_ack) : 0;
	nulls[8] = (t == 0);
	values[8] = TimestampTzGetDatum((TimestampTz) t);

	values[0] = Int64GetDatum(backlog);
	values[1] = BoolGetDatum(exact);
	values[2] = Int64GetDatum(delayed);
	values[3] = Int64GetDatum(in_flight);
	values[4] = Int64GetDatum(retrying);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
}

/*
 * courier_invalidate_group
 *		_invalidate_group(group_id): forget the group's shared position, so
 *		that the next walk rebuilds it from the tables (seek).  The caller
 *		holds the group's existence and claim locks until commit, so no walk
 *		can rebuild from the old rows in between.
 */
Datum
courier_invalidate_group(PG_FUNCTION_ARGS)
{
	int32		group_id = PG_GETARG_INT32(0);
	CourierGroupShared *gs = CourierGroupSharedGet(group_id);

	CourierGroupInvalidate(gs, group_id);
	/* a walk before commit rebuilds from our own rows: forget that too */
	CourierInvalidateGroupAtEnd(group_id);
	PG_RETURN_VOID();
}

/*
 * courier_first_id_since
 *		_first_id_since(topic_id, since) -> the id of the first retained
 *		message sent at or after since, or the topic's next id if there is
 *		none (alter_topic; seek uses _seek_start).  Found by binary search on the id index:
 *		sent_at is taken just before the id, so it follows id order up to
 *		the moments concurrent senders wait for the topic's id lock.
 */
PG_FUNCTION_INFO_V1(courier_first_id_since);
PG_FUNCTION_INFO_V1(courier_seek_start);

/*
 * first_id_since
 *		The first id of a message sent at or after since, or next_id.
 *		Inside SPI.
 */
static int64
first_id_since(CourierTopic *topic, TimestampTz since, int64 next_id, bool dirty)
{
	int64		first_id,
				last_id;
	TimestampTz oldest,
				newest;

	if (topic_row(topic, true, 0, &first_id, &oldest, dirty) &&
		topic_row(topic, false, PG_INT64_MAX, &last_id, &newest, dirty) && newest >= since)
	{
		if (oldest >= since)
			return first_id;
		return first_sent_since(topic, first_id, last_id, since, dirty);
	}
	return next_id;
}

Datum
courier_first_id_since(PG_FUNCTION_ARGS)
{
	int32		topic_id = PG_GETARG_INT32(0);
	TimestampTz since = PG_GETARG_TIMESTAMPTZ(1);
	CourierTopic *topic = CourierGetTopicById(topic_id);
	int64		result;

	if (topic == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("topic with id %d does not exist", topic_id)));
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	result = first_id_since(topic, since, CourierNextIdOf(topic), false);
	SPI_finish();
	PG_RETURN_INT64(result);
}

/*
 * courier_seek_start
 *		_seek_start(topic_id, since) -> the first id a seek to since must
 *		hand out again: the first message sent at or after since, counting
 *		messages whose transaction is still open (or prepared), and never
 *		above an id a sender holds without having inserted it yet.  'infinity'
 *		gives the topic's next id: everything sent so far, open or not.
 *
 *		Read as walkers read the log (walk.c): next_id and the senders'
 *		allocation marks first, then the log under a dirty snapshot.  An id
 *		below the result is committed and sent before since, or belongs to a
 *		transaction that rolled back or had sent it before since; so a seek
 *		never passes over a message sent at or after since that commits
 *		later, whatever the caller's isolation level, and waits for nobody.
 */
Datum
courier_seek_start(PG_FUNCTION_ARGS)
{
	int32		topic_id = PG_GETARG_INT32(0);
	TimestampTz since = PG_GETARG_TIMESTAMPTZ(1);
	CourierTopic *topic = CourierGetTopicById(topic_id);
	CourierSenderMark *marks;
	int64		next_id,
				result;
	int			nmarks,
				i;

	if (topic == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("topic with id %d does not exist", topic_id)));
	marks = palloc(sizeof(CourierSenderMark) * Max(CourierState->nmarks, 1));
	nmarks = CourierReadAllocation(topic, &next_id, NULL, marks);
	if (TIMESTAMP_IS_NOEND(since))
		PG_RETURN_INT64(next_id);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	result = Min(first_id_since(topic, since, next_id, true), next_id);
	SPI_finish();
	/* ids handed out but not inserted yet: their sent_at is unknown */
	for (i = 0; i < nmarks; i++)
		result = Min(result, marks[i].lo);
	PG_RETURN_INT64(result);
}

/*
 * group_exec
 *		spi_latest for a statement on one group's rows ($1 the group, $2 an
 *		id bound, if it uses one); returns the first column of the first row
 *		as int8 (0 if none or NULL).  Inside SPI.
 */
static int64
group_exec(const char *sql, int32 group_id, int64 upto, int expect)
{
	Oid			types[2] = {INT4OID, INT8OID};
	Datum		args[2];
	bool		isnull = true;
	int64		r = 0;

	args[0] = Int32GetDatum(group_id);
	args[1] = Int64GetDatum(upto);
	spi_latest(sql, 2, types, args, expect);
	if (expect == SPI_OK_SELECT && SPI_processed > 0)
	{
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull)
			r = DatumGetInt64(d);
	}
	return r;
}

/*
 * courier_group_reset
 *		_group_reset(group_id, upto, dead) -> (old_top, dropped): delete the
 *		group's claims and lease rows (and its dead letters if dead), for
 *		seek, purge, drop_group and drop_topic.  old_top is the highest id
 *		they (or its deferred spans) covered, dropped how many unfinished
 *		messages at or below upto they held.
 *
 *		Under the latest snapshot, not the caller's: the caller holds the
 *		group's existence and claim locks, so nothing of the group changes
 *		any more, but under REPEATABLE READ the transaction's snapshot may
 *		predate rows that receives, acks or maintenance committed while it
 *		waited for those locks; a plain DELETE would leave them behind (a
 *		seek that replays nothing, a dropped group's rows left over).
 */
PG_FUNCTION_INFO_V1(courier_group_reset);
Datum
courier_group_reset(PG_FUNCTION_ARGS)
{
	int32		group_id = PG_GETARG_INT32(0);
	int64		upto = PG_GETARG_INT64(1);
	bool		dead = PG_GETARG_BOOL(2);
	TupleDesc	desc;
	Datum		values[2];
	bool		nulls[2] = {false, false};
	int64		top_claim,
				top_lease,
				dropped = 0,
				top_deferred = 0;
	CourierTopic *topic;
	CourierGroup *group = CourierGetGroupWithTopic(group_id, &topic);

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	/*
	 * Delayed messages in the group's deferred spans have no row: count
	 * those at or below upto as dropped (like delayed lease rows), and let
	 * the spans reach old_top.
	 */
	if (group != NULL && topic != NULL)
	{
		CourierWalkResult res;
		CourierDeferredCount deferred;
		int64		frontier,
					lowest,
					span_ids;

		CourierGroupPosition(group, &frontier, &lowest, &span_ids, &deferred);
		top_deferred = deferred.last;
		if (deferred.last > 0 && upto > 0)	/* (upto 0 would mean "all" to a walk) */
		{
			CourierWalk(topic, group, WALK_COUNT_DEFERRED, 0, 0, upto, &res);
			dropped = res.backlog + res.delayed;
		}
	}
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	top_claim = group_exec("SELECT pg_catalog.max(hi) FROM courier.claim "
							"WHERE group_id OPERATOR(pg_catalog.=) $1",
							group_id, upto, SPI_OK_SELECT);
	top_lease = group_exec("SELECT pg_catalog.max(msg_id) FROM courier.lease "
							"WHERE group_id OPERATOR(pg_catalog.=) $1",
							group_id, upto, SPI_OK_SELECT);
	dropped += group_exec("SELECT pg_catalog.count(*) FROM courier.claim c, "
						  "LATERAL pg_catalog.unnest(c.pending) p "
						  "WHERE c.group_id OPERATOR(pg_catalog.=) $1 AND p OPERATOR(pg_catalog.<=) $2",
						  group_id, upto, SPI_OK_SELECT);
	dropped += group_exec("SELECT pg_catalog.count(*) FROM courier.lease "
						   "WHERE group_id OPERATOR(pg_catalog.=) $1 AND msg_id OPERATOR(pg_catalog.<=) $2",
						   group_id, upto, SPI_OK_SELECT);
	(void) group_exec("DELETE FROM courier.claim WHERE group_id OPERATOR(pg_catalog.=) $1",
					  group_id, upto, SPI_OK_DELETE);
	(void) group_exec("DELETE FROM courier.lease WHERE group_id OPERATOR(pg_catalog.=) $1",
					  group_id, upto, SPI_OK_DELETE);
	if (dead)
		(void) group_exec("DELETE FROM courier.dead_letter WHERE group_id OPERATOR(pg_catalog.=) $1",
					  group_id, upto, SPI_OK_DELETE);
	SPI_finish();
	values[0] = Int64GetDatum(Max(Max(top_claim, top_lease), top_deferred));
	values[1] = Int64GetDatum(dropped);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
}

/*
 * courier_count_messages
 *		_count_messages(topic_id, above, upto) -> how many retained messages
 *		have above < id <= upto (exact: an index range count per segment).
 */
PG_FUNCTION_INFO_V1(courier_count_messages);
Datum
courier_count_messages(PG_FUNCTION_ARGS)
{
	int32		topic_id = PG_GETARG_INT32(0);
	int64		above = PG_GETARG_INT64(1);
	int64		upto = PG_GETARG_INT64(2);
	CourierTopic *topic = CourierGetTopicById(topic_id);
	int64		total = 0;
	int			i;
	Oid			types[2] = {INT8OID, INT8OID};
	Datum		args[2];

	if (topic == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("topic with id %d does not exist", topic_id)));
	if (upto <= above)
		PG_RETURN_INT64(0);
	args[0] = Int64GetDatum(above);
	args[1] = Int64GetDatum(upto);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	for (i = 0; i < topic->nsegments; i++)
	{
		char	   *name = segment_name(&topic->segments[i]);
		bool		isnull;

		if (name == NULL)
			continue;
		spi_latest(psprintf("SELECT pg_catalog.count(*) FROM %s "
							"WHERE id OPERATOR(pg_catalog.>) $1 "
							"AND id OPERATOR(pg_catalog.<=) $2", name),
				   2, types, args, SPI_OK_SELECT);
		total += DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	}
	SPI_finish();
	PG_RETURN_INT64(total);
}

/*
 * courier_topic_stats / courier_group_stats
 *		The C symbols of 0.1.0's _topic_stats and _group_stats.  0.2.0 has
 *		no such functions, but 0.1.0's frozen install script names them (the
 *		upgrade chain installs it), so the symbols stay; a database still on
 *		0.1.0 is refused anyway (catalog.c, check_version).
 */
PG_FUNCTION_INFO_V1(courier_topic_stats);
Datum
courier_topic_stats(PG_FUNCTION_ARGS)
{
	CourierCacheCheck();		/* refuses 0.1.0 with a hint */
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("courier._topic_stats was removed in pg_courier 0.2.0")));
	PG_RETURN_NULL();
}

PG_FUNCTION_INFO_V1(courier_group_stats);
Datum
courier_group_stats(PG_FUNCTION_ARGS)
{
	CourierCacheCheck();
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("courier._group_stats was removed in pg_courier 0.2.0")));
	PG_RETURN_NULL();
}
