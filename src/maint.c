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
 *	  into low_water and deleted (under the group's claim lock, kept until
 *	  commit, see walk.c).
 * Per topic:
 *	- rotate: start a new segment when the current one holds
 *	  courier.segment_size ids or is older than a quarter of the retention;
 *	- reclaim: drop the oldest segment once retention has passed and every
 *	  group is past it -- or, with max_retention, once that has passed
 *	  whatever the groups say (counting what each group lost).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"

#include "pg_courier.h"

PG_FUNCTION_INFO_V1(courier_run_maintenance);

static SPIPlanPtr plan_dead_expired = NULL;
static SPIPlanPtr plan_done_claims = NULL;
static SPIPlanPtr plan_delete_claims = NULL;
static SPIPlanPtr plan_set_low_water = NULL;
static SPIPlanPtr plan_low_water = NULL;
static SPIPlanPtr plan_group_floor = NULL;
static SPIPlanPtr plan_topic_meta = NULL;

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
				   "FROM courier.lease WHERE group_id = $1 AND state = 'l' AND visible_at <= $2 "
				   "AND attempt >= $4 ORDER BY visible_at LIMIT $3 FOR UPDATE SKIP LOCKED",
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

/*
 * compact
 *		Fold the finished claims at the bottom of the group's log into
 *		low_water.  Takes the group's claim lock until commit: a walker
 *		must never see these claims gone while its R is still below them.
 *		Returns the number of claims deleted.
 */
static int
compact(CourierGroup *group, int limit)
{
	Oid			t_lw[1] = {INT4OID};
	Oid			t_done[3] = {INT4OID, INT8OID, INT4OID};
	Oid			t_del[3] = {INT4OID, INT8OID, INT8OID};
	Oid			t_set[2] = {INT4OID, INT8OID};
	Datum		args[3];
	int64		low_water;
	int64		lw;
	uint64		i;
	int			n = 0;
	bool		isnull;
	CourierGroupShared *gs;

	CourierClaimLock(group->group_id);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	CourierPrepare(&plan_low_water,
				   "SELECT low_water FROM courier.group_meta WHERE group_id = $1", 1, t_lw);
	CourierPrepare(&plan_done_claims,
				   "SELECT lo, hi FROM courier.claim WHERE group_id = $1 AND lo > $2 "
				   "AND cardinality(pending) = 0 ORDER BY lo LIMIT $3",
				   3, t_done);
	CourierPrepare(&plan_delete_claims,
				   "DELETE FROM courier.claim WHERE group_id = $1 AND lo > $2 AND lo <= $3",
				   3, t_del);
	CourierPrepare(&plan_set_low_water,
				   "UPDATE courier.group_meta SET low_water = $2 WHERE group_id = $1", 2, t_set);

	args[0] = Int32GetDatum(group->group_id);
	if (SPI_execute_plan(plan_low_water, args, NULL, false, 1) != SPI_OK_SELECT || SPI_processed != 1)
	{
		SPI_finish();
		return 0;
	}
	low_water = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));

	args[1] = Int64GetDatum(low_water);
	args[2] = Int32GetDatum(limit);
	if (SPI_execute_plan(plan_done_claims, args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read claims");
	lw = low_water;
	for (i = 0; i < SPI_processed; i++)
	{
		int64		lo = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		int64		hi = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull));

		if (lo != lw + 1)
			break;				/* something unfinished (or uncommitted) in between */
		lw = hi;
		n++;
	}
	if (lw > low_water)
	{
		args[1] = Int64GetDatum(low_water);
		args[2] = Int64GetDatum(lw);
		if (SPI_execute_plan(plan_delete_claims, args, NULL, false, 0) != SPI_OK_DELETE)
			elog(ERROR, "could not delete claims");
		args[1] = Int64GetDatum(lw);
		if (SPI_execute_plan(plan_set_low_water, args, NULL, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "could not move low_water");

		/* walkers must not look below the new low_water any more */
		gs = CourierGroupSharedGet(group->group_id);
		SpinLockAcquire(&gs->mutex);
		if (gs->valid)
		{
			gs->recheck = Max(gs->recheck, lw + 1);
			gs->frontier = Max(gs->frontier, lw + 1);
		}
		SpinLockRelease(&gs->mutex);
	}
	SPI_finish();
	return n;
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
 * rotate
 *		Start a new segment if the current one is full or old.  The switch
 *		happens when this transaction commits (xact.c).
 */
static void
rotate(CourierTopic *topic, TimestampTz now, CourierMaintStats *st)
{
	CourierSegment *cur = &topic->segments[topic->nsegments - 1];
	int64		next_id = CourierNextIdOf(topic);
	int64		age_limit = Max(CourierIntervalUsec(&topic->retention) / 4, USECS_PER_SEC);
	bool		full;
	bool		old;
	Oid			types[2] = {INT4OID, INT4OID};
	Datum		args[2];
	Oid			newrel;
	bool		isnull;

	CourierSegmentBounds(topic, topic->nsegments - 1);
	if (cur->min_lb == 0)
		return;					/* empty: nothing to seal */
	full = (next_id - cur->min_lb) >= courier_segment_size;
	old = (now - cur->created_at) >= age_limit;
	if (!full && !old)
		return;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	args[0] = Int32GetDatum(topic->topic_id);
	args[1] = Int32GetDatum(cur->seg_no + 1);
	if (SPI_execute_with_args("SELECT courier._create_segment($1, $2)::oid", 2, types, args,
							  NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not create a segment");
	newrel = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();

	CourierSwitchSegmentAtCommit(topic->topic_id, cur->seg_no + 1, newrel);
	CourierBumpGenerationAtCommit();
	st->rotated++;
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
	if (SPI_execute_with_args("SELECT (SELECT count(*) FROM courier.lease WHERE group_id = $1 AND msg_id <= $2) "
							  " + (SELECT count(*) FROM courier.claim c, unnest(c.pending) p "
							  "    WHERE c.group_id = $1 AND c.lo <= $2 AND p <= $2), "
							  " (SELECT lo FROM courier.claim WHERE group_id = $1 AND lo <= $2 AND hi > $2)",
							  2, types, args, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not count lost messages");
	lost += DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	{
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);

		if (!isnull)
			new_lw = DatumGetInt64(d) - 1;	/* a claim straddles the end */
	}
	args[2] = Int64GetDatum(lost);
	if (SPI_execute_with_args("UPDATE courier.claim SET pending = ARRAY(SELECT p FROM unnest(pending) p WHERE p > $2), "
							  "lease_until = CASE WHEN EXISTS (SELECT 1 FROM unnest(pending) p WHERE p > $2) "
							  "THEN lease_until END "
							  "WHERE group_id = $1 AND lo <= $2 AND hi > $2",
							  2, types, args, NULL, false, 0) != SPI_OK_UPDATE ||
		SPI_execute_with_args("DELETE FROM courier.claim WHERE group_id = $1 AND hi <= $2",
							  2, types, (Datum[]) {args[0], Int64GetDatum(new_lw)}, NULL, false, 0) != SPI_OK_DELETE ||
		SPI_execute_with_args("DELETE FROM courier.lease WHERE group_id = $1 AND msg_id <= $2",
							  2, types, args, NULL, false, 0) != SPI_OK_DELETE ||
		SPI_execute_with_args("UPDATE courier.group_meta SET low_water = greatest(low_water, $2), "
							  "dropped = dropped + $3 WHERE group_id = $1",
							  3, types, (Datum[]) {args[0], Int64GetDatum(new_lw), args[2]}, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not move a group past a dropped segment");
	SPI_finish();

	CourierGroupInvalidate(CourierGroupSharedGet(group->group_id), group->group_id);
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
	Oid			t_meta[1] = {INT4OID};
	Datum		args[3];
	bool		isnull;
	char	   *relname;

	if (topic->nsegments < 2)
		return;					/* never the current segment */
	seg = &topic->segments[0];
	next = &topic->segments[1];
	CourierSegmentBounds(topic, 0);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	CourierPrepare(&plan_topic_meta,
				   "SELECT max_retention FROM courier.topic_meta WHERE topic_id = $1", 1, t_meta);
	args[0] = Int32GetDatum(topic->topic_id);
	if (SPI_execute_plan(plan_topic_meta, args, NULL, false, 1) == SPI_OK_SELECT && SPI_processed == 1)
	{
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull)
			max_retention = CourierIntervalUsec(DatumGetIntervalP(d));
	}
	SPI_finish();

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

	/* is every group past it? */
	groups = CourierTopicGroups(topic->topic_id);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	CourierPrepare(&plan_group_floor,
				   "SELECT g.low_water >= $2 AND NOT EXISTS (SELECT 1 FROM courier.lease l "
				   "  WHERE l.group_id = $1 AND l.msg_id <= $2) "
				   "FROM courier.group_meta g WHERE g.group_id = $1",
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
		return;

	if (!everyone_past)
	{
		foreach(lc, groups)
		{
			CourierGroup *g = CourierGetGroupById(lfirst_int(lc));

			if (g != NULL)
				st->dropped_messages += drop_behind(topic, g, max_ub);
		}
	}

	relname = get_rel_name(seg->relid);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (relname)
	{
		char	   *sql = psprintf("DROP TABLE %s", quote_qualified_identifier("courier", relname));

		if (SPI_execute(sql, false, 0) != SPI_OK_UTILITY)
			elog(ERROR, "could not drop segment");
	}
	args[0] = Int32GetDatum(topic->topic_id);
	args[1] = Int32GetDatum(seg->seg_no);
	args[2] = Int64GetDatum(max_ub);
	{
		Oid			types[3] = {INT4OID, INT4OID, INT8OID};

		if (SPI_execute_with_args("DELETE FROM courier.segment WHERE topic_id = $1 AND seg_no = $2",
								  2, types, args, NULL, false, 0) != SPI_OK_DELETE)
			elog(ERROR, "could not delete segment row");
		if (SPI_execute_with_args("UPDATE courier.topic_meta SET floor_id = greatest(floor_id, $3), "
								  "reclaimed = reclaimed + 1 WHERE topic_id = $1 AND $2 IS NOT NULL",
								  3, types, args, NULL, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "could not update topic");
	}
	SPI_finish();
	CourierBumpGenerationAtCommit();
	st->dropped_segments++;
}

/*
 * CourierMaintainTopic
 *		One round of the per-topic jobs.
 */
void
CourierMaintainTopic(CourierTopic *topic, TimestampTz now, CourierMaintStats *st)
{
	if (topic->nsegments == 0)
		return;
	rotate(topic, now, st);
	reclaim(topic, now, st);
}

/*
 * courier_run_maintenance
 *		run_maintenance() -> jsonb: one round of every job for every topic
 *		and group of this database, in the caller's transaction.
 */
Datum
courier_run_maintenance(PG_FUNCTION_ARGS)
{
	CourierMaintStats st;
	TimestampTz now = GetCurrentTimestamp();
	List	   *topics;
	ListCell   *lc;
	char	   *json;

	memset(&st, 0, sizeof(st));
	topics = CourierAllTopics();
	foreach(lc, topics)
	{
		CourierTopic *topic = CourierGetTopicById(lfirst_int(lc));
		List	   *groups;
		ListCell   *lc2;

		if (topic == NULL)
			continue;
		groups = CourierTopicGroups(topic->topic_id);
		foreach(lc2, groups)
		{
			CourierGroup *group = CourierGetGroupById(lfirst_int(lc2));

			if (group != NULL)
				CourierMaintainGroup(topic, group, now, &st);
		}
		CourierMaintainTopic(topic, now, &st);
	}

	json = psprintf("{\"expired\": " INT64_FORMAT ", \"dead_lettered\": " INT64_FORMAT
					", \"compacted\": " INT64_FORMAT ", \"segments_created\": " INT64_FORMAT
					", \"segments_dropped\": " INT64_FORMAT ", \"messages_dropped\": " INT64_FORMAT "}",
					st.expired, st.dead_lettered, st.compacted, st.rotated,
					st.dropped_segments, st.dropped_messages);
	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(json)));
}
