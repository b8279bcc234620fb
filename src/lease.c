/*-------------------------------------------------------------------------
 *
 * lease.c
 *	  The per-message lease table (courier.lease): redeliveries, delayed
 *	  messages, ordered groups, and moving messages to the dead-letter
 *	  table.
 *
 * First deliveries are recorded in batches (claims, walk.c).  Anything that
 * needs a per-message state gets a row here:
 *	- a claim whose lease expired: its pending ids become rows in state 'l'
 *	  with visible_at = the expired lease;
 *	- a nacked message, or one whose lease was changed by set_visibility:
 *	  'w' (waiting) or 'l' (leased) with its own visible_at;
 *	- a delayed message, when a walk reaches it before its time: 'w';
 *	- a keyed message of an ordered group: 'w' for the head of its key,
 *	  'q' for those queued behind it;
 *	- a redriven dead letter: 'w'.
 * A row is receivable when visible_at <= now and its state is 'l' or 'w'.
 *
 * Concurrency: rows are picked with FOR UPDATE SKIP LOCKED, so two
 * receivers never take the same row and a rolled-back receive leaves its
 * rows untouched.  All statements are prepared once and kept.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/relscan.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "storage/lock.h"
#include "storage/procarray.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "pg_courier.h"

/* Prepared statements, kept for the life of the backend */
static SPIPlanPtr plan_expired = NULL;
static SPIPlanPtr plan_expire_update = NULL;
static SPIPlanPtr plan_insert_leases = NULL;
static SPIPlanPtr plan_due = NULL;
static SPIPlanPtr plan_take = NULL;
static SPIPlanPtr plan_extend = NULL;
static SPIPlanPtr plan_next_due = NULL;

/*
 * Plan shapes for CourierExecuteShaped: planner settings (name, value,
 * ...).
 *	- CourierIndexShape leaves index scans in index order (no sort) for the
 *	  scans of the receive/ack path on courier.claim and courier.lease.
 *	  Each of those statements orders by the columns of exactly one index,
 *	  so that index is the only plan left, and the plan is generic: planned
 *	  once per session.  (Left to choose, the plan cache kept planning the
 *	  expiry scan afresh at every receive: its generic plan, costed for a
 *	  third of the table, never looked cheaper than the custom ones.)
 *	- CourierKeyShape is for the statements that find one row by its
 *	  whole primary key: planned afresh at each call, because a generic
 *	  plan made while the table was empty (vacuumed: known to be empty)
 *	  picks any index that matches group_id -- claim_expiry, then reading
 *	  every claim of the group.  Custom plans can still tie the two indexes
 *	  when the statistics say the table is empty, so the hot path (the
 *	  ack's claim swap, the hand-out of lease rows) goes by TID instead.
 *	- CourierTidShape leaves the TID scan of row versions read or locked
 *	  just before, generic.
 */
const char *const CourierIndexShape[] = {
	"enable_seqscan", "off", "enable_bitmapscan", "off", "enable_sort", "off",
	"plan_cache_mode", "force_generic_plan", NULL
};
const char *const CourierKeyShape[] = {
	"enable_seqscan", "off", "enable_bitmapscan", "off", "enable_sort", "off",
	"plan_cache_mode", "force_custom_plan", NULL
};
const char *const CourierTidShape[] = {
	"enable_indexscan", "off", "enable_bitmapscan", "off", "enable_seqscan", "off",
	"plan_cache_mode", "force_generic_plan", NULL
};
static SPIPlanPtr plan_dead_insert = NULL;
static SPIPlanPtr plan_lease_delete = NULL;
static SPIPlanPtr plan_promote = NULL;
static SPIPlanPtr plan_promote_delay = NULL;
static SPIPlanPtr plan_lease_copy = NULL;
static SPIPlanPtr plan_orphans = NULL;
static SPIPlanPtr plan_prepared_xacts = NULL;

/*
 * A promotion entry with this msg_id (and a valid xid, okey "") is not a
 * key's check but the group's scan for keys without a head, due again once
 * that prepared transaction has ended (CourierRunPromotions).
 */
#define PROMOTE_SCAN_AGAIN	INT64CONST(-1)


/*
 * CourierExecuteOnce
 *		SPI_execute_with_args for a statement run once: parsed, planned and
 *		run under the pinned search path (pushed here if the caller has not
 *		pinned it, as when a superuser calls one of the internal functions
 *		directly), and never with a parallel plan -- parallel workers take
 *		the leader's search_path setting, not an override such as the one
 *		CourierRunAsOwner pins (acl.c), and SPI_execute* plans with
 *		CURSOR_OPT_PARALLEL_OK.
 */
int
CourierExecuteOnce(const char *sql, int nargs, Oid *argtypes, Datum *values,
				   const char *nulls, bool read_only, long count)
{
	SPIPlanPtr	plan;
	volatile int ret = 0;
	bool		push = !CourierPathIsPinned();

	if (push)
		CourierPushPinnedPath();
	PG_TRY();
	{
		plan = SPI_prepare_cursor(sql, nargs, argtypes, 0);
		if (plan == NULL)
			elog(ERROR, "could not prepare \"%s\": %s", sql,
				 SPI_result_code_string(SPI_result));
		ret = SPI_execute_plan(plan, values, nulls, read_only, count);
		SPI_freeplan(plan);
	}
	PG_FINALLY();
	{
		if (push)
			PopOverrideSearchPath();
	}
	PG_END_TRY();
	return ret;
}

/*
 * CourierPrepare
 *		Prepare (once) and return a kept plan, never parallel (cursor
 *		options 0).  The caller must have pinned the search path: a kept
 *		plan is revalidated, and if need be parsed again, under whatever
 *		path is active when it runs, so pinning it here for the parse would
 *		not be enough.  An entry point that forgot fails here in every test
 *		that reaches one of its statements, instead of resolving names
 *		through the caller's path.
 */
SPIPlanPtr
CourierPrepare(SPIPlanPtr *cache, const char *sql, int nargs, Oid *argtypes)
{
	if (*cache == NULL)
	{
		SPIPlanPtr	plan;

		if (!CourierPathIsPinned())
			elog(ERROR, "pg_courier prepares \"%s\" outside its pinned search_path", sql);
		plan = SPI_prepare(sql, nargs, argtypes);

		if (plan == NULL)
			elog(ERROR, "could not prepare \"%s\": %s", sql,
				 SPI_result_code_string(SPI_result));
		SPI_keepplan(plan);
		*cache = plan;
	}
	return *cache;
}

/*
 * CourierExecuteShaped
 *		SPI_execute_plan with the planner settings in off (name, value,
 *		..., NULL) in force while it runs, so that the plan cache
 *		plans the statement (when it plans it) into the one shape that is
 *		right whatever the statistics say.  courier.claim and courier.lease
 *		are queue tables: their contents change completely between two
 *		ANALYZEs.  A burst grows the lease table from a few rows to 100,000,
 *		and plans made from the old statistics sorted every due row to hand
 *		out 100 and read every row of the group to update 100 (41 ms
 *		instead of 4 per receive of 100, test/sql/lease_plans.sql); claims
 *		churn (one or two per receive, deleted by compaction), and W4 found
 *		the ack's claim lookups and the expiry scan planned as sequential
 *		scans of the whole table, ~94 buffers per call (BENCHMARKS.md).
 */
int
CourierExecuteShaped(SPIPlanPtr plan, Datum *args, const char *nulls, long count,
					 const char *const *off)
{
	int			nest = NewGUCNestLevel();
	int			ret;

	for (; *off != NULL; off += 2)
		(void) set_config_option(off[0], off[1], PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
	ret = SPI_execute_plan(plan, args, nulls, false, count);
	AtEOXact_GUC(true, nest);
	return ret;
}

/*
 * CourierOrderingKey
 *		The ordering key of a message: the first of its keys.
 */
char *
CourierOrderingKey(Datum keys, bool isnull)
{
	ArrayType  *arr;
	Datum	   *elems;
	bool	   *nulls;
	int			n;

	if (isnull)
		return NULL;
	arr = DatumGetArrayTypeP(keys);
	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	if (n == 0 || nulls[0])
		return NULL;
	return TextDatumGetCString(elems[0]);
}

/*
 * int8_array
 *		Build an int8[] from C values.
 */
Datum
CourierInt8Array(int64 *vals, int n)
{
	Datum	   *elems = palloc(sizeof(Datum) * Max(n, 1));
	int			i;

	for (i = 0; i < n; i++)
		elems[i] = Int64GetDatum(vals[i]);
	return PointerGetDatum(construct_array(elems, n, INT8OID, 8, FLOAT8PASSBYVAL,
										   TYPALIGN_DOUBLE));
}

static bool claim_pending(TupleTableSlot *slot);
static bool lease_receivable(TupleTableSlot *slot);
static bool due_rows_probe(const char *relname, const char *idxname, int32 group_id,
						   TimestampTz now, bool (*accept) (TupleTableSlot *slot), Snapshot snap);

/*
 * due_rows_exist
 *		Whether index idxname (group_id, <a time>, ...) of table relname
 *		lists a row of the group whose time is at or before now and that
 *		accept takes, as a statement started now would see the rows (see
 *		CourierPushReadSnapshot).  The receive path asks before its scans
 *		of courier.claim and courier.lease, which find nothing nearly
 *		always: a direct index probe costs a fraction of an SPI statement's
 *		executor start-up.  It is only a shortcut: when it says no, the
 *		statement -- same rows, same conditions, then SKIP LOCKED, which
 *		only takes rows away -- would have found nothing either.
 */
static bool
due_rows_exist(const char *relname, const char *idxname, int32 group_id, TimestampTz now,
			   bool (*accept) (TupleTableSlot *slot))
{
	bool		found;

	found = due_rows_probe(relname, idxname, group_id, now, accept, CourierPushReadSnapshot());
	PopActiveSnapshot();
	return found;
}

/*
 * due_rows_probe
 *		due_rows_exist under the snapshot snap.
 */
static bool
due_rows_probe(const char *relname, const char *idxname, int32 group_id, TimestampTz now,
			   bool (*accept) (TupleTableSlot *slot), Snapshot snap)
{
	Relation	rel = table_open(CourierRelid(relname), AccessShareLock);
	Relation	idx = CourierIndexOpen(idxname, AccessShareLock);
	TupleTableSlot *slot = table_slot_create(rel, NULL);
	ScanKeyData keys[2];
	IndexScanDesc scan;
	bool		found = false;

	ScanKeyInit(&keys[0], 1, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(group_id));
	ScanKeyInit(&keys[1], 2, BTLessEqualStrategyNumber, F_TIMESTAMPTZ_LE,
				TimestampTzGetDatum(now));
	scan = index_beginscan(rel, idx, snap, 2, 0);
	index_rescan(scan, keys, 2, NULL, 0);
	while (!found && index_getnext_slot(scan, ForwardScanDirection, slot))
		found = accept(slot);
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	index_close(idx, NoLock);
	table_close(rel, NoLock);
	return found;
}

/*
 * claim_pending
 *		A claim row still holds messages (pending <> '{}').
 */
static bool
claim_pending(TupleTableSlot *slot)
{
	bool		isnull;
	Datum		d = slot_getattr(slot, Anum_claim_pending, &isnull);
	ArrayType  *arr;

	if (isnull)
		return false;
	arr = DatumGetArrayTypeP(d);
	return ArrayGetNItems(ARR_NDIM(arr), ARR_DIMS(arr)) > 0;
}

/*
 * lease_receivable
 *		A lease row is in a receivable state ('l' or 'w'; 'q' waits for its
 *		key's head).
 */
static bool
lease_receivable(TupleTableSlot *slot)
{
	bool		isnull;
	char		state = DatumGetChar(slot_getattr(slot, Anum_lease_state, &isnull));

	return state == 'l' || state == 'w';
}

/*
 * CourierExpireClaims
 *		Turn up to limit claims whose lease has expired into per-message
 *		lease rows, so that each message can be redelivered (or dead-
 *		lettered) on its own.  Returns the number of messages converted.
 */
int
CourierExpireClaims(CourierGroup *group, int limit, TimestampTz now)
{
	Oid			t_sel[3] = {INT4OID, TIMESTAMPTZOID, INT4OID};
	Oid			t_upd[2] = {INT4OID, INT8OID};
	Oid			t_ins[4] = {INT4OID, INT8ARRAYOID, TIMESTAMPTZOID, TIMESTAMPTZOID};
	Datum		args[4];
	int			converted = 0;
	uint64		i;
	int			ret;
	SPITupleTable *claims;
	uint64		nclaims;

	if (!due_rows_exist("claim", "claim_expiry", group->group_id, now, claim_pending))
		return 0;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	CourierPrepare(&plan_expired,
				   "SELECT lo, pending, lease_until, delivered_at FROM courier.claim "
				   "WHERE group_id OPERATOR(pg_catalog.=) $1 "
				   "AND lease_until OPERATOR(pg_catalog.<=) $2 "
				   "AND pending OPERATOR(pg_catalog.<>) '{}'::pg_catalog.int8[] "
				   "ORDER BY lease_until LIMIT $3 FOR UPDATE SKIP LOCKED",
				   3, t_sel);
	CourierPrepare(&plan_expire_update,
				   "UPDATE courier.claim SET pending = '{}', lease_until = NULL "
				   "WHERE group_id OPERATOR(pg_catalog.=) $1 AND lo OPERATOR(pg_catalog.=) $2",
				   2, t_upd);
	CourierPrepare(&plan_insert_leases,
				   "INSERT INTO courier.lease (group_id, msg_id, state, visible_at, attempt, "
				   "first_delivered_at, last_delivered_at) "
				   "SELECT $1, m, 'l', $3, 1, $4, $4 FROM pg_catalog.unnest($2) m",
				   4, t_ins);

	args[0] = Int32GetDatum(group->group_id);
	args[1] = TimestampTzGetDatum(now);
	args[2] = Int32GetDatum(limit);
	ret = CourierExecuteShaped(plan_expired, args, NULL, 0, CourierIndexShape);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read expired claims: %s", SPI_result_code_string(ret));
	claims = SPI_tuptable;
	nclaims = SPI_processed;

	for (i = 0; i < nclaims; i++)
	{
		HeapTuple	tup = claims->vals[i];
		bool		isnull;
		Datum		lo = SPI_getbinval(tup, claims->tupdesc, 1, &isnull);
		Datum		pending = SPI_getbinval(tup, claims->tupdesc, 2, &isnull);
		Datum		lease_until = SPI_getbinval(tup, claims->tupdesc, 3, &isnull);
		Datum		delivered_at = SPI_getbinval(tup, claims->tupdesc, 4, &isnull);
		ArrayType  *arr = DatumGetArrayTypeP(pending);
		int			n = ArrayGetNItems(ARR_NDIM(arr), ARR_DIMS(arr));

		if (n > 0)
		{
			Datum		iargs[4];

			iargs[0] = Int32GetDatum(group->group_id);
			iargs[1] = PointerGetDatum(arr);
			iargs[2] = lease_until;
			iargs[3] = delivered_at;
			ret = SPI_execute_plan(plan_insert_leases, iargs, NULL, false, 0);
			if (ret != SPI_OK_INSERT)
				elog(ERROR, "could not convert an expired claim: %s", SPI_result_code_string(ret));
			converted += n;
		}
		args[1] = lo;
		ret = CourierExecuteShaped(plan_expire_update, args, NULL, 0, CourierKeyShape);
		if (ret != SPI_OK_UPDATE)
			elog(ERROR, "could not update an expired claim: %s", SPI_result_code_string(ret));
	}
	SPI_finish();
	if (nclaims > 0)
	{
		/*
		 * While we hold them, other receivers' expiry scans skip these claims
		 * and their next due time (after now) does not count them: wake them
		 * when we end -- at commit the lease rows are due (we may hand out
		 * fewer than we converted; the worker hands out none), at abort the
		 * expired claims are back.
		 */
		CourierWakeAtCommit(group->topic_id);
		CourierWakeAtAbort(group->topic_id);
	}
	return converted;
}

/*
 * CourierLeaseDue
 *		Lease up to max_messages receivable rows of the lease table to the
 *		caller.  A row whose lease expired after max_attempts deliveries
 *		goes to the dead-letter table instead.  Fills out[] (payloads
 *		included) and returns how many were leased.
 */
int
CourierLeaseDue(CourierTopic *topic, CourierGroup *group, int max_messages,
				TimestampTz now, TimestampTz lease_until, CourierDelivery *out)
{
	Oid			t_due[3] = {INT4OID, TIMESTAMPTZOID, INT4OID};
	Oid			t_take[4] = {INT4OID, TIDARRAYOID, TIMESTAMPTZOID, TIMESTAMPTZOID};
	Datum		args[4];
	int			ret;
	uint64		i;
	int64	   *take_ids;
	Datum	   *take_tids;		/* the row versions we locked */
	int32	   *take_attempts;
	CourierPayload *take_copy;	/* the row's own copy of the message, if any */
	bool	   *take_has_copy;
	int			ntake = 0;
	CourierDeadRow *dead;
	int			ndead = 0;
	int			n = 0;
	MemoryContext outer = CurrentMemoryContext;
	SPIPlanPtr	plan;
	TimestampTz start = now;	/* what lease_until counts from */

	CourierRunPromotions(topic, group);
	/* a promotion just made makes its message due "now": look from after it */
	now = Max(now, GetCurrentTimestamp());
	if (!due_rows_exist("lease", "lease_due", group->group_id, now, lease_receivable))
		return 0;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	/*
	 * Ordered groups need no condition of their own: a key has at most one
	 * row that is not queued (its head, see CourierKeyLock; the unique index
	 * lease_head holds that), so its due rows are its head, once it is due,
	 * and never a second message of the key while one is in flight.
	 */
	plan = CourierPrepare(&plan_due,
						  "SELECT msg_id, state, attempt, first_delivered_at, last_delivered_at, last_error, "
						  "body, tag, keys, headers, sent_at, ctid "
						  "FROM courier.lease "
						  "WHERE group_id OPERATOR(pg_catalog.=) $1 "
						  "  AND visible_at OPERATOR(pg_catalog.<=) $2 "
						  "  AND state OPERATOR(pg_catalog.=) ANY ('{l,w}'::pg_catalog.\"char\"[]) "
						  "ORDER BY visible_at, msg_id LIMIT $3 FOR UPDATE SKIP LOCKED",
						  3, t_due);
	CourierPrepare(&plan_take,
				   "UPDATE courier.lease SET state = 'l', attempt = attempt OPERATOR(pg_catalog.+) 1, "
				   "visible_at = $3, last_delivered_at = $4, "
				   "first_delivered_at = coalesce(first_delivered_at, $4) "
				   "WHERE ctid OPERATOR(pg_catalog.=) ANY ($2) AND group_id OPERATOR(pg_catalog.=) $1",
				   4, t_take);

	args[0] = Int32GetDatum(group->group_id);
	args[1] = TimestampTzGetDatum(now);
	args[2] = Int32GetDatum(max_messages);
	/* the due rows in order, from lease_due: no bitmap scan, no sort */
	ret = CourierExecuteShaped(plan, args, NULL, 0, CourierIndexShape);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read the lease table: %s", SPI_result_code_string(ret));

	take_ids = MemoryContextAlloc(outer, sizeof(int64) * Max(SPI_processed, 1));
	take_tids = palloc(sizeof(Datum) * Max(SPI_processed, 1));
	take_attempts = MemoryContextAlloc(outer, sizeof(int32) * Max(SPI_processed, 1));
	take_copy = MemoryContextAllocZero(outer, sizeof(CourierPayload) * Max(SPI_processed, 1));
	take_has_copy = MemoryContextAllocZero(outer, sizeof(bool) * Max(SPI_processed, 1));
	dead = MemoryContextAlloc(outer, sizeof(CourierDeadRow) * Max(SPI_processed, 1));

	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		int64		id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		char		state = DatumGetChar(SPI_getbinval(tup, desc, 2, &isnull));
		int32		attempt = DatumGetInt32(SPI_getbinval(tup, desc, 3, &isnull));

		if (state == 'l' && attempt >= group->max_attempts)
		{
			/* its last lease ran out: dead letter */
			CourierDeadRowFromLease(tup, desc, outer, &dead[ndead++]);
			continue;
		}
		take_ids[ntake] = id;
		take_tids[ntake] = SPI_getbinval(tup, desc, 12, &isnull);
		take_attempts[ntake] = attempt + 1;
		take_has_copy[ntake] = CourierPayloadFromLease(tup, desc, 7, outer, &take_copy[ntake]);
		take_copy[ntake].id = id;
		ntake++;
	}

	if (ntake > 0)
	{
		Datum		targs[4];

		targs[0] = Int32GetDatum(group->group_id);
		/* by the versions we hold locked: a TID scan, whatever the statistics */
		targs[1] = PointerGetDatum(construct_array(take_tids, ntake, TIDOID,
												   sizeof(ItemPointerData), false,
												   TYPALIGN_SHORT));
		targs[2] = TimestampTzGetDatum(lease_until);
		targs[3] = TimestampTzGetDatum(now);
		ret = CourierExecuteShaped(plan_take, targs, NULL, 0, CourierTidShape);
		if (ret != SPI_OK_UPDATE)
			elog(ERROR, "could not lease messages: %s", SPI_result_code_string(ret));
		/*
		 * We hold every one of those row versions locked, so none can have
		 * moved; if one ever did, handing its message out would leave its
		 * row due for the next receiver: refuse instead.
		 */
		if (SPI_processed != (uint64) ntake)
			ereport(ERROR,
					(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
					 errmsg("could not lease %d messages of group \"%s\": %llu of their rows changed meanwhile",
							ntake, group->name, (unsigned long long) (ntake - SPI_processed)),
					 errhint("Retry the call.")));
		CourierDueAtCommit(topic->topic_id, group->group_id, lease_until);
	}
	SPI_finish();

	for (i = 0; i < (uint64) ndead; i++)
		CourierDeadLetter(topic, group, &dead[i]);

	for (i = 0; i < (uint64) ntake; i++)
	{
		CourierDelivery *d = &out[n];

		if (take_has_copy[i])
			d->msg = take_copy[i];
		else if (!CourierFetchMessage(topic, take_ids[i], &d->msg))
		{
			/*
			 * The log no longer has it: retention (max_retention) dropped its
			 * segment.  Drop the redelivery only when that is certain -- the
			 * id is at or below the topic's floor, as committed -- and never
			 * leave its key without a head.
			 */
			if (take_ids[i] <= CourierTopicFloor(topic->topic_id))
			{
				ereport(LOG,
						(errmsg("pg_courier: message %lld of group \"%s\" of topic \"%s\" was dropped by retention before it could be redelivered",
								(long long) take_ids[i], group->name, topic->name)));
				CourierPromoteNext(topic, group, CourierForgetLease(group, take_ids[i]));
			}
			else
				ereport(ERROR,
						(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
						 errmsg("could not find message %lld of topic \"%s\" in its log",
								(long long) take_ids[i], topic->name),
						 errhint("Retry the call.")));
			continue;
		}
		d->attempt = take_attempts[i];
		d->lease_until = lease_until;
		d->delivered_at = now;
		n++;
	}

	/*
	 * A lease runs from the hand-out.  Fetching the messages may have
	 * waited (a segment's lock behind a queued VACUUM FULL, review 44):
	 * if that ate into the leases noticeably, move them on.
	 */
	if (n > 0 && GetCurrentTimestamp() - start > COURIER_LEASE_SLACK_USEC)
		CourierExtendLeases(topic, group, out, n, GetCurrentTimestamp() + (lease_until - start));
	return n;
}

/*
 * CourierExtendLeases
 *		Set the leases of the n lease-table rows just handed out (out[]) to
 *		end at until: their rows are ours (updated in this transaction).
 */
void
CourierExtendLeases(CourierTopic *topic, CourierGroup *group, CourierDelivery *out, int n,
					TimestampTz until)
{
	Oid			types[3] = {INT4OID, INT8ARRAYOID, TIMESTAMPTZOID};
	Datum		args[3];
	Datum	   *ids = palloc(sizeof(Datum) * n);
	int			i;
	int			ret;

	for (i = 0; i < n; i++)
		ids[i] = Int64GetDatum(out[i].msg.id);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	CourierPrepare(&plan_extend,
				   "UPDATE courier.lease SET visible_at = $3 "
				   "WHERE group_id OPERATOR(pg_catalog.=) $1 "
				   "AND msg_id OPERATOR(pg_catalog.=) ANY ($2) "
				   "AND state OPERATOR(pg_catalog.=) 'l'",
				   3, types);
	args[0] = Int32GetDatum(group->group_id);
	args[1] = PointerGetDatum(construct_array(ids, n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	args[2] = TimestampTzGetDatum(until);
	ret = SPI_execute_plan(plan_extend, args, NULL, false, 0);
	if (ret != SPI_OK_UPDATE)
		elog(ERROR, "could not extend leases: %s", SPI_result_code_string(ret));
	SPI_finish();
	for (i = 0; i < n; i++)
		out[i].lease_until = until;
	CourierDueAtCommit(topic->topic_id, group->group_id, until);
}

/*
 * CourierPayloadFromLease
 *		Read the message copy a lease row may carry (columns body, tag,
 *		keys, headers, sent_at starting at column col of an SPI result) into
 *		cxt.  Returns false if the row has none.
 */
bool
CourierPayloadFromLease(HeapTuple tup, TupleDesc desc, int col, MemoryContext cxt,
						CourierPayload *out)
{
	bool		isnull;
	Datum		d;
	MemoryContext old;

	d = SPI_getbinval(tup, desc, col, &isnull);
	if (isnull)
		return false;
	old = MemoryContextSwitchTo(cxt);
	memset(out, 0, sizeof(CourierPayload));
	out->body = datumCopy(d, false, -1);
	d = SPI_getbinval(tup, desc, col + 1, &isnull);
	out->tag = isnull ? (Datum) 0 : datumCopy(d, false, -1);
	d = SPI_getbinval(tup, desc, col + 2, &isnull);
	out->keys = isnull ? (Datum) 0 : datumCopy(d, false, -1);
	d = SPI_getbinval(tup, desc, col + 3, &isnull);
	out->headers = isnull ? (Datum) 0 : datumCopy(d, false, -1);
	d = SPI_getbinval(tup, desc, col + 4, &isnull);
	out->sent_at = isnull ? 0 : DatumGetTimestampTz(d);
	MemoryContextSwitchTo(old);
	return true;
}

/*
 * CourierDeadRowFromLease
 *		What a lease row, read as (msg_id, state, attempt, first_delivered_at,
 *		last_delivered_at, last_error, ...), says about a message that dies.
 */
void
CourierDeadRowFromLease(HeapTuple tup, TupleDesc desc, MemoryContext cxt, CourierDeadRow *out)
{
	bool		isnull;
	Datum		d;

	out->id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
	out->attempts = DatumGetInt32(SPI_getbinval(tup, desc, 3, &isnull));
	d = SPI_getbinval(tup, desc, 4, &isnull);
	out->first_delivered = isnull ? 0 : DatumGetTimestampTz(d);
	d = SPI_getbinval(tup, desc, 5, &isnull);
	out->last_delivered = isnull ? 0 : DatumGetTimestampTz(d);
	d = SPI_getbinval(tup, desc, 6, &isnull);
	out->reason = isnull ? NULL : MemoryContextStrdup(cxt, TextDatumGetCString(d));
}

/*
 * CourierForgetLease
 *		Delete one lease row.  Returns its ordering key (or NULL), so the
 *		caller can let the next message of that key through.
 */
char *
CourierForgetLease(CourierGroup *group, int64 msg_id)
{
	Oid			types[2] = {INT4OID, INT8OID};
	Datum		args[2];
	char	   *okey = NULL;
	MemoryContext outer = CurrentMemoryContext;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	CourierPrepare(&plan_lease_delete,
				   "DELETE FROM courier.lease WHERE group_id OPERATOR(pg_catalog.=) $1 "
				   "AND msg_id OPERATOR(pg_catalog.=) $2 RETURNING okey",
				   2, types);
	args[0] = Int32GetDatum(group->group_id);
	args[1] = Int64GetDatum(msg_id);
	if (CourierExecuteShaped(plan_lease_delete, args, NULL, 0, CourierKeyShape) != SPI_OK_DELETE_RETURNING)
		elog(ERROR, "could not delete a lease");
	if (SPI_processed > 0)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull)
			okey = MemoryContextStrdup(outer, TextDatumGetCString(d));
	}
	SPI_finish();
	return okey;
}

/*
 * CourierDeadLetter
 *		Move a message to the group's dead letters: copy it from the log
 *		and delete its lease row.
 */
void
CourierDeadLetter(CourierTopic *topic, CourierGroup *group, const CourierDeadRow *row)
{
	CourierPayload msg;
	Oid			types[12] = {INT4OID, INT8OID, INT4OID, TIMESTAMPTZOID, TIMESTAMPTZOID,
	TIMESTAMPTZOID, TEXTOID, TEXTOID, TEXTARRAYOID, JSONBOID, JSONBOID, TIMESTAMPTZOID};
	Datum		args[12];
	char		nulls[12];
	bool		have;

	have = CourierFetchMessage(topic, row->id, &msg);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (!have)
	{
		/* a redriven message carries its own copy */
		Oid			ctypes[2] = {INT4OID, INT8OID};
		Datum		cargs[2];

		CourierPrepare(&plan_lease_copy,
					   "SELECT body, tag, keys, headers, sent_at FROM courier.lease "
					   "WHERE group_id OPERATOR(pg_catalog.=) $1 AND msg_id OPERATOR(pg_catalog.=) $2 "
					   "AND body IS NOT NULL",
					   2, ctypes);
		cargs[0] = Int32GetDatum(group->group_id);
		cargs[1] = Int64GetDatum(row->id);
		if (CourierExecuteShaped(plan_lease_copy, cargs, NULL, 1, CourierKeyShape) == SPI_OK_SELECT &&
			SPI_processed == 1)
			have = CourierPayloadFromLease(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1,
										   CurrentMemoryContext, &msg);
	}
	CourierPrepare(&plan_dead_insert,
				   "INSERT INTO courier.dead_letter (group_id, msg_id, attempts, first_delivered_at, "
				   "last_delivered_at, died_at, last_error, tag, keys, headers, body, sent_at) "
				   "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) "
				   "ON CONFLICT (group_id, msg_id) DO UPDATE SET attempts = EXCLUDED.attempts, "
				   "last_delivered_at = EXCLUDED.last_delivered_at, died_at = EXCLUDED.died_at, "
				   "last_error = EXCLUDED.last_error",
				   12, types);
	memset(nulls, ' ', sizeof(nulls));
	args[0] = Int32GetDatum(group->group_id);
	args[1] = Int64GetDatum(row->id);
	args[2] = Int32GetDatum(row->attempts);
	args[3] = TimestampTzGetDatum(row->first_delivered);
	if (row->first_delivered == 0)
		nulls[3] = 'n';
	args[4] = TimestampTzGetDatum(row->last_delivered);
	if (row->last_delivered == 0)
		nulls[4] = 'n';
	args[5] = TimestampTzGetDatum(GetCurrentTimestamp());
	if (row->reason)
		args[6] = CStringGetTextDatum(row->reason);
	else
		nulls[6] = 'n';
	if (have)
	{
		args[7] = msg.tag;
		nulls[7] = msg.tag ? ' ' : 'n';
		args[8] = msg.keys;
		nulls[8] = msg.keys ? ' ' : 'n';
		args[9] = msg.headers;
		nulls[9] = msg.headers ? ' ' : 'n';
		args[10] = msg.body;
		args[11] = TimestampTzGetDatum(msg.sent_at);
	}
	else
	{
		/* the log lost it to max_retention: keep what we know */
		nulls[7] = nulls[8] = nulls[9] = 'n';
		args[10] = DirectFunctionCall1(jsonb_in, CStringGetDatum("null"));
		args[11] = TimestampTzGetDatum(0);
	}
	if (SPI_execute_plan(plan_dead_insert, args, nulls, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not insert a dead letter");
	SPI_finish();

	CourierPromoteNext(topic, group, CourierForgetLease(group, row->id));
}

/*
 * CourierKeyLock
 *		Take or release the lock of an ordering key of a group.  Everyone
 *		who may give a key a head -- a walk diverting the first message of
 *		the key it meets, a promotion -- holds it from the moment it looks at
 *		the key's rows (CourierKeyLook) until its own row is written, and
 *		releases it then, not at commit: a row written, even by a
 *		transaction still in progress, is seen by the next look, which acts
 *		on it (it queues, or looks again once that transaction has ended).
 *		So no two of them decide on "no head" at once, and a key never has
 *		two heads (the unique index lease_head makes that the database's
 *		rule as well).  Nothing that may wait for another transaction is
 *		done under it except the row writes themselves.  Keys are told apart
 *		by a hash: two keys that collide only share a lock.
 */
void
CourierKeyLock(int32 group_id, const char *okey, bool acquire)
{
	LOCKTAG		tag;

	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, (uint32) group_id,
						 hash_bytes((const unsigned char *) okey, strlen(okey)),
						 COURIER_LOCK_KEY);
	if (acquire)
		(void) LockAcquire(&tag, ExclusiveLock, false, false);
	else
		(void) LockRelease(&tag, ExclusiveLock, false);
}

/*
 * key_scan
 *		Start a dirty-snapshot scan of index idxname for the rows of key
 *		okey of a group (the index's first two columns are group_id, okey).
 */
static IndexScanDesc
key_scan(Relation lease_rel, Relation idx, SnapshotData *dirty, int32 group_id, const char *okey)
{
	ScanKeyData keys[2];
	IndexScanDesc scan;

	InitDirtySnapshot(*dirty);
	ScanKeyInit(&keys[0], 1, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(group_id));
	ScanKeyEntryInitialize(&keys[1], 0, 2, BTEqualStrategyNumber, InvalidOid,
						   idx->rd_indcollation[1], F_TEXTEQ, CStringGetTextDatum(okey));
	scan = index_beginscan(lease_rel, idx, dirty, 2, 0);
	index_rescan(scan, keys, 2, NULL, 0);
	return scan;
}

/*
 * CourierKeyLook
 *		What the lease rows of key okey of a group are, read with a dirty
 *		snapshot, so that rows that transactions still in progress have
 *		written, or are deleting or changing, count too (their xids come
 *		back).  The head -- the one row of the key not in state 'q' -- is
 *		found through index lease_head; with need_queued, the queued row
 *		with the smallest id through index lease_key (which lists the head,
 *		at most, before it).  Without need_queued, "any" still tells whether
 *		the key has rows at all.
 */
void
CourierKeyLook(Relation lease_rel, int32 group_id, const char *okey, bool need_queued,
			   CourierKeyRows *out)
{
	Relation	idx;
	TupleTableSlot *slot;
	SnapshotData dirty;
	IndexScanDesc scan;

	memset(out, 0, sizeof(*out));
	slot = table_slot_create(lease_rel, NULL);

	/* the head: one row, seen perhaps as an old and a new version */
	idx = CourierIndexOpen("lease_head", AccessShareLock);
	scan = key_scan(lease_rel, idx, &dirty, group_id, okey);
	while (index_getnext_slot(scan, ForwardScanDirection, slot))
	{
		bool		isnull;

		/* the index lists only heads, but its entries may be stale */
		if (DatumGetChar(slot_getattr(slot, Anum_lease_state, &isnull)) == 'q')
			continue;
		out->any = out->head = true;
		if (TransactionIdIsValid(dirty.xmax))
			out->head_xid = dirty.xmax;
		else if (TransactionIdIsValid(dirty.xmin) && !TransactionIdIsValid(out->head_xid))
			out->head_xid = dirty.xmin;
	}
	index_endscan(scan);
	index_close(idx, NoLock);

	/* all rows in id order: the first queued one, or just whether any */
	idx = CourierIndexOpen("lease_key", AccessShareLock);
	scan = key_scan(lease_rel, idx, &dirty, group_id, okey);
	while (index_getnext_slot(scan, ForwardScanDirection, slot))
	{
		bool		isnull;

		out->any = true;
		if (!need_queued)
			break;
		if (DatumGetChar(slot_getattr(slot, Anum_lease_state, &isnull)) != 'q')
			continue;
		out->queued = true;
		out->first_q = DatumGetInt64(slot_getattr(slot, Anum_lease_msg_id, &isnull));
		out->first_q_xmin = dirty.xmin;
		out->first_q_xmax = dirty.xmax;
		break;
	}
	index_endscan(scan);
	index_close(idx, NoLock);
	ExecDropSingleTupleTableSlot(slot);
}

/*
 * CourierPromoteNext
 *		In an ordered group, once a key has no head (a message delivered or
 *		deliverable, state 'l' or 'w'), its queued message ('q') with the
 *		smallest id becomes the head -- receivable at once, or at its
 *		delivery time if it was sent with a delay.
 *
 *		The key's rows are read with a dirty snapshot (CourierKeyLook), so
 *		rows that transactions still in progress have written, or are
 *		deleting or changing, count too.  Whenever the answer depends on such
 *		a transaction -- or on ids below the candidate that the group has not
 *		walked yet (a rolled-back receive gives its ids back) -- nothing is
 *		promoted now, and the check is repeated once that is settled
 *		(CourierPromoteLater): a queued message never overtakes an earlier
 *		one of its key, and a key is never left without a head for good.
 *		That includes a head that a transaction still in progress wrote (a
 *		walk, a redrive, a promotion): if that transaction rolls back, the
 *		key must be looked at again.
 *
 *		The look and the promotion happen under the key's lock
 *		(CourierKeyLock), so two promotions, or a promotion and a walk, never
 *		both find the key without a head and give it two.  The promotion
 *		itself is an UPDATE under a fresh snapshot, not the caller's: a
 *		REPEATABLE READ or SERIALIZABLE snapshot taken before the queued row
 *		was committed cannot see it, and an UPDATE under it would change
 *		nothing, silently (the dirty read does see it).  Whoever calls this
 *		writes first (deletes the old head, or inserts a queued row) and
 *		looks afterwards, so of two sides of a race the later look sees the
 *		other's row.
 */
void
CourierPromoteNext(CourierTopic *topic, CourierGroup *group, const char *okey)
{
	Oid			t_promote[3] = {INT4OID, INT8OID, TIMESTAMPTZOID};
	int			tries;

	if (!group->ordered || okey == NULL)
		return;

	for (tries = 0;; tries++)
	{
		Relation	rel;
		CourierKeyRows k;
		int64		recheck;
		int64		promote_id = 0;
		Datum		args[3];
		TimestampTz visible_at = GetCurrentTimestamp();
		CourierPayload msg;
		uint64		updated = 0;

		recheck = CourierGroupSettledBelow(group->group_id);

		rel = table_open(CourierRelid("lease"), RowExclusiveLock);
		CourierKeyLock(group->group_id, okey, true);
		CourierKeyLook(rel, group->group_id, okey, true, &k);
		if (k.head)
		{
			/*
			 * The key has a head.  If someone is finishing it, or it is being
			 * written by a transaction that may still roll back, look again
			 * once that transaction has ended.
			 */
			if (TransactionIdIsValid(k.head_xid))
				CourierPromoteLater(group->group_id, okey, k.head_xid, 0);
		}
		else if (!k.queued)
			;					/* nothing waits */
		else if (TransactionIdIsValid(k.first_q_xmin) || TransactionIdIsValid(k.first_q_xmax))
		{
			/* the oldest queued row is still being written or changed */
			CourierPromoteLater(group->group_id, okey,
								TransactionIdIsValid(k.first_q_xmin) ? k.first_q_xmin : k.first_q_xmax, 0);
		}
		else if (recheck <= k.first_q)
		{
			/* an earlier message of the key may not be queued yet */
			CourierPromoteLater(group->group_id, okey, InvalidTransactionId, k.first_q);
		}
		else
		{
			promote_id = k.first_q;
			if (SPI_connect() != SPI_OK_CONNECT)
				elog(ERROR, "SPI_connect failed");
			CourierPrepare(&plan_promote,
						   "UPDATE courier.lease SET state = 'w', visible_at = $3 "
						   "WHERE group_id OPERATOR(pg_catalog.=) $1 AND msg_id OPERATOR(pg_catalog.=) $2 "
						   "AND state OPERATOR(pg_catalog.=) 'q'",
						   3, t_promote);
			CourierPrepare(&plan_promote_delay,
						   "UPDATE courier.lease SET visible_at = $3 "
						   "WHERE group_id OPERATOR(pg_catalog.=) $1 AND msg_id OPERATOR(pg_catalog.=) $2 "
						   "AND state OPERATOR(pg_catalog.=) 'w'",
						   3, t_promote);
			args[0] = Int32GetDatum(group->group_id);
			args[1] = Int64GetDatum(promote_id);
			args[2] = TimestampTzGetDatum(visible_at);
			/* a fresh snapshot (see above); SPI advances the command counter */
			if (SPI_execute_snapshot(plan_promote, args, NULL, GetLatestSnapshot(), InvalidSnapshot,
									 false, false, 0) != SPI_OK_UPDATE)
				elog(ERROR, "could not promote the next message of a key");
			updated = SPI_processed;
			SPI_finish();
		}
		/* our row is written (or nothing is): the next look sees it */
		CourierKeyLock(group->group_id, okey, false);
		table_close(rel, NoLock);

		if (promote_id == 0)
			return;

		if (updated > 0)
		{
			/*
			 * A message sent with a delay becomes receivable at its time.
			 * Read it only now, without the key's lock: opening a segment may
			 * wait behind a rotation or a drop.
			 */
			if (CourierFetchMessage(topic, promote_id, &msg) && msg.has_deliver_at &&
				msg.deliver_at > visible_at)
			{
				visible_at = msg.deliver_at;
				if (SPI_connect() != SPI_OK_CONNECT)
					elog(ERROR, "SPI_connect failed");
				args[2] = TimestampTzGetDatum(visible_at);
				if (SPI_execute_snapshot(plan_promote_delay, args, NULL, GetLatestSnapshot(),
										 InvalidSnapshot, false, false, 0) != SPI_OK_UPDATE)
					elog(ERROR, "could not delay the next message of a key");
				SPI_finish();
			}
			CourierWakeAtCommit(topic->topic_id);
			CourierDueAtCommit(topic->topic_id, group->group_id, visible_at);
			return;
		}

		/*
		 * The row changed after we read it (retention or a seek removed it
		 * meanwhile).  Look at the key again.
		 */
		if (tries >= 3)
		{
			CourierPromoteLater(group->group_id, okey, InvalidTransactionId, 0);
			return;
		}
	}
}

/*
 * promote_later
 *		Enter a promotion check into the shared table (deduplicated).
 *		Returns false if the table is full.  Never errors.
 */
static bool
promote_later(Oid instance, int32 group_id, const char *okey, TransactionId xid, int64 msg_id)
{
	int			i;
	int			free_slot = -1;

	LWLockAcquire(CourierPromotionsLock(), LW_EXCLUSIVE);
	for (i = 0; i < COURIER_MAX_PROMOTIONS; i++)
	{
		CourierPromotion *p = &CourierState->promotions[i];

		if (p->dbid == InvalidOid)
		{
			if (free_slot < 0)
				free_slot = i;
			continue;
		}
		if (p->dbid == MyDatabaseId && p->instance == instance && p->group_id == group_id &&
			TransactionIdEquals(p->xid, xid) && p->msg_id == msg_id &&
			strcmp(p->okey, okey) == 0)
		{
			LWLockRelease(CourierPromotionsLock());
			return true;
		}
	}
	/*
	 * A key's check may not take the last COURIER_PROMOTION_RESERVE free
	 * slots: they are kept for the group scans that stand in for the checks
	 * that found the table full (overflow_later).
	 */
	if (free_slot >= 0 && msg_id != PROMOTE_SCAN_AGAIN)
	{
		int			nfree = 0;

		for (i = free_slot; i < COURIER_MAX_PROMOTIONS && nfree <= COURIER_PROMOTION_RESERVE; i++)
			if (CourierState->promotions[i].dbid == InvalidOid)
				nfree++;
		if (nfree <= COURIER_PROMOTION_RESERVE)
			free_slot = -1;
	}
	if (free_slot >= 0)
	{
		CourierPromotion *p = &CourierState->promotions[free_slot];

		p->dbid = MyDatabaseId;
		p->instance = instance;
		p->group_id = group_id;
		p->xid = xid;
		p->msg_id = msg_id;
		strlcpy(p->okey, okey, sizeof(p->okey));
	}
	LWLockRelease(CourierPromotionsLock());
	return free_slot >= 0;
}

/*
 * orphan_scan_after
 *		Last resort when even the reserved slots are full: raise the group's
 *		flag for a scan for keys without a head, to run only once every
 *		transaction up to xid has ended (the oldest running transaction is
 *		younger).  Caller holds gs->lock exclusively.
 */
static void
orphan_scan_after(CourierGroupShared *gs, TransactionId xid)
{
	gs->orphan_scan = true;
	if (TransactionIdIsNormal(xid))
	{
		TransactionId next = xid;

		TransactionIdAdvance(next);
		if (!TransactionIdIsValid(gs->orphan_after) ||
			TransactionIdFollows(next, gs->orphan_after))
			gs->orphan_after = next;
	}
}

/*
 * overflow_later
 *		A check of a key of the group could not be entered: the table is
 *		full.  Fall back on the group's scan for keys without a head -- but
 *		the scan reads under an MVCC snapshot, so it must not run before the
 *		transactions whose work it would have to see have ended: xid, which
 *		the check waited for (its queued row or its head delete is not
 *		visible yet), and self, the transaction asking (its own head delete
 *		is not visible to others' scans until it commits).  So the scan is
 *		entered once per such transaction (PROMOTE_SCAN_AGAIN, in the slots
 *		kept for it: the 60 checks of 300 keys that all waited for one walk
 *		are one entry), and due when that one has ended.  Only if those too
 *		are full does the group's flag wait for every older transaction
 *		(orphan_scan_after).  With neither transaction (a rolled-back
 *		check), the flag is raised at once.  Run too early, the scan left
 *		keys without a head for good (isolation spec
 *		ordered_promotions_full).  Never errors; gs may be NULL (no flag).
 */
static void
overflow_later(Oid instance, int32 group_id, CourierGroupShared *gs, TransactionId xid,
			   TransactionId self)
{
	TransactionId waits[2];
	int			i;
	bool		flag = !TransactionIdIsValid(xid) && !TransactionIdIsValid(self);

	waits[0] = xid;
	waits[1] = TransactionIdEquals(self, xid) ? InvalidTransactionId : self;
	for (i = 0; i < 2; i++)
		if (TransactionIdIsValid(waits[i]) &&
			!promote_later(instance, group_id, "", waits[i], PROMOTE_SCAN_AGAIN))
			flag = true;
	if (!flag || gs == NULL)
		return;
	LWLockAcquire(&gs->lock, LW_EXCLUSIVE);
	if (gs->key.group_id == group_id && gs->key.dbid == MyDatabaseId &&
		gs->key.instance == instance)
	{
		orphan_scan_after(gs, xid);
		orphan_scan_after(gs, self);
	}
	LWLockRelease(&gs->lock);
}

/*
 * CourierPromoteLater
 *		Remember to run CourierPromoteNext for a key once xid has ended (or,
 *		with an invalid xid, once the group's R has passed msg_id).
 *		The list is in shared memory; if it is full, the group is marked
 *		for a full scan of keys left without a head.
 */
void
CourierPromoteLater(int32 group_id, const char *okey, TransactionId xid, int64 msg_id)
{
	Oid			instance = CourierInstanceId();

	if (!promote_later(instance, group_id, okey, xid, msg_id))
		overflow_later(instance, group_id, CourierGroupSharedGet(group_id), xid,
					   GetTopTransactionIdIfAny());
}

/*
 * CourierPromotionRestore
 *		A promotion check (okey), or a group's scan for keys without a head
 *		(okey NULL), that a transaction took out of shared memory goes back:
 *		the transaction rolled back, so whatever it did about the key was
 *		undone (xid invalid: the check is due at once), or it is being
 *		prepared and may still roll back (xid: due once it is finished).
 *		Called from transaction callbacks (xact.c): never errors.  A full
 *		table falls back on the scan, as in CourierPromoteLater.
 */
void
CourierPromotionRestore(Oid instance, int32 group_id, const char *okey, TransactionId xid)
{
	CourierGroupShared *gs;

	if (CourierState == NULL)
		return;
	if (okey != NULL && promote_later(instance, group_id, okey, xid, 0))
		return;

	/*
	 * The key's check did not fit, or it is the group's scan: a prepared
	 * transaction's once it has ended, a rolled-back one's at once
	 * (overflow_later).  A group without a shared entry has nothing to
	 * flag: a new entry is rebuilt, and scans, on first use.
	 */
	gs = CourierGroupSharedFind(group_id);
	overflow_later(instance, group_id, gs, xid, InvalidTransactionId);
}

/*
 * scan_again_later
 *		The scan for keys without a head reads under an MVCC snapshot, so it
 *		cannot tell what a transaction still in progress is doing to a key:
 *		deleting its head (an ack), or writing its next queued row (a
 *		receive).  A transaction with a backend has asked for the key to be
 *		looked at again where that matters; a prepared one did so in shared
 *		memory, which a crash or a promotion loses -- and that is when the
 *		scan runs.  So the scan runs again once each transaction prepared in
 *		this database has ended (found by TAP 054).  Called inside SPI,
 *		before the scan takes its snapshot, so that a transaction that ends
 *		in between is either in the list or seen ended by the scan.  A scan
 *		that is such a repeat does not call this: those still prepared have
 *		their entries already, and later ones did not prepare before the
 *		loss (under a steady two-phase load, repeats would never stop).
 */
static void
scan_again_later(Oid instance, int32 group_id, CourierGroupShared *gs)
{
	Oid			types[1] = {OIDOID};
	Datum		args[1];
	uint64		j;

	CourierPrepare(&plan_prepared_xacts,
				   "SELECT transaction FROM pg_catalog.pg_prepared_xact() "
				   "WHERE dbid OPERATOR(pg_catalog.=) $1",
				   1, types);
	args[0] = ObjectIdGetDatum(MyDatabaseId);
	if (SPI_execute_snapshot(plan_prepared_xacts, args, NULL, GetLatestSnapshot(), InvalidSnapshot,
							 true, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the prepared transactions");
	for (j = 0; j < SPI_processed; j++)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[j], SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull &&
			!promote_later(instance, group_id, "", DatumGetTransactionId(d), PROMOTE_SCAN_AGAIN))
		{
			/* the list is full: scan again once this one has ended */
			LWLockAcquire(&gs->lock, LW_EXCLUSIVE);
			orphan_scan_after(gs, DatumGetTransactionId(d));
			LWLockRelease(&gs->lock);
			return;
		}
	}
}

/*
 * CourierRunPromotions
 *		Carry out the promotion checks of an ordered group whose
 *		transactions have ended, and the full scan for keys without a head
 *		when one was asked for.  Cheap when there is nothing to do.
 *
 *		The checks leave shared memory now, but what they do (a promotion)
 *		is part of the caller's transaction, which may still roll back --
 *		a receive that rolls back or fails, a savepoint, ROLLBACK PREPARED,
 *		a maintenance round cut off by pg_terminate_backend.  So each check
 *		taken is remembered in the transaction first, and xact.c puts it
 *		back if the (sub)transaction aborts or is prepared
 *		(CourierPromotionRestore).
 *
 *		The scan also runs again once each transaction prepared when it
 *		ran has ended (an entry with msg_id PROMOTE_SCAN_AGAIN): it cannot
 *		see what they do to a key, and what they asked for in shared
 *		memory is lost by a crash or a promotion.
 */
void
CourierRunPromotions(CourierTopic *topic, CourierGroup *group)
{
	CourierGroupShared *gs;
	Oid			instance;
	List	   *keys = NIL;
	ListCell   *lc;
	bool		scan;
	int64		recheck;
	CourierPromotion *mine;
	int			nmine = 0;
	int			i;
	bool		scan_again = false;

	if (!group->ordered)
		return;

	instance = CourierInstanceId();
	gs = CourierGroupSharedGet(group->group_id);
	recheck = CourierGroupSettledBelow(group->group_id);

	/*
	 * Copy this group's entries out, decide without holding the lock which
	 * have come due (that takes ProcArrayLock and may read pg_subtrans),
	 * then take those out.
	 */
	mine = palloc(sizeof(CourierPromotion) * COURIER_MAX_PROMOTIONS);
	LWLockAcquire(CourierPromotionsLock(), LW_EXCLUSIVE);
	for (i = 0; i < COURIER_MAX_PROMOTIONS; i++)
	{
		CourierPromotion *p = &CourierState->promotions[i];

		if (p->dbid == MyDatabaseId && p->instance == instance && p->group_id == group->group_id)
			mine[nmine++] = *p;
	}
	LWLockRelease(CourierPromotionsLock());

	for (i = 0; i < nmine; i++)
	{
		CourierPromotion *p = &mine[i];
		bool		due;
		int			k;

		/*
		 * A key's check that waits for our own transaction (a walk that
		 * queued the key's row itself) is ours to run.  A scan that waits
		 * for a transaction is not, while that transaction is ours: it
		 * stands in for checks that must see our work committed, and run
		 * now, under our snapshot, it would find nothing and be gone before
		 * we commit (review 34: an ack, then a receive, in one transaction).
		 */
		if (TransactionIdIsValid(p->xid) && p->msg_id == PROMOTE_SCAN_AGAIN)
			due = !TransactionIdIsCurrentTransactionId(p->xid) &&
				!TransactionIdIsInProgress(p->xid);
		else if (TransactionIdIsValid(p->xid))
			due = TransactionIdIsCurrentTransactionId(p->xid) ||
				!TransactionIdIsInProgress(p->xid);
		else
			due = recheck > p->msg_id;
		if (!due)
			continue;
		if (p->msg_id == PROMOTE_SCAN_AGAIN)
		{
			/* before it leaves shared memory: the scan comes back if we roll back */
			CourierRememberPromotion(instance, group->group_id, NULL);
			scan_again = true;
		}
		else
		{
			keys = lappend(keys, pstrdup(p->okey));
			/* before it leaves shared memory: put back if we roll back (xact.c) */
			CourierRememberPromotion(instance, group->group_id, p->okey);
		}
		LWLockAcquire(CourierPromotionsLock(), LW_EXCLUSIVE);
		for (k = 0; k < COURIER_MAX_PROMOTIONS; k++)
		{
			CourierPromotion *q = &CourierState->promotions[k];

			if (q->dbid == p->dbid && q->instance == p->instance && q->group_id == p->group_id &&
				TransactionIdEquals(q->xid, p->xid) && q->msg_id == p->msg_id &&
				strcmp(q->okey, p->okey) == 0)
				q->dbid = InvalidOid;
		}
		LWLockRelease(CourierPromotionsLock());
	}

	LWLockAcquire(&gs->lock, LW_SHARED);
	scan = gs->orphan_scan;
	LWLockRelease(&gs->lock);
	if (scan)
	{
		/*
		 * A scan put off until some transactions have ended
		 * (orphan_scan_after) waits until the oldest transaction still
		 * running is younger than all of them; the scan's own snapshot,
		 * taken later, sees them ended.
		 */
		TransactionId xmin = GetLatestSnapshot()->xmin;

		CourierRememberPromotion(instance, group->group_id, NULL);
		LWLockAcquire(&gs->lock, LW_EXCLUSIVE);
		scan = gs->orphan_scan &&
			(!TransactionIdIsValid(gs->orphan_after) ||
			 !TransactionIdPrecedes(xmin, gs->orphan_after));
		if (scan)
		{
			gs->orphan_scan = false;
			gs->orphan_after = InvalidTransactionId;
		}
		LWLockRelease(&gs->lock);
	}
	if (scan || scan_again)
	{
		Oid			types[1] = {INT4OID};
		Datum		args[1];
		uint64		j;
		MemoryContext outer = CurrentMemoryContext;

		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");

		/* before the scan's snapshot (see scan_again_later) */
		if (scan)
			scan_again_later(instance, group->group_id, gs);

		/*
		 * Keys with queued rows and no head, read under a fresh snapshot,
		 * not the caller's (REPEATABLE READ); CourierPromoteNext looks at
		 * each again with a dirty snapshot before it acts.
		 */
		CourierPrepare(&plan_orphans,
					   "SELECT DISTINCT l.okey FROM courier.lease l "
					   "WHERE l.group_id OPERATOR(pg_catalog.=) $1 "
					   "AND l.okey IS NOT NULL AND l.state OPERATOR(pg_catalog.=) 'q' "
					   "AND NOT EXISTS (SELECT 1 FROM courier.lease h "
					   "                WHERE h.group_id OPERATOR(pg_catalog.=) $1 "
					   "                AND h.okey OPERATOR(pg_catalog.=) l.okey "
					   "                AND h.state OPERATOR(pg_catalog.<>) 'q')",
					   1, types);
		args[0] = Int32GetDatum(group->group_id);
		if (SPI_execute_snapshot(plan_orphans, args, NULL, GetLatestSnapshot(), InvalidSnapshot,
								 true, false, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not look for keys without a head");
		for (j = 0; j < SPI_processed; j++)
		{
			bool		isnull;
			Datum		d = SPI_getbinval(SPI_tuptable->vals[j], SPI_tuptable->tupdesc, 1, &isnull);

			if (!isnull)
			{
				/* list cells too must outlive SPI_finish */
				MemoryContext spi = MemoryContextSwitchTo(outer);

				keys = lappend(keys, pstrdup(TextDatumGetCString(d)));
				MemoryContextSwitchTo(spi);
			}
		}
		SPI_finish();
	}

	foreach(lc, keys)
		CourierPromoteNext(topic, group, (char *) lfirst(lc));
}

/*
 * group_probe
 *		Run a one-row statement of the waiting path, with parameters (group,
 *		now), planned like the other scans of the receive path, and return
 *		its single value (*isnull if NULL), copied out of SPI's memory.
 */
static Datum
group_probe(SPIPlanPtr *cache, const char *sql, CourierGroup *group, TimestampTz now,
			bool *isnull)
{
	Oid			types[2] = {INT4OID, TIMESTAMPTZOID};
	Datum		args[2];
	Datum		d;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	CourierPrepare(cache, sql, 2, types);
	args[0] = Int32GetDatum(group->group_id);
	args[1] = TimestampTzGetDatum(now);
	if (CourierExecuteShaped(*cache, args, NULL, 1, CourierIndexShape) != SPI_OK_SELECT)
		elog(ERROR, "could not read the due times of group \"%s\"", group->name);
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, isnull);
	if (!*isnull)
		d = SPI_datumTransfer(d, TupleDescAttr(SPI_tuptable->tupdesc, 0)->attbyval,
							  TupleDescAttr(SPI_tuptable->tupdesc, 0)->attlen);
	SPI_finish();
	return d;
}

/*
 * CourierDueNow
 *		Whether anything of the group is receivable by time now: a lease row
 *		due, or a claim whose lease expired with messages pending.  Two direct
 *		index probes, under one snapshot, from the bottom of lease_due and
 *		claim_expiry (cheaper than
 *		CourierNextDue, which must pass over the acked claims whose leases
 *		have not ended yet).
 */
bool
CourierDueNow(CourierGroup *group, TimestampTz now)
{
	Snapshot	snap = CourierPushReadSnapshot();	/* one view for both */
	bool		due;

	due = due_rows_probe("lease", "lease_due", group->group_id, now, lease_receivable, snap) ||
		due_rows_probe("claim", "claim_expiry", group->group_id, now, claim_pending, snap);
	PopActiveSnapshot();
	return due;
}

/*
 * CourierNextDue
 *		When the next lease of the group expires or the next waiting
 *		message becomes receivable (after now); DT_NOEND if never.  May be
 *		earlier than that (never later): the group's due-time floor is used
 *		while it is ahead of now, and the scan runs only when it is not
 *		(wait.c, "Due-time floors").  Due times this transaction created
 *		itself are in no floor yet: a transaction that has some always scans.
 */
TimestampTz
CourierNextDue(CourierGroup *group, TimestampTz now)
{
	CourierDueTicket ticket;
	TimestampTz next;
	bool		isnull;
	Datum		d;

	/*
	 * Only a scan of the committed state as of a moment after
	 * CourierDueFloorBegin may become the group's floor.  A transaction
	 * snapshot (REPEATABLE READ, SERIALIZABLE) may predate commits whose
	 * lowering came before Begin, or found no floor to lower; and a
	 * transaction that wrote anything may have removed due times of the
	 * group itself (an ack, seek or purge not yet committed), which come
	 * back if it rolls back -- and no commit lowers the floor for them.
	 * Such a scan still answers for this sleeper; it is not stored.
	 */
	bool		storable = !IsolationUsesXactSnapshot() &&
		!TransactionIdIsValid(GetTopTransactionIdIfAny());

	ticket.gs = NULL;			/* no floor for a transaction with its own */
	if (CourierOwnDue(group->group_id) == DT_NOEND &&
		CourierDueFloorBegin(group->group_id, now, &next, &ticket))
		return next;
	d = group_probe(&plan_next_due,
					"SELECT least((SELECT pg_catalog.min(lease_until) FROM courier.claim "
					"               WHERE group_id OPERATOR(pg_catalog.=) $1 "
					"               AND lease_until OPERATOR(pg_catalog.>) $2 "
					"               AND pending OPERATOR(pg_catalog.<>) '{}'::pg_catalog.int8[]), "
					"              (SELECT pg_catalog.min(visible_at) FROM courier.lease "
					"               WHERE group_id OPERATOR(pg_catalog.=) $1 "
					"               AND visible_at OPERATOR(pg_catalog.>) $2 "
					"               AND state OPERATOR(pg_catalog.=) ANY ('{l,w}'::pg_catalog.\"char\"[])))",
					group, now, &isnull);
	next = isnull ? DT_NOEND : DatumGetTimestampTz(d);
	CourierDueFloorEnd(&ticket, storable, next);
	return next;
}
