/*-------------------------------------------------------------------------
 *
 * ack.c
 *	  courier.ack, courier.nack and courier.set_visibility: what a receiver
 *	  says about the messages it holds.
 *
 * A message a group has been handed is either pending in a claim (first
 * delivery, walk.c) or a row of the lease table (lease.c).  ack removes it
 * from either place; nack and set_visibility move a claimed message into
 * the lease table, where it gets a lease (or a backoff) of its own.  The
 * claim or lease row is locked (FOR UPDATE) before it is changed, so an ack
 * that races a redelivery or another ack is decided by whoever locks first.
 *
 * An ack counts a message that was delivered and not yet finished, even if
 * its lease has run out meanwhile: the work was done.  Acking a message
 * twice, or one never delivered, changes nothing and counts 0.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "pg_courier.h"

PG_FUNCTION_INFO_V1(courier_ack);
PG_FUNCTION_INFO_V1(courier_ack_many);
PG_FUNCTION_INFO_V1(courier_nack);
PG_FUNCTION_INFO_V1(courier_set_visibility);

static SPIPlanPtr plan_claim_find = NULL;
static SPIPlanPtr plan_claim_lock = NULL;
static SPIPlanPtr plan_claim_set = NULL;
static SPIPlanPtr plan_lease_ack = NULL;
static SPIPlanPtr plan_lease_find = NULL;
static SPIPlanPtr plan_lease_wait = NULL;
static SPIPlanPtr plan_lease_insert = NULL;
static SPIPlanPtr plan_lease_vt = NULL;

/* Where a delivered, unfinished message is recorded */
typedef struct Held
{
	bool		in_claim;
	int64		claim_lo;
	ArrayType  *pending;		/* the claim's pending ids (copied) */
	TimestampTz delivered_at;	/* claim: when it was received */
	char		state;			/* lease row */
	int32		attempt;
	TimestampTz first_delivered;
	TimestampTz last_delivered;
	bool		has_first;
	bool		has_last;
} Held;

static int64 *sorted_ids(ArrayType *arr, int *n);
static bool find_held(CourierGroup *group, int64 id, Held *h);
static void claim_set_pending(CourierGroup *group, int64 lo, int64 *ids, int n);
static int	ack_ids(CourierTopic *topic, CourierGroup *group, int64 *ids, int n);
static void prepare_plans(void);

/*
 * prepare_plans
 *		Prepare this file's statements (inside SPI).
 */
static void
prepare_plans(void)
{
	Oid			t_find[2] = {INT4OID, INT8OID};
	Oid			t_set[3] = {INT4OID, INT8OID, INT8ARRAYOID};
	Oid			t_ack[2] = {INT4OID, INT8ARRAYOID};
	Oid			t_wait[5] = {INT4OID, INT8OID, TIMESTAMPTZOID, TEXTOID, CHAROID};
	Oid			t_ins[8] = {INT4OID, INT8OID, CHAROID, TIMESTAMPTZOID, INT4OID,
	TIMESTAMPTZOID, TIMESTAMPTZOID, TEXTOID};
	Oid			t_vt[3] = {INT4OID, INT8OID, TIMESTAMPTZOID};

	/* the one claim that can cover an id (claims never overlap), unlocked */
	CourierPrepare(&plan_claim_find,
				   "SELECT lo, hi, pending, delivered_at FROM courier.claim "
				   "WHERE group_id = $1 AND lo <= $2 ORDER BY lo DESC LIMIT 1",
				   2, t_find);
	CourierPrepare(&plan_claim_lock,
				   "SELECT lo, hi, pending, delivered_at FROM courier.claim "
				   "WHERE group_id = $1 AND lo = $2 FOR UPDATE",
				   2, t_find);
	CourierPrepare(&plan_claim_set,
				   "UPDATE courier.claim SET pending = $3, "
				   "lease_until = CASE WHEN cardinality($3) = 0 THEN NULL ELSE lease_until END "
				   "WHERE group_id = $1 AND lo = $2",
				   3, t_set);
	CourierPrepare(&plan_lease_ack,
				   "DELETE FROM courier.lease WHERE group_id = $1 AND msg_id = ANY($2) "
				   "AND attempt > 0 RETURNING msg_id, okey",
				   2, t_ack);
	CourierPrepare(&plan_lease_find,
				   "SELECT state, attempt, first_delivered_at, last_delivered_at FROM courier.lease "
				   "WHERE group_id = $1 AND msg_id = $2 FOR UPDATE",
				   2, t_find);
	CourierPrepare(&plan_lease_wait,
				   "UPDATE courier.lease SET state = $5, visible_at = $3, "
				   "last_error = coalesce($4, last_error) "
				   "WHERE group_id = $1 AND msg_id = $2",
				   5, t_wait);
	CourierPrepare(&plan_lease_insert,
				   "INSERT INTO courier.lease (group_id, msg_id, state, visible_at, attempt, "
				   "first_delivered_at, last_delivered_at, last_error) "
				   "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
				   8, t_ins);
	CourierPrepare(&plan_lease_vt,
				   "UPDATE courier.lease SET visible_at = $3 WHERE group_id = $1 AND msg_id = $2",
				   3, t_vt);
}

/*
 * int64_cmp
 *		qsort comparator for int64.
 */
static int
int64_cmp(const void *a, const void *b)
{
	int64		x = *(const int64 *) a;
	int64		y = *(const int64 *) b;

	return (x > y) - (x < y);
}

/*
 * sorted_ids
 *		The non-NULL elements of an int8[], sorted, without duplicates.
 */
static int64 *
sorted_ids(ArrayType *arr, int *n)
{
	Datum	   *elems;
	bool	   *nulls;
	int			nelems;
	int64	   *ids;
	int			i,
				j = 0;

	if (ARR_NDIM(arr) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("ids must be a one-dimensional array")));
	deconstruct_array(arr, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &elems, &nulls, &nelems);
	ids = palloc(sizeof(int64) * Max(nelems, 1));
	for (i = 0; i < nelems; i++)
		if (!nulls[i])
			ids[j++] = DatumGetInt64(elems[i]);
	qsort(ids, j, sizeof(int64), int64_cmp);
	*n = 0;
	for (i = 0; i < j; i++)
		if (i == 0 || ids[i] != ids[i - 1])
			ids[(*n)++] = ids[i];
	return ids;
}

/*
 * array_has
 *		Whether a sorted-or-not int8[] contains id.
 */
static bool
array_has(ArrayType *arr, int64 id)
{
	int			n = ArrayGetNItems(ARR_NDIM(arr), ARR_DIMS(arr));
	int64	   *p = (int64 *) ARR_DATA_PTR(arr);
	int			i;

	for (i = 0; i < n; i++)
		if (p[i] == id)
			return true;
	return false;
}

/*
 * claim_set_pending
 *		Remove ids[] from the pending list of the claim starting at lo
 *		(locked by the caller, inside SPI).
 */
static void
claim_set_pending(CourierGroup *group, int64 lo, int64 *ids, int n)
{
	Datum		args[3];
	ArrayType  *arr;
	int64	   *p;
	int			np;
	int64	   *keep;
	int			nkeep = 0;
	int			i;
	bool		isnull;

	/* re-read the current pending list under our lock */
	args[0] = Int32GetDatum(group->group_id);
	args[1] = Int64GetDatum(lo);
	if (SPI_execute_plan(plan_claim_lock, args, NULL, false, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "claim %lld of group %d vanished", (long long) lo, group->group_id);
	arr = DatumGetArrayTypePCopy(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull));
	np = ArrayGetNItems(ARR_NDIM(arr), ARR_DIMS(arr));
	p = (int64 *) ARR_DATA_PTR(arr);
	keep = palloc(sizeof(int64) * Max(np, 1));
	for (i = 0; i < np; i++)
	{
		int64		v = p[i];

		if (bsearch(&v, ids, n, sizeof(int64), int64_cmp) == NULL)
			keep[nkeep++] = v;
	}
	args[2] = CourierInt8Array(keep, nkeep);
	if (SPI_execute_plan(plan_claim_set, args, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not update a claim");
}

/*
 * ack_ids
 *		Finish the given (sorted, distinct) ids; returns how many were
 *		delivered and unfinished.  Caller is connected to SPI.
 */
static int
ack_ids(CourierTopic *topic, CourierGroup *group, int64 *ids, int n)
{
	int64	   *leftover = palloc(sizeof(int64) * Max(n, 1));
	int			nleft = 0;
	int64	   *mine = palloc(sizeof(int64) * Max(n, 1));
	int			count = 0;
	int			i = 0;
	Datum		args[2];
	uint64		j;

	while (i < n)
	{
		int64		lo,
					hi;
		ArrayType  *pending;
		int			nmine = 0;
		int			first;
		int			k;
		bool		isnull;

		args[0] = Int32GetDatum(group->group_id);
		args[1] = Int64GetDatum(ids[i]);
		if (SPI_execute_plan(plan_claim_find, args, NULL, false, 1) != SPI_OK_SELECT)
			elog(ERROR, "could not look up claims");
		if (SPI_processed == 0)
		{
			leftover[nleft++] = ids[i++];
			continue;
		}
		lo = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		hi = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
		pending = DatumGetArrayTypePCopy(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull));
		if (hi < ids[i])
		{
			leftover[nleft++] = ids[i++];
			continue;
		}
		/* ids of ours this claim covers [first, last) */
		first = i;
		while (i < n && ids[i] <= hi)
			i++;
		for (k = first; k < i; k++)
			if (array_has(pending, ids[k]))
				break;
		if (k < i)
		{
			/*
			 * Some are pending: lock the claim and read pending again (ids
			 * only ever leave pending, but a removal in progress elsewhere
			 * may still roll back).
			 */
			args[1] = Int64GetDatum(lo);
			if (SPI_execute_plan(plan_claim_lock, args, NULL, false, 1) != SPI_OK_SELECT ||
				SPI_processed != 1)
				elog(ERROR, "claim %lld of group %d vanished", (long long) lo, group->group_id);
			pending = DatumGetArrayTypePCopy(SPI_getbinval(SPI_tuptable->vals[0],
														   SPI_tuptable->tupdesc, 3, &isnull));
		}
		for (k = first; k < i; k++)
		{
			if (array_has(pending, ids[k]))
				mine[nmine++] = ids[k];
			else
				leftover[nleft++] = ids[k];
		}
		if (nmine > 0)
		{
			Datum		sargs[3];
			int64	   *p = (int64 *) ARR_DATA_PTR(pending);
			int			np = ArrayGetNItems(ARR_NDIM(pending), ARR_DIMS(pending));
			int64	   *keep = palloc(sizeof(int64) * Max(np, 1));
			int			nkeep = 0;

			for (k = 0; k < np; k++)
				if (bsearch(&p[k], mine, nmine, sizeof(int64), int64_cmp) == NULL)
					keep[nkeep++] = p[k];
			sargs[0] = Int32GetDatum(group->group_id);
			sargs[1] = Int64GetDatum(lo);
			sargs[2] = CourierInt8Array(keep, nkeep);
			if (SPI_execute_plan(plan_claim_set, sargs, NULL, false, 0) != SPI_OK_UPDATE)
				elog(ERROR, "could not update a claim");
			count += nmine;
		}
	}

	if (nleft > 0)
	{
		args[0] = Int32GetDatum(group->group_id);
		args[1] = CourierInt8Array(leftover, nleft);
		if (SPI_execute_plan(plan_lease_ack, args, NULL, false, 0) != SPI_OK_DELETE_RETURNING)
			elog(ERROR, "could not acknowledge leases");
		count += SPI_processed;
		if (group->ordered)
		{
			SPITupleTable *tt = SPI_tuptable;
			uint64		nrows = SPI_processed;

			for (j = 0; j < nrows; j++)
			{
				bool		isnull;
				Datum		d = SPI_getbinval(tt->vals[j], tt->tupdesc, 2, &isnull);

				if (!isnull)
					CourierPromoteNext(topic, group, TextDatumGetCString(d));
			}
			if (nrows > 0)
				CourierWakeAtCommit(topic->topic_id);
		}
	}
	return count;
}

/*
 * open_target
 *		Common argument handling: topic and group by name.
 */
static CourierGroup *
open_target(FunctionCallInfo fcinfo, CourierTopic **topic)
{
	char	   *topic_name = CourierTextArg(fcinfo, 0, "topic");
	char	   *group_name = CourierTextArg(fcinfo, 1, "group");

	*topic = CourierGetTopic(topic_name);
	return CourierGetGroup(*topic, group_name);
}

/*
 * courier_ack
 *		ack(topic, grp, id) -> whether the message was delivered and
 *		unfinished.
 */
Datum
courier_ack(PG_FUNCTION_ARGS)
{
	CourierTopic *topic;
	CourierGroup *group = open_target(fcinfo, &topic);
	int64		id;
	int			n;

	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("id must not be NULL")));
	id = PG_GETARG_INT64(2);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	prepare_plans();
	n = ack_ids(topic, group, &id, 1);
	SPI_finish();
	PG_RETURN_BOOL(n > 0);
}

/*
 * courier_ack_many
 *		ack(topic, grp, ids[]) -> how many of them were delivered and
 *		unfinished.
 */
Datum
courier_ack_many(PG_FUNCTION_ARGS)
{
	CourierTopic *topic;
	CourierGroup *group = open_target(fcinfo, &topic);
	int64	   *ids;
	int			nids;
	int			n;

	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("ids must not be NULL")));
	ids = sorted_ids(PG_GETARG_ARRAYTYPE_P(2), &nids);
	if (nids == 0)
		PG_RETURN_INT32(0);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	prepare_plans();
	n = ack_ids(topic, group, ids, nids);
	SPI_finish();
	PG_RETURN_INT32(n);
}

/*
 * find_held
 *		Find (and lock) the record of a delivered, unfinished message: a
 *		claim listing it as pending, or a lease row in state 'l'.  Caller is
 *		connected to SPI with the plans prepared.
 */
static bool
find_held(CourierGroup *group, int64 id, Held *h)
{
	Datum		args[2];
	bool		isnull;
	HeapTuple	tup;
	TupleDesc	desc;
	Datum		d;

	memset(h, 0, sizeof(Held));
	args[0] = Int32GetDatum(group->group_id);
	args[1] = Int64GetDatum(id);
	if (SPI_execute_plan(plan_claim_find, args, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not look up claims");
	if (SPI_processed == 1)
	{
		tup = SPI_tuptable->vals[0];
		desc = SPI_tuptable->tupdesc;
		if (DatumGetInt64(SPI_getbinval(tup, desc, 2, &isnull)) >= id &&
			array_has(DatumGetArrayTypeP(SPI_getbinval(tup, desc, 3, &isnull)), id))
		{
			ArrayType  *pending;
			Datum		largs[2];

			/* lock it, then look again */
			largs[0] = args[0];
			largs[1] = SPI_getbinval(tup, desc, 1, &isnull);
			if (SPI_execute_plan(plan_claim_lock, largs, NULL, false, 1) != SPI_OK_SELECT ||
				SPI_processed != 1)
				elog(ERROR, "claim of group %d vanished", group->group_id);
			tup = SPI_tuptable->vals[0];
			desc = SPI_tuptable->tupdesc;
			pending = DatumGetArrayTypePCopy(SPI_getbinval(tup, desc, 3, &isnull));
			if (array_has(pending, id))
			{
				h->in_claim = true;
				h->claim_lo = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
				h->pending = pending;
				h->delivered_at = DatumGetTimestampTz(SPI_getbinval(tup, desc, 4, &isnull));
				h->attempt = 1;
				h->state = 'l';
				h->first_delivered = h->last_delivered = h->delivered_at;
				h->has_first = h->has_last = true;
				return true;
			}
		}
	}

	if (SPI_execute_plan(plan_lease_find, args, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not look up leases");
	if (SPI_processed != 1)
		return false;
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	h->state = DatumGetChar(SPI_getbinval(tup, desc, 1, &isnull));
	h->attempt = DatumGetInt32(SPI_getbinval(tup, desc, 2, &isnull));
	d = SPI_getbinval(tup, desc, 3, &isnull);
	h->has_first = !isnull;
	if (!isnull)
		h->first_delivered = DatumGetTimestampTz(d);
	d = SPI_getbinval(tup, desc, 4, &isnull);
	h->has_last = !isnull;
	if (!isnull)
		h->last_delivered = DatumGetTimestampTz(d);
	return h->state == 'l' && h->attempt > 0;
}

/*
 * move_to_lease
 *		A claimed message gets its own lease row (state, visible_at).
 */
static void
move_to_lease(CourierGroup *group, int64 id, Held *h, char state, TimestampTz visible_at,
			  const char *reason)
{
	Datum		args[8];
	char		nulls[8];

	claim_set_pending(group, h->claim_lo, &id, 1);
	memset(nulls, ' ', sizeof(nulls));
	args[0] = Int32GetDatum(group->group_id);
	args[1] = Int64GetDatum(id);
	args[2] = CharGetDatum(state);
	args[3] = TimestampTzGetDatum(visible_at);
	args[4] = Int32GetDatum(h->attempt);
	args[5] = TimestampTzGetDatum(h->first_delivered);
	args[6] = TimestampTzGetDatum(h->last_delivered);
	if (reason)
		args[7] = CStringGetTextDatum(reason);
	else
		nulls[7] = 'n';
	if (SPI_execute_plan(plan_lease_insert, args, nulls, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not insert a lease");
}

/*
 * courier_nack
 *		nack(topic, grp, id, delay, reason): give a held message back, to be
 *		redelivered after delay, or else after the group's retry_backoff
 *		step for its attempt; after max_attempts it is dead-lettered.
 */
Datum
courier_nack(PG_FUNCTION_ARGS)
{
	CourierTopic *topic;
	CourierGroup *group = open_target(fcinfo, &topic);
	int64		id;
	int64		backoff;
	char	   *reason = NULL;
	Held		h;
	TimestampTz now = GetCurrentTimestamp();

	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("id must not be NULL")));
	id = PG_GETARG_INT64(2);
	if (!PG_ARGISNULL(3))
	{
		backoff = CourierIntervalUsec(PG_GETARG_INTERVAL_P(3));
		if (backoff < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("delay must not be negative")));
		if (backoff > CourierIntervalUsec(&topic->retention))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("delay is beyond the retention of topic \"%s\"", topic->name)));
	}
	else
		backoff = -1;
	if (!PG_ARGISNULL(4))
		reason = text_to_cstring(PG_GETARG_TEXT_PP(4));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	prepare_plans();
	if (!find_held(group, id, &h))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("message %lld is not in flight in group \"%s\" of topic \"%s\"",
						(long long) id, group->name, topic->name),
				 errdetail("Only a message that was received and not yet acked, nacked or dead-lettered can be nacked.")));

	if (h.attempt >= group->max_attempts)
	{
		CourierDeadRow row;

		/* that was its last attempt */
		if (h.in_claim)
			move_to_lease(group, id, &h, 'l', now, reason);
		SPI_finish();
		row.id = id;
		row.attempts = h.attempt;
		row.first_delivered = h.has_first ? h.first_delivered : 0;
		row.last_delivered = h.has_last ? h.last_delivered : 0;
		row.reason = reason;
		CourierDeadLetter(topic, group, &row);
		PG_RETURN_BOOL(true);
	}

	if (backoff < 0)
	{
		int			step = Min(h.attempt, group->nbackoff) - 1;

		backoff = group->nbackoff > 0 ? group->backoff_usec[Max(step, 0)] : 0;
	}
	if (h.in_claim)
		move_to_lease(group, id, &h, 'w', now + backoff, reason);
	else
	{
		Datum		args[5];
		char		nulls[5] = {' ', ' ', ' ', ' ', ' '};

		args[0] = Int32GetDatum(group->group_id);
		args[1] = Int64GetDatum(id);
		args[2] = TimestampTzGetDatum(now + backoff);
		if (reason)
			args[3] = CStringGetTextDatum(reason);
		else
			nulls[3] = 'n';
		args[4] = CharGetDatum('w');
		if (SPI_execute_plan(plan_lease_wait, args, nulls, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "could not update a lease");
	}
	SPI_finish();
	CourierWakeAtCommit(topic->topic_id);
	PG_RETURN_BOOL(true);
}

/*
 * courier_set_visibility
 *		set_visibility(topic, grp, id, visibility_timeout): move the end of
 *		a held message's lease to now + visibility_timeout ('0' releases it
 *		at once).  Returns false if the message is not held.
 */
Datum
courier_set_visibility(PG_FUNCTION_ARGS)
{
	CourierTopic *topic;
	CourierGroup *group = open_target(fcinfo, &topic);
	int64		id;
	int64		vt;
	Held		h;
	TimestampTz until;

	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("id must not be NULL")));
	id = PG_GETARG_INT64(2);
	if (PG_ARGISNULL(3))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("visibility_timeout must not be NULL")));
	vt = CourierIntervalUsec(PG_GETARG_INTERVAL_P(3));
	if (vt < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("visibility_timeout must not be negative")));
	if (vt > INT64CONST(12) * USECS_PER_HOUR)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("visibility_timeout must not exceed 12 hours")));
	until = GetCurrentTimestamp() + vt;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	prepare_plans();
	if (!find_held(group, id, &h))
	{
		SPI_finish();
		PG_RETURN_BOOL(false);
	}
	if (h.in_claim)
		move_to_lease(group, id, &h, 'l', until, NULL);
	else
	{
		Datum		args[3];

		args[0] = Int32GetDatum(group->group_id);
		args[1] = Int64GetDatum(id);
		args[2] = TimestampTzGetDatum(until);
		if (SPI_execute_plan(plan_lease_vt, args, NULL, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "could not update a lease");
	}
	SPI_finish();
	CourierWakeAtCommit(topic->topic_id);
	PG_RETURN_BOOL(true);
}
