/*-------------------------------------------------------------------------
 *
 * ack.c
 *	  courier.ack, courier.nack and courier.set_visibility: what a receiver
 *	  says about the messages it holds, and the receipts that name one
 *	  delivery.
 *
 * A message a group has been handed is either pending in a claim (first
 * delivery, walk.c) or a row of the lease table (lease.c).  ack removes it
 * from either place; nack and set_visibility move a claimed message into
 * the lease table, where it gets a lease (or a backoff) of its own.  The
 * claim or lease row is locked (FOR UPDATE) before it is changed, so an ack
 * that races a redelivery or another ack is decided by whoever locks first.
 * A claim can vanish between our unlocked probe and the lock -- maintenance
 * folds claims once nothing in them is pending -- which means every id in
 * it was finished: an expected state, answered "not held", never an error.
 *
 * An ack counts a message that was delivered and not yet finished, even if
 * its lease has run out meanwhile: the work was done.  Acking a message
 * twice, or one never delivered, changes nothing and counts 0.
 *
 * Receipts (SQS receipt handles, RocketMQ 5 receipt handles): receive
 * returns, with each message, a receipt naming that delivery (message id,
 * attempt and delivery time).  ack, nack and set_visibility given a receipt
 * act only if it names the current delivery -- the message is still held
 * in that delivery -- and otherwise change nothing and return false, so a
 * receiver whose lease ran out cannot touch the next holder's lease.
 * Without a receipt they act on whatever delivery is current: an operator
 * override, documented as such.
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
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "tcop/utility.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "pg_courier.h"

PG_FUNCTION_INFO_V1(courier_ack);
PG_FUNCTION_INFO_V1(courier_ack_many);
PG_FUNCTION_INFO_V1(courier_nack);
PG_FUNCTION_INFO_V1(courier_set_visibility);

static SPIPlanPtr plan_claim_lock = NULL;
static SPIPlanPtr plan_claim_set = NULL;
static SPIPlanPtr plan_lease_ack = NULL;
static SPIPlanPtr plan_lease_ack_one = NULL;
static SPIPlanPtr plan_lease_find = NULL;
static SPIPlanPtr plan_lease_wait = NULL;
static SPIPlanPtr plan_lease_insert = NULL;
static SPIPlanPtr plan_lease_vt = NULL;

/* One id to finish, with the delivery its receipt names (if any) */
typedef struct AckTarget
{
	int64		id;
	bool		has_receipt;
	int32		attempt;
	TimestampTz delivered_at;
	int			pos;			/* where the caller gave it (ids[] order) */
} AckTarget;

/* A claim as find_claim read it, unlocked */
typedef struct ClaimRead
{
	int64		lo;
	int64		hi;
	ArrayType  *pending;		/* a copy */
	TimestampTz delivered_at;
	ItemPointerData tid;		/* the row version read */
	bool		lease_null;
	TimestampTz lease_until;
} ClaimRead;

/* What one snapshot shows of an id's current delivery (held_view) */
typedef struct HeldView
{
	char		where;			/* 'c' pending in a claim, 'l' a leased lease row, 0 neither */
	int32		attempt;
	TimestampTz delivered_at;
} HeldView;

/* Where a delivered, unfinished message is recorded */
typedef struct Held
{
	bool		in_claim;
	int64		claim_lo;
	ArrayType  *claim_pending;	/* the claim's pending list, read under its lock */
	TimestampTz delivered_at;	/* this delivery's time (claim, or last_delivered_at) */
	char		state;			/* lease row */
	int32		attempt;
	TimestampTz first_delivered;
	TimestampTz last_delivered;
	bool		has_first;
	bool		has_last;
} Held;

static int	target_cmp(const void *a, const void *b);
static bool find_claim(CourierGroup *group, int64 id, ClaimRead *c);
static bool array_has(ArrayType *arr, int64 id);
static bool find_claim_in(CourierGroup *group, int64 id, ClaimRead *c, Snapshot snap);
static bool swap_pending(CourierGroup *group, ClaimRead *c, ArrayType *pending);
static void held_view(CourierGroup *group, int64 id, Snapshot snap, HeldView *v);
static void check_stale_view(CourierGroup *group, const AckTarget *t);
static bool find_held(CourierGroup *group, int64 id, Held *h);
static void claim_set_pending(CourierGroup *group, int64 lo, ArrayType *pending, int64 *ids,
							  int n);
static ArrayType *pending_without(ArrayType *pending, int64 *ids, int n);
static int	ack_ids(CourierTopic *topic, CourierGroup *group, AckTarget *t, int n);
static void prepare_plans(void);
static bool receipt_matches(const AckTarget *t, int32 attempt, TimestampTz delivered_at);
static void receipt_arg(FunctionCallInfo fcinfo, int argno, int64 id, AckTarget *t);

/*
 * find_claim
 *		The claim of the group with the greatest lo <= id -- the one claim
 *		that can cover id, as claims never overlap -- unlocked, read as a
 *		statement started now would read it (CourierPushReadSnapshot): a
 *		backward probe of claim_pkey, which costs a fraction of an SPI
 *		statement.  Returns false if there is none.  The caller locks the
 *		version read before it changes anything (by its TID, or FOR UPDATE
 *		and a second look).
 */
static bool
find_claim(CourierGroup *group, int64 id, ClaimRead *c)
{
	bool		found = find_claim_in(group, id, c, CourierPushReadSnapshot());

	PopActiveSnapshot();
	return found;
}

/*
 * find_claim_in
 *		find_claim under the snapshot snap.
 */
static bool
find_claim_in(CourierGroup *group, int64 id, ClaimRead *c, Snapshot snap)
{
	Relation	rel = table_open(CourierRelid("claim"), AccessShareLock);
	Relation	idx = CourierIndexOpen("claim_pkey", AccessShareLock);
	TupleTableSlot *slot = table_slot_create(rel, NULL);
	ScanKeyData keys[2];
	IndexScanDesc scan;
	bool		found;

	ScanKeyInit(&keys[0], 1, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(group->group_id));
	ScanKeyInit(&keys[1], 2, BTLessEqualStrategyNumber, F_INT8LE, Int64GetDatum(id));
	scan = index_beginscan(rel, idx, snap, 2, 0);
	index_rescan(scan, keys, 2, NULL, 0);
	found = index_getnext_slot(scan, BackwardScanDirection, slot);
	if (found)
	{
		bool		isnull;

		c->lo = DatumGetInt64(slot_getattr(slot, Anum_claim_lo, &isnull));
		c->hi = DatumGetInt64(slot_getattr(slot, Anum_claim_hi, &isnull));
		c->pending = DatumGetArrayTypePCopy(slot_getattr(slot, Anum_claim_pending, &isnull));
		c->delivered_at = DatumGetTimestampTz(slot_getattr(slot, Anum_claim_delivered_at, &isnull));
		c->tid = slot->tts_tid;
		c->lease_until = DatumGetTimestampTz(slot_getattr(slot, Anum_claim_lease_until,
														  &c->lease_null));
	}
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	index_close(idx, NoLock);
	table_close(rel, NoLock);
	return found;
}

/*
 * held_view
 *		Where snapshot snap shows the current delivery of id: pending in a
 *		claim (attempt 1, the claim's delivery time) or a leased row of the
 *		lease table (its attempt and last delivery time), or neither.
 */
static void
held_view(CourierGroup *group, int64 id, Snapshot snap, HeldView *v)
{
	ClaimRead	c;
	Relation	rel;
	Relation	idx;
	TupleTableSlot *slot;
	ScanKeyData keys[2];
	IndexScanDesc scan;

	memset(v, 0, sizeof(HeldView));
	if (find_claim_in(group, id, &c, snap) && c.hi >= id && array_has(c.pending, id))
	{
		v->where = 'c';
		v->attempt = 1;
		v->delivered_at = c.delivered_at;
		return;
	}
	rel = table_open(CourierRelid("lease"), AccessShareLock);
	idx = CourierIndexOpen("lease_pkey", AccessShareLock);
	slot = table_slot_create(rel, NULL);
	ScanKeyInit(&keys[0], 1, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(group->group_id));
	ScanKeyInit(&keys[1], 2, BTEqualStrategyNumber, F_INT8EQ, Int64GetDatum(id));
	scan = index_beginscan(rel, idx, snap, 2, 0);
	index_rescan(scan, keys, 2, NULL, 0);
	if (index_getnext_slot(scan, ForwardScanDirection, slot))
	{
		bool		isnull;
		Datum		d;

		v->attempt = DatumGetInt32(slot_getattr(slot, Anum_lease_attempt, &isnull));
		if (DatumGetChar(slot_getattr(slot, Anum_lease_state, &isnull)) == 'l' && v->attempt > 0)
		{
			v->where = 'l';
			d = slot_getattr(slot, Anum_lease_last, &isnull);
			v->delivered_at = isnull ? 0 : DatumGetTimestampTz(d);
		}
		else
			v->attempt = 0;
	}
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	index_close(idx, NoLock);
	table_close(rel, NoLock);
}

/*
 * check_stale_view
 *		An ack, nack or set_visibility is about to answer that target t is
 *		not held (or not in the delivery its receipt names).  Under
 *		REPEATABLE READ or SERIALIZABLE that answer comes from the
 *		transaction's snapshot, which may predate the delivery: a receive
 *		that committed after it (found by review 31).  Concluding "not held"
 *		from a stale view would leave the message leased, to come back as a
 *		duplicate.  So if the latest committed state shows a delivery of the
 *		message that the call would have acted on -- any, without a
 *		receipt; the one the receipt names, with one -- and the snapshot
 *		shows something else, fail with a serialization failure, as an
 *		UPDATE of a row changed since the snapshot does: the client retries
 *		the transaction.  When the latest state gives the same answer (a
 *		receipt of an older delivery, a message finished meanwhile) the call
 *		answers as before.  Nothing to do under READ COMMITTED, whose
 *		statements read the latest state anyway.
 */
static void
check_stale_view(CourierGroup *group, const AckTarget *t)
{
	HeldView	mine;
	HeldView	latest;

	if (!IsolationUsesXactSnapshot())
		return;
	PushActiveSnapshot(GetLatestSnapshot());
	CommandCounterIncrement();
	UpdateActiveSnapshotCommandId();
	held_view(group, t->id, GetActiveSnapshot(), &latest);
	PopActiveSnapshot();
	if (latest.where == 0 || !receipt_matches(t, latest.attempt, latest.delivered_at))
		return;					/* the latest state says no as well */
	held_view(group, t->id, CourierPushReadSnapshot(), &mine);
	PopActiveSnapshot();
	if (mine.where != latest.where || mine.attempt != latest.attempt ||
		mine.delivered_at != latest.delivered_at)
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("could not serialize access due to a concurrent delivery"),
				 errdetail("Message %lld of group \"%s\" was delivered by a transaction that committed after this transaction's snapshot was taken.",
						   (long long) t->id, group->name),
				 errhint("Retry the transaction.")));
}

/*
 * swap_pending
 *		An ack's fast path: give the claim version c read (find_claim) the
 *		pending list pending, if that version is still the row's latest --
 *		one direct update by TID (CourierUpdateTuple), which locks the row,
 *		instead of a lock and a second read.  Returns false, having changed
 *		nothing, if another transaction changed or deleted the claim since
 *		it was read: the caller then locks it and reads pending again.  (It
 *		was "UPDATE ... WHERE ctid = <read> AND pending = <as read>"; the
 *		version at the TID being the latest is the same test, since every
 *		change of a claim makes a new version.)
 */
static bool
swap_pending(CourierGroup *group, ClaimRead *c, ArrayType *pending)
{
	Relation	rel = table_open(CourierRelid("claim"), RowExclusiveLock);
	Datum		values[Natts_claim];
	bool		nulls[Natts_claim];
	bool		done;

	memset(nulls, false, sizeof(nulls));
	values[Anum_claim_group_id - 1] = Int32GetDatum(group->group_id);
	values[Anum_claim_lo - 1] = Int64GetDatum(c->lo);
	values[Anum_claim_hi - 1] = Int64GetDatum(c->hi);
	values[Anum_claim_lease_until - 1] = TimestampTzGetDatum(c->lease_until);
	nulls[Anum_claim_lease_until - 1] = c->lease_null;
	values[Anum_claim_delivered_at - 1] = TimestampTzGetDatum(c->delivered_at);
	values[Anum_claim_pending - 1] = PointerGetDatum(pending);
	done = CourierUpdateTuple(rel, &c->tid, values, nulls, Natts_claim);
	table_close(rel, NoLock);
	return done;
}

/*
 * prepare_plans
 *		Prepare this file's statements (inside SPI).
 */
static void
prepare_plans(void)
{
	Oid			t_find[2] = {INT4OID, INT8OID};
	Oid			t_set[3] = {INT4OID, INT8OID, INT8ARRAYOID};
	Oid			t_ack[2] = {INT4OID, INT8OID};
	Oid			t_ack1[4] = {INT4OID, INT8OID, INT4OID, TIMESTAMPTZOID};
	Oid			t_wait[5] = {INT4OID, INT8OID, TIMESTAMPTZOID, TEXTOID, CHAROID};
	Oid			t_ins[8] = {INT4OID, INT8OID, CHAROID, TIMESTAMPTZOID, INT4OID,
	TIMESTAMPTZOID, TIMESTAMPTZOID, TEXTOID};
	Oid			t_vt[3] = {INT4OID, INT8OID, TIMESTAMPTZOID};

	CourierPrepare(&plan_claim_lock,
				   "SELECT lo, hi, pending, delivered_at FROM courier.claim "
				   "WHERE group_id OPERATOR(pg_catalog.=) $1 AND lo OPERATOR(pg_catalog.=) $2 "
				   "FOR UPDATE",
				   2, t_find);
	/* lease_until stays: an ack is then a HOT update */
	CourierPrepare(&plan_claim_set,
				   "UPDATE courier.claim SET pending = $3 "
				   "WHERE group_id OPERATOR(pg_catalog.=) $1 AND lo OPERATOR(pg_catalog.=) $2",
				   3, t_set);
	CourierPrepare(&plan_lease_ack,
				   "DELETE FROM courier.lease WHERE group_id OPERATOR(pg_catalog.=) $1 "
				   "AND msg_id OPERATOR(pg_catalog.=) $2 "
				   "AND attempt OPERATOR(pg_catalog.>) 0 RETURNING msg_id, okey, visible_at",
				   2, t_ack);
	CourierPrepare(&plan_lease_ack_one,
				   "DELETE FROM courier.lease WHERE group_id OPERATOR(pg_catalog.=) $1 "
				   "AND msg_id OPERATOR(pg_catalog.=) $2 AND state OPERATOR(pg_catalog.=) 'l' "
				   "AND attempt OPERATOR(pg_catalog.=) $3 "
				   "AND last_delivered_at OPERATOR(pg_catalog.=) $4 RETURNING msg_id, okey, visible_at",
				   4, t_ack1);
	CourierPrepare(&plan_lease_find,
				   "SELECT state, attempt, first_delivered_at, last_delivered_at, visible_at FROM courier.lease "
				   "WHERE group_id OPERATOR(pg_catalog.=) $1 AND msg_id OPERATOR(pg_catalog.=) $2 "
				   "FOR UPDATE",
				   2, t_find);
	CourierPrepare(&plan_lease_wait,
				   "UPDATE courier.lease SET state = $5, visible_at = $3, "
				   "last_error = coalesce($4, last_error) "
				   "WHERE group_id OPERATOR(pg_catalog.=) $1 AND msg_id OPERATOR(pg_catalog.=) $2",
				   5, t_wait);
	CourierPrepare(&plan_lease_insert,
				   "INSERT INTO courier.lease (group_id, msg_id, state, visible_at, attempt, "
				   "first_delivered_at, last_delivered_at, last_error) "
				   "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
				   8, t_ins);
	CourierPrepare(&plan_lease_vt,
				   "UPDATE courier.lease SET visible_at = $3 "
				   "WHERE group_id OPERATOR(pg_catalog.=) $1 AND msg_id OPERATOR(pg_catalog.=) $2",
				   3, t_vt);
}

/*
 * note_claim_lease
 *		We lock a claim (found by find_claim, lease_until as read) to
 *		take messages out of it.  Once its lease has ended, receivers'
 *		expiry scans skip it while we hold it (SKIP LOCKED), and their next
 *		due time, which looks after now, no longer counts it: a waiting
 *		receive would sleep to the end of its wait.  So if the lease has ended
 *		by the time we end, either way, wake the topic's sleepers (found by
 *		review: an ack held open across a lease's end).  Even an ack that
 *		empties the claim: if it rolls back, the messages are pending again.
 *		Claims the call only looks at (none of its ids pending there) are
 *		not locked and need nothing.
 */
static void
note_claim_lease(CourierGroup *group, Datum lease_until, bool isnull)
{
	if (!isnull)
		CourierWakeIfPassedAtEnd(group->topic_id, DatumGetTimestampTz(lease_until));
}

/*
 * note_lease_row
 *		The same for a lease row we locked (row of tt, its visible_at in
 *		column col): receivers' due scans skip it while we hold it, and once
 *		visible_at has passed their next due time no longer counts it, so an
 *		ack, nack or set_visibility held open across it and rolled back left
 *		the row due with nobody woken (review 28).
 */
static void
note_lease_row(CourierGroup *group, SPITupleTable *tt, uint64 row, int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tt->vals[row], tt->tupdesc, col, &isnull);

	if (!isnull)
		CourierWakeIfPassedAtEnd(group->topic_id, DatumGetTimestampTz(d));
}

/*
 * CourierMakeReceipt
 *		The receipt of a delivery: opaque text naming message, attempt and
 *		delivery time.
 */
Datum
CourierMakeReceipt(int64 id, int32 attempt, TimestampTz delivered_at)
{
	char		buf[64];

	snprintf(buf, sizeof(buf), "%016llx%08x%016llx",
			 (unsigned long long) id, (unsigned int) attempt,
			 (unsigned long long) delivered_at);
	return CStringGetTextDatum(buf);
}

/*
 * parse_receipt
 *		Read a receipt back; false if it is not one of ours.
 */
static bool
parse_receipt(const char *s, int64 *id, int32 *attempt, TimestampTz *delivered_at)
{
	unsigned long long a,
				c;
	unsigned int b;
	int			i;

	if (strlen(s) != 40)
		return false;
	for (i = 0; i < 40; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	if (sscanf(s, "%16llx%8x%16llx", &a, &b, &c) != 3)
		return false;
	*id = (int64) a;
	*attempt = (int32) b;
	*delivered_at = (TimestampTz) c;
	return true;
}

/*
 * receipt_arg
 *		Fill in target t for message id from the receipt argument (if not
 *		NULL), refusing a malformed receipt or one of another message.
 */
static void
receipt_arg(FunctionCallInfo fcinfo, int argno, int64 id, AckTarget *t)
{
	t->id = id;
	t->has_receipt = false;
	t->pos = 0;
	if (argno < PG_NARGS() && !PG_ARGISNULL(argno))
	{
		char	   *s = text_to_cstring(PG_GETARG_TEXT_PP(argno));
		int64		rid;

		if (!parse_receipt(s, &rid, &t->attempt, &t->delivered_at))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid receipt \"%s\"", s),
					 errhint("Pass the receipt column that receive returned with the message.")));
		if (rid != id)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("receipt is for message %lld, not %lld",
							(long long) rid, (long long) id)));
		t->has_receipt = true;
	}
}

/*
 * receipt_matches
 *		Whether the delivery (attempt, delivered_at) is the one t's receipt
 *		names (always, without a receipt).
 */
static bool
receipt_matches(const AckTarget *t, int32 attempt, TimestampTz delivered_at)
{
	return !t->has_receipt || (t->attempt == attempt && t->delivered_at == delivered_at);
}

/*
 * target_cmp
 *		qsort comparator: targets by id.
 */
static int
target_cmp(const void *a, const void *b)
{
	const AckTarget *x = (const AckTarget *) a;
	const AckTarget *y = (const AckTarget *) b;

	if (x->id != y->id)
		return (x->id > y->id) - (x->id < y->id);
	/* qsort is not stable: of one id given twice, the first one given leads */
	return (x->pos > y->pos) - (x->pos < y->pos);
}

/*
 * int64_cmp
 *		qsort/bsearch comparator for int64.
 */
static int
int64_cmp(const void *a, const void *b)
{
	int64		x = *(const int64 *) a;
	int64		y = *(const int64 *) b;

	return (x > y) - (x < y);
}

/*
 * array_has
 *		Whether an int8[] contains id.
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
 * lock_claim
 *		Lock the claim starting at lo and return its pending list (copied),
 *		or NULL if the claim is gone (folded: nothing in it was pending).
 *		Caller is connected to SPI with the plans prepared.
 */
static ArrayType *
lock_claim(CourierGroup *group, int64 lo, TimestampTz *delivered_at)
{
	Datum		args[2];
	bool		isnull;

	args[0] = Int32GetDatum(group->group_id);
	args[1] = Int64GetDatum(lo);
	if (CourierExecuteShaped(plan_claim_lock, args, NULL, 1, CourierKeyShape) != SPI_OK_SELECT)
		elog(ERROR, "could not lock a claim");
	if (SPI_processed != 1)
		return NULL;
	if (delivered_at)
		*delivered_at = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0],
														  SPI_tuptable->tupdesc, 4, &isnull));
	return DatumGetArrayTypePCopy(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
												3, &isnull));
}

/*
 * pending_without
 *		A claim's pending list without ids[] (sorted).
 */
static ArrayType *
pending_without(ArrayType *pending, int64 *ids, int n)
{
	int			np = ArrayGetNItems(ARR_NDIM(pending), ARR_DIMS(pending));
	int64	   *p = (int64 *) ARR_DATA_PTR(pending);
	int64	   *keep = palloc(sizeof(int64) * Max(np, 1));
	int			nkeep = 0;
	int			i;

	for (i = 0; i < np; i++)
	{
		int64		v = p[i];

		if (bsearch(&v, ids, n, sizeof(int64), int64_cmp) == NULL)
			keep[nkeep++] = v;
	}
	return DatumGetArrayTypeP(CourierInt8Array(keep, nkeep));
}

/*
 * claim_set_pending
 *		Remove ids[] (sorted) from the pending list of the claim starting at
 *		lo, which the caller locked and read as pending (inside SPI).
 */
static void
claim_set_pending(CourierGroup *group, int64 lo, ArrayType *pending, int64 *ids, int n)
{
	Datum		args[3];

	args[0] = Int32GetDatum(group->group_id);
	args[1] = Int64GetDatum(lo);
	args[2] = PointerGetDatum(pending_without(pending, ids, n));
	if (CourierExecuteShaped(plan_claim_set, args, NULL, 0, CourierKeyShape) != SPI_OK_UPDATE)
		elog(ERROR, "could not update a claim");
}

/*
 * ack_ids
 *		Finish the given targets (sorted by id, distinct); returns how many
 *		were delivered and unfinished (in the delivery their receipt names).
 *		Caller is connected to SPI.
 */
static int
ack_ids(CourierTopic *topic, CourierGroup *group, AckTarget *t, int n)
{
	AckTarget  *leftover = palloc(sizeof(AckTarget) * Max(n, 1));
	int			nleft = 0;
	int64	   *mine = palloc(sizeof(int64) * Max(n, 1));
	int			count = 0;
	int			i = 0;
	Datum		args[5];
	uint64		j;
	List	   *okeys = NIL;
	ListCell   *lc;

	while (i < n)
	{
		int64		lo,
					hi;
		ArrayType  *pending;
		TimestampTz delivered_at;
		ClaimRead	c;
		int			nmine = 0;
		int			first;
		int			k;

		if (!find_claim(group, t[i].id, &c))
		{
			leftover[nleft++] = t[i++];
			continue;
		}
		lo = c.lo;
		hi = c.hi;
		pending = c.pending;
		delivered_at = c.delivered_at;
		if (hi < t[i].id)
		{
			leftover[nleft++] = t[i++];
			continue;
		}
		/* ids of ours this claim covers [first, i) */
		first = i;
		while (i < n && t[i].id <= hi)
			i++;
		for (k = first; k < i; k++)
			if (array_has(pending, t[k].id))
				break;
		if (k == i)
		{
			/* none pending here: maybe in the lease table */
			for (k = first; k < i; k++)
				leftover[nleft++] = t[k];
			continue;
		}

		/*
		 * Fast path: decide on the list as read, and swap it for the list
		 * without ours if nobody changed it meanwhile (one statement, no
		 * separate lock).  Otherwise lock the claim and read pending again
		 * (ids only ever leave pending, but a removal in progress elsewhere
		 * may still roll back).
		 */
		{
			int			nfast = 0;
			bool		others = false;

			for (k = first; k < i; k++)
			{
				if (!array_has(pending, t[k].id))
					others = true;	/* maybe in the lease table */
				else if (receipt_matches(&t[k], 1, delivered_at))
					mine[nfast++] = t[k].id;
				else
					check_stale_view(group, &t[k]);
			}
			if (nfast > 0 && !others)
			{
				note_claim_lease(group, TimestampTzGetDatum(c.lease_until), c.lease_null);
				if (swap_pending(group, &c, pending_without(pending, mine, nfast)))
				{
					count += nfast;
					continue;
				}
			}
		}
		note_claim_lease(group, TimestampTzGetDatum(c.lease_until), c.lease_null);
		pending = lock_claim(group, lo, &delivered_at);
		for (k = first; k < i; k++)
		{
			if (pending != NULL && array_has(pending, t[k].id))
			{
				/* held in this claim's first delivery: the receipt decides */
				if (receipt_matches(&t[k], 1, delivered_at))
					mine[nmine++] = t[k].id;
				else
					check_stale_view(group, &t[k]);
			}
			else
				leftover[nleft++] = t[k];
		}
		if (nmine > 0)
		{
			claim_set_pending(group, lo, pending, mine, nmine);
			count += nmine;
		}
	}

	/* the lease table: redeliveries */
	for (i = 0; i < nleft;)
	{
		SPITupleTable *tt;
		uint64		nrows;

		args[0] = Int32GetDatum(group->group_id);
		if (leftover[i].has_receipt)
		{
			args[1] = Int64GetDatum(leftover[i].id);
			args[2] = Int32GetDatum(leftover[i].attempt);
			args[3] = TimestampTzGetDatum(leftover[i].delivered_at);
			if (CourierExecuteShaped(plan_lease_ack_one, args, NULL, 0, CourierKeyShape) != SPI_OK_DELETE_RETURNING)
				elog(ERROR, "could not acknowledge a lease");
		}
		else
		{
			/*
			 * One id at a time: a lookup by the whole primary key is planned
			 * right whatever courier.lease's statistics say (a list of ids
			 * was not: test/sql/lease_plans.sql).
			 */
			args[1] = Int64GetDatum(leftover[i].id);
			if (CourierExecuteShaped(plan_lease_ack, args, NULL, 0, CourierKeyShape) != SPI_OK_DELETE_RETURNING)
				elog(ERROR, "could not acknowledge a lease");
		}
		tt = SPI_tuptable;
		nrows = SPI_processed;
		if (nrows == 0)
			check_stale_view(group, &leftover[i]);
		i++;
		count += nrows;
		for (j = 0; j < nrows; j++)
			note_lease_row(group, tt, j, 3);
		if (group->ordered)
		{
			for (j = 0; j < nrows; j++)
			{
				bool		isnull;
				Datum		d = SPI_getbinval(tt->vals[j], tt->tupdesc, 2, &isnull);

				if (!isnull)
					okeys = lappend(okeys, TextDatumGetCString(d));
			}
		}
		/* one statement per id: 8 kB each until SPI_finish otherwise (review 46) */
		SPI_freetuptable(tt);
	}
	foreach(lc, okeys)
		CourierPromoteNext(topic, group, (char *) lfirst(lc));
	if (okeys != NIL)
		CourierWakeAtCommit(topic->topic_id);
	return count;
}

/*
 * open_target
 *		Common argument handling: topic and group by name.
 */
static CourierGroup *
open_target(FunctionCallInfo fcinfo, CourierTopic **topic, const char *what)
{
	char	   *topic_name;
	char	   *group_name;
	CourierGroup *group;

	/*
	 * These calls write (claims, lease rows), and not always through SPI,
	 * whose executor would refuse a read-only transaction or a standby:
	 * refuse here, first, with the same error (TAP 041).
	 */
	PreventCommandDuringRecovery(what);
	PreventCommandIfReadOnly(what);
	topic_name = CourierTextArg(fcinfo, 0, "topic");
	group_name = CourierTextArg(fcinfo, 1, "group");

	*topic = CourierGetTopic(topic_name);
	CourierCheckTopicPrivilege(*topic, COURIER_PRIV_RECEIVE);
	group = CourierGetGroup(*topic, group_name);
	CourierLockClaimTables();
	return group;
}

/*
 * ack_body
 *		ack(topic, grp, id, receipt) -> whether the message was delivered
 *		and unfinished (in the delivery the receipt names).
 */
static Datum
ack_body(PG_FUNCTION_ARGS)
{
	CourierTopic *topic;
	CourierGroup *group = open_target(fcinfo, &topic, "courier.ack");
	AckTarget	t;
	int			n;

	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("id must not be NULL")));
	receipt_arg(fcinfo, 3, PG_GETARG_INT64(2), &t);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	prepare_plans();
	n = ack_ids(topic, group, &t, 1);
	SPI_finish();
	if (n > 0)
		CourierGroupTouch(group->group_id, true);
	PG_RETURN_BOOL(n > 0);
}

/* courier_ack: the SQL entry point, ack_body as the extension owner (acl.c) */
Datum
courier_ack(PG_FUNCTION_ARGS)
{
	return CourierRunAsOwner(fcinfo, ack_body);
}

/*
 * CourierAckArrays
 *		Acks the ids of an ids[] array, each in the delivery its element of
 *		receipts[] names (when receipts is not NULL): courier.ack's array
 *		form and receive's ack_ids / ack_receipts.  ids_name and
 *		receipts_name are the parameters' names, for errors.  The caller
 *		looked the topic and group up, checked the receive privilege and
 *		took the claim tables' locks (CourierLockClaimTables).  Returns how
 *		many of the ids were delivered and unfinished.
 */
int
CourierAckArrays(CourierTopic *topic, CourierGroup *group, ArrayType *ids, ArrayType *receipts,
				 const char *ids_name, const char *receipts_name)
{
	Datum	   *elems;
	bool	   *nulls;
	int			nelems;
	Datum	   *relems = NULL;
	bool	   *rnulls = NULL;
	int			nrelems = 0;
	AckTarget  *t;
	int			nt = 0;
	int			i;
	int			n;

	if (ARR_NDIM(ids) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be a one-dimensional array", ids_name)));
	deconstruct_array(ids, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &elems, &nulls, &nelems);
	if (receipts != NULL)
	{
		if (ARR_NDIM(receipts) > 1)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s must be a one-dimensional array", receipts_name)));
		deconstruct_array(receipts, TEXTOID, -1, false, TYPALIGN_INT, &relems, &rnulls, &nrelems);
		if (nrelems != nelems)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s must have one element per id", receipts_name),
					 errdetail("There are %d ids and %d receipts.", nelems, nrelems)));
	}
	t = palloc(sizeof(AckTarget) * Max(nelems, 1));
	for (i = 0; i < nelems; i++)
	{
		if (nulls[i])
			continue;
		t[nt].id = DatumGetInt64(elems[i]);
		t[nt].has_receipt = false;
		t[nt].pos = i;
		if (relems != NULL && !rnulls[i])
		{
			char	   *s = TextDatumGetCString(relems[i]);
			int64		rid;

			if (!parse_receipt(s, &rid, &t[nt].attempt, &t[nt].delivered_at))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("invalid receipt \"%s\"", s)));
			if (rid != t[nt].id)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("receipt is for message %lld, not %lld",
								(long long) rid, (long long) t[nt].id)));
			t[nt].has_receipt = true;
		}
		nt++;
	}
	if (nt == 0)
		return 0;
	/* sorted, one target per id (the first one given) */
	qsort(t, nt, sizeof(AckTarget), target_cmp);
	for (i = 1, n = 1; i < nt; i++)
		if (t[i].id != t[n - 1].id)
			t[n++] = t[i];
	nt = n;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	prepare_plans();
	n = ack_ids(topic, group, t, nt);
	SPI_finish();
	if (n > 0)
		CourierGroupTouch(group->group_id, true);
	return n;
}

/*
 * ack_many_body
 *		ack(topic, grp, ids[], receipts[]) -> how many of them were
 *		delivered and unfinished.  receipts, if given, pairs with ids
 *		element by element.
 */
static Datum
ack_many_body(PG_FUNCTION_ARGS)
{
	CourierTopic *topic;
	CourierGroup *group = open_target(fcinfo, &topic, "courier.ack");

	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("ids must not be NULL")));
	PG_RETURN_INT32(CourierAckArrays(topic, group, PG_GETARG_ARRAYTYPE_P(2),
									 (PG_NARGS() > 3 && !PG_ARGISNULL(3)) ?
									 PG_GETARG_ARRAYTYPE_P(3) : NULL,
									 "ids", "receipts"));
}

/* courier_ack_many: the SQL entry point, ack_many_body as the extension owner (acl.c) */
Datum
courier_ack_many(PG_FUNCTION_ARGS)
{
	return CourierRunAsOwner(fcinfo, ack_many_body);
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
	ClaimRead	c;

	memset(h, 0, sizeof(Held));
	if (find_claim(group, id, &c) && c.hi >= id && array_has(c.pending, id))
	{
		TimestampTz delivered_at;
		ArrayType  *pending;

		note_claim_lease(group, TimestampTzGetDatum(c.lease_until), c.lease_null);
		pending = lock_claim(group, c.lo, &delivered_at);

		/* lock it, then look again */
		if (pending != NULL && array_has(pending, id))
		{
			h->in_claim = true;
			h->claim_lo = c.lo;
			h->claim_pending = pending;
			h->delivered_at = delivered_at;
			h->attempt = 1;
			h->state = 'l';
			h->first_delivered = h->last_delivered = delivered_at;
			h->has_first = h->has_last = true;
			return true;
		}
	}

	args[0] = Int32GetDatum(group->group_id);
	args[1] = Int64GetDatum(id);
	if (CourierExecuteShaped(plan_lease_find, args, NULL, 1, CourierKeyShape) != SPI_OK_SELECT)
		elog(ERROR, "could not look up leases");
	if (SPI_processed != 1)
		return false;
	note_lease_row(group, SPI_tuptable, 0, 5);
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
	h->delivered_at = h->has_last ? h->last_delivered : 0;
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

	claim_set_pending(group, h->claim_lo, h->claim_pending, &id, 1);
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
 * nack_body
 *		nack(topic, grp, id, delay, reason, receipt): give a held message
 *		back, to be redelivered after delay, or else after the group's
 *		retry_backoff step for its attempt; after max_attempts it is
 *		dead-lettered.  With a receipt that is not the current delivery it
 *		changes nothing and returns false.
 */
static Datum
nack_body(PG_FUNCTION_ARGS)
{
	CourierTopic *topic;
	CourierGroup *group = open_target(fcinfo, &topic, "courier.nack");
	AckTarget	t;
	int64		backoff;
	char	   *reason = NULL;
	Held		h;
	TimestampTz now = GetCurrentTimestamp();

	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("id must not be NULL")));
	receipt_arg(fcinfo, 5, PG_GETARG_INT64(2), &t);
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
	if (!find_held(group, t.id, &h))
	{
		check_stale_view(group, &t);
		SPI_finish();
		if (t.has_receipt)
			PG_RETURN_BOOL(false);	/* that delivery has ended */
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("message %lld is not in flight in group \"%s\" of topic \"%s\"",
						(long long) t.id, group->name, topic->name),
				 errdetail("Only a message that was received and not yet acked, nacked or dead-lettered can be nacked.")));
	}
	if (!receipt_matches(&t, h.attempt, h.delivered_at))
	{
		check_stale_view(group, &t);
		SPI_finish();
		PG_RETURN_BOOL(false);
	}

	if (h.attempt >= group->max_attempts)
	{
		CourierDeadRow row;

		/* that was its last attempt */
		if (h.in_claim)
			move_to_lease(group, t.id, &h, 'l', now, reason);
		SPI_finish();
		row.id = t.id;
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
		move_to_lease(group, t.id, &h, 'w', now + backoff, reason);
	else
	{
		Datum		args[5];
		char		nulls[5] = {' ', ' ', ' ', ' ', ' '};

		args[0] = Int32GetDatum(group->group_id);
		args[1] = Int64GetDatum(t.id);
		args[2] = TimestampTzGetDatum(now + backoff);
		if (reason)
			args[3] = CStringGetTextDatum(reason);
		else
			nulls[3] = 'n';
		args[4] = CharGetDatum('w');
		if (CourierExecuteShaped(plan_lease_wait, args, nulls, 0, CourierKeyShape) != SPI_OK_UPDATE)
			elog(ERROR, "could not update a lease");
	}
	SPI_finish();
	CourierWakeAtCommit(topic->topic_id);
	CourierDueAtCommit(topic->topic_id, group->group_id, now + backoff);
	PG_RETURN_BOOL(true);
}

/* courier_nack: the SQL entry point, nack_body as the extension owner (acl.c) */
Datum
courier_nack(PG_FUNCTION_ARGS)
{
	return CourierRunAsOwner(fcinfo, nack_body);
}

/*
 * set_visibility_body
 *		set_visibility(topic, grp, id, visibility_timeout, receipt): move the
 *		end of a held message's lease to now + visibility_timeout ('0'
 *		releases it at once).  Returns false if the message is not held (in
 *		the delivery the receipt names).
 */
static Datum
set_visibility_body(PG_FUNCTION_ARGS)
{
	CourierTopic *topic;
	CourierGroup *group = open_target(fcinfo, &topic, "courier.set_visibility");
	AckTarget	t;
	int64		vt;
	Held		h;
	TimestampTz until;

	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("id must not be NULL")));
	receipt_arg(fcinfo, 4, PG_GETARG_INT64(2), &t);
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
	if (!find_held(group, t.id, &h) || !receipt_matches(&t, h.attempt, h.delivered_at))
	{
		check_stale_view(group, &t);
		SPI_finish();
		PG_RETURN_BOOL(false);
	}
	if (h.in_claim)
		move_to_lease(group, t.id, &h, 'l', until, NULL);
	else
	{
		Datum		args[3];

		args[0] = Int32GetDatum(group->group_id);
		args[1] = Int64GetDatum(t.id);
		args[2] = TimestampTzGetDatum(until);
		if (CourierExecuteShaped(plan_lease_vt, args, NULL, 0, CourierKeyShape) != SPI_OK_UPDATE)
			elog(ERROR, "could not update a lease");
	}
	SPI_finish();
	CourierWakeAtCommit(topic->topic_id);
	CourierDueAtCommit(topic->topic_id, group->group_id, until);
	PG_RETURN_BOOL(true);
}

/* courier_set_visibility: the SQL entry point, set_visibility_body as the extension owner (acl.c) */
Datum
courier_set_visibility(PG_FUNCTION_ARGS)
{
	return CourierRunAsOwner(fcinfo, set_visibility_body);
}
