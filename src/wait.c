/*-------------------------------------------------------------------------
 *
 * wait.c
 *	  Waiting receives: sleeping until something may have become
 *	  receivable, without polling the tables.
 *
 * Topics hash into COURIER_WAIT_BUCKETS buckets in shared memory, each with
 * a wake sequence counter, a due sequence counter and a condition variable.
 * Sleepers never touch a topic's own shared entry (a DROP TOPIC may free
 * it while they sleep); two topics in one bucket only cost a spurious
 * wake-up, after which the receiver looks again and goes back to sleep.
 *
 * Wake-ups: a transaction that made messages of a topic receivable (a send,
 * a nack, a released lease; or, at abort, leases it held) bumps the wake
 * sequence and broadcasts from its end-of-transaction callback (xact.c),
 * after its commit is visible to everyone.  COMMIT PREPARED and ROLLBACK
 * PREPARED wake every bucket of the database (guard.c).  Not NOTIFY: a
 * notifying transaction takes a database-wide lock at commit, which would
 * make producers commit one at a time.
 *
 * A receiver reads the wake sequence *before* it looks for messages; if it
 * finds none, it registers on the condition variable, re-reads the
 * sequence, and sleeps only if nothing was bumped in between.  Waker and
 * sleeper both use full-barrier atomics, so a wake-up is never lost.
 *
 * Timers: the receiver computes when the next lease of its group expires or
 * the next delayed message comes due, and sleeps at most until then.  A due
 * time created by a transaction that commits while the receiver sleeps is
 * not in its computation, so such a transaction, at commit, bumps the due
 * sequence and wakes the bucket if a sleeper of the topic plans to sleep
 * past the new due time (sleepers publish that time in their slot of
 * CourierState->sleeps).  A sleeper re-reads the due sequence after
 * publishing its slot: either the committer sees the slot, or the sleeper
 * sees the bump and computes again.
 *
 * Lingering receives.  A receive that holds part of a batch and lingers for
 * the rest (receive.c, linger) would otherwise be woken by every commit to
 * the topic, only to find it cannot fill the batch yet and sleep again: at
 * a few thousand commits a second, a third of a core for two consumers.
 * So it publishes fill_at in its slot, the first id whose send may fill
 * the batch, and a commit that only sent ids below every sleeper's fill_at
 * bumps the wake sequence without broadcasting (CourierWakeTopicSent).
 * Every other wake-up (nack, release, abort, COMMIT PREPARED) and every
 * timer wakes it as before, and linger's end is its timer: a skipped
 * wake-up can delay a lingering receive at most to the end of its linger,
 * which is what it asked for.  The slot is written before the waiter count
 * goes up and the sequence is read after (full barriers), and the
 * committer bumps the sequence before it reads the slots, so either the
 * committer sees the slot or the sleeper sees the bump and looks again.
 *
 * Due-time floors.  The next due time of a group (CourierNextDue, lease.c)
 * is a scan that must pass over every acked claim whose lease has not
 * ended (acks keep lease_until, so that they stay HOT updates): under a
 * steady load that is most of the claim table, about a millisecond per
 * sleep.  So the group's shared entry keeps a floor: a time such that no
 * due time of the group committed after the moment the floor was computed
 * is earlier.  A sleeper whose floor is still ahead of it uses it instead
 * of scanning; it may wake up early (the floor is a lower bound), never
 * late.  The floor is kept a floor by three things:
 *	- every commit that created a due time of the group lowers it, after
 *	  the commit is visible and before the commit bumps the topic's due
 *	  sequence (xact.c), so a sleeper that read the due sequence before the
 *	  bump either finds the lowered floor or sees the bump and looks again;
 *	- a computation may overlap such commits, whose rows its snapshot may
 *	  miss: the entry keeps the last COURIER_DUE_RING lowerings, numbered,
 *	  and what a computation stores is the earliest of its result and the
 *	  lowerings since it began (if more came than the ring holds, it stores
 *	  nothing).  No counter of running computations: a backend that dies
 *	  in the middle of one (FATAL runs no cleanup) leaves nothing behind;
 *	- commits our callbacks never see (COMMIT PREPARED, which CourierWake-
 *	  Database reports) bump CourierShared->due_epoch, which invalidates
 *	  every floor, and one computed across the bump is not stored;
 *	- only a scan that saw the committed state as of a moment after it
 *	  registered is stored: not one under a transaction snapshot
 *	  (REPEATABLE READ, SERIALIZABLE: it may predate commits that lowered
 *	  the floor before the computation began, or found none to lower), nor
 *	  one of a transaction that wrote anything (its own uncommitted ack,
 *	  seek or purge hides due times that come back if it rolls back, and no
 *	  commit lowers the floor for them).
 * Acks, seeks and purges only remove due times, which leaves a floor a
 * floor.  The fields are under the entry's lock; a group without a shared
 * entry always scans.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/hashfn.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/condition_variable.h"
#include "storage/proc.h"
#include "utils/timestamp.h"

#include "pg_courier.h"

static CourierWaitBucket *bucket_of(Oid dbid, int32 topic_id);
static CourierSleep *my_sleep(void);

/*
 * CourierWaitInit
 *		Initialize the buckets (init) and find the sleep slots, which follow
 *		the prepared-claims table (shmem.c sizes them).
 */
void
CourierWaitInit(CourierShared *state, bool init)
{
	int			i;

	if (!init)
		return;
	for (i = 0; i < COURIER_WAIT_BUCKETS; i++)
	{
		pg_atomic_init_u64(&state->buckets[i].wake_seq, 0);
		pg_atomic_init_u64(&state->buckets[i].due_seq, 0);
		pg_atomic_init_u32(&state->buckets[i].waiters, 0);
		ConditionVariableInit(&state->buckets[i].cv);
	}
	pg_atomic_init_u64(&state->due_epoch, 0);
}

/*
 * bucket_of
 *		The bucket of a topic of a database.
 */
static CourierWaitBucket *
bucket_of(Oid dbid, int32 topic_id)
{
	uint32		h = hash_combine(hash_uint32((uint32) dbid), hash_uint32((uint32) topic_id));

	return &CourierState->buckets[h % COURIER_WAIT_BUCKETS];
}

/*
 * my_sleep
 *		This backend's sleep slot.
 */
static CourierSleep *
my_sleep(void)
{
	if (MyBackendId < 1 || MyBackendId > CourierState->nmarks)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("this process cannot wait for pg_courier messages")));
	return &CourierState->sleeps[MyBackendId - 1];
}

/*
 * CourierWakeSeq / CourierDueSeq
 *		A topic's wake and due sequences, read before looking for messages.
 */
uint64
CourierWakeSeq(int32 topic_id)
{
	return pg_atomic_read_u64(&bucket_of(MyDatabaseId, topic_id)->wake_seq);
}

uint64
CourierDueSeq(int32 topic_id)
{
	return pg_atomic_read_u64(&bucket_of(MyDatabaseId, topic_id)->due_seq);
}

/*
 * CourierWakeTopic
 *		Wake the receivers waiting on a topic.  Called from transaction
 *		callbacks: never errors.
 */
void
CourierWakeTopic(int32 topic_id)
{
	CourierWakeTopicSent(topic_id, PG_INT64_MAX);
}

/*
 * CourierWakeTopicSent
 *		A committed transaction sent ids up to hi to the topic (PG_INT64_MAX:
 *		it made anything else receivable, wake everyone): wake the topic's
 *		receivers, unless every one of them sleeping now is lingering for
 *		ids beyond hi (see "Lingering receives" above).  Called from
 *		transaction callbacks: never errors.
 */
void
CourierWakeTopicSent(int32 topic_id, int64 hi)
{
	CourierWaitBucket *b;
	int			i;

	if (CourierState == NULL)
		return;
	b = bucket_of(MyDatabaseId, topic_id);
	pg_atomic_fetch_add_u64(&b->wake_seq, 1);	/* a full barrier */
	if (pg_atomic_read_u32(&b->waiters) == 0)
		return;
	if (hi != PG_INT64_MAX)
	{
		pg_read_barrier();
		for (i = 0; i < CourierState->nmarks; i++)
		{
			CourierSleep *s = &CourierState->sleeps[i];

			if (s->dbid != MyDatabaseId)
				continue;
			pg_read_barrier();	/* the slot's fields were written before dbid */
			if (s->topic_id == topic_id && (s->fill_at == 0 || s->fill_at <= hi))
				break;
		}
		if (i == CourierState->nmarks)
			return;				/* nobody sleeping on the topic can use it */
	}
	ConditionVariableBroadcast(&b->cv);
}

/*
 * CourierWakeDatabase
 *		Wake every sleeper of a database (in practice: every bucket).  Used
 *		where we cannot tell which topics a change concerned.
 */
void
CourierWakeDatabase(Oid dbid)
{
	int			i;

	if (CourierState == NULL)
		return;
	/* due times may have come with it: no floor holds any more */
	pg_atomic_fetch_add_u64(&CourierState->due_epoch, 1);
	for (i = 0; i < COURIER_WAIT_BUCKETS; i++)
	{
		CourierWaitBucket *b = &CourierState->buckets[i];

		pg_atomic_fetch_add_u64(&b->wake_seq, 1);
		if (pg_atomic_read_u32(&b->waiters) > 0)
			ConditionVariableBroadcast(&b->cv);
	}
	(void) dbid;
}

/*
 * CourierWakeIfOversleeping
 *		A committed transaction made something of the topic due at time due:
 *		wake the topic's sleepers if one of them planned to sleep past it.
 *		Called from transaction callbacks: never errors.
 */
void
CourierWakeIfOversleeping(int32 topic_id, TimestampTz due)
{
	CourierWaitBucket *b;
	int			i;

	if (CourierState == NULL)
		return;
	b = bucket_of(MyDatabaseId, topic_id);
	pg_atomic_fetch_add_u64(&b->due_seq, 1);	/* a full barrier */
	if (pg_atomic_read_u32(&b->waiters) == 0)
		return;
	for (i = 0; i < CourierState->nmarks; i++)
	{
		CourierSleep *s = &CourierState->sleeps[i];

		if (s->dbid != MyDatabaseId)
			continue;
		pg_read_barrier();		/* the slot's fields were written before dbid */
		if (s->topic_id == topic_id && s->until > due)
		{
			ConditionVariableBroadcast(&b->cv);
			return;
		}
	}
}

/*
 * own_entry
 *		Whether a shared group entry (found without the group lock, so it
 *		may have been freed and reused since) is still the group's.  The
 *		caller holds its lock.
 */
static inline bool
own_entry(CourierGroupShared *gs, int32 group_id)
{
	return gs->key.group_id == group_id && gs->key.dbid == MyDatabaseId;
}

/*
 * CourierDueFloorBegin
 *		The group's due-time floor, if it is known and still ahead of now:
 *		returns true with *floor set.  Otherwise the caller is to compute the
 *		next due time and may report it with CourierDueFloorEnd(ticket).
 */
bool
CourierDueFloorBegin(int32 group_id, TimestampTz now, TimestampTz *floor,
					 CourierDueTicket *ticket)
{
	CourierGroupShared *gs = CourierGroupSharedFind(group_id);
	uint64		epoch = pg_atomic_read_u64(&CourierState->due_epoch);

	ticket->gs = NULL;
	ticket->group_id = group_id;
	ticket->epoch = epoch;
	if (gs == NULL)
		return false;
	LWLockAcquire(&gs->lock, LW_EXCLUSIVE);
	if (!own_entry(gs, group_id))
	{
		LWLockRelease(&gs->lock);
		return false;
	}
	if (gs->due_known && gs->due_epoch == epoch && gs->due_floor > now)
	{
		*floor = gs->due_floor;
		LWLockRelease(&gs->lock);
		return true;
	}
	ticket->lseq = gs->due_lseq;
	LWLockRelease(&gs->lock);
	ticket->gs = gs;
	return false;
}

/*
 * CourierDueFloorEnd
 *		A computation begun by CourierDueFloorBegin found the group's next due
 *		time next: store it as the floor if storable (a scan of the committed
 *		state, see CourierNextDue), lowered by whatever was committed since
 *		the computation began.  Nothing to do on error.
 */
void
CourierDueFloorEnd(CourierDueTicket *ticket, bool storable, TimestampTz next)
{
	CourierGroupShared *gs = ticket->gs;
	uint64		i;

	if (gs == NULL || !storable)
		return;
	ticket->gs = NULL;
	LWLockAcquire(&gs->lock, LW_EXCLUSIVE);
	if (own_entry(gs, ticket->group_id) &&
		pg_atomic_read_u64(&CourierState->due_epoch) == ticket->epoch &&
		gs->due_lseq - ticket->lseq <= COURIER_DUE_RING)
	{
		for (i = ticket->lseq; i < gs->due_lseq; i++)
			next = Min(next, gs->due_ring[i % COURIER_DUE_RING]);
		gs->due_floor = next;
		gs->due_epoch = ticket->epoch;
		gs->due_known = true;
	}
	LWLockRelease(&gs->lock);
}

/*
 * CourierGroupDueLower
 *		A committed transaction created a due time of the group: lower its
 *		floor.  Called from transaction callbacks: never errors.
 */
void
CourierGroupDueLower(int32 group_id, TimestampTz due)
{
	CourierGroupShared *gs = CourierGroupSharedFind(group_id);

	if (gs == NULL)
		return;
	LWLockAcquire(&gs->lock, LW_EXCLUSIVE);
	if (own_entry(gs, group_id))
	{
		if (gs->due_known)
			gs->due_floor = Min(gs->due_floor, due);
		gs->due_ring[gs->due_lseq++ % COURIER_DUE_RING] = due;
	}
	LWLockRelease(&gs->lock);
}

/*
 * CourierWaitTopic
 *		Sleep until the topic's wake sequence moves past seq, its due
 *		sequence past dueseq, or until the time until.  Returns early on any
 *		latch wake-up; interrupts (cancel, statement_timeout, termination)
 *		are served while sleeping.  fill_at (0: none) is the lowest id whose
 *		send may be worth waking up for.  The caller holds no lock that DDL
 *		needs.
 */
void
CourierWaitTopic(int32 topic_id, uint64 seq, uint64 dueseq, TimestampTz until, int64 fill_at)
{
	CourierWaitBucket *b = bucket_of(MyDatabaseId, topic_id);
	CourierSleep *me = my_sleep();
	TimestampTz now = GetCurrentTimestamp();
	long		ms;

	if (until <= now)
		return;
	ms = (long) Min((until - now + 999) / 1000, (TimestampTz) INT_MAX);

	me->topic_id = topic_id;
	me->until = until;
	me->fill_at = fill_at;
	pg_write_barrier();
	me->dbid = MyDatabaseId;
	ConditionVariablePrepareToSleep(&b->cv);
	pg_atomic_fetch_add_u32(&b->waiters, 1);	/* a full barrier */
	PG_TRY();
	{
		if (pg_atomic_read_u64(&b->wake_seq) == seq &&
			pg_atomic_read_u64(&b->due_seq) == dueseq)
			(void) ConditionVariableTimedSleep(&b->cv, ms, PG_WAIT_EXTENSION);
	}
	PG_FINALLY();
	{
		me->dbid = InvalidOid;
		pg_atomic_fetch_sub_u32(&b->waiters, 1);
		ConditionVariableCancelSleep();
	}
	PG_END_TRY();
}
