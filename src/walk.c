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
 *	- still running: step over it and remember the span of ids that
 *	  transaction was writing (a "hole"); when the transaction ends, the
 *	  walk comes back for exactly that span.  A transaction found running
 *	  stays so until its hole is settled, even if it commits while we walk
 *	  (seen_running): the dirty snapshot answers row by row.
 *
 * "Never inserted" is decided with the senders' allocation marks (send.c):
 * the walker reads next_id and the marks under the topic's LWLock before it
 * looks at the log, so an id below next_id that has no row and no mark can
 * no longer appear.  It then takes in invalidation messages and checks that
 * its segment list reaches the segment senders use: never conclude absence
 * from a stale view (DESIGN.md section 5).
 *
 * Claims and the group position
 * -----------------------------
 * What a group has been handed is durable: each walk inserts claim rows
 * (courier.claim) that cover contiguous id ranges; a claim lists the ids it
 * delivered (pending until acked, at most COURIER_CLAIM_PENDING per row, so
 * an ack costs the same whatever the batch) and passes over the rest.
 * Claims of a group never overlap -- checked before every claim is written
 * (claim_overlap_check, as an exclusion constraint would), so a logic error
 * here becomes a clean error instead of a message handed out twice.  Claims die with the receive's transaction
 * if it rolls back, which makes their ids receivable again.
 *
 * Shared memory only caches where to look (CourierGroupShared):
 *	P (frontier)  no id >= P has been looked at, and no claim reaches P;
 *	holes         spans of ids that transactions still running were
 *				  writing when a walk stepped over them;
 *	rechecks      spans to walk again: holes whose transaction ended, and
 *				  claims that were rolled back.
 * Invariant: every id below P is covered by a claim (committed, or of a
 * transaction still running), or is at most the group's low_water (or the
 * shared position's fold, which runs ahead of low_water while the
 * compaction that moved it commits), or lies
 * in a hole or recheck span -- or in the span of a prepared transaction's
 * claims recorded in the prepared-claims table.  A walk therefore starts
 * with the rechecks (jumping over claims inside them), then continues from
 * P.  Its cost depends on the spans it walks and the messages it finds,
 * never on how many producer transactions are open or how many claims lie
 * behind it (issue 7 section 3).
 *
 * Who adds rechecks: a walk, for holes whose transaction has ended; the
 * end-of-transaction callbacks of a receive that rolls back (xact.c); and a
 * walk that finds, in the prepared-claims table, that a prepared
 * transaction's claims were rolled back (ROLLBACK PREPARED runs no callback
 * of ours).  Rebuilding the position after a restart (or on a promoted
 * standby) needs nothing but the tables: P is past the highest claim and
 * the whole range above low_water is one recheck; claims found there that
 * belong to prepared transactions are entered in the prepared-claims table.
 *
 * Delayed messages
 * ----------------
 * A claiming walk that meets a message not due yet leaves its id uncovered
 * by any claim and records it in a *deferred span* (CourierDeferred: ids
 * [lo, hi], due between due_min and due_max), kept in the group's shared
 * position beside the rechecks.  Once due_min has passed, the next claiming
 * walk turns the span into a recheck (settle_deferred) and hands the
 * messages out like first deliveries: a burst of messages due at once goes
 * out in claims of up to COURIER_CLAIM_PENDING ids, with no per-message row.
 * Those still not due are deferred again.  The invariant above gains a
 * case: an id below P may also lie in a deferred span.  A span holds only
 * messages due within COURIER_DEFER_WINDOW of each other (so it is walked
 * again at most a few times), a group has at most COURIER_MAX_DEFERRED of
 * them, and ordered groups never defer: when there is no room, the message
 * waits in the lease table as before (divert).  Nothing is lost with the
 * shared memory: an uncovered id stops compaction (low_water never passes
 * it), so a rebuild's recheck above low_water finds it again.
 *
 * Locking: a walk that claims holds the group's claim lock (a heavyweight
 * lock on COURIER_LOCK_CLAIM) from before it reads the position until its
 * claims are inserted and the position updated; it then releases the lock
 * without waiting for commit, so receivers in long transactions do not
 * block each other.  Compaction (maint.c) deletes and merges finished
 * claims without the lock -- a walk's dirty snapshot still sees a claim
 * whose deletion is in progress, so nothing it jumps over changes under it
 * -- and takes the lock only to move low_water and tell the position
 * (CourierGroupFolded), releasing it before it commits.  From then on no
 * walk looks at or below the fold, committed or not: every id there lies
 * in a finished, committed claim that compaction verified (if it rolls
 * back, the claim is back).  A rebuild starts above it too (the fold, and
 * low_water read with a dirty snapshot, which outlives a restart while the
 * compaction stays prepared), so a walk never meets an id whose claim went
 * away with a compaction it did not know of.  Seek, purge and drop hold the
 * lock until commit.  Under the claim lock nobody waits for a claim or
 * lease row lock.  The group_meta row is locked only under the claim lock
 * (compaction, drop_behind, seek, purge, group DDL) or under the group's
 * existence lock held exclusively (pause, resume), which keeps maintenance
 * out; a holder of the claim lock that waits for that row waits for a
 * compaction that has given the claim lock back and is committing, since
 * the others keep the claim lock until they commit.  Walks that only read
 * (peek, the counts) do not take the claim lock: a fold bumps its group's
 * fold_gen, and a reader that saw it move walks again (CourierWalk).  The
 * group's LWLock only makes each update of the shared arrays atomic
 * (callbacks of other backends add rechecks at any time); no other lock is
 * taken while holding it except in settle_prepared, which takes the
 * prepared-claims lock after it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/relscan.h"
#include "access/stratnum.h"
#include "access/subtrans.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/transam.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "storage/procarray.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "pg_courier.h"

/* A contiguous range of ids this walk covers with one claim row */
typedef struct Run
{
	int64		lo;
	int64		hi;
	int			npending;
	int64		pending[COURIER_CLAIM_PENDING];
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
	TransactionId xid;			/* in-progress inserter (top level), or invalid */
	bool		exhausted;		/* no more entries in any segment */
} LogCursor;

/* Ordered groups: per-key state found during one walk */
typedef struct KeyEntry
{
	char		okey[COURIER_MAX_KEY_LEN + 1];
	bool		any;			/* the key has lease rows (ours included) */
} KeyEntry;

typedef struct Walk
{
	CourierTopic *topic;
	CourierGroup *group;
	CourierWalkMode mode;
	int			max_messages;
	TimestampTz now;
	TimestampTz lease_until;
	TimestampTz lease_base;		/* the time lease_until counts from */
	int64		limit;			/* first id not handed out when we started */
	int			nmarks;
	CourierSenderMark *marks;	/* sorted by lo */
	int			nextmark;
	int64		frontier;		/* P when we started */
	bool		recheck;		/* walking a recheck span (not the frontier) */
	CourierGroupShared *gs;		/* the group's shared position */
	uint64		gen;			/* its recheck generation when we started */

	/* runs of this walk */
	Run		   *cur;
	List	   *runs;

	/* holes found */
	int			nholes;
	int			maxholes;
	CourierSpan *holes;

	/*
	 * Transactions the group's position holds holes of, still running when
	 * a claiming walk settled the holes (see seen_running); and the last
	 * subtransaction whose top-level transaction we looked up, with it.
	 */
	int			nopen;
	TransactionId *open;
	TransactionId last_xmin;
	TransactionId last_top;

	/* claims of prepared transactions found in recheck spans */
	List	   *prepared;

	/* delayed messages left for later (see "Delayed messages" above) */
	int			ndefer;
	int			defer_room;		/* spans the group's shared array has room for */
	CourierDeferred defer[COURIER_MAX_DEFERRED];
	int			nshared_defer;	/* the group's spans when we started */
	CourierDeferred shared_defer[COURIER_MAX_DEFERRED];

	/* next existing claim at or after pos */
	bool		claim_valid;
	int64		claim_lo;
	int64		claim_hi;
	TransactionId claim_xid;	/* its inserter, if still in progress */

	int			scanned;
	int			heads;			/* ordered groups: keyed messages that became due heads */
	bool		stopped;		/* max_messages or the scan budget reached */
	int64		pos;
	LogCursor	lc;
	Relation	lease_rel;
	HTAB	   *keys;			/* ordered groups: keys met so far */
	MemoryContext result_cxt;	/* where deliveries go */
	CourierWalkResult *result;
} Walk;

static void log_open(LogCursor *lc, CourierTopic *topic);
static void log_open_segment(LogCursor *lc, int segidx, int64 pos);
static bool log_seek(LogCursor *lc, int64 pos);
static bool log_next(LogCursor *lc, int64 pos);
static void log_close_segment(LogCursor *lc);
static void next_claim(Walk *w, int64 pos);
static void run_extend(Walk *w, int64 upto);
static void run_close(Walk *w);
static void add_hole(Walk *w, TransactionId xid, int64 lo, int64 hi);
static void classify(Walk *w);
static void deliver(Walk *w, TupleTableSlot *slot, int64 id);
static void divert(Walk *w, TupleTableSlot *slot, int64 id, TimestampTz visible_at,
				   bool keyed);
static KeyEntry *key_entry(Walk *w, const char *okey);
static void walk_span(Walk *w, int64 lo, int64 hi);
static void rebuild(CourierGroup *group, CourierGroupShared *gs);
static void walk_once(CourierTopic *topic, CourierGroup *group, CourierWalkMode mode,
					  int max_messages, TimestampTz lease_until, int64 upto,
					  CourierWalkResult *result);
static int64 read_low_water(int32 group_id, const char *name);
static void settle_holes(CourierGroupShared *gs);
static void settle_prepared(int32 group_id, bool give_back);
static bool prepared_rolled_back_below(int32 group_id, int64 id);
static void note_prepared_claim(Walk *w, TransactionId xid, int64 lo, int64 hi);
static int	mark_cmp(const void *a, const void *b);
static int	span_cmp(const void *a, const void *b);
static int	normalize_spans(CourierSpan *spans, int n);
static void claim_lock(int32 group_id, bool acquire);
static void insert_claims(Walk *w);
static void publish(Walk *w, CourierGroupShared *gs, CourierSpan *done, int ndone,
					bool frontier_done, uint64 gen);
static void add_span_locked(CourierGroupShared *gs, int64 lo, int64 hi);
static bool defer(Walk *w, int64 id, TimestampTz due);
static int	settle_deferred(Walk *w, CourierGroupShared *gs, TimestampTz now);
static void add_deferred_locked(CourierGroupShared *gs, const CourierDeferred *d);

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
 * CourierClaimLock / CourierClaimUnlock
 *		Exported for maintenance: drop_behind keeps the lock until commit,
 *		compaction releases it once the position knows its fold.
 */
void
CourierClaimLock(int32 group_id)
{
	claim_lock(group_id, true);
}

void
CourierClaimUnlock(int32 group_id)
{
	claim_lock(group_id, false);
}

/*
 * mark_cmp / span_cmp
 *		qsort comparators: marks and spans by first id.
 */
static int
mark_cmp(const void *a, const void *b)
{
	const CourierSenderMark *ma = a;
	const CourierSenderMark *mb = b;

	return (ma->lo > mb->lo) - (ma->lo < mb->lo);
}

static int
span_cmp(const void *a, const void *b)
{
	const CourierSpan *sa = a;
	const CourierSpan *sb = b;

	return (sa->lo > sb->lo) - (sa->lo < sb->lo);
}

/*
 * normalize_spans
 *		Sort spans and merge overlapping or adjacent ones (in place).
 *		Returns the new count.
 */
static int
normalize_spans(CourierSpan *spans, int n)
{
	int			i,
				j = 0;

	if (n <= 1)
		return n;
	qsort(spans, n, sizeof(CourierSpan), span_cmp);
	for (i = 1; i < n; i++)
	{
		if (spans[i].lo <= spans[j].hi + 1)
			spans[j].hi = Max(spans[j].hi, spans[i].hi);
		else
			spans[++j] = spans[i];
	}
	return j + 1;
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
		CourierCloseSegment(lc->rel, lc->idx);
		lc->scan = NULL;
	}
	lc->have = false;
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
	lc->exhausted = false;
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
 *		Begin an index scan of segment segidx at ids >= pos.  A segment that
 *		retention dropped meanwhile reads as empty (every group is past it).
 */
static void
log_open_segment(LogCursor *lc, int segidx, int64 pos)
{
	CourierSegment *seg = &lc->topic->segments[segidx];

	lc->segidx = segidx;
	lc->last = pos - 1;
	lc->have = false;
	if (!CourierOpenSegment(seg, AccessShareLock, &lc->rel, &lc->idx))
	{
		lc->scan = NULL;
		return;
	}
	lc->slot = table_slot_create(lc->rel, NULL);
	InitDirtySnapshot(lc->dirty);
	lc->scan = index_beginscan(lc->rel, lc->idx, &lc->dirty, 1, 0);
	ScanKeyInit(&lc->key, 1, BTGreaterEqualStrategyNumber, F_INT8GE, Int64GetDatum(pos));
	index_rescan(lc->scan, &lc->key, 1, NULL, 0);
}

/*
 * log_next
 *		Position the cursor on the first log entry with id >= pos whose
 *		row is committed or still being written (aborted rows are not
 *		returned).  Returns false when there is none.  The entry stays in
 *		lc->slot until the next call.
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
	/* a jump backwards (next span) or a long jump: seek instead of reading */
	if (lc->segidx < 0 || pos <= lc->last || pos > lc->last + 64)
	{
		if (!log_seek(lc, pos))
			return false;
	}
	else if (lc->exhausted)
		return false;

	for (;;)
	{
		while (lc->scan != NULL &&
			   index_getnext_slot(lc->scan, ForwardScanDirection, lc->slot))
		{
			bool		isnull;
			int64		id = DatumGetInt64(slot_getattr(lc->slot, Anum_seg_id, &isnull));
			TransactionId xid = lc->dirty.xmin;

			lc->last = id;
			if (id < pos)
				continue;
			if (TransactionIdIsValid(xid))
			{
				/* holes are keyed by top-level transaction */
				xid = SubTransGetTopmostTransaction(xid);
			}
			else
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
 *		their transactions count.  At or above the frontier there are none.
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
	idx = CourierIndexOpen("claim_pkey", AccessShareLock);
	slot = table_slot_create(rel, NULL);
	InitDirtySnapshot(dirty);

	/* the claim starting at or before pos, if it reaches pos */
	ScanKeyInit(&keys[0], 1, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(w->group->group_id));
	ScanKeyInit(&keys[1], 2, BTLessEqualStrategyNumber, F_INT8LE, Int64GetDatum(pos));
	scan = index_beginscan(rel, idx, &dirty, 2, 0);
	index_rescan(scan, keys, 2, NULL, 0);
	if (index_getnext_slot(scan, BackwardScanDirection, slot))
	{
		int64		lo = DatumGetInt64(slot_getattr(slot, Anum_claim_lo, &isnull));
		int64		hi = DatumGetInt64(slot_getattr(slot, Anum_claim_hi, &isnull));

		if (hi >= pos)
		{
			w->claim_valid = true;
			w->claim_lo = lo;
			w->claim_hi = hi;
			w->claim_xid = dirty.xmin;
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
			w->claim_lo = DatumGetInt64(slot_getattr(slot, Anum_claim_lo, &isnull));
			w->claim_hi = DatumGetInt64(slot_getattr(slot, Anum_claim_hi, &isnull));
			w->claim_xid = dirty.xmin;
		}
		index_endscan(scan);
	}

	ExecDropSingleTupleTableSlot(slot);
	index_close(idx, NoLock);
	table_close(rel, NoLock);
}

/*
 * run_extend
 *		Cover ids from pos up to and including upto with the current run.
 */
static void
run_extend(Walk *w, int64 upto)
{
	if (upto < w->pos)
		return;
	if (w->cur == NULL)
	{
		w->cur = palloc(sizeof(Run));
		w->cur->lo = w->pos;
		w->cur->npending = 0;
	}
	w->cur->hi = upto;
}

/*
 * run_close
 *		End the current run (if any) and keep it for insert_claims.
 */
static void
run_close(Walk *w)
{
	if (w->cur != NULL)
	{
		w->runs = lappend(w->runs, w->cur);
		w->cur = NULL;
	}
}

/*
 * add_hole
 *		Step over ids [lo, hi] that transaction xid is still writing.
 */
static void
add_hole(Walk *w, TransactionId xid, int64 lo, int64 hi)
{
	int			i;

	run_close(w);
	for (i = 0; i < w->nholes; i++)
	{
		if (TransactionIdEquals(w->holes[i].xid, xid))
		{
			w->holes[i].lo = Min(w->holes[i].lo, lo);
			w->holes[i].hi = Max(w->holes[i].hi, hi);
			return;
		}
	}
	if (w->nholes == w->maxholes)
	{
		w->maxholes = w->maxholes ? w->maxholes * 2 : 8;
		w->holes = w->holes ? repalloc(w->holes, sizeof(CourierSpan) * w->maxholes)
			: palloc(sizeof(CourierSpan) * w->maxholes);
	}
	w->holes[w->nholes].xid = xid;
	w->holes[w->nholes].lo = lo;
	w->holes[w->nholes].hi = hi;
	w->nholes++;
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
	MemoryContext old;

	if (w->mode == WALK_COUNT)
	{
		res->backlog++;
		return;
	}
	old = MemoryContextSwitchTo(w->result_cxt);
	if (res->ndelivered == 0)
		res->delivered = palloc(sizeof(CourierDelivery) * Max(w->max_messages, 1));
	d = &res->delivered[res->ndelivered++];
	CourierPayloadFromSlot(slot, &d->msg);
	d->attempt = 1;
	d->lease_until = w->lease_until;
	d->delivered_at = w->now;
	MemoryContextSwitchTo(old);
	if (w->mode == WALK_CLAIM)
	{
		Run		   *r = w->cur;

		Assert(r != NULL && r->hi >= id);
		r->pending[r->npending++] = id;
		/* an ack rewrites one claim row: keep them small */
		if (r->npending == COURIER_CLAIM_PENDING)
			run_close(w);
	}
}

/*
 * key_entry
 *		Ordered groups: whether key okey has lease rows -- rows of receivers
 *		still in their transactions, and our own, included.  Looked up in the
 *		lease table the first time a walk meets the key; after that our own
 *		rows answer.
 *
 *		When the key has rows, what we queue behind them needs someone to
 *		promote it once the head goes.  The head's remover looks at the key
 *		after it deleted the head, under the key's lock, so it sees our
 *		queued row (CourierPromoteNext); but the head may already be going,
 *		or be written by a transaction that may roll back: then look again
 *		once that transaction ends.  A key with queued rows and no head at
 *		all: look again once we end -- at once, in this transaction, for our
 *		own next call (CourierRunPromotions treats our own xid as ended), so
 *		the receive under way can still hand a message out.
 *
 *		A claiming walk returns with the key's lock held (see divert).
 */
static KeyEntry *
key_entry(Walk *w, const char *okey)
{
	KeyEntry   *e;
	bool		found;
	CourierKeyRows k;

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
	if (w->lease_rel == NULL)
		w->lease_rel = table_open(CourierRelid("lease"),
								  w->mode == WALK_CLAIM ? RowExclusiveLock : AccessShareLock);
	e = hash_search(w->keys, okey, HASH_ENTER, &found);
	if (found)
		return e;

	if (w->mode == WALK_CLAIM)
		CourierKeyLock(w->group->group_id, okey, true);
	CourierKeyLook(w->lease_rel, w->group->group_id, okey, false, &k);
	e->any = k.any;
	if (k.any && w->mode == WALK_CLAIM)
	{
		if (!k.head)
			CourierPromoteLater(w->group->group_id, okey, GetTopTransactionId(), 0);
		else if (TransactionIdIsValid(k.head_xid))
			CourierPromoteLater(w->group->group_id, okey, k.head_xid, 0);
	}
	return e;
}

/*
 * late_recheck_below
 *		Has a recheck span starting below id been added to the group since
 *		this walk read its position?  A receive that rolls back while we
 *		walk gives its ids back that way (xact.c), after its head rows have
 *		already vanished from the lease table: an earlier message of a key
 *		that now looks empty may be among those ids.
 */
static bool
late_recheck_below(Walk *w, int64 id)
{
	CourierGroupShared *gs = w->gs;
	bool		late = false;
	int			i;

	if (gs == NULL)
		return false;
	LWLockAcquire(&gs->lock, LW_SHARED);
	if (gs->valid && gs->key.group_id == w->group->group_id)
		for (i = 0; i < gs->nrechecks && !late; i++)
			late = gs->rechecks[i].gen > w->gen && gs->rechecks[i].lo < id;
	LWLockRelease(&gs->lock);
	return late || prepared_rolled_back_below(w->group->group_id, id);
}

/*
 * prepared_rolled_back_below
 *		Has a prepared transaction with claims of the group below id been
 *		rolled back since this walk settled the prepared claims?  ROLLBACK
 *		PREPARED runs no callback of ours, so nothing adds its span as a
 *		recheck while we walk (late_recheck_below's other case): its head
 *		and queued rows just vanish, and a later message of their key looked
 *		like the first -- handed out before the ones the rollback gave back
 *		(review 40).  If so, settle the prepared claims now (the span
 *		becomes a recheck, so the group's R stays below it and the queued
 *		message is promoted only after those ids were walked again).
 */
static bool
prepared_rolled_back_below(int32 group_id, int64 id)
{
	Oid			instance = CourierInstanceId();
	TransactionId *xids;
	int			n = 0;
	int			i;
	bool		rolled_back = false;

	xids = palloc(sizeof(TransactionId) * Max(CourierState->nprepared, 1));
	LWLockAcquire(CourierPreparedLock(), LW_SHARED);
	for (i = 0; i < CourierState->nprepared; i++)
	{
		CourierPreparedClaim *p = &CourierState->prepared[i];

		if (p->dbid == MyDatabaseId && p->instance == instance && p->group_id == group_id &&
			p->lo < id)
			xids[n++] = p->xid;
	}
	LWLockRelease(CourierPreparedLock());
	for (i = 0; i < n && !rolled_back; i++)
		rolled_back = !TransactionIdIsInProgress(xids[i]) && !TransactionIdDidCommit(xids[i]);
	pfree(xids);
	if (rolled_back)
		settle_prepared(group_id, true);
	return rolled_back;
}

/*
 * divert
 *		Hand a message over to the per-message lease table: a delayed
 *		message waits there for its time, and an ordered group queues its
 *		keyed messages there.  A keyed message becomes the head of its key
 *		('w') when the key has no rows at all; otherwise it queues ('q')
 *		until the messages before it are finished (lease.c) -- even behind a
 *		head with a larger id: a message whose transaction committed after
 *		a later message of its key became the head comes after that head (a
 *		key has one head, and a head is never taken back).  The look and
 *		the insert of the first message of a key happen under the key's lock
 *		(CourierKeyLock), so that nobody else gives the key a head in
 *		between.  Peek lists what a receive would hand out at once: a due
 *		message that would become the head of its key.
 */
static void
divert(Walk *w, TupleTableSlot *slot, int64 id, TimestampTz visible_at, bool keyed)
{
	Datum		values[Natts_lease];
	bool		nulls[Natts_lease];
	char	   *okey = NULL;
	char		state = 'w';
	bool		locked = false;
	bool		promote_later = false;

	if (w->mode == WALK_COUNT)
	{
		if (visible_at > w->now)
			w->result->delayed++;
		else
			w->result->backlog++;
		return;
	}

	if (keyed)
	{
		bool		isnull;
		Datum		keys = slot_getattr(slot, Anum_seg_keys, &isnull);
		bool		known;
		KeyEntry   *e;

		okey = CourierOrderingKey(keys, isnull);
		known = w->keys != NULL && hash_search(w->keys, okey, HASH_FIND, NULL) != NULL;
		e = key_entry(w, okey);
		locked = !known && w->mode == WALK_CLAIM;
		if (e->any)
		{
			state = 'q';
			visible_at = DT_NOEND;	/* out of every due scan until promoted */
		}
		else if (w->mode == WALK_CLAIM && late_recheck_below(w, id))
		{
			/*
			 * The key looks empty, but a receive that held an earlier
			 * message of it may have rolled back while we walked: queue,
			 * and promote once the group has walked those ids again
			 * (CourierPromoteLater with our id, lease.c).
			 */
			e->any = true;
			state = 'q';
			visible_at = DT_NOEND;
			promote_later = true;
		}
		else
		{
			e->any = true;
			/* a due head is handed out by this very receive */
			if (visible_at <= w->now)
				w->heads++;
		}
	}

	if (w->mode == WALK_PEEK)
	{
		if (state == 'w' && visible_at <= w->now)
			deliver(w, slot, id);
		return;
	}

	if (w->lease_rel == NULL)
		w->lease_rel = table_open(CourierRelid("lease"), RowExclusiveLock);
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
	/* our row is written: whoever looks at the key next sees it */
	if (locked)
		CourierKeyLock(w->group->group_id, okey, false);
	if (promote_later)
		CourierPromoteLater(w->group->group_id, okey, InvalidTransactionId, id);
	w->result->diverted++;
	CourierDueAtCommit(w->topic->topic_id, w->group->group_id, visible_at);
}

/*
 * defer
 *		A claiming walk met a message that is not due until due: leave its
 *		id uncovered and put it in this walk's last deferred span if it fits
 *		there (due within COURIER_DEFER_WINDOW of the span's other messages,
 *		and no far jump in ids, which a later walk would have to cross),
 *		else in a new one.  Returns false when the group has no room for
 *		another span: the caller parks the message in the lease table.
 */
static bool
defer(Walk *w, int64 id, TimestampTz due)
{
	CourierDeferred *d = (w->ndefer > 0) ? &w->defer[w->ndefer - 1] : NULL;
	int			i;

	/*
	 * Already in one of the group's spans that comes due no later (a hole's
	 * recheck walks it again): leave it there, once.
	 */
	for (i = 0; i < w->nshared_defer; i++)
	{
		CourierDeferred *s = &w->shared_defer[i];

		if (id >= s->lo && id <= s->hi && due >= s->due_min)
		{
			run_close(w);
			return true;
		}
	}

	if (d != NULL && id - d->hi <= COURIER_CLAIM_PENDING * 8 &&
		Max(d->due_max, due) - Min(d->due_min, due) <= COURIER_DEFER_WINDOW)
	{
		d->hi = id;
		d->due_min = Min(d->due_min, due);
		d->due_max = Max(d->due_max, due);
		d->n++;
	}
	else if (w->ndefer < w->defer_room)
	{
		d = &w->defer[w->ndefer++];
		d->lo = d->hi = id;
		d->due_min = d->due_max = due;
		d->n = 1;
	}
	else
		return false;
	run_close(w);				/* no claim may cover it */
	return true;
}

/*
 * seen_running
 *		The top-level transaction of a committed log row if this walk has
 *		to treat the row as still being written, else InvalidTransactionId.
 *
 *		A dirty snapshot answers row by row, so the transaction it found
 *		running at one row may have committed by the next: a walk could step
 *		over a transaction's first messages (a hole) and meet its later ones
 *		committed.  In an ordered group a later message of a key would then
 *		become the key's head while an earlier one of the same transaction
 *		waits in the hole, and a head is never taken back (found by the chaos
 *		test: message 12 of key k14 handed out before message 6, both of one
 *		transaction, test/specs/ordered_walk_commit.spec).  So a transaction
 *		stays "still running" for the rest of the walk once the walk has
 *		stepped over it: its later rows join its hole, and the group walks
 *		them again, in id order, once the hole is settled.  The same holds
 *		for the holes of earlier walks: a claiming walk leaves a hole whose
 *		transaction was still running when it settled the holes (one snapshot
 *		for all of them) for a later walk, so it must not hand out what it
 *		meets of that transaction either (w->open).
 *
 *		Only an inserter at or after TransactionXmin can be such a
 *		transaction or one of its subtransactions: it was running during
 *		this walk, hence at or after our first snapshot, and a
 *		subtransaction's xid follows its parent's.  pg_subtrans still knows
 *		those.  The last lookup is kept: consecutive rows mostly come from
 *		one sender.
 *
 *		Only ordered groups need it: elsewhere, handing out a transaction's
 *		later messages before the ones in its hole breaks no promise (the
 *		hole is still walked again), and a pg_subtrans lookup per row of a
 *		busy topic is not free.
 */
static TransactionId
seen_running(Walk *w, TupleTableSlot *slot)
{
	HeapTuple	tup;
	TransactionId xmin;
	TransactionId top;
	bool		older = false;
	int			i;

	if (!w->group->ordered || (w->nholes == 0 && w->nopen == 0))
		return InvalidTransactionId;
	tup = ExecFetchSlotHeapTuple(slot, false, NULL);
	xmin = HeapTupleHeaderGetRawXmin(tup->t_data);
	if (!TransactionIdIsNormal(xmin) || !TransactionIdIsValid(TransactionXmin) ||
		TransactionIdPrecedes(xmin, TransactionXmin))
		return InvalidTransactionId;

	/* a top-level inserter (the usual case): one of them or not */
	for (i = 0; i < w->nholes; i++)
	{
		if (TransactionIdEquals(w->holes[i].xid, xmin))
			return xmin;
		older |= TransactionIdPrecedes(w->holes[i].xid, xmin);
	}
	for (i = 0; i < w->nopen; i++)
	{
		if (TransactionIdEquals(w->open[i], xmin))
			return xmin;
		older |= TransactionIdPrecedes(w->open[i], xmin);
	}
	/* a subtransaction belongs to a transaction older than itself */
	if (!older)
		return InvalidTransactionId;
	if (!TransactionIdEquals(xmin, w->last_xmin))
	{
		w->last_top = SubTransGetTopmostTransaction(xmin);
		w->last_xmin = xmin;
	}
	top = w->last_top;
	if (TransactionIdEquals(top, xmin))
		return InvalidTransactionId;
	for (i = 0; i < w->nholes; i++)
		if (TransactionIdEquals(w->holes[i].xid, top))
			return top;
	for (i = 0; i < w->nopen; i++)
		if (TransactionIdEquals(w->open[i], top))
			return top;
	return InvalidTransactionId;
}

/*
 * classify
 *		Decide what the entry under the cursor means for the group.
 */
static void
classify(Walk *w)
{
	LogCursor  *lc = &w->lc;
	TupleTableSlot *slot = lc->slot;
	int64		id = lc->id;
	CourierGroup *group = w->group;
	bool		isnull;
	Datum		d;

	w->scanned++;
	if (!TransactionIdIsValid(lc->xid))
		lc->xid = seen_running(w, slot);
	if (TransactionIdIsValid(lc->xid))
	{
		/* still being written: come back when its transaction ends */
		add_hole(w, lc->xid, id, id);
		w->pos = id + 1;
		return;
	}

	if (group->filter != NULL)
	{
		Datum		headers = slot_getattr(slot, Anum_seg_headers, &isnull);
		Datum		tag;
		bool		tagnull;

		if (isnull)
			headers = (Datum) 0;
		tag = slot_getattr(slot, Anum_seg_tag, &tagnull);
		if (CourierEvalFilter(group->filter, headers, tagnull ? (Datum) 0 : tag) != CF_TRUE)
		{
			/* not for this group: pass over it */
			run_extend(w, id);
			w->pos = id + 1;
			return;
		}
	}

	d = slot_getattr(slot, Anum_seg_deliver_at, &isnull);
	if (!isnull && DatumGetTimestampTz(d) > w->now && w->mode == WALK_CLAIM &&
		!group->ordered && defer(w, id, DatumGetTimestampTz(d)))
	{
		/* not due yet: uncovered, in a deferred span */
		w->pos = id + 1;
		return;
	}

	run_extend(w, id);
	w->pos = id + 1;

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
 * note_prepared_claim
 *		A recheck walk found a claim whose transaction is still in progress.
 *		If that transaction is prepared (no backend owns it: its callbacks
 *		will never run), remember its span, so that a ROLLBACK PREPARED
 *		gives the ids back (settle_prepared).
 */
static void
note_prepared_claim(Walk *w, TransactionId xid, int64 lo, int64 hi)
{
	TransactionId top;
	CourierSpan *s;

	if (!TransactionIdIsValid(xid) || w->mode != WALK_CLAIM)
		return;
	top = SubTransGetTopmostTransaction(xid);
	if (TransactionIdIsCurrentTransactionId(top) || BackendXidGetPid(top) != 0)
		return;					/* a live backend: its callbacks will run */
	s = palloc(sizeof(CourierSpan));
	s->xid = xid;
	s->lo = lo;
	s->hi = hi;
	w->prepared = lappend(w->prepared, s);
}

/*
 * walk_span
 *		Walk ids [lo, hi]: jump over claims, classify the rest.  Stops early
 *		(w->stopped) at max_messages or at the scan budget, with w->pos at
 *		the first id not looked at.
 */
static void
walk_span(Walk *w, int64 lo, int64 hi)
{
	int			budget = (w->mode == WALK_COUNT) ? INT_MAX : courier_scan_limit;

	w->pos = lo;
	next_claim(w, lo);
	w->nextmark = 0;

	while (w->pos <= hi)
	{
		int64		stop;
		bool		have;

		if (w->mode != WALK_COUNT &&
			w->result->ndelivered + w->heads >= w->max_messages)
		{
			w->stopped = true;
			break;
		}
		if (w->scanned >= budget)
		{
			w->stopped = true;
			w->result->more = true;
			break;
		}
		CHECK_FOR_INTERRUPTS();

		/* inside an existing claim: jump over it */
		if (w->claim_valid && w->pos >= w->claim_lo)
		{
			run_close(w);
			if (TransactionIdIsValid(w->claim_xid))
				note_prepared_claim(w, w->claim_xid, w->claim_lo, w->claim_hi);
			w->pos = w->claim_hi + 1;
			next_claim(w, w->pos);
			continue;
		}
		stop = hi + 1;
		if (w->claim_valid)
			stop = Min(stop, w->claim_lo);

		/* skip marks that lie entirely before pos */
		while (w->nextmark < w->nmarks && w->marks[w->nextmark].hi < w->pos)
			w->nextmark++;

		have = log_next(&w->lc, w->pos);
		if (w->nextmark < w->nmarks && w->marks[w->nextmark].lo < stop &&
			(!have || w->marks[w->nextmark].lo <= w->lc.id))
		{
			/* ids handed to a sender that may not have written them yet */
			CourierSenderMark *m = &w->marks[w->nextmark];
			int64		mlo = Max(m->lo, w->pos);
			int64		mhi = Min(m->hi, stop - 1);

			run_extend(w, mlo - 1);
			add_hole(w, m->xid, mlo, mhi);
			w->pos = mhi + 1;
			if (m->hi <= mhi)
				w->nextmark++;
			continue;
		}
		if (!have || w->lc.id >= stop)
		{
			/* nothing but aborted or unused ids up to stop */
			run_extend(w, stop - 1);
			w->pos = stop;
			continue;
		}
		/* ids between pos and this entry have no row: gone for good */
		run_extend(w, w->lc.id - 1);
		classify(w);
		w->lc.have = false;
	}
	run_close(w);
}

/*
 * claim_overlap_check
 *		Claims of a group never overlap: refuse to write [lo, hi] if a claim
 *		of the group already covers one of its ids.  Since claims never
 *		overlap, the one that could is the claim with the greatest start
 *		<= hi (one backward probe of the primary key); it must end before
 *		lo.
 *
 *		This is what an exclusion constraint on (group_id, int8range(lo,
 *		hi)) did until 0.2.0's W4 profiles: its GiST index cost about a fifth
 *		of a receive + ack's CPU and 67 bytes of WAL per message.  It reads
 *		like one: with a dirty snapshot, which sees claims other
 *		transactions are still writing (walks release the claim lock before
 *		they commit) and our own; and a claim in the way that a transaction
 *		still running is inserting or deleting is waited for, then we look
 *		again.  Only walks create coverage, under the group's claim lock;
 *		compaction's merges only join adjacent claims of its own, and seek,
 *		purge and drop only delete.
 */
static void
claim_overlap_check(Relation rel, Relation pkey, int32 group_id, int64 lo, int64 hi)
{
	for (;;)
	{
		SnapshotData dirty;
		ScanKeyData keys[2];
		IndexScanDesc scan;
		TupleTableSlot *slot;
		TransactionId wait = InvalidTransactionId;
		bool		overlap = false;
		int64		olo = 0,
					ohi = 0;

		InitDirtySnapshot(dirty);
		ScanKeyInit(&keys[0], 1, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(group_id));
		ScanKeyInit(&keys[1], 2, BTLessEqualStrategyNumber, F_INT8LE, Int64GetDatum(hi));
		slot = table_slot_create(rel, NULL);
		scan = index_beginscan(rel, pkey, &dirty, 2, 0);
		index_rescan(scan, keys, 2, NULL, 0);
		if (index_getnext_slot(scan, BackwardScanDirection, slot))
		{
			bool		isnull;

			olo = DatumGetInt64(slot_getattr(slot, Anum_claim_lo, &isnull));
			ohi = DatumGetInt64(slot_getattr(slot, Anum_claim_hi, &isnull));
			overlap = ohi >= lo;
			if (overlap)
				wait = TransactionIdIsValid(dirty.xmin) ? dirty.xmin : dirty.xmax;
		}
		index_endscan(scan);
		ExecDropSingleTupleTableSlot(slot);
		if (!overlap)
			return;
		if (TransactionIdIsValid(wait))
		{
			/* being written or deleted: wait for its fate, then look again */
			XactLockTableWait(wait, rel, NULL, XLTW_InsertIndex);
			continue;
		}
		ereport(ERROR,
				(errcode(ERRCODE_EXCLUSION_VIOLATION),
				 errmsg("claims of a consumer group would overlap"),
				 errdetail("Group %d: a claim of ids %lld to %lld, another of %lld to %lld.",
						   group_id, (long long) lo, (long long) hi,
						   (long long) olo, (long long) ohi),
				 errhint("This is a bug in pg_courier: nothing was handed out twice.")));
	}
}

/*
 * insert_claims
 *		Write this walk's runs as claim rows, each checked against the
 *		group's claims first.
 */
static void
insert_claims(Walk *w)
{
	Relation	rel;
	Relation	pkey;
	CourierInserter ins;
	ListCell   *lc;
	TimestampTz due = DT_NOEND;
	TimestampTz now;

	if (w->runs == NIL)
		return;

	/*
	 * A lease runs from the hand-out: add whatever the walk waited for
	 * since the lease was counted -- the claim lock behind an operator's
	 * open transaction (review 41), a segment's lock behind a queued
	 * VACUUM FULL (review 44) -- to the claims and to what the receive
	 * returns.
	 */
	now = GetCurrentTimestamp();
	if (now > w->lease_base)
	{
		int			i;

		w->lease_until += now - w->lease_base;
		w->lease_base = now;
		for (i = 0; i < w->result->ndelivered; i++)
			w->result->delivered[i].lease_until = w->lease_until;
	}
	rel = table_open(CourierRelid("claim"), RowExclusiveLock);
	pkey = index_open(RelationGetPrimaryKeyIndex(rel), RowExclusiveLock);
	CourierInserterBegin(&ins, rel);
	foreach(lc, w->runs)
	{
		Run		   *r = lfirst(lc);
		Datum		values[Natts_claim];
		bool		nulls[Natts_claim];

		memset(nulls, 0, sizeof(nulls));
		values[0] = Int32GetDatum(w->group->group_id);
		values[1] = Int64GetDatum(r->lo);
		values[2] = Int64GetDatum(r->hi);
		if (r->npending > 0)
		{
			values[3] = TimestampTzGetDatum(w->lease_until);
			due = w->lease_until;
		}
		else
			nulls[3] = true;
		values[4] = TimestampTzGetDatum(w->now);
		values[5] = CourierInt8Array(r->pending, r->npending);
		claim_overlap_check(rel, pkey, w->group->group_id, r->lo, r->hi);
		CourierInserterInsert(&ins, values, nulls, Natts_claim);
		CourierRememberClaim(w->group->group_id, w->topic->topic_id, r->lo, r->hi);
	}
	CourierInserterEnd(&ins);
	index_close(pkey, NoLock);
	table_close(rel, NoLock);
	if (due != DT_NOEND)
		CourierDueAtCommit(w->topic->topic_id, w->group->group_id, due);
}

/*
 * add_span_locked
 *		Add a recheck span to a group (caller holds gs->lock exclusively).
 *		When the array is full everything collapses into one span: walking
 *		more than needed is harmless, forgetting a span is not.
 */
static void
add_span_locked(CourierGroupShared *gs, int64 lo, int64 hi)
{
	uint64		gen = ++gs->recheck_gen;
	int			i;

	/* ids at or below the fold are finished for good (see CourierGroupFolded) */
	lo = Max(lo, gs->folded + 1);
	if (hi < lo)
		return;
	for (i = 0; i < gs->nrechecks; i++)
	{
		CourierSpan *s = &gs->rechecks[i];

		if (lo <= s->hi + 1 && hi + 1 >= s->lo)
		{
			/* the merged span is new: a walk in progress must not drop it */
			s->lo = Min(s->lo, lo);
			s->hi = Max(s->hi, hi);
			s->gen = gen;
			return;
		}
	}
	if (gs->nrechecks == COURIER_MAX_RECHECKS)
	{
		for (i = 1; i < gs->nrechecks; i++)
		{
			lo = Min(lo, gs->rechecks[i].lo);
			hi = Max(hi, gs->rechecks[i].hi);
		}
		lo = Min(lo, gs->rechecks[0].lo);
		hi = Max(hi, gs->rechecks[0].hi);
		gs->nrechecks = 0;
	}
	gs->rechecks[gs->nrechecks].lo = lo;
	gs->rechecks[gs->nrechecks].hi = hi;
	gs->rechecks[gs->nrechecks].xid = InvalidTransactionId;
	gs->rechecks[gs->nrechecks].gen = gen;
	gs->nrechecks++;
}

/*
 * add_deferred_locked
 *		Add a walk's deferred span to the group (caller holds gs->lock
 *		exclusively): merged into a span it touches when their messages
 *		come due within COURIER_DEFER_WINDOW of each other, else into a free
 *		slot.  When none is free (the walk counted the room, so only a
 *		rebuild in between can cause that) it merges with the span due
 *		first: walking early is harmless, forgetting a span is not.
 */
static void
add_deferred_locked(CourierGroupShared *gs, const CourierDeferred *d)
{
	CourierDeferred *s = NULL;
	int			i;

	for (i = 0; i < gs->ndeferred && s == NULL; i++)
	{
		CourierDeferred *e = &gs->deferred[i];

		if (d->lo <= e->hi + 1 && d->hi + 1 >= e->lo &&
			Max(d->due_max, e->due_max) - Min(d->due_min, e->due_min) <= COURIER_DEFER_WINDOW)
			s = e;
	}
	if (s == NULL && gs->ndeferred < COURIER_MAX_DEFERRED)
	{
		gs->deferred[gs->ndeferred++] = *d;
		return;
	}
	if (s == NULL)
	{
		s = &gs->deferred[0];
		for (i = 1; i < gs->ndeferred; i++)
			if (gs->deferred[i].due_min < s->due_min)
				s = &gs->deferred[i];
	}
	s->lo = Min(s->lo, d->lo);
	s->hi = Max(s->hi, d->hi);
	s->due_min = Min(s->due_min, d->due_min);
	s->due_max = Max(s->due_max, d->due_max);
	s->n += d->n;
}

/*
 * settle_deferred
 *		Deferred spans whose first message is due by now become rechecks;
 *		the walk keeps a copy of the others (see defer).  Returns how many
 *		more deferred spans the group may have (courier.delay_spans).  Caller
 *		holds the claim lock (walks are the only ones that add them).
 */
static int
settle_deferred(Walk *w, CourierGroupShared *gs, TimestampTz now)
{
	int			i;
	int			room;

	/* only claiming walks and compaction change them, under the claim lock */
	if (gs->ndeferred == 0)
	{
		w->nshared_defer = 0;
		return courier_delay_spans;
	}
	LWLockAcquire(&gs->lock, LW_EXCLUSIVE);
	for (i = 0; i < gs->ndeferred; i++)
	{
		if (gs->deferred[i].due_min <= now)
		{
			add_span_locked(gs, gs->deferred[i].lo, gs->deferred[i].hi);
			gs->deferred[i--] = gs->deferred[--gs->ndeferred];
		}
	}
	room = Max(courier_delay_spans - gs->ndeferred, 0);
	w->nshared_defer = gs->ndeferred;
	memcpy(w->shared_defer, gs->deferred, sizeof(CourierDeferred) * gs->ndeferred);
	LWLockRelease(&gs->lock);
	return room;
}

/*
 * CourierGroupDeferredDue
 *		When the group's first deferred span comes due (DT_NOEND if it has
 *		none), for a waiting receive's timer.
 */
TimestampTz
CourierGroupDeferredDue(int32 group_id)
{
	CourierGroupShared *gs = CourierGroupSharedFind(group_id);
	TimestampTz r = DT_NOEND;
	int			i;

	if (gs == NULL)
		return r;
	LWLockAcquire(&gs->lock, LW_SHARED);
	if (gs->valid && gs->key.group_id == group_id && gs->key.dbid == MyDatabaseId)
		for (i = 0; i < gs->ndeferred; i++)
			r = Min(r, gs->deferred[i].due_min);
	LWLockRelease(&gs->lock);
	return r;
}

/*
 * CourierGroupFolded
 *		Compaction has deleted, in its transaction, finished claims covering
 *		every id of the group up to lw (and moved low_water there): no walk
 *		may look at those ids again, even before that transaction commits,
 *		and a rebuild must start above them.  The caller holds the claim
 *		lock, so no walk is between reading the position and publishing it.
 *		Those ids stay finished whether or not the compaction commits: the
 *		claims it deletes were committed and done, and are back if it rolls
 *		back.  (Compaction leaves alone claims inserted by its own
 *		transaction, whose rollback would uncover their ids.)  The fold is
 *		kept even while the position is not valid, for the rebuild; an
 *		invalidation (seek, purge, drop, which hold the claim lock until
 *		commit) forgets it.
 */
void
CourierGroupFolded(int32 group_id, int64 lw)
{
	CourierGroupShared *gs = CourierGroupSharedGet(group_id);
	int			j;

	LWLockAcquire(&gs->lock, LW_EXCLUSIVE);
	/* readers that may have read the position before this fold walk again */
	gs->fold_gen++;
	pg_atomic_fetch_add_u64(&CourierState->fold_gen, 1);
	gs->folded = Max(gs->folded, lw);
	if (gs->valid)
	{
		gs->frontier = Max(gs->frontier, lw + 1);
		for (j = 0; j < gs->nrechecks; j++)
		{
			gs->rechecks[j].lo = Max(gs->rechecks[j].lo, lw + 1);
			if (gs->rechecks[j].lo > gs->rechecks[j].hi)
				gs->rechecks[j--] = gs->rechecks[--gs->nrechecks];
		}
		for (j = 0; j < gs->nholes; j++)
			gs->holes[j].lo = Max(gs->holes[j].lo, lw + 1);
		/* (an uncovered deferred id stops folding: this trims only overlaps) */
		for (j = 0; j < gs->ndeferred; j++)
		{
			gs->deferred[j].lo = Max(gs->deferred[j].lo, lw + 1);
			if (gs->deferred[j].lo > gs->deferred[j].hi)
				gs->deferred[j--] = gs->deferred[--gs->ndeferred];
		}
	}
	LWLockRelease(&gs->lock);
}

/*
 * CourierGroupRecheck
 *		Ids [lo, hi] of a group must be walked again (a claim over them was
 *		rolled back).  Never errors: called from transaction callbacks.
 */
void
CourierGroupRecheck(int32 group_id, int64 lo, int64 hi)
{
	CourierGroupShared *gs = CourierGroupSharedFind(group_id);

	if (gs == NULL)
		return;					/* never loaded: a rebuild will walk it */
	LWLockAcquire(&gs->lock, LW_EXCLUSIVE);
	if (gs->valid && gs->key.group_id == group_id && gs->key.dbid == MyDatabaseId)
		add_span_locked(gs, lo, hi);
	LWLockRelease(&gs->lock);
}

/*
 * CourierGroupSettledBelow
 *		The lowest id that the group may still see for the first time among
 *		committed messages: an ordered group's queued message becomes the
 *		head of its key only once every earlier message of the key is in
 *		the lease table.  Recheck spans (rolled-back receives, ended holes)
 *		and the spans of prepared receives (which may roll back) hold it
 *		down; holes do not: their transactions have not committed, and a
 *		message commits, for ordering, when its transaction does ("send
 *		order" across producers is commit order).
 */
int64
CourierGroupSettledBelow(int32 group_id)
{
	CourierGroupShared *gs = CourierGroupSharedGet(group_id);
	Oid			instance = CourierInstanceId();
	int64		r;
	int			i;

	LWLockAcquire(&gs->lock, LW_SHARED);
	if (!gs->valid)
		r = 0;
	else
	{
		r = gs->frontier;
		for (i = 0; i < gs->nrechecks; i++)
			r = Min(r, gs->rechecks[i].lo);
		for (i = 0; i < gs->ndeferred; i++)
			r = Min(r, gs->deferred[i].lo);
	}
	LWLockRelease(&gs->lock);

	LWLockAcquire(CourierPreparedLock(), LW_SHARED);
	for (i = 0; i < CourierState->nprepared; i++)
	{
		CourierPreparedClaim *p = &CourierState->prepared[i];

		if (p->dbid == MyDatabaseId && p->instance == instance && p->group_id == group_id)
			r = Min(r, p->lo);
	}
	LWLockRelease(CourierPreparedLock());
	return r;
}

/*
 * settle_holes
 *		Holes whose transaction has ended become rechecks.  One snapshot
 *		answers for all of them.  Caller holds the claim lock.
 */
static void
settle_holes(CourierGroupShared *gs)
{
	Snapshot	snap;
	CourierSpan *copy;
	bool	   *ended;
	int			n;
	int			i,
				j;
	bool		any = false;

	LWLockAcquire(&gs->lock, LW_SHARED);
	n = gs->nholes;
	copy = palloc(sizeof(CourierSpan) * Max(n, 1));
	memcpy(copy, gs->holes, sizeof(CourierSpan) * n);
	LWLockRelease(&gs->lock);
	if (n == 0)
		return;

	snap = GetLatestSnapshot();
	ended = palloc(sizeof(bool) * n);
	for (i = 0; i < n; i++)
	{
		ended[i] = !TransactionIdIsCurrentTransactionId(copy[i].xid) &&
			!XidInMVCCSnapshot(copy[i].xid, snap);
		any |= ended[i];
	}
	if (!any)
		return;

	LWLockAcquire(&gs->lock, LW_EXCLUSIVE);
	for (j = 0; j < n; j++)
	{
		if (!ended[j])
			continue;
		for (i = 0; i < gs->nholes; i++)
		{
			if (TransactionIdEquals(gs->holes[i].xid, copy[j].xid))
			{
				add_span_locked(gs, gs->holes[i].lo, gs->holes[i].hi);
				gs->holes[i] = gs->holes[--gs->nholes];
				break;
			}
		}
	}
	LWLockRelease(&gs->lock);
}

/*
 * settle_prepared
 *		Claims of prepared transactions of this group that have ended: their
 *		entries leave the prepared-claims table, and, if give_back, a rolled-
 *		back one gives its span back as a recheck (a walk's settling; a
 *		rebuild needs none, see rebuild).  Entries of prepared transactions
 *		still running stay.
 */
static void
settle_prepared(int32 group_id, bool give_back)
{
	Oid			instance = CourierInstanceId();
	CourierPreparedClaim *copy;
	int			n = 0;
	int			i,
				k;

	copy = palloc(sizeof(CourierPreparedClaim) * Max(CourierState->nprepared, 1));
	LWLockAcquire(CourierPreparedLock(), LW_SHARED);
	for (i = 0; i < CourierState->nprepared; i++)
	{
		CourierPreparedClaim *p = &CourierState->prepared[i];

		if (p->dbid == MyDatabaseId && p->instance == instance && p->group_id == group_id)
			copy[n++] = *p;
	}
	LWLockRelease(CourierPreparedLock());

	for (i = 0; i < n; i++)
	{
		if (TransactionIdIsInProgress(copy[i].xid))
			continue;
		if (give_back && !TransactionIdDidCommit(copy[i].xid))
			CourierGroupRecheck(group_id, copy[i].lo, copy[i].hi);
		LWLockAcquire(CourierPreparedLock(), LW_EXCLUSIVE);
		for (k = 0; k < CourierState->nprepared; k++)
		{
			CourierPreparedClaim *p = &CourierState->prepared[k];

			if (p->dbid == copy[i].dbid && p->instance == copy[i].instance &&
				p->group_id == copy[i].group_id && TransactionIdEquals(p->xid, copy[i].xid) &&
				p->lo == copy[i].lo && p->hi == copy[i].hi)
				p->dbid = InvalidOid;
		}
		LWLockRelease(CourierPreparedLock());
	}
	pfree(copy);
}

/*
 * CourierRegisterPreparedClaim
 *		Enter a span of claims of transaction xid into the prepared-claims
 *		table.  Returns false if the table is full.
 */
bool
CourierRegisterPreparedClaim(int32 group_id, TransactionId xid, int64 lo, int64 hi)
{
	Oid			instance = CourierCurrentInstance();
	int			i;
	bool		done = false;

	LWLockAcquire(CourierPreparedLock(), LW_EXCLUSIVE);
	for (i = 0; i < CourierState->nprepared && !done; i++)
	{
		CourierPreparedClaim *p = &CourierState->prepared[i];

		if (p->dbid == MyDatabaseId && p->instance == instance && p->group_id == group_id &&
			TransactionIdEquals(p->xid, xid))
		{
			p->lo = Min(p->lo, lo);
			p->hi = Max(p->hi, hi);
			done = true;
		}
	}
	for (i = 0; i < CourierState->nprepared && !done; i++)
	{
		CourierPreparedClaim *p = &CourierState->prepared[i];

		if (p->dbid == InvalidOid)
		{
			p->dbid = MyDatabaseId;
			p->instance = instance;
			p->group_id = group_id;
			p->xid = xid;
			p->lo = lo;
			p->hi = hi;
			done = true;
		}
	}
	LWLockRelease(CourierPreparedLock());
	return done;
}

/*
 * read_low_water
 *		A group's low_water, read with a dirty snapshot: the highest of the
 *		row's versions that are committed or whose writer is still in
 *		progress (or prepared).  Never under the caller's snapshot, which
 *		may predate a compaction that deleted the claims below it; and a
 *		compaction that has moved low_water but not committed yet counts
 *		too -- it no longer holds the claim lock, and may commit (COMMIT
 *		PREPARED, after a restart that lost the shared fold) the moment
 *		after we read.  Its value is safe to use even if it rolls back:
 *		every id up to it lies in a finished, committed claim, which is
 *		then back (walk.c header, "Locking").  A seek, the only writer that
 *		lowers low_water, holds the claim lock until commit and cannot be
 *		prepared, so no version we see here is one it is lowering.
 */
static int64
read_low_water(int32 group_id, const char *name)
{
	Relation	rel;
	Relation	idx;
	IndexScanDesc scan;
	TupleTableSlot *slot;
	SnapshotData dirty;
	ScanKeyData key;
	AttrNumber	attnum;
	int64		low_water = 0;
	bool		found = false;

	rel = table_open(CourierRelid("group_meta"), AccessShareLock);
	idx = CourierIndexOpen("group_meta_pkey", AccessShareLock);
	attnum = get_attnum(RelationGetRelid(rel), "low_water");
	if (attnum == InvalidAttrNumber)
		elog(ERROR, "courier.group_meta has no column low_water");
	slot = table_slot_create(rel, NULL);
	InitDirtySnapshot(dirty);
	ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(group_id));
	scan = index_beginscan(rel, idx, &dirty, 1, 0);
	index_rescan(scan, &key, 1, NULL, 0);
	/* a non-MVCC scan returns every visible member of a HOT chain */
	while (index_getnext_slot(scan, ForwardScanDirection, slot))
	{
		bool		isnull;
		int64		v = DatumGetInt64(slot_getattr(slot, attnum, &isnull));

		low_water = found ? Max(low_water, v) : v;
		found = true;
	}
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	index_close(idx, NoLock);
	table_close(rel, NoLock);
	if (!found)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 name ? errmsg("group \"%s\" does not exist", name)
				 : errmsg("group %d does not exist", group_id)));
	return low_water;
}

/*
 * rebuild
 *		Recompute a group's shared position from the tables (after a restart
 *		or crash, after promotion, or when it was invalidated): P past the
 *		highest claim, and everything above low_water to be walked again.
 *		Caller holds the claim lock.
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

	low_water = read_low_water(group->group_id, group->name);
	/* a compaction that has not committed yet may have folded further */
	LWLockAcquire(&gs->lock, LW_SHARED);
	low_water = Max(low_water, gs->folded);
	LWLockRelease(&gs->lock);

	/* the highest claim, including those of receivers still in progress */
	rel = table_open(CourierRelid("claim"), AccessShareLock);
	idx = CourierIndexOpen("claim_pkey", AccessShareLock);
	slot = table_slot_create(rel, NULL);
	InitDirtySnapshot(dirty);
	ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(group->group_id));
	scan = index_beginscan(rel, idx, &dirty, 1, 0);
	index_rescan(scan, &key, 1, NULL, 0);
	if (index_getnext_slot(scan, BackwardScanDirection, slot))
		maxhi = DatumGetInt64(slot_getattr(slot, Anum_claim_hi, &isnull));
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	index_close(idx, NoLock);
	table_close(rel, NoLock);

	LWLockAcquire(&gs->lock, LW_EXCLUSIVE);
	gs->frontier = Max(low_water, maxhi) + 1;
	gs->nholes = 0;
	gs->nrechecks = 0;
	gs->ndeferred = 0;
	if (gs->frontier - 1 > low_water)
		add_span_locked(gs, low_water + 1, gs->frontier - 1);
	gs->orphan_scan = group->ordered;	/* promotions pending at a crash are gone */
	/* on a standby, more WAL will change the tables: use this once only */
	gs->valid = !RecoveryInProgress();
	LWLockRelease(&gs->lock);

	/*
	 * A rebuilt position needs nothing from the prepared-claims table about
	 * prepared transactions that have ended: whatever their claims covered
	 * is above the frontier, inside the rebuild's recheck, or at most
	 * low_water (a seek or purge skipped it).  Left there, a walk's
	 * settle_prepared would make a recheck of the span of one that rolled back -- at or
	 * above the new frontier after a seek back (the walk then covers those
	 * ids twice: 23P01, and every later receive of the group fails the same
	 * way), or below the new low_water after a seek forward (handed out
	 * although the seek skipped them).  A prepared transaction still
	 * running keeps its entry: its claims are in the dirty scan above, so
	 * its span lies below the frontier.  So forget them, without giving
	 * anything back -- only for the shared position: a reader's private one (the shared table
	 * was full) must not drop entries a claiming walk's position may need.
	 */
	if (CourierGroupSharedFind(group->group_id) == gs)
		settle_prepared(group->group_id, false);
}

/*
 * publish
 *		After a claiming walk: the recheck spans it finished go, the frontier
 *		moves, the holes it found are added.  Only spans that existed when the
 *		walk read them (gen <= gen) can go: a span added meanwhile -- a claim
 *		the walk jumped over while its transaction was still running, and
 *		that then rolled back -- stays, even if it lies inside what the walk
 *		walked.
 */
static void
publish(Walk *w, CourierGroupShared *gs, CourierSpan *done, int ndone, bool frontier_done,
		uint64 gen)
{
	int			i,
				j;

	LWLockAcquire(&gs->lock, LW_EXCLUSIVE);
	if (!gs->valid || gs->key.group_id != w->group->group_id)
	{
		LWLockRelease(&gs->lock);
		return;
	}
	for (i = 0; i < ndone; i++)
	{
		for (j = 0; j < gs->nrechecks; j++)
		{
			CourierSpan *s = &gs->rechecks[j];

			if (s->gen > gen)
				continue;		/* added during the walk */
			if (s->lo >= done[i].lo && s->hi <= done[i].hi)
			{
				/* entirely walked */
				gs->rechecks[j--] = gs->rechecks[--gs->nrechecks];
			}
			else if (s->lo >= done[i].lo && s->lo <= done[i].hi)
				s->lo = done[i].hi + 1; /* its start was walked */
		}
	}
	if (frontier_done)
		gs->frontier = Max(gs->frontier, w->pos);
	for (i = 0; i < w->nholes; i++)
	{
		bool		found = false;

		for (j = 0; j < gs->nholes; j++)
		{
			if (TransactionIdEquals(gs->holes[j].xid, w->holes[i].xid))
			{
				gs->holes[j].lo = Min(gs->holes[j].lo, w->holes[i].lo);
				gs->holes[j].hi = Max(gs->holes[j].hi, w->holes[i].hi);
				found = true;
				break;
			}
		}
		if (found)
			continue;
		if (gs->nholes < CourierHoleSlots())
			gs->holes[gs->nholes++] = w->holes[i];
		else
			add_span_locked(gs, w->holes[i].lo, w->holes[i].hi);	/* walked again next time */
	}
	for (i = 0; i < w->ndefer; i++)
		add_deferred_locked(gs, &w->defer[i]);
	LWLockRelease(&gs->lock);
}

/* walks a reader tries before it walks holding the claim lock (CourierWalk) */
#define COURIER_READ_TRIES 3

/* what a reader watches for folds (fold_gen_of) */
typedef struct FoldMark
{
	CourierGroupShared *gs;		/* the group's shared entry, NULL if none */
	uint64		gen;			/* its fold_gen, else CourierState's */
} FoldMark;

/*
 * fold_gen_of
 *		The fold counter a reader of the group watches (CourierWalk).
 */
static FoldMark
fold_gen_of(int32 group_id)
{
	FoldMark	m;

	m.gs = CourierGroupSharedTryGet(group_id);
	if (m.gs == NULL)
	{
		pg_memory_barrier();
		m.gen = pg_atomic_read_u64(&CourierState->fold_gen);
		return m;
	}
	LWLockAcquire(&m.gs->lock, LW_SHARED);
	m.gen = m.gs->fold_gen;
	LWLockRelease(&m.gs->lock);
	return m;
}

/*
 * CourierWalk
 *		Walk the log for a group.  WALK_CLAIM delivers up to max_messages
 *		messages and records claims; WALK_PEEK lists them; WALK_COUNT
 *		counts the backlog (of ids <= upto, if upto is not 0), and
 *		WALK_COUNT_DEFERRED only what the deferred spans hold (for seek).  See the
 *		file header for the rules.  Deliveries go to the caller's memory
 *		context.
 *
 *		A walk that claims holds the claim lock, so no compaction folds
 *		while it walks.  One that only reads does not: a compaction that
 *		folds and commits after the reader read the position but before it
 *		read the claims of the folded ids leaves it a position from before
 *		the fold and no claims for those ids, which it would list or count
 *		as never received (acked messages counted as backlog).  Every fold
 *		bumps its group's fold_gen before its compaction commits, so a
 *		reader that saw a folded claim go missing finds the counter moved
 *		when it ends, and walks again from the position as it is now; after
 *		COURIER_READ_TRIES such tries (three folds of the group during its
 *		walks) it walks holding the claim lock, and receivers of the group
 *		wait for that walk.  A reader whose group has no shared entry (no
 *		room) watches CourierState->fold_gen, which every fold bumps: folds
 *		of other groups make it walk again too.  The two counters are never
 *		compared with each other: a group that gets an entry between the
 *		reader's two reads (a fold makes one) counts as moved (review 52).
 */
void
CourierWalk(CourierTopic *topic, CourierGroup *group, CourierWalkMode mode,
			int max_messages, TimestampTz lease_until, int64 upto, CourierWalkResult *result)
{
	int			tries;

	if (mode == WALK_CLAIM)
	{
		walk_once(topic, group, mode, max_messages, lease_until, upto, result);
		return;
	}
	for (tries = 1;; tries++)
	{
		bool		locked = tries > COURIER_READ_TRIES;
		FoldMark	before,
					after;

		if (locked)
			claim_lock(group->group_id, true);
		before = fold_gen_of(group->group_id);
		walk_once(topic, group, mode, max_messages, lease_until, upto, result);
		if (locked)
		{
			claim_lock(group->group_id, false);
			return;
		}
		after = fold_gen_of(group->group_id);
		if (after.gs == before.gs && after.gen == before.gen)
			return;
		if (result->delivered)
			pfree(result->delivered);
	}
}

/*
 * walk_once
 *		CourierWalk's walk.  Everything it allocates lives in a context of
 *		its own, deleted before it returns.
 */
static void
walk_once(CourierTopic *topic, CourierGroup *group, CourierWalkMode mode,
		  int max_messages, TimestampTz lease_until, int64 upto, CourierWalkResult *result)
{
	int32		topic_id = topic->topic_id;
	int32		group_id = group->group_id;
	CourierGroupShared *gs;
	MemoryContext walk_cxt;
	MemoryContext old;
	Walk		w;
	CourierSpan *spans;
	int			nspans = 0;
	int			nrecheck_spans;
	int32		cur_seg_no;
	int			i;
	bool		frontier_done = false;
	bool		deferred_only = (mode == WALK_COUNT_DEFERRED);
	uint64		gen;

	if (deferred_only)
		mode = WALK_COUNT;
	memset(result, 0, sizeof(CourierWalkResult));
	walk_cxt = AllocSetContextCreate(CurrentMemoryContext, "pg_courier walk",
									 ALLOCSET_DEFAULT_SIZES);
	memset(&w, 0, sizeof(w));
	w.result_cxt = CurrentMemoryContext;
	old = MemoryContextSwitchTo(walk_cxt);

	/* readers work even when shared memory has no room for the group */
	if (mode == WALK_CLAIM)
		gs = CourierGroupSharedGet(group_id);
	else if ((gs = CourierGroupSharedTryGet(group_id)) == NULL)
		gs = CourierGroupSharedLocal(group_id);
	w.mode = mode;
	w.max_messages = max_messages;
	w.now = GetCurrentTimestamp();
	w.lease_until = lease_until;
	w.lease_base = w.now;
	w.result = result;

	if (mode == WALK_CLAIM)
	{
		claim_lock(group_id, true);
		/* deliveries happen from here on (insert_claims adds the wait to the lease) */
		w.now = GetCurrentTimestamp();
	}

	if (!gs->valid)
	{
		if (mode == WALK_CLAIM)
			rebuild(group, gs);
		else
		{
			claim_lock(group_id, true);
			if (!gs->valid)
				rebuild(group, gs);
			claim_lock(group_id, false);
		}
	}

	/*
	 * What has been handed out, and who is still writing.  Read before the
	 * holes are settled: a transaction still running when they are keeps
	 * its hole, and anything sent after it committed lies at or above limit,
	 * out of this walk (see seen_running).
	 */
	w.marks = palloc(sizeof(CourierSenderMark) * CourierState->nmarks);
	w.nmarks = CourierReadAllocation(topic, &w.limit, &cur_seg_no, w.marks);
	qsort(w.marks, w.nmarks, sizeof(CourierSenderMark), mark_cmp);
	if (upto > 0 && upto < PG_INT64_MAX && mode == WALK_COUNT)
		w.limit = Min(w.limit, upto + 1);

	if (mode == WALK_CLAIM)
	{
		settle_prepared(group->group_id, true);
		settle_holes(gs);
		w.defer_room = settle_deferred(&w, gs, w.now);
	}

	/*
	 * The spans to walk: rechecks (and, to count or peek, holes and deferred
	 * spans), then P.
	 */
	LWLockAcquire(&gs->lock, LW_SHARED);
	w.frontier = gs->frontier;
	gen = gs->recheck_gen;
	w.gs = gs;
	w.gen = gen;
	spans = palloc(sizeof(CourierSpan) * (gs->nrechecks + gs->nholes + gs->ndeferred + 1));
	for (i = 0; i < gs->nrechecks && !deferred_only; i++)
		spans[nspans++] = gs->rechecks[i];
	if (mode != WALK_CLAIM)
	{
		for (i = 0; i < gs->nholes && !deferred_only; i++)
			spans[nspans++] = gs->holes[i];
		for (i = 0; i < gs->ndeferred; i++)
		{
			spans[nspans].lo = gs->deferred[i].lo;
			spans[nspans].hi = gs->deferred[i].hi;
			spans[nspans].xid = InvalidTransactionId;
			spans[nspans].gen = 0;
			nspans++;
		}
	}
	if (mode == WALK_CLAIM && group->ordered && gs->nholes > 0)
	{
		/* the holes settle_holes left: their transactions were running */
		w.open = palloc(sizeof(TransactionId) * gs->nholes);
		for (i = 0; i < gs->nholes; i++)
			w.open[w.nopen++] = gs->holes[i].xid;
	}
	LWLockRelease(&gs->lock);
	nrecheck_spans = normalize_spans(spans, nspans);
	if (mode != WALK_CLAIM)
		CourierTestPause(COURIER_PAUSE_READER_POSITION);

	/*
	 * Every id below limit is in a segment that was committed before we read
	 * it: take in invalidations, and make sure our list reaches the segment
	 * senders use now.
	 */
	w.topic = CourierFindTopicById(topic_id);
	w.group = CourierFindGroupById(group_id);
	if (w.topic == NULL || w.group == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("topic or group was dropped during the call")));
	if (w.topic->nsegments == 0 ||
		w.topic->segments[w.topic->nsegments - 1].seg_no < cur_seg_no)
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("could not read the log of topic \"%s\": its segment list changed",
						w.topic->name),
				 errhint("Retry the call.")));

	log_open(&w.lc, w.topic);
	for (i = 0; i < nrecheck_spans && !w.stopped; i++)
	{
		int64		hi = Min(spans[i].hi, w.limit - 1);

		w.recheck = true;
		if (spans[i].lo > hi)
		{
			spans[i].hi = hi;	/* nothing there yet: done */
			continue;
		}
		walk_span(&w, spans[i].lo, hi);
		if (w.stopped)
			spans[i].hi = w.pos - 1;	/* only this much was walked */
	}
	nspans = w.stopped ? i : nrecheck_spans;
	if (deferred_only)
		;						/* no frontier: the spans were all */
	else if (!w.stopped && w.frontier < w.limit)
	{
		w.recheck = false;
		walk_span(&w, w.frontier, w.limit - 1);
		frontier_done = true;
	}
	else if (!w.stopped)
	{
		w.pos = w.frontier;
		frontier_done = true;
	}
	log_close_segment(&w.lc);
	if (w.lease_rel)
		table_close(w.lease_rel, NoLock);

	if (mode == WALK_CLAIM)
	{
		ListCell   *lc;

		insert_claims(&w);
		foreach(lc, w.prepared)
		{
			CourierSpan *s = lfirst(lc);

			if (!CourierRegisterPreparedClaim(group_id, s->xid, s->lo, s->hi))
			{
				/* no room: walk that span again until it is settled */
				CourierGroupRecheck(group_id, s->lo, s->hi);
			}
		}
		publish(&w, gs, spans, nspans, frontier_done, gen);
		claim_lock(group_id, false);
		if (w.ndefer > 0)
		{
			TimestampTz first = DT_NOEND;

			/* a receiver asleep past that time must compute again */
			for (i = 0; i < w.ndefer; i++)
				first = Min(first, w.defer[i].due_min);
			CourierWakeIfOversleeping(topic_id, first);
		}
	}
	result->more |= w.stopped && (w.pos < w.limit || nspans < nrecheck_spans);

	MemoryContextSwitchTo(old);
	MemoryContextDelete(walk_cxt);
}

/*
 * CourierGroupPosition
 *		For statistics (ops.c): the group's frontier P, the lowest id it
 *		still has to look at (the lowest recheck, hole or deferred span, or
 *		P), how many ids those spans cover, and what the deferred spans hold
 *		(for estimates).  Rebuilds the position first if it is not valid, as
 *		a counting walk would.
 */
void
CourierGroupPosition(CourierGroup *group, int64 *frontier, int64 *lowest, int64 *span_ids,
					 CourierDeferredCount *deferred)
{
	CourierGroupShared *gs = CourierGroupSharedTryGet(group->group_id);
	TimestampTz now = GetCurrentTimestamp();
	int			i;

	/* readers work even when shared memory has no room for the group */
	if (gs == NULL)
		gs = CourierGroupSharedLocal(group->group_id);

	if (!gs->valid)
	{
		claim_lock(group->group_id, true);
		if (!gs->valid)
			rebuild(group, gs);
		claim_lock(group->group_id, false);
	}
	LWLockAcquire(&gs->lock, LW_SHARED);
	*frontier = gs->frontier;
	*lowest = gs->frontier;
	*span_ids = 0;
	for (i = 0; i < gs->nrechecks; i++)
	{
		*lowest = Min(*lowest, gs->rechecks[i].lo);
		*span_ids += gs->rechecks[i].hi - gs->rechecks[i].lo + 1;
	}
	for (i = 0; i < gs->nholes; i++)
	{
		*lowest = Min(*lowest, gs->holes[i].lo);
		*span_ids += gs->holes[i].hi - gs->holes[i].lo + 1;
	}
	memset(deferred, 0, sizeof(CourierDeferredCount));
	for (i = 0; i < gs->ndeferred; i++)
	{
		CourierDeferred *d = &gs->deferred[i];

		*lowest = Min(*lowest, d->lo);
		*span_ids += d->hi - d->lo + 1;
		if (deferred->first == 0 || d->lo < deferred->first)
			deferred->first = d->lo;
		deferred->last = Max(deferred->last, d->hi);
		deferred->ids += d->hi - d->lo + 1;
		if (d->due_min > now)
			deferred->delayed += d->n;
		else
			deferred->due += d->n;
	}
	LWLockRelease(&gs->lock);
}

/*
 * redrive_claim
 *		For redrive_rows: how the claims of a group cover id, read with
 *		a dirty snapshot.  Returns false if no claim covers it.  *committed:
 *		some version of the covering claim was inserted by a committed
 *		transaction or by ours (an ack under way leaves the old version
 *		visible beside its new one, whose inserter is the acker); otherwise
 *		the claim is a walk's whose transaction is still in progress (or
 *		prepared).  *pending: id is pending in some version of it.
 */
static bool
redrive_claim(Relation rel, Relation idx, int32 group_id, int64 id, bool *committed,
			  bool *pending)
{
	IndexScanDesc scan;
	TupleTableSlot *slot = table_slot_create(rel, NULL);
	SnapshotData dirty;
	ScanKeyData keys[2];
	bool		covered = false;
	bool		first = true;
	int64		lo0 = 0;

	*committed = false;
	*pending = false;
	InitDirtySnapshot(dirty);
	ScanKeyInit(&keys[0], 1, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(group_id));
	ScanKeyInit(&keys[1], 2, BTLessEqualStrategyNumber, F_INT8LE, Int64GetDatum(id));
	scan = index_beginscan(rel, idx, &dirty, 2, 0);
	index_rescan(scan, keys, 2, NULL, 0);
	while (index_getnext_slot(scan, BackwardScanDirection, slot))
	{
		bool		isnull;
		int64		lo = DatumGetInt64(slot_getattr(slot, Anum_claim_lo, &isnull));
		int64		hi = DatumGetInt64(slot_getattr(slot, Anum_claim_hi, &isnull));
		Datum		p;
		ArrayType  *arr;
		Datum	   *elems;
		bool	   *enulls;
		int			n;
		int			i;

		/*
		 * Claims of a group never overlap, so only the claim that starts last
		 * at or before id can cover it; its versions share its lo.
		 */
		if (!first && lo != lo0)
			break;
		first = false;
		lo0 = lo;
		if (hi < id)
			continue;
		covered = true;
		if (!TransactionIdIsValid(dirty.xmin))
			*committed = true;
		p = slot_getattr(slot, Anum_claim_pending, &isnull);
		if (isnull)
			continue;
		arr = DatumGetArrayTypeP(p);
		deconstruct_array(arr, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &elems, &enulls, &n);
		for (i = 0; i < n; i++)
			if (!enulls[i] && DatumGetInt64(elems[i]) == id)
				*pending = true;
	}
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	return covered;
}

/*
 * redrive_lease
 *		For redrive_rows: whether the lease table has a row for id,
 *		read with a dirty snapshot (rows being written or deleted count).
 */
static bool
redrive_lease(Relation rel, Relation idx, int32 group_id, int64 id)
{
	IndexScanDesc scan;
	TupleTableSlot *slot = table_slot_create(rel, NULL);
	SnapshotData dirty;
	ScanKeyData keys[2];
	bool		found;

	InitDirtySnapshot(dirty);
	ScanKeyInit(&keys[0], 1, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(group_id));
	ScanKeyInit(&keys[1], 2, BTEqualStrategyNumber, F_INT8EQ, Int64GetDatum(id));
	scan = index_beginscan(rel, idx, &dirty, 2, 0);
	index_rescan(scan, keys, 2, NULL, 0);
	found = index_getnext_slot(scan, ForwardScanDirection, slot);
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	return found;
}

/*
 * redrive_rows
 *		Redrive (courier.redrive) has deleted the dead letters of ids: which
 *		of them need a lease row to be handed out again?  Only those the
 *		group's walk has passed and that are not in flight; a lease row for
 *		any other id would meet the walk, or a delivery under way, for the
 *		same message (after a seek back, the log hands dead-lettered
 *		messages out again).  For each id:
 *
 *		- a lease row (any, dirty: being written or deleted too): in flight
 *		  in the lease table -- nothing to add;
 *		- covered by a claim whose inserter is still in progress: a walk
 *		  has just reached it; the message is that walk's (handed out, or
 *		  passed over by the filter as a replay would be), and if the walk's
 *		  transaction rolls back the walk reaches it again -- nothing to add;
 *		- covered by a committed claim (or one of ours) that lists it as
 *		  pending: in flight -- nothing to add;
 *		- covered by a committed claim (or one of ours) otherwise, or at or
 *		  below low_water: passed and finished -- a lease row;
 *		- anything else lies above low_water outside every claim: the walk
 *		  will reach it (the invariant of the group position, above) and
 *		  hands it out from the log like every message a seek replays --
 *		  nothing to add.
 *
 *		Decided under the group's claim lock, so that no walk is between
 *		reading the position and inserting its claims, and no drop (which
 *		holds the lock until commit) is half done; a compaction that has not
 *		committed yet has told the position its fold, which counts as
 *		low_water here (its claims may be gone the moment it commits).  Only
 *		reads happen under the lock, none of which waits, and it is released
 *		at once.
 *		The answer stays true after that: a claim of another transaction
 *		goes away only with a compaction (below low_water: still passed) or
 *		a seek or purge (which wait for the caller's existence lock); an id
 *		the walk has passed is reached again only if the claim covering it
 *		rolls back, and then it had no lease row added; nobody but a walk
 *		gives a lease row to an id that is not in flight, and the caller
 *		holds the dead letter.
 */
static ArrayType *
redrive_rows(int32 group_id, ArrayType *ids)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	int			i;
	int64	   *keep;
	int			nkeep = 0;
	int64		low_water;
	CourierGroupShared *gs;
	Relation	claim_rel;
	Relation	claim_idx;
	Relation	lease_rel;
	Relation	lease_idx;

	deconstruct_array(ids, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &elems, &nulls, &n);
	keep = palloc(sizeof(int64) * Max(n, 1));

	claim_lock(group_id, true);
	low_water = read_low_water(group_id, NULL);
	gs = CourierGroupSharedFind(group_id);
	if (gs != NULL)
	{
		LWLockAcquire(&gs->lock, LW_SHARED);
		if (gs->key.group_id == group_id && gs->key.dbid == MyDatabaseId)
			low_water = Max(low_water, gs->folded);
		LWLockRelease(&gs->lock);
	}
	claim_rel = table_open(CourierRelid("claim"), AccessShareLock);
	claim_idx = CourierIndexOpen("claim_pkey", AccessShareLock);
	lease_rel = table_open(CourierRelid("lease"), AccessShareLock);
	lease_idx = CourierIndexOpen("lease_pkey", AccessShareLock);
	for (i = 0; i < n; i++)
	{
		int64		id;
		bool		committed;
		bool		pending;

		if (nulls[i])
			continue;
		id = DatumGetInt64(elems[i]);
		if (redrive_lease(lease_rel, lease_idx, group_id, id))
			continue;
		if (redrive_claim(claim_rel, claim_idx, group_id, id, &committed, &pending))
		{
			if (committed && !pending)
				keep[nkeep++] = id;
		}
		else if (id <= low_water)
			keep[nkeep++] = id;
	}
	index_close(lease_idx, NoLock);
	table_close(lease_rel, NoLock);
	index_close(claim_idx, NoLock);
	table_close(claim_rel, NoLock);
	claim_lock(group_id, false);

	return DatumGetArrayTypeP(CourierInt8Array(keep, nkeep));
}

PG_FUNCTION_INFO_V1(courier_redrive_rows);

/*
 * courier_redrive_rows
 *		_redrive_rows(group_id, ids) -> the ids, among those of the dead
 *		letters redrive just deleted, that need a lease row
 *		(redrive_rows).  The caller holds the group's existence lock.
 */
Datum
courier_redrive_rows(PG_FUNCTION_ARGS)
{
	PG_RETURN_ARRAYTYPE_P(redrive_rows(PG_GETARG_INT32(0), PG_GETARG_ARRAYTYPE_P(1)));
}

PG_FUNCTION_INFO_V1(courier_group_position);

/*
 * courier_group_position
 *		_group_position(group_id) -> (frontier, settled_below, rechecks,
 *		holes): the group's position as shared memory caches it (for
 *		operators and tests; NULLs when it is not loaded).  rechecks also
 *		lists the deferred spans, as [lo,hi]@due.
 */
Datum
courier_group_position(PG_FUNCTION_ARGS)
{
	int32		group_id = PG_GETARG_INT32(0);
	CourierGroupShared *gs;
	TupleDesc	desc;
	Datum		values[4];
	bool		nulls[4] = {true, true, true, true};
	StringInfoData rechecks;
	StringInfoData holes;
	int			i;

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	(void) CourierInstanceId();	/* load the catalog: the key needs the instance */
	gs = CourierGroupSharedFind(group_id);
	if (gs != NULL)
	{
		initStringInfo(&rechecks);
		initStringInfo(&holes);
		LWLockAcquire(&gs->lock, LW_SHARED);
		if (gs->valid)
		{
			values[0] = Int64GetDatum(gs->frontier);
			nulls[0] = false;
			for (i = 0; i < gs->nrechecks; i++)
				appendStringInfo(&rechecks, "%s[" INT64_FORMAT "," INT64_FORMAT "]",
								 i ? " " : "", gs->rechecks[i].lo, gs->rechecks[i].hi);
			/* deferred spans follow, with the time they come due */
			for (i = 0; i < gs->ndeferred; i++)
				appendStringInfo(&rechecks, "%s[" INT64_FORMAT "," INT64_FORMAT "]@%s",
								 rechecks.len ? " " : "", gs->deferred[i].lo, gs->deferred[i].hi,
								 timestamptz_to_str(gs->deferred[i].due_min));
			for (i = 0; i < gs->nholes; i++)
				appendStringInfo(&holes, "%s%u:[" INT64_FORMAT "," INT64_FORMAT "]",
								 i ? " " : "", gs->holes[i].xid, gs->holes[i].lo, gs->holes[i].hi);
		}
		LWLockRelease(&gs->lock);
		if (!nulls[0])
		{
			values[1] = Int64GetDatum(CourierGroupSettledBelow(group_id));
			nulls[1] = false;
			values[2] = CStringGetTextDatum(rechecks.data);
			nulls[2] = false;
			values[3] = CStringGetTextDatum(holes.data);
			nulls[3] = false;
		}
	}
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
}
