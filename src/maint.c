/*-------------------------------------------------------------------------
 *
 * maint.c
 *	  The maintenance jobs: each is one bounded step that returns what it
 *	  did.  The background worker (worker.c) runs them in short
 *	  transactions; courier.run_maintenance() runs one round of all of them
 *	  in the caller's transaction, so tests never wait for the worker.
 *
 * Per group:
 *	- expire: claims whose lease ran out become per-message lease rows;
 *	- dead-letter: leases that ran out on their last attempt move to the
 *	  dead-letter table;
 *	- compact: finished claims at the bottom of the group's log are folded
 *	  into low_water and deleted, and runs of adjacent finished claims
 *	  further up are merged into one, so the claim table stays small even
 *	  while an open producer transaction pins low_water (the group's claim
 *	  lock only to move low_water, released before commit, see walk.c).
 * Per topic (one maintainer at a time: a conditional per-topic lock, so a
 * second run_maintenance() or the worker skips a topic that is being
 * maintained instead of racing it):
 *	- rotate: start a new segment when the current one holds
 *	  courier.segment_size ids or is older than a quarter of the retention;
 *	  senders move to it when they see it in the catalog (send.c);
 *	- reclaim: drop the oldest segment once retention has passed and every
 *	  group is past it -- or, with max_retention, once that has passed
 *	  whatever the groups say (counting what each group lost).
 *
 * Lock order, everywhere (docs/design.md): a topic's or group's existence
 * lock, then the group's claim lock, then rows of courier.topic_meta or
 * courier.group_meta.  DDL functions take the existence lock exclusively
 * before they touch the catalog rows; maintenance holds it in share mode.
 * Maintenance never waits for an existence lock (it tries it and skips a
 * busy topic or group, courier_run_maintenance) nor for a topic's row
 * (reclaim): DDL takes several objects' locks in an order its caller
 * chooses, and only never waiting rules out a cycle with it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/table.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/vacuum.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "parser/parse_node.h"
#include "pgstat.h"
#include "storage/procarray.h"
#include "storage/lmgr.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"

#include "pg_courier.h"

PG_FUNCTION_INFO_V1(courier_run_maintenance);

static SPIPlanPtr plan_dead_expired = NULL;
static SPIPlanPtr plan_done_claims = NULL;
static SPIPlanPtr plan_delete_claims = NULL;
static SPIPlanPtr plan_merge_claim = NULL;
static SPIPlanPtr plan_set_low_water = NULL;
static SPIPlanPtr plan_low_water = NULL;
static SPIPlanPtr plan_group_floor = NULL;

static int	dead_letter_expired(CourierTopic *topic, CourierGroup *group, int limit, TimestampTz now);
static int	compact(CourierGroup *group, int limit);
static void rotate(CourierTopic *topic, TimestampTz now, CourierMaintStats *st);
static void reclaim(CourierTopic *topic, TimestampTz now, CourierMaintStats *st);
static int64 drop_behind(CourierTopic *topic, CourierGroup *group, int64 max_ub);

/*
 * dead_letter_expired
 *		Move leases that ran out after the last allowed attempt to the
 *		dead-letter table.  Returns how many.
 */
static int
dead_letter_expired(CourierTopic *topic, CourierGroup *group, int limit, TimestampTz now)
{
	Oid			types[4] = {INT4OID, TIMESTAMPTZOID, INT4OID, INT4OID};
	Datum		args[4];
	CourierDeadRow *dead;
	uint64		n;
	uint64		i;
	MemoryContext outer = CurrentMemoryContext;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	CourierPrepare(&plan_dead_expired,
				   "SELECT msg_id, state, attempt, first_delivered_at, last_delivered_at, last_error "
				   "FROM courier.lease WHERE group_id OPERATOR(pg_catalog.=) $1 "
				   "AND state OPERATOR(pg_catalog.=) 'l' AND visible_at OPERATOR(pg_catalog.<=) $2 "
				   "AND attempt OPERATOR(pg_catalog.>=) $4 ORDER BY visible_at LIMIT $3 "
				   "FOR UPDATE SKIP LOCKED",
				   4, types);
	args[0] = Int32GetDatum(group->group_id);
	args[1] = TimestampTzGetDatum(now);
	args[2] = Int32GetDatum(limit);
	args[3] = Int32GetDatum(group->max_attempts);
	if (SPI_execute_plan(plan_dead_expired, args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read expired leases");
	n = SPI_processed;
	dead = MemoryContextAlloc(outer, sizeof(CourierDeadRow) * Max(n, 1));
	for (i = 0; i < n; i++)
		CourierDeadRowFromLease(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, outer, &dead[i]);
	SPI_finish();

	for (i = 0; i < n; i++)
		CourierDeadLetter(topic, group, &dead[i]);
	return (int) n;
}

/* One committed, finished claim, as compaction reads it */
typedef struct ClaimRow
{
	int64		lo;
	int64		hi;
	bool		done;			/* false: inserted by this transaction, a gap */
} ClaimRow;

/*
 * compact
 *		Fold the finished claims at the bottom of the group's log into
 *		low_water, and merge runs of adjacent finished claims above it.
 *		Returns the number of claims deleted.
 *
 *		Locking (walk.c, "Locking"): only finished claims are read, with a
 *		fresh snapshot, so only committed ones count (an unfinished or
 *		uncommitted one leaves a gap, and gaps stop both folding and
 *		merging), and locked with SKIP LOCKED, so nothing here waits for a
 *		row lock (a claim someone else has locked is a gap too) and no ack
 *		waits for us: a claim with ids in flight is never locked here.
 *		Deleting and merging them needs no claim lock: walks read claims
 *		with a dirty snapshot, which still shows a claim whose deletion is
 *		in progress, and a merge only joins claims that cover the same ids.
 *		Then, under the claim lock, low_water moves and the shared position
 *		learns the fold (CourierGroupFolded); the lock is released before
 *		commit, so receivers never wait for our commit (they waited ~5 ms,
 *		once per round, before: BENCHMARKS.md run 27).  Claims this
 *		transaction inserted itself are gaps as well: if it rolled back
 *		after folding them, their ids would be uncovered below the fold,
 *		where no walk looks.
 */
static int
compact(CourierGroup *group, int limit)
{
	Oid			t_lw[1] = {INT4OID};
	Oid			t_list[3] = {INT4OID, INT8OID, INT4OID};
	Oid			t_del[2] = {INT4OID, INT8ARRAYOID};
	Oid			t_merge[3] = {INT4OID, INT8OID, INT8OID};
	Oid			t_set[2] = {INT4OID, INT8OID};
	Datum		args[3];
	int64		low_water;
	int64		lw;
	ClaimRow   *rows;
	uint64		nrows;
	int64	   *del;
	int			ndel = 0;
	int64	   *merge_lo;
	int64	   *merge_hi;
	int			nmerge = 0;
	int64		run_lo = 0;
	int64		run_hi = 0;
	int			run_len = 0;
	bool		prefix = true;
	uint64		i;
	bool		isnull;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	CourierPrepare(&plan_low_water,
				   "SELECT low_water FROM courier.group_meta "
				   "WHERE group_id OPERATOR(pg_catalog.=) $1", 1, t_lw);
	CourierPrepare(&plan_done_claims,
				   "SELECT lo, hi FROM courier.claim WHERE group_id OPERATOR(pg_catalog.=) $1 "
				   "AND lo OPERATOR(pg_catalog.>) $2 "
				   "AND pending OPERATOR(pg_catalog.=) '{}'::pg_catalog.int8[] "
				   "ORDER BY lo LIMIT $3 FOR UPDATE SKIP LOCKED",
				   3, t_list);
	CourierPrepare(&plan_delete_claims,
				   "DELETE FROM courier.claim WHERE group_id OPERATOR(pg_catalog.=) $1 "
				   "AND lo OPERATOR(pg_catalog.=) ANY ($2)",
				   2, t_del);
	CourierPrepare(&plan_merge_claim,
				   "UPDATE courier.claim SET hi = $3, lease_until = NULL "
				   "WHERE group_id OPERATOR(pg_catalog.=) $1 AND lo OPERATOR(pg_catalog.=) $2",
				   3, t_merge);
	CourierPrepare(&plan_set_low_water,
				   "UPDATE courier.group_meta SET low_water = GREATEST(low_water, $2) "
				   "WHERE group_id OPERATOR(pg_catalog.=) $1", 2, t_set);

	PushActiveSnapshot(GetLatestSnapshot());
	args[0] = Int32GetDatum(group->group_id);
	if (SPI_execute_plan(plan_low_water, args, NULL, true, 1) != SPI_OK_SELECT || SPI_processed != 1)
	{
		PopActiveSnapshot();
		SPI_finish();
		return 0;
	}
	low_water = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	args[1] = Int64GetDatum(low_water);
	args[2] = Int32GetDatum(limit);
	if (SPI_execute_snapshot(plan_done_claims, args, NULL, GetActiveSnapshot(), InvalidSnapshot,
							 false, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read claims");
	nrows = SPI_processed;
	rows = palloc(sizeof(ClaimRow) * Max(nrows, 1));
	for (i = 0; i < nrows; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];

		rows[i].lo = DatumGetInt64(SPI_getbinval(tup, SPI_tuptable->tupdesc, 1, &isnull));
		rows[i].hi = DatumGetInt64(SPI_getbinval(tup, SPI_tuptable->tupdesc, 2, &isnull));
		rows[i].done = !CourierClaimedHere(group->group_id, rows[i].lo, rows[i].hi);
	}
	PopActiveSnapshot();

	del = palloc(sizeof(int64) * Max(nrows, 1));
	merge_lo = palloc(sizeof(int64) * Max(nrows, 1));
	merge_hi = palloc(sizeof(int64) * Max(nrows, 1));
	lw = low_water;
	for (i = 0; i <= nrows; i++)
	{
		ClaimRow   *c = (i < nrows) ? &rows[i] : NULL;

		if (prefix && c && c->done && c->lo == lw + 1)
		{
			lw = c->hi;
			del[ndel++] = c->lo;
			continue;
		}
		prefix = false;
		if (c && c->done && run_len > 0 && c->lo == run_hi + 1)
		{
			/* adjacent to the run: it goes, the run's first claim grows */
			del[ndel++] = c->lo;
			run_hi = c->hi;
			run_len++;
			continue;
		}
		if (run_len > 1)
		{
			merge_lo[nmerge] = run_lo;
			merge_hi[nmerge] = run_hi;
			nmerge++;
		}
		run_len = 0;
		if (c && c->done)
		{
			run_lo = c->lo;
			run_hi = c->hi;
			run_len = 1;
		}
	}

	/* delete first: the overlap check sees the merged claim grow */
	if (ndel > 0)
	{
		args[1] = CourierInt8Array(del, ndel);
		if (SPI_execute_plan(plan_delete_claims, args, NULL, false, 0) != SPI_OK_DELETE)
			elog(ERROR, "could not delete claims");
	}
	for (i = 0; i < (uint64) nmerge; i++)
	{
		args[1] = Int64GetDatum(merge_lo[i]);
		args[2] = Int64GetDatum(merge_hi[i]);
		if (SPI_execute_plan(plan_merge_claim, args, NULL, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "could not merge claims");
	}
	if (lw > low_water)
	{
		/*
		 * Lock order: claim lock, then the group_meta row.  Under the claim
		 * lock only this update (which can wait only for another compaction
		 * of the group that is committing) and the shared position.
		 */
		CourierClaimLock(group->group_id);
		args[1] = Int64GetDatum(lw);
		if (SPI_execute_plan(plan_set_low_water, args, NULL, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "could not move low_water");
		CourierGroupFolded(group->group_id, lw);
		CourierClaimUnlock(group->group_id);
	}
	SPI_finish();
	return ndel;
}

/*
 * CourierMaintainGroup
 *		One bounded round of the per-group jobs.
 */
void
CourierMaintainGroup(CourierTopic *topic, CourierGroup *group, TimestampTz now,
					 CourierMaintStats *st)
{
	int			batch = courier_maintenance_batch;

	CourierRunPromotions(topic, group);
	st->expired += CourierExpireClaims(group, batch, now);
	st->dead_lettered += dead_letter_expired(topic, group, batch, now);
	st->compacted += compact(group, batch);
}

/*
 * exec_ddl
 *		Run one of our own DDL statements (segment creation and drops) as
 *		internal DDL, which the guard lets through (guard.c).
 */
static void
exec_ddl(const char *sql)
{
	CourierExecInternalDDL(sql);
}

/*
 * rotate
 *		Start a new segment if the current one is full or old.  Senders move
 *		to it once they see it in the catalog (we queue the invalidation).
 */
static void
rotate(CourierTopic *topic, TimestampTz now, CourierMaintStats *st)
{
	CourierSegment *cur = &topic->segments[topic->nsegments - 1];
	int64		next_id = CourierNextIdOf(topic);
	int64		age_limit = Max(CourierIntervalUsec(&topic->retention) / 4, USECS_PER_SEC);
	bool		full;
	bool		old;

	CourierSegmentBounds(topic, topic->nsegments - 1);
	if (cur->min_lb == 0)
		return;					/* empty: nothing to seal */
	full = (next_id - cur->min_lb) >= courier_segment_size;
	old = (now - cur->created_at) >= age_limit;
	if (!full && !old)
		return;

	/* one definition of a segment: the install script's _create_segment */
	{
		Oid			types[2] = {INT4OID, INT4OID};
		Datum		args[2];

		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		args[0] = Int32GetDatum(topic->topic_id);
		args[1] = Int32GetDatum(cur->seg_no + 1);
		if (CourierExecuteOnce("SELECT courier._create_segment($1, $2)", 2, types, args,
							   NULL, false, 1) != SPI_OK_SELECT)
			elog(ERROR, "could not create a segment");
		SPI_finish();
	}
	CourierCatalogChanged(topic->topic_id, 0);
	st->rotated++;
}

/*
 * lock_behind
 *		Lock the claims and lease rows of a group at or below max_ub, without
 *		waiting: drop_behind changes them under the group's claim lock, and
 *		must never wait for a row lock there (a receiver holding such a row
 *		may be waiting for that claim lock).  Returns false if any is busy.
 */
static bool
lock_behind(CourierGroup *group, int64 max_ub)
{
	Oid			types[2] = {INT4OID, INT8OID};
	Datum		args[2];
	bool		isnull;
	bool		ok;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	args[0] = Int32GetDatum(group->group_id);
	args[1] = Int64GetDatum(max_ub);
	if (CourierExecuteOnce("WITH c AS (SELECT 1 FROM courier.claim "
						   "           WHERE group_id OPERATOR(pg_catalog.=) $1 "
						   "           AND lo OPERATOR(pg_catalog.<=) $2 FOR UPDATE SKIP LOCKED), "
						   "     l AS (SELECT 1 FROM courier.lease "
						   "           WHERE group_id OPERATOR(pg_catalog.=) $1 "
						   "           AND msg_id OPERATOR(pg_catalog.<=) $2 FOR UPDATE SKIP LOCKED) "
						   "SELECT (SELECT pg_catalog.count(*) FROM c) OPERATOR(pg_catalog.=) "
						   "       (SELECT pg_catalog.count(*) FROM courier.claim "
						   "        WHERE group_id OPERATOR(pg_catalog.=) $1 AND lo OPERATOR(pg_catalog.<=) $2) "
						   "   AND (SELECT pg_catalog.count(*) FROM l) OPERATOR(pg_catalog.=) "
						   "       (SELECT pg_catalog.count(*) FROM courier.lease "
						   "        WHERE group_id OPERATOR(pg_catalog.=) $1 AND msg_id OPERATOR(pg_catalog.<=) $2)",
						   2, types, args, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not lock claims and leases");
	ok = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();
	return ok;
}

/*
 * drop_behind
 *		max_retention is dropping the ids <= max_ub although the group has
 *		not finished them: count what the group loses (never delivered, in
 *		flight or waiting for a retry), then move it past them.
 */
static int64
drop_behind(CourierTopic *topic, CourierGroup *group, int64 max_ub)
{
	CourierWalkResult res;
	Oid			types[3] = {INT4OID, INT8OID, INT8OID};
	Datum		args[3];
	int64		lost;
	int64		new_lw = max_ub;
	bool		isnull;

	CourierClaimLock(group->group_id);
	CourierWalk(topic, group, WALK_COUNT, 0, 0, max_ub, &res);
	lost = res.backlog + res.delayed;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	args[0] = Int32GetDatum(group->group_id);
	args[1] = Int64GetDatum(max_ub);
	if (CourierExecuteOnce("SELECT (SELECT pg_catalog.count(*) FROM courier.lease "
						   "        WHERE group_id OPERATOR(pg_catalog.=) $1 "
						   "        AND msg_id OPERATOR(pg_catalog.<=) $2) "
						   " OPERATOR(pg_catalog.+) "
						   " (SELECT pg_catalog.count(*) FROM courier.claim c, "
						   "         pg_catalog.unnest(c.pending) p "
						   "  WHERE c.group_id OPERATOR(pg_catalog.=) $1 "
						   "  AND c.lo OPERATOR(pg_catalog.<=) $2 AND p OPERATOR(pg_catalog.<=) $2), "
						   " (SELECT lo FROM courier.claim WHERE group_id OPERATOR(pg_catalog.=) $1 "
						   "  AND lo OPERATOR(pg_catalog.<=) $2 AND hi OPERATOR(pg_catalog.>) $2)",
						   2, types, args, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not count lost messages");
	lost += DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	{
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);

		if (!isnull)
			new_lw = DatumGetInt64(d) - 1;	/* a claim straddles the end */
	}
	args[2] = Int64GetDatum(lost);
	if (CourierExecuteOnce("UPDATE courier.claim SET pending = ARRAY("
						   "  SELECT p FROM pg_catalog.unnest(pending) p WHERE p OPERATOR(pg_catalog.>) $2) "
						   "WHERE group_id OPERATOR(pg_catalog.=) $1 AND lo OPERATOR(pg_catalog.<=) $2 "
						   "AND hi OPERATOR(pg_catalog.>) $2",
						   2, types, args, NULL, false, 0) != SPI_OK_UPDATE ||
		CourierExecuteOnce("DELETE FROM courier.claim WHERE group_id OPERATOR(pg_catalog.=) $1 "
						   "AND hi OPERATOR(pg_catalog.<=) $2",
						   2, types, (Datum[]) {args[0], Int64GetDatum(new_lw)}, NULL, false, 0) != SPI_OK_DELETE ||
		CourierExecuteOnce("DELETE FROM courier.lease WHERE group_id OPERATOR(pg_catalog.=) $1 "
						   "AND msg_id OPERATOR(pg_catalog.<=) $2",
						   2, types, args, NULL, false, 0) != SPI_OK_DELETE ||
		CourierExecuteOnce("UPDATE courier.group_meta SET low_water = GREATEST(low_water, $2), "
						   "dropped = dropped OPERATOR(pg_catalog.+) $3 "
						   "WHERE group_id OPERATOR(pg_catalog.=) $1",
						   3, types, (Datum[]) {args[0], Int64GetDatum(new_lw), args[2]}, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not move a group past a dropped segment");
	SPI_finish();

	/*
	 * Forget the position now and again when this transaction ends, however
	 * it ends: a rebuild (or a compaction's fold) inside this transaction
	 * reads its own low_water, which a rollback takes back (review of
	 * 407d4a8).  That also refuses PREPARE, as for seek (xact.c).
	 */
	CourierGroupInvalidate(CourierGroupSharedGet(group->group_id), group->group_id);
	CourierInvalidateGroupAtEnd(group->group_id);
	return lost;
}

/*
 * reclaim
 *		Drop the oldest segment of a topic if it may go.
 */
static void
reclaim(CourierTopic *topic, TimestampTz now, CourierMaintStats *st)
{
	CourierSegment *seg;
	CourierSegment *next;
	int64		max_ub;
	int64		retention = CourierIntervalUsec(&topic->retention);
	int64		max_retention = -1;
	bool		aged;
	bool		forced;
	bool		everyone_past = true;
	List	   *groups;
	ListCell   *lc;
	Oid			t_floor[2] = {INT4OID, INT8OID};
	Datum		args[3];
	bool		isnull;
	char	   *relname;
	int32		seg_topic_id;

	if (topic->nsegments < 2)
		return;					/* never the current segment */
	seg_topic_id = topic->topic_id;
	seg = &topic->segments[0];
	next = &topic->segments[1];
	CourierSegmentBounds(topic, 0);
	if (topic->has_max_retention)
		max_retention = CourierIntervalUsec(&topic->max_retention);

	/* every message of seg was sent before next was created */
	aged = (now - next->created_at) >= retention;
	forced = max_retention >= 0 && (now - next->created_at) >= max_retention;
	if (!aged && !forced)
		return;
	if (seg->min_lb == 0)
		max_ub = 0;				/* empty */
	else
	{
		if (seg->max_ub == 0)
			return;
		max_ub = seg->max_ub;
	}

	/*
	 * Is every group past it?  First lock the topic's row: create_group reads
	 * floor_id under FOR SHARE, so a group being created either commits
	 * before we look at the groups (and is counted) or waits for us and sees
	 * the new floor.
	 *
	 * Without waiting (SKIP LOCKED; the topic is reclaimed next round): the
	 * row comes after the existence locks in the lock order; create_group
	 * locks it holding the topic's lock in share mode, as we do, and grant,
	 * revoke and alter_topic_owner lock it without the topic's existence
	 * lock.  A transaction that created a group and then dropped (paused,
	 * sought) another group of the topic, which this round holds in share
	 * mode, deadlocked with a reclaim waiting for the row (spec
	 * maint_reclaim_row); waiting here also held the topic's maintenance
	 * lock, which a run_maintenance() in that transaction would wait for.
	 */
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	{
		Oid			t1[1] = {INT4OID};
		Datum		a1[1];

		a1[0] = Int32GetDatum(seg_topic_id);
		if (CourierExecuteOnce("SELECT 1 FROM courier.topic_meta "
							   "WHERE topic_id OPERATOR(pg_catalog.=) $1 FOR UPDATE SKIP LOCKED",
							   1, t1, a1, NULL, false, 1) != SPI_OK_SELECT)
			elog(ERROR, "could not lock a topic");
		if (SPI_processed != 1)
		{
			/* busy (or gone: then there is nothing to reclaim either) */
			SPI_finish();
			st->skipped++;
			return;
		}
	}
	SPI_finish();
	groups = CourierTopicGroups(seg_topic_id);	/* takes in invalidations */
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	CourierPrepare(&plan_group_floor,
				   "SELECT g.low_water OPERATOR(pg_catalog.>=) $2 AND NOT EXISTS ("
				   "  SELECT 1 FROM courier.lease l WHERE l.group_id OPERATOR(pg_catalog.=) $1 "
				   "  AND l.msg_id OPERATOR(pg_catalog.<=) $2) "
				   "FROM courier.group_meta g WHERE g.group_id OPERATOR(pg_catalog.=) $1",
				   2, t_floor);
	foreach(lc, groups)
	{
		args[0] = Int32GetDatum(lfirst_int(lc));
		args[1] = Int64GetDatum(max_ub);
		if (SPI_execute_plan(plan_group_floor, args, NULL, false, 1) != SPI_OK_SELECT)
			elog(ERROR, "could not check group positions");
		if (SPI_processed == 1 &&
			!DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)))
			everyone_past = false;
	}
	SPI_finish();
	if (!everyone_past && !forced)
		return;

	/* nobody may be reading or writing it; try again next round if busy */
	if (!ConditionalLockRelationOid(seg->relid, AccessExclusiveLock))
	{
		st->skipped++;
		return;
	}

	if (!everyone_past)
	{
		List	   *gl = NIL;

		/* lock every group's rows first; if any is busy, next round */
		foreach(lc, groups)
		{
			CourierGroup *g;

			/* a group a seek or drop waits for is busy too */
			if (!CourierTryLockForWorker(seg_topic_id, lfirst_int(lc)))
			{
				st->skipped++;
				return;
			}
			g = CourierGetGroupById(lfirst_int(lc));
			if (g == NULL)
				continue;
			if (!lock_behind(g, max_ub))
			{
				st->skipped++;
				return;
			}
			gl = lappend_int(gl, g->group_id);
		}
		foreach(lc, gl)
		{
			CourierGroup *g = CourierFindGroupById(lfirst_int(lc));

			topic = CourierFindTopicById(seg_topic_id);
			if (g != NULL && topic != NULL)
				st->dropped_messages += drop_behind(topic, g, max_ub);
		}
	}

	relname = get_rel_name(seg->relid);
	if (relname)
		exec_ddl(psprintf("DROP TABLE %s", quote_qualified_identifier("courier", relname)));
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	args[0] = Int32GetDatum(topic->topic_id);
	args[1] = Int32GetDatum(seg->seg_no);
	args[2] = Int64GetDatum(max_ub);
	{
		Oid			types[3] = {INT4OID, INT4OID, INT8OID};

		if (CourierExecuteOnce("DELETE FROM courier.segment WHERE topic_id OPERATOR(pg_catalog.=) $1 "
							   "AND seg_no OPERATOR(pg_catalog.=) $2",
							   2, types, args, NULL, false, 0) != SPI_OK_DELETE)
			elog(ERROR, "could not delete segment row");
		if (CourierExecuteOnce("UPDATE courier.topic_meta SET floor_id = GREATEST(floor_id, $3), "
							   "reclaimed = reclaimed OPERATOR(pg_catalog.+) 1 "
							   "WHERE topic_id OPERATOR(pg_catalog.=) $1 AND $2 IS NOT NULL",
							   3, types, args, NULL, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "could not update topic");
	}
	SPI_finish();
	CourierCatalogChanged(topic->topic_id, 0);
	st->dropped_segments++;
}

/*
 * CourierMaintainTopic
 *		One round of the per-topic jobs, if no one else is maintaining the
 *		topic right now.
 */
void
CourierMaintainTopic(CourierTopic *topic, TimestampTz now, CourierMaintStats *st)
{
	int32		topic_id = topic->topic_id;
	LOCKTAG		tag;

	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, (uint32) topic_id, 0, COURIER_LOCK_MAINT);
	if (LockAcquire(&tag, ExclusiveLock, false, true) == LOCKACQUIRE_NOT_AVAIL)
		return;
	/* whoever held it has committed: look at the catalog as it is now */
	topic = CourierFindTopicById(topic_id);
	if (topic == NULL || topic->nsegments == 0)
		return;
	rotate(topic, now, st);
	topic = CourierFindTopicById(topic_id);
	if (topic != NULL)
		reclaim(topic, now, st);
}

/*
 * courier_run_maintenance
 *		run_maintenance() -> jsonb: one round of every job for every topic
 *		(that the caller administers) and its groups, in the caller's
 *		transaction (which must be READ COMMITTED: the jobs decide from what
 *		is committed now).
 *
 *		Locking (docs/design.md, "Locking"): the round runs in the caller's
 *		transaction, so every existence lock it takes (share mode) stays
 *		held until that transaction ends.  DDL takes existence locks
 *		exclusively in an order its caller chooses (drop_group, pause_group
 *		or seek of several groups one after another, drop_group and then
 *		drop_topic, two drop_topic calls): had the round waited for one
 *		such lock while holding another that the DDL then asked for, one of
 *		the two would fail with 40P01 (spec maint_ddl_order).  So the round
 *		never waits for an existence lock: it only tries it, like the
 *		worker (CourierTryLockForWorker), and skips a topic or group that
 *		DDL holds or waits for; the next round does what was skipped (the
 *		DDL has dropped or changed the object by then).  Locks the caller's
 *		transaction already holds in share mode are granted at once.
 *		Topics and groups are visited in ascending id order, so that two
 *		rounds queue for the topics' maintenance locks in the same order.
 */
Datum
courier_run_maintenance(PG_FUNCTION_ARGS)
{
	CourierMaintStats st;
	TimestampTz now = GetCurrentTimestamp();
	List	   *topics;
	ListCell   *lc;
	char	   *json;

	if (IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
				 errmsg("courier.run_maintenance() must run in a READ COMMITTED transaction")));
	PreventCommandDuringRecovery("courier.run_maintenance");
	PreventCommandIfReadOnly("courier.run_maintenance");

	memset(&st, 0, sizeof(st));
	topics = CourierAllTopics();
	list_sort(topics, list_int_cmp);
	foreach(lc, topics)
	{
		int32		topic_id = lfirst_int(lc);
		CourierTopic *topic;
		List	   *groups;
		ListCell   *lc2;

		/* never wait for an existence lock (see the function's comment) */
		if (!CourierTryLockForWorker(topic_id, 0))
		{
			st.skipped++;
			continue;
		}
		topic = CourierGetTopicById(topic_id);
		if (topic == NULL)
			continue;

		/*
		 * Only the topics the caller administers: maintenance in the
		 * caller's transaction keeps its locks until it ends (a drop's
		 * claim lock, the rows compaction and expiry took), and an admin
		 * of one topic must not be able to hold up another's receivers.
		 * The worker maintains everything.
		 */
		if (!CourierTopicPrivilegeOk(topic, CourierOuterUser(), COURIER_PRIV_ADMIN))
			continue;
		groups = CourierTopicGroups(topic_id);
		list_sort(groups, list_int_cmp);
		foreach(lc2, groups)
		{
			CourierGroup *group;

			if (!CourierTryLockForWorker(topic_id, lfirst_int(lc2)))
			{
				st.skipped++;
				continue;
			}
			group = CourierGetGroupById(lfirst_int(lc2));
			topic = CourierFindTopicById(topic_id);
			if (group != NULL && topic != NULL)
				CourierMaintainGroup(topic, group, now, &st);
		}

		/*
		 * Wait for the worker's round of this topic rather than skip it: the
		 * worker's step holds the lock only for its own short transaction,
		 * and waits for no existence lock or topic row under it.  (Another
		 * run_maintenance() holds it until its caller's transaction ends.)
		 */
		(void) CourierLockMaintenance(topic_id, true);
		topic = CourierFindTopicById(topic_id);
		if (topic != NULL)
			CourierMaintainTopic(topic, now, &st);
	}

	json = psprintf("{\"expired\": " INT64_FORMAT ", \"dead_lettered\": " INT64_FORMAT
					", \"compacted\": " INT64_FORMAT ", \"segments_created\": " INT64_FORMAT
					", \"segments_dropped\": " INT64_FORMAT ", \"messages_dropped\": " INT64_FORMAT "}",
					st.expired, st.dead_lettered, st.compacted, st.rotated,
					st.dropped_segments, st.dropped_messages);
	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(json)));
}

/*
 * Vacuum of the bookkeeping tables
 * --------------------------------
 * Every receive inserts a claim that compaction deletes once its messages
 * are finished; redeliveries, delays and ordered groups insert, update and
 * delete lease rows.  HOT pruning reclaims the claims' updated versions as
 * it goes, but a deleted row (and a lease version whose indexed columns
 * changed) keeps its index entries, so it stays a dead tuple until VACUUM.
 * Autovacuum visits a database once a minute at most (autovacuum_naptime)
 * and waits for 20% of the table to be dead; under a steady load the claim
 * table would carry tens of thousands of dead rows, and its indexes the
 * entries pointing at them, which every receive's probes step over.  So the
 * worker vacuums claim and lease itself, at the end of a round, when one
 * holds courier.vacuum_threshold dead rows (the cumulative statistics'
 * count, which lags up to a second), unless
 *	- it was vacuumed less than VACUUM_MIN_INTERVAL_MS ago;
 *	- the xmin horizon has not moved since its last VACUUM: while an old
 *	  snapshot, a prepared transaction or a slot holds it, a VACUUM could
 *	  remove nothing new, and rescanning every round would only cost I/O;
 *	- its last VACUUM ran out of time (below) less than VACUUM_BACKOFF_MS ago;
 *	- another session holds a lock that conflicts with VACUUM's: the table
 *	  is skipped until a later round (SKIP_LOCKED would log a WARNING).
 *
 * Never stalling the worker: VACUUM takes SHARE UPDATE EXCLUSIVE, which no
 * send, receive or ack conflicts with.  TRUNCATE is off (truncating takes
 * ACCESS EXCLUSIVE, which would stop receivers; autovacuum still does it),
 * PARALLEL is 0 (no parallel workers taken from max_worker_processes), the
 * worker's session pins vacuum_cost_delay to 0 (worker.c, pin_session: a
 * database owner's ALTER DATABASE ... SET must not slow it down), and each
 * VACUUM runs under a statement timeout of VACUUM_TIME_LIMIT_MS: btree's
 * bulk delete waits for a cleanup lock on every leaf page, which a session
 * holding a pin (an open cursor on the table, which only a superuser or
 * pg_read_all_data could have) would make wait indefinitely.  A VACUUM that
 * runs out of time is an error of the round's step (logged once a minute at
 * most) and the table is left alone for VACUUM_BACKOFF_MS.
 */
#define VACUUM_MIN_INTERVAL_MS	1000
#define VACUUM_TIME_LIMIT_MS	1000
#define VACUUM_BACKOFF_MS		60000

static const char *const vacuum_tables[COURIER_VACUUM_TABLES] = {"claim", "lease"};

/*
 * run_vacuum
 *		ExecVacuum as a top-level statement under a statement timeout, with
 *		PortalContext (under which VACUUM keeps its cross-transaction memory)
 *		set to cxt meanwhile.  If it ran out of time, the tables of due[]
 *		get their retry_after before the error goes on.
 */
static void
run_vacuum(VacuumStmt *stmt, MemoryContext cxt, CourierVacuumState *state, const bool *due)
{
	MemoryContext save_portal = PortalContext;
	TimestampTz deadline = GetCurrentTimestamp() + (int64) VACUUM_TIME_LIMIT_MS * 1000;

	PortalContext = cxt;
	enable_timeout_after(STATEMENT_TIMEOUT, VACUUM_TIME_LIMIT_MS);
	PG_TRY();
	{
		ExecVacuum(make_parsestate(NULL), stmt, true);
	}
	PG_CATCH();
	{
		int			i;

		/*
		 * Ran out of time: a cancel at or after the deadline (the timeout's
		 * own indicator is already reset by the time the error is raised;
		 * a pg_cancel_backend before the deadline is no reason to back off)
		 */
		if (geterrcode() == ERRCODE_QUERY_CANCELED && GetCurrentTimestamp() >= deadline)
			for (i = 0; i < COURIER_VACUUM_TABLES; i++)
				if (due[i])
					state[i].retry_after = GetCurrentTimestamp() + (int64) VACUUM_BACKOFF_MS * 1000;
		disable_timeout(STATEMENT_TIMEOUT, false);
		PortalContext = save_portal;
		PG_RE_THROW();
	}
	PG_END_TRY();
	disable_timeout(STATEMENT_TIMEOUT, false);
	PortalContext = save_portal;
}

/*
 * vacuum_due
 *		Whether the table relid (entry st of the state) is due for our VACUUM
 *		(see above); *horizon gets the current xmin horizon for it.
 */
static bool
vacuum_due(Oid relid, CourierVacuumState *st, TimestampTz now, TransactionId *horizon,
		   PgStat_Counter *vacuums)
{
	PgStat_StatTabEntry *tab = pgstat_fetch_stat_tabentry(relid);
	Relation	rel;

	if (tab == NULL || tab->n_dead_tuples < courier_vacuum_threshold)
		return false;
	if (now < st->retry_after || now - st->last < (int64) VACUUM_MIN_INTERVAL_MS * 1000)
		return false;
	*vacuums = tab->vacuum_count;
	rel = table_open(relid, AccessShareLock);
	*horizon = GetOldestNonRemovableTransactionId(rel);
	table_close(rel, AccessShareLock);
	if (TransactionIdIsValid(st->horizon) && !TransactionIdFollows(*horizon, st->horizon))
		return false;
	/* a conflicting lock now: skip quietly (VACUUM's own skip logs a WARNING) */
	if (!ConditionalLockRelationOid(relid, ShareUpdateExclusiveLock))
		return false;
	UnlockRelationOid(relid, ShareUpdateExclusiveLock);
	return true;
}

/*
 * CourierVacuumBookkeeping
 *		VACUUM the bookkeeping tables that are due (see above).  state has
 *		COURIER_VACUUM_TABLES entries, updated here, also when VACUUM fails.
 *		Called by the worker in a transaction it started, with no snapshot
 *		pushed: VACUUM commits it, runs a transaction per table and returns
 *		in a new transaction, which the caller commits.  cxt must outlive the
 *		transaction (the statement and VACUUM's own memory live there).
 */
void
CourierVacuumBookkeeping(MemoryContext cxt, CourierVacuumState *state)
{
	Oid			nsp = get_namespace_oid("courier", true);
	TimestampTz now = GetCurrentTimestamp();
	List	   *rels = NIL;
	TransactionId horizons[COURIER_VACUUM_TABLES];
	bool		due[COURIER_VACUUM_TABLES];
	Oid			relids[COURIER_VACUUM_TABLES];
	PgStat_Counter vacuums[COURIER_VACUUM_TABLES];
	VacuumStmt *stmt;
	MemoryContext old;
	int			i;

	if (courier_vacuum_threshold <= 0 || !OidIsValid(nsp))
		return;
	old = MemoryContextSwitchTo(cxt);
	for (i = 0; i < COURIER_VACUUM_TABLES; i++)
	{
		relids[i] = get_relname_relid(vacuum_tables[i], nsp);
		due[i] = OidIsValid(relids[i]) &&
			vacuum_due(relids[i], &state[i], now, &horizons[i], &vacuums[i]);
		if (!due[i])
			continue;
		state[i].last = now;
		rels = lappend(rels, makeVacuumRelation(makeRangeVar("courier", pstrdup(vacuum_tables[i]), -1),
												InvalidOid, NIL));
	}
	if (rels == NIL)
	{
		MemoryContextSwitchTo(old);
		return;
	}
	stmt = makeNode(VacuumStmt);
	stmt->options = list_make4(makeDefElem("skip_locked", (Node *) makeBoolean(true), -1),
							   makeDefElem("truncate", (Node *) makeBoolean(false), -1),
							   makeDefElem("index_cleanup", (Node *) makeString("on"), -1),
							   makeDefElem("parallel", (Node *) makeInteger(0), -1));
	stmt->rels = rels;
	stmt->is_vacuumcmd = true;
	MemoryContextSwitchTo(old);
	ereport(DEBUG1,
			(errmsg_internal("pg_courier worker: VACUUM of%s%s",
							 due[0] ? " courier.claim" : "", due[1] ? " courier.lease" : "")));
	run_vacuum(stmt, cxt, state, due);

	/*
	 * Remember the horizon of the tables VACUUM did process (its count went
	 * up; VACUUM reports it at once), not of those it skipped for a lock
	 * taken since we looked: they are due again, whatever the horizon.
	 */
	for (i = 0; i < COURIER_VACUUM_TABLES; i++)
	{
		PgStat_StatTabEntry *tab;

		if (!due[i])
			continue;
		tab = pgstat_fetch_stat_tabentry(relids[i]);
		if (tab != NULL && tab->vacuum_count > vacuums[i])
			state[i].horizon = horizons[i];
	}
}
