/*-------------------------------------------------------------------------
 *
 * walk.c
 *	  Walking a topic's log on behalf of one consumer group: finding the
 *	  messages the group has not been handed yet, and recording, in claim
 *	  rows, which ids a receive took.
 *
 * The visibility horizon (DESIGN.md section 2)
 * --------------------------------------------
 * Ids are handed out when a message is sent, but transactions commit in
 * another order, so "everything after the last id I read" loses messages.
 * We do not stop at the first uncommitted id (Kafka's last stable offset),
 * because one producer transaction left open for minutes would then hold up
 * the whole topic.  Nor do we batch by snapshots between ticks (PgQ), which
 * costs a tick of latency.  Instead a walker reads the log with a dirty
 * snapshot, which tells it for each row whether the inserting transaction
 * committed, aborted or is still running, and treats the three cases
 * exactly:
 *
 *	- committed: deliver it (or pass over it if the group's filter does not
 *	  match);
 *	- aborted or never inserted: pass over it for good;
 *	- still running: step over it but remember the transaction (a "hole");
 *	  when that transaction ends, the walk starts again from its first id.
 *
 * "Never inserted" is decided with the senders' allocation marks (send.c):
 * the walker reads next_id and the marks under the topic's LWLock before it
 * looks at the log, so an id below next_id that has no row and no mark can
 * no longer appear.
 *
 * Claims and the group position
 * -----------------------------
 * What a group has been handed is durable: each walk inserts claim rows
 * (courier.claim) that cover contiguous id ranges; a claim lists the ids it
 * delivered (pending until acked) and passes over the rest.  Claims of a
 * group never overlap.  Claims die with the receive's transaction if it
 * rolls back, which makes the ids receivable again.
 *
 * Shared memory only caches where to look (CourierGroupShared):
 *	P (frontier): no id >= P has been looked at; there are no claims >= P.
 *	R (recheck):  every id < R is covered by a claim, finished (<= the
 *				  group's low_water), or in a remembered hole.
 * A walk starts at R, jumps over existing claims and covers the gaps with
 * new claims.  R is lowered when a hole's transaction ends, when a claim is
 * rolled back (xact.c) and after a restart (rebuild, below); each lowering
 * bumps the epoch, so a walk that ran concurrently never raises R over ids
 * that became uncovered while it was walking.
 *
 * Locking: a walk that claims holds the group's claim lock (a heavyweight
 * lock on COURIER_LOCK_CLAIM) from before it reads R until its claims are
 * inserted and R and P are updated; it then releases the lock without
 * waiting for commit, so receivers in long transactions do not block each
 * other.  The group's existence lock is held in share mode until commit.
 * Maintenance (maint.c) takes the claim lock until commit when it deletes
 * finished claims.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/relscan.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "storage/procarray.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "pg_courier.h"

/* A contiguous range of ids this walk covers with one claim row */
typedef struct Run
{
	int64		lo;
	int64		hi;
	int			npending;
	int			maxpending;
	int64	   *pending;
} Run;

/* Reading the log in id order across segments */
typedef struct LogCursor
{
	CourierTopic *topic;
	int			segidx;			/* segment being read, -1 before the first */
	Relation	rel;
	Relation	idx;
	IndexScanDesc scan;
	TupleTableSlot *slot;
	SnapshotData dirty;
	ScanKeyData key;
	int64		last;			/* last id the scan returned */
	bool		have;			/* slot holds an entry not yet consumed */
	int64		id;				/* id of that entry */
	TransactionId xid;			/* in-progress inserter of it, or invalid */
	bool		exhausted;		/* no more entries in any segment */
} LogCursor;

/* Ordered groups: per-key state found during one walk */
typedef struct KeyEntry
{
	char		okey[COURIER_MAX_KEY_LEN + 1];
	int64		min_id;
} KeyEntry;

typedef struct Walk
{
	CourierTopic *topic;
	CourierGroup *group;
	CourierWalkMode mode;
	int			max_messages;
	TimestampTz now;
	TimestampTz lease_until;
	int64		limit;			/* first id not handed out when we started */
	int			nmarks;
	CourierSenderMark *marks;	/* sorted by lo */
	int64		frontier;		/* P when we started */

	/* runs of this walk */
	Run			cur;
	bool		cur_open;
	List	   *runs;

	/* holes found */
	int			nholes;
	CourierHole holes[COURIER_MAX_HOLES];
	int64		unrecorded;		/* lowest hole id we could not remember */

	/* next existing claim at or after pos */
	bool		claim_valid;
	int64		claim_lo;
	int64		claim_hi;

	int			scanned;
	int			heads;			/* ordered groups: keyed messages that became heads */
	int64		pos;
	Relation	lease_rel;
	HTAB	   *keys;			/* ordered groups: smallest queued id per key */
	CourierWalkResult *result;
} Walk;

static void log_open(LogCursor *lc, CourierTopic *topic);
static void log_open_segment(LogCursor *lc, int segidx, int64 pos);
static bool log_seek(LogCursor *lc, int64 pos);
static bool log_next(LogCursor *lc, int64 pos);
static void log_close(LogCursor *lc);
static void next_claim(Walk *w, int64 pos);
static void run_extend(Walk *w, int64 upto);
static void run_close(Walk *w);
static void run_add_pending(Walk *w, int64 id);
static void add_hole(Walk *w, TransactionId xid, int64 id);
static void classify(Walk *w, LogCursor *lc);
static void deliver(Walk *w, TupleTableSlot *slot, int64 id);
static void divert(Walk *w, TupleTableSlot *slot, int64 id, TimestampTz visible_at,
				   bool keyed);
static int64 key_min_id(Walk *w, const char *okey);
static void rebuild(CourierGroup *group, CourierGroupShared *gs);
static int	mark_cmp(const void *a, const void *b);
static void claim_lock(int32 group_id, bool acquire);
static void insert_claims(Walk *w, CourierGroupShared *gs);

/*
 * CourierWalkInit
 *		Nothing to set up at load time yet; kept so _PG_init lists every
 *		subsystem.
 */
void
CourierWalkInit(void)
{
}

/*
 * claim_lock
 *		Take or release a group's claim lock (exclusive, transaction-scoped
 *		but released early by walkers).
 */
static void
claim_lock(int32 group_id, bool acquire)
{
	LOCKTAG		tag;

	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, (uint32) group_id, 0, COURIER_LOCK_CLAIM);
	if (acquire)
		(void) LockAcquire(&tag, ExclusiveLock, false, false);
	else
		(void) LockRelease(&tag, ExclusiveLock, false);
}

/*
 * CourierClaimLock
 *		Exported for maintenance, which keeps the lock until commit.
 */
void
CourierClaimLock(int32 group_id)
{
	claim_lock(group_id, true);
}

/*
 * mark_cmp
 *		qsort comparator: marks by first id.
 */
static int
mark_cmp(const void *a, const void *b)
{
	const CourierSenderMark *ma = a;
	const CourierSenderMark *mb = b;

	if (ma->lo < mb->lo)
		return -1;
	if (ma->lo > mb->lo)
		return 1;
	return 0;
}

/*
 * log_open
 *		Prepare a cursor over a topic's log (nothing is opened yet).
 */
static void
log_open(LogCursor *lc, CourierTopic *topic)
{
	memset(lc, 0, sizeof(LogCursor));
	lc->topic = topic;
	lc->segidx = -1;
}

/*
 * log_close_segment
 *		End the scan of the current segment.
 */
static void
log_close_segment(LogCursor *lc)
{
	if (lc->scan)
	{
		index_endscan(lc->scan);
		ExecDropSingleTupleTableSlot(lc->slot);
		index_close(lc->idx, NoLock);
		table_close(lc->rel, NoLock);
		lc->scan = NULL;
	}
	lc->have = false;
}

/*
 * log_close
 *		Release the cursor.
 */
static void
log_close(LogCursor *lc)
{
	log_close_segment(lc);
}

/*
 * log_seek
 *		Start reading at id pos: open the first segment that can hold ids
 *		>= pos.  Returns false if no segment can.
 */
static bool
log_seek(LogCursor *lc, int64 pos)
{
	CourierTopic *topic = lc->topic;
	int			i;

	log_close_segment(lc);
	for (i = 0; i < topic->nsegments; i++)
	{
		CourierSegmentBounds(topic, i);
		if (topic->segments[i].max_ub != 0 && topic->segments[i].max_ub < pos)
			continue;
		log_open_segment(lc, i, pos);
		return true;
	}
	lc->exhausted = true;
	return false;
}

/*
 * log_open_segment
 *		Begin an index scan of segment segidx at ids >= pos.
 */
static void
log_open_segment(LogCursor *lc, int segidx, int64 pos)
{
	CourierSegment *seg = &lc->topic->segments[segidx];

	lc->segidx = segidx;
	lc->rel = table_open(seg->relid, AccessShareLock);
	lc->idx = index_open(CourierSegmentIndex(seg), AccessShareLock);
	lc->slot = table_slot_create(lc->rel, NULL);
	InitDirtySnapshot(lc->dirty);
	lc->scan = index_beginscan(lc->rel, lc->idx, &lc->dirty, 1, 0);
	ScanKeyInit(&lc->key, 1, BTGreaterEqualStrategyNumber, F_INT8GE, Int64GetDatum(pos));
	index_rescan(lc->scan, &lc->key, 1, NULL, 0);
	lc->last = pos - 1;
	lc->have = false;
}

/*
 * log_next
 *		Position the cursor on the first log entry with id >= pos whose
 *		row is committed or still being written (aborted rows are not
 *		returned).  Returns false when there is none.  pos never decreases
 *		during a walk.  The entry stays in lc->slot until the next call.
 */
static bool
log_next(LogCursor *lc, int64 pos)
{
	if (lc->have)
	{
		if (lc->id >= pos)
			return true;
		lc->have = false;
	}
	if (lc->exhausted)
		return false;
	/* a long jump (over a claim): seek instead of reading through */
	if (lc->scan == NULL || pos > lc->last + 64)
	{
		if (!log_seek(lc, pos))
			return false;
	}

	for (;;)
	{
		while (index_getnext_slot(lc->scan, ForwardScanDirection, lc->slot))
		{
			bool		isnull;
			int64		id = DatumGetInt64(slot_getattr(lc->slot, Anum_seg_id, &isnull));
			TransactionId xid = lc->dirty.xmin;

			lc->last = id;
			if (id < pos)
				continue;
			if (!TransactionIdIsValid(xid))
			{
				/* our own uncommitted rows count as in progress too */
				HeapTuple	tup = ExecFetchSlotHeapTuple(lc->slot, false, NULL);
				TransactionId xmin = HeapTupleHeaderGetRawXmin(tup->t_data);

				if (TransactionIdIsCurrentTransactionId(xmin))
					xid = GetTopTransactionId();
			}
			lc->have = true;
			lc->id = id;
			lc->xid = xid;
			return true;
		}

		/* nothing more in this segment: the next one */
		log_close_segment(lc);
		if (lc->segidx + 1 >= lc->topic->nsegments)
		{
			lc->exhausted = true;
			return false;
		}
		log_open_segment(lc, lc->segidx + 1, pos);
	}
}

/*
 * next_claim
 *		Find the existing claim that covers pos or comes next after it.
 *		Claims are read with a dirty snapshot: claims of receivers still in
 *		their transactions count.  Above the frontier there are none.
 */
static void
next_claim(Walk *w, int64 pos)
{
	Relation	rel;
	Relation	idx;
	IndexScanDesc scan;
	TupleTableSlot *slot;
	SnapshotData dirty;
	ScanKeyData keys[2];
	bool		isnull;

	w->claim_valid = false;
	if (pos >= w->frontier)
		return;

	rel = table_open(CourierRelid("claim"), AccessShareLock);
	idx = index_open(CourierRelid("claim_pkey"), AccessShareLock);
	slot = table_slot_create(rel, NULL);
	InitDirtySnapshot(dirty);

	/* the claim starting at or before pos, if it reaches pos */
	ScanKeyInit(&keys[0], 1, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(w->group->group_id));
	ScanKeyInit(&keys[1], 2, BTLessEqualStrategyNumber, F_INT8LE, Int64GetDatum(pos));
	scan = index_beginscan(rel, idx, &dirty, 2, 0);
	index_rescan(scan, keys, 2, NULL, 0);
	if (index_getnext_slot(scan, BackwardScanDirection, slot))
	{
		int64		lo = DatumGetInt64(slot_getattr(slot, 2, &isnull));
		int64		hi = DatumGetInt64(slot_getattr(slot, 3, &isnull));

		if (hi >= pos)
		{
			w->claim_valid = true;
			w->claim_lo = lo;
			w->claim_hi = hi;
		}
	}
	index_endscan(scan);

	if (!w->claim_valid)
	{
		/* the first claim after pos */
		ScanKeyInit(&keys[1], 2, BTGreaterStrategyNumber, F_INT8GT, Int64GetDatum(pos));
		scan = index_beginscan(rel, idx, &dirty, 2, 0);
		index_rescan(scan, keys, 2, NULL, 0);
		if (index_getnext_slot(scan, ForwardScanDirection, slot))
		{
			w->claim_valid = true;
			w->claim_lo = DatumGetInt64(slot_getattr(slot, 2, &isnull));
			w->claim_hi = DatumGetInt64(slot_getattr(slot, 3, &isnull));
		}
		index_endscan(scan);
	}

	ExecDropSingleTupleTableSlot(slot);
	index_close(idx, NoLock);
	table_close(rel, NoLock);
}

/*
 * run_extend
 *		Cover ids up to and including upto with the current run.
 */
static void
run_extend(Walk *w, int64 upto)
{
	if (upto < w->pos)
		return;
	if (!w->cur_open)
	{
		w->cur.lo = w->pos;
		w->cur.npending = 0;
		w->cur.maxpending = 0;
		w->cur.pending = NULL;
		w->cur_open = true;
	}
	w->cur.hi = upto;
}

/*
 * run_add_pending
 *		Record a delivered id in the current run (which covers it).
 */
static void
run_add_pending(Walk *w, int64 id)
{
	Run		   *r = &w->cur;

	if (r->npending == r->maxpending)
	{
		r->maxpending = r->maxpending ? r->maxpending * 2 : 16;
		r->pending = r->pending ? repalloc(r->pending, sizeof(int64) * r->maxpending)
			: palloc(sizeof(int64) * r->maxpending);
	}
	r->pending[r->npending++] = id;
}

/*
 * run_close
 *		End the current run (if any) and keep it for insert_claims.
 */
static void
run_close(Walk *w)
{
	if (w->cur_open)
	{
		Run		   *r = palloc(sizeof(Run));

		*r = w->cur;
		w->runs = lappend(w->runs, r);
		w->cur_open = false;
	}
}

/*
 * add_hole
 *		Step over an id whose transaction is still running.
 */
static void
add_hole(Walk *w, TransactionId xid, int64 id)
{
	int			i;

	run_close(w);
	for (i = 0; i < w->nholes; i++)
	{
		if (TransactionIdEquals(w->holes[i].xid, xid))
		{
			w->holes[i].min_id = Min(w->holes[i].min_id, id);
			return;
		}
	}
	if (w->nholes < COURIER_MAX_HOLES)
	{
		w->holes[w->nholes].xid = xid;
		w->holes[w->nholes].min_id = id;
		w->nholes++;
	}
	else
		w->unrecorded = Min(w->unrecorded, id);
}

/*
 * deliver
 *		Hand a message to the receiver (or list it, for peek).
 */
static void
deliver(Walk *w, TupleTableSlot *slot, int64 id)
{
	CourierWalkResult *res = w->result;
	CourierDelivery *d;

	if (w->mode == WALK_COUNT)
	{
		res->backlog++;
		return;
	}
	if (res->ndelivered == 0)
		res->delivered = palloc(sizeof(CourierDelivery) * Max(w->max_messages, 1));
	d = &res->delivered[res->ndelivered++];
	CourierPayloadFromSlot(slot, &d->msg);
	d->attempt = 1;
	d->lease_until = w->lease_until;
	if (w->mode == WALK_CLAIM)
		run_add_pending(w, id);
}

/*
 * key_min_id
 *		Ordered groups: the smallest id of the lease rows of a key -- rows of
 *		receivers still in their transactions and our own included -- or 0
 *		if the key has none.
 */
static int64
key_min_id(Walk *w, const char *okey)
{
	KeyEntry   *e;
	bool		found;
	CourierKeyFirst first;

	if (w->keys == NULL)
	{
		HASHCTL		ctl;

		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = COURIER_MAX_KEY_LEN + 1;
		ctl.entrysize = sizeof(KeyEntry);
		ctl.hcxt = CurrentMemoryContext;
		w->keys = hash_create("courier walk keys", 64, &ctl,
							  HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	}
	e = hash_search(w->keys, okey, HASH_ENTER, &found);
	if (found)
		return e->min_id;

	e->min_id = 0;
	if (CourierKeyFirstRow(w->lease_rel, w->group->group_id, okey, &first))
	{
		e->min_id = first.msg_id;

		/*
		 * The first message of the key was written, or is being finished
		 * (or leased), by a transaction still in progress.  If that
		 * transaction deletes it (an ack in the same transaction as the
		 * receive shows only as an insert in progress) or rolls back,
		 * whatever we queue behind it needs a promotion nobody would do: ask
		 * for one once that transaction ends.
		 */
		if (TransactionIdIsValid(first.xmax))
			CourierPromoteLater(w->group->group_id, okey, first.xmax, 0);
		else if (TransactionIdIsValid(first.xmin))
			CourierPromoteLater(w->group->group_id, okey, first.xmin, 0);
	}
	return e->min_id;
}

/*
 * divert
 *		Hand a message over to the per-message lease table: a delayed
 *		message waits there for its time, and an ordered group queues its
 *		keyed messages there.  A keyed message becomes the head of its key
 *		('w') when the key has no rows, or only rows with larger ids (a
 *		message passed over earlier and walked again); otherwise it queues
 *		('q') until the messages before it are finished (lease.c).
 */
static void
divert(Walk *w, TupleTableSlot *slot, int64 id, TimestampTz visible_at, bool keyed)
{
	Datum		values[Natts_lease];
	bool		nulls[Natts_lease];
	char	   *okey = NULL;
	char		state = 'w';

	if (w->mode == WALK_COUNT)
	{
		if (visible_at > w->now)
			w->result->delayed++;
		else
			w->result->backlog++;
		return;
	}
	if (w->mode != WALK_CLAIM)
		return;

	if (w->lease_rel == NULL)
		w->lease_rel = table_open(CourierRelid("lease"), RowExclusiveLock);

	if (keyed)
	{
		bool		isnull;
		Datum		keys = slot_getattr(slot, Anum_seg_keys, &isnull);
		int64		min_id;

		okey = CourierOrderingKey(keys, isnull);
		min_id = key_min_id(w, okey);
		if (min_id != 0 && min_id < id)
		{
			state = 'q';
			visible_at = DT_NOEND;	/* out of every due scan until promoted */
		}
		else
		{
			KeyEntry   *e = hash_search(w->keys, okey, HASH_FIND, NULL);

			e->min_id = id;
			w->heads++;
		}
	}

	memset(nulls, true, sizeof(nulls));
	values[Anum_lease_group_id - 1] = Int32GetDatum(w->group->group_id);
	nulls[Anum_lease_group_id - 1] = false;
	values[Anum_lease_msg_id - 1] = Int64GetDatum(id);
	nulls[Anum_lease_msg_id - 1] = false;
	values[Anum_lease_state - 1] = CharGetDatum(state);
	nulls[Anum_lease_state - 1] = false;
	values[Anum_lease_visible_at - 1] = TimestampTzGetDatum(visible_at);
	nulls[Anum_lease_visible_at - 1] = false;
	values[Anum_lease_attempt - 1] = Int32GetDatum(0);
	nulls[Anum_lease_attempt - 1] = false;
	if (okey)
	{
		values[Anum_lease_okey - 1] = CStringGetTextDatum(okey);
		nulls[Anum_lease_okey - 1] = false;
	}
	CourierInsertTuple(w->lease_rel, values, nulls, Natts_lease);
	w->result->diverted++;
}

/*
 * classify
 *		Decide what the entry under the cursor means for the group.
 */
static void
classify(Walk *w, LogCursor *lc)
{
	TupleTableSlot *slot = lc->slot;
	int64		id = lc->id;
	CourierGroup *group = w->group;
	bool		isnull;
	Datum		d;

	w->scanned++;
	if (TransactionIdIsValid(lc->xid))
	{
		/* still being written: come back when its transaction ends */
		add_hole(w, lc->xid, id);
		w->pos = id + 1;
		return;
	}

	run_extend(w, id);
	w->pos = id + 1;

	if (group->filter != NULL)
	{
		Datum		headers = slot_getattr(slot, Anum_seg_headers, &isnull);
		Datum		tag;
		bool		tagnull;

		if (isnull)
			headers = (Datum) 0;
		tag = slot_getattr(slot, Anum_seg_tag, &tagnull);
		if (CourierEvalFilter(group->filter, headers, tagnull ? (Datum) 0 : tag) != CF_TRUE)
			return;				/* not for this group */
	}

	d = slot_getattr(slot, Anum_seg_deliver_at, &isnull);
	if (!isnull && DatumGetTimestampTz(d) > w->now)
	{
		bool		keyed = false;

		if (group->ordered)
		{
			bool		knull;

			(void) slot_getattr(slot, Anum_seg_keys, &knull);
			keyed = !knull;
		}
		divert(w, slot, id, DatumGetTimestampTz(d), keyed);
		return;
	}

	if (group->ordered)
	{
		(void) slot_getattr(slot, Anum_seg_keys, &isnull);
		if (!isnull)
		{
			divert(w, slot, id, w->now, true);
			return;
		}
	}
	deliver(w, slot, id);
}

/*
 * insert_claims
 *		Write this walk's runs as claim rows.
 */
static void
insert_claims(Walk *w, CourierGroupShared *gs)
{
	Relation	rel;
	CourierInserter ins;
	ListCell   *lc;

	if (w->runs == NIL)
		return;
	rel = table_open(CourierRelid("claim"), RowExclusiveLock);
	CourierInserterBegin(&ins, rel);
	foreach(lc, w->runs)
	{
		Run		   *r = lfirst(lc);
		Datum		values[Natts_claim];
		bool		nulls[Natts_claim];
		Datum	   *elems;
		int			i;

		memset(nulls, 0, sizeof(nulls));
		values[0] = Int32GetDatum(w->group->group_id);
		values[1] = Int64GetDatum(r->lo);
		values[2] = Int64GetDatum(r->hi);
		if (r->npending > 0)
			values[3] = TimestampTzGetDatum(w->lease_until);
		else
			nulls[3] = true;
		values[4] = TimestampTzGetDatum(w->now);
		elems = palloc(sizeof(Datum) * Max(r->npending, 1));
		for (i = 0; i < r->npending; i++)
			elems[i] = Int64GetDatum(r->pending[i]);
		values[5] = PointerGetDatum(construct_array(elems, r->npending, INT8OID, 8,
													FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		CourierInserterInsert(&ins, values, nulls, Natts_claim);
		CourierRememberClaim(gs, w->group->group_id, w->topic->topic_id, r->lo);
	}
	CourierInserterEnd(&ins);
	table_close(rel, NoLock);
}

/*
 * rebuild
 *		Recompute a group's shared position from the tables (after a restart
 *		or crash, or when it was invalidated).  Caller holds the claim lock.
 */
static void
rebuild(CourierGroup *group, CourierGroupShared *gs)
{
	Relation	rel;
	Relation	idx;
	IndexScanDesc scan;
	TupleTableSlot *slot;
	SnapshotData dirty;
	ScanKeyData key;
	int64		low_water;
	int64		maxhi = 0;
	bool		isnull;
	int			ret;
	Oid			argtypes[1] = {INT4OID};
	Datum		args[1];

	/* low_water as committed: only committed maintenance moves it */
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	args[0] = Int32GetDatum(group->group_id);
	ret = SPI_execute_with_args("SELECT low_water FROM courier.group_meta WHERE group_id = $1",
								1, argtypes, args, NULL, false, 1);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("group \"%s\" does not exist", group->name)));
	low_water = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();

	/* the highest claim, including those of receivers still in progress */
	rel = table_open(CourierRelid("claim"), AccessShareLock);
	idx = index_open(CourierRelid("claim_pkey"), AccessShareLock);
	slot = table_slot_create(rel, NULL);
	InitDirtySnapshot(dirty);
	ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(group->group_id));
	scan = index_beginscan(rel, idx, &dirty, 1, 0);
	index_rescan(scan, &key, 1, NULL, 0);
	if (index_getnext_slot(scan, BackwardScanDirection, slot))
		maxhi = DatumGetInt64(slot_getattr(slot, 3, &isnull));
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	index_close(idx, NoLock);
	table_close(rel, NoLock);

	SpinLockAcquire(&gs->mutex);
	gs->frontier = Max(low_water, maxhi) + 1;
	gs->recheck = low_water + 1;
	gs->nholes = 0;
	gs->epoch++;
	gs->orphan_scan = group->ordered;	/* promotions pending at a crash are gone */
	/* on a standby, more WAL will change the tables: use this once only */
	gs->valid = !RecoveryInProgress();
	SpinLockRelease(&gs->mutex);
}

/*
 * CourierWalk
 *		Walk the log for a group.  WALK_CLAIM delivers up to max_messages
 *		messages and records claims; WALK_PEEK lists them; WALK_COUNT
 *		counts the backlog (of ids <= upto, if upto is not 0).  See the
 *		file header for the rules.
 */
void
CourierWalk(CourierTopic *topic, CourierGroup *group, CourierWalkMode mode,
			int max_messages, TimestampTz lease_until, int64 upto, CourierWalkResult *result)
{
	CourierGroupShared *gs = CourierGroupSharedGet(group->group_id);
	Walk		w;
	LogCursor	lc;
	uint64		epoch0;
	int			budget = (mode == WALK_COUNT) ? INT_MAX : courier_scan_limit;
	int			nextmark = 0;
	int			i;

	memset(&w, 0, sizeof(w));
	memset(result, 0, sizeof(CourierWalkResult));
	w.topic = topic;
	w.group = group;
	w.mode = mode;
	w.max_messages = max_messages;
	w.now = GetCurrentTimestamp();
	w.lease_until = lease_until;
	w.result = result;
	w.unrecorded = PG_INT64_MAX;

	if (mode == WALK_CLAIM)
		claim_lock(group->group_id, true);

	if (!gs->valid)
	{
		if (mode == WALK_CLAIM)
			rebuild(group, gs);
		else
		{
			claim_lock(group->group_id, true);
			if (!gs->valid)
				rebuild(group, gs);
			claim_lock(group->group_id, false);
		}
	}

	/* transactions we stepped over earlier that have ended: walk them again */
	if (mode == WALK_CLAIM)
	{
		CourierHole holes[COURIER_MAX_HOLES];
		int			nholes;
		bool		ended[COURIER_MAX_HOLES];
		bool		any = false;

		SpinLockAcquire(&gs->mutex);
		nholes = gs->nholes;
		memcpy(holes, gs->holes, sizeof(CourierHole) * nholes);
		SpinLockRelease(&gs->mutex);
		for (i = 0; i < nholes; i++)
		{
			ended[i] = !TransactionIdIsInProgress(holes[i].xid);
			any |= ended[i];
		}
		if (any)
		{
			SpinLockAcquire(&gs->mutex);
			for (i = 0; i < gs->nholes; i++)
			{
				int			j;

				for (j = 0; j < nholes; j++)
				{
					if (ended[j] && TransactionIdEquals(gs->holes[i].xid, holes[j].xid))
					{
						gs->recheck = Min(gs->recheck, gs->holes[i].min_id);
						gs->holes[i] = gs->holes[--gs->nholes];
						i--;
						break;
					}
				}
			}
			gs->epoch++;
			SpinLockRelease(&gs->mutex);
		}
	}

	SpinLockAcquire(&gs->mutex);
	w.pos = gs->recheck;
	w.frontier = gs->frontier;
	epoch0 = gs->epoch;
	SpinLockRelease(&gs->mutex);

	/* then what has been handed out, and who is still writing */
	w.marks = palloc(sizeof(CourierSenderMark) * CourierState->nmarks);
	w.nmarks = CourierReadAllocation(topic, &w.limit, NULL, w.marks);
	qsort(w.marks, w.nmarks, sizeof(CourierSenderMark), mark_cmp);
	if (upto > 0 && mode == WALK_COUNT)
		w.limit = Min(w.limit, upto + 1);

	log_open(&lc, topic);
	next_claim(&w, w.pos);

	while (w.pos < w.limit)
	{
		int64		stop;
		bool		have;

		if (mode != WALK_COUNT && result->ndelivered + w.heads >= max_messages)
			break;
		if (w.scanned >= budget)
		{
			result->more = true;
			break;
		}
		CHECK_FOR_INTERRUPTS();

		/* inside an existing claim: jump over it */
		if (w.claim_valid && w.pos >= w.claim_lo)
		{
			run_close(&w);
			w.pos = w.claim_hi + 1;
			next_claim(&w, w.pos);
			continue;
		}
		stop = w.claim_valid ? Min(w.claim_lo, w.limit) : w.limit;

		/* skip marks that lie entirely before pos */
		while (nextmark < w.nmarks && w.marks[nextmark].hi < w.pos)
			nextmark++;

		have = log_next(&lc, w.pos);
		if (nextmark < w.nmarks && w.marks[nextmark].lo < stop &&
			(!have || w.marks[nextmark].lo <= lc.id))
		{
			/* ids handed to a sender that may not have written them yet */
			CourierSenderMark *m = &w.marks[nextmark];

			run_extend(&w, m->lo - 1);
			add_hole(&w, m->xid, Max(m->lo, w.pos));
			w.pos = Max(w.pos, m->hi + 1);
			nextmark++;
			continue;
		}
		if (!have || lc.id >= stop)
		{
			/* nothing but aborted or unused ids up to stop */
			run_extend(&w, stop - 1);
			w.pos = stop;
			continue;
		}
		/* ids between pos and this entry have no row: gone for good */
		run_extend(&w, lc.id - 1);
		classify(&w, &lc);
		lc.have = false;
	}
	log_close(&lc);
	run_close(&w);
	if (w.lease_rel)
		table_close(w.lease_rel, NoLock);

	if (mode != WALK_CLAIM)
	{
		pfree(w.marks);
		return;
	}

	insert_claims(&w, gs);

	/* publish the new position */
	SpinLockAcquire(&gs->mutex);
	if (gs->valid && gs->key.group_id == group->group_id)
	{
		int64		newr = Min(w.pos, w.unrecorded);

		for (i = 0; i < w.nholes; i++)
		{
			int			j;
			bool		found = false;

			for (j = 0; j < gs->nholes; j++)
			{
				if (TransactionIdEquals(gs->holes[j].xid, w.holes[i].xid))
				{
					gs->holes[j].min_id = Min(gs->holes[j].min_id, w.holes[i].min_id);
					found = true;
					break;
				}
			}
			if (!found)
			{
				if (gs->nholes < COURIER_MAX_HOLES)
					gs->holes[gs->nholes++] = w.holes[i];
				else
					newr = Min(newr, w.holes[i].min_id);
			}
		}
		if (gs->epoch != epoch0)
			newr = Min(newr, gs->recheck);
		gs->recheck = newr;
		gs->frontier = Max(gs->frontier, w.pos);
	}
	SpinLockRelease(&gs->mutex);

	claim_lock(group->group_id, false);
	pfree(w.marks);
	result->more |= (w.pos < w.limit);
}
