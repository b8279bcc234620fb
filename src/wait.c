/*-------------------------------------------------------------------------
 *
 * wait.c
 *	  Waiting receives: sleeping until something may have become
 *	  receivable, without polling the tables.
 *
 * Each topic has a wake sequence counter and a condition variable in
 * shared memory.  A transaction that made messages of a topic receivable
 * (a send, a nack, a released lease; or, at abort, leases it held) bumps the
 * counter and broadcasts from its end-of-transaction callback (xact.c) --
 * after its commit is visible to everyone.  Not NOTIFY: a notifying
 * transaction takes a database-wide lock at commit, which would make
 * producers commit one at a time.
 *
 * A receiver reads the counter *before* it looks for messages; if it finds
 * none, it registers on the condition variable, re-reads the counter, and
 * sleeps only if nothing was bumped in between.  Waker and sleeper both use
 * full-barrier atomics (the waiter count and the sequence), so a wake-up is
 * never lost.  Timers (a lease that expires, a delay or backoff that runs
 * out) need no one to wake the receiver: it computes when the next one is
 * due for its group and sleeps at most that long.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "pgstat.h"
#include "utils/timestamp.h"

#include "pg_courier.h"

/*
 * CourierWakeSeq
 *		The topic's wake sequence, read before looking for messages.
 */
uint64
CourierWakeSeq(CourierTopic *topic)
{
	CourierTopicShared *ts = CourierTopicSharedGet(topic->topic_id);

	return pg_atomic_read_u64(&ts->wake_seq);
}

/*
 * CourierWakeTopic
 *		Wake the receivers waiting on a topic.  Called from transaction
 *		callbacks: never errors, never creates a shared entry.
 */
void
CourierWakeTopic(int32 topic_id)
{
	CourierTopicShared *ts = CourierTopicSharedFind(topic_id);

	if (ts == NULL)
		return;
	pg_atomic_fetch_add_u64(&ts->wake_seq, 1);
	if (pg_atomic_read_u32(&ts->waiters) > 0)
		ConditionVariableBroadcast(&ts->cv);
}

/*
 * CourierWaitTopic
 *		Sleep until the topic's wake sequence moves past seq or until the
 *		time until.  Returns early on any latch wake-up; interrupts
 *		(cancel, statement_timeout, termination) are served while sleeping.
 */
void
CourierWaitTopic(CourierTopic *topic, uint64 seq, TimestampTz until)
{
	CourierTopicShared *ts = CourierTopicSharedGet(topic->topic_id);
	TimestampTz now = GetCurrentTimestamp();
	long		ms;

	if (until <= now)
		return;
	ms = (long) Min((until - now + 999) / 1000, (TimestampTz) INT_MAX);

	ConditionVariablePrepareToSleep(&ts->cv);
	pg_atomic_fetch_add_u32(&ts->waiters, 1);
	PG_TRY();
	{
		if (pg_atomic_read_u64(&ts->wake_seq) == seq)
			(void) ConditionVariableTimedSleep(&ts->cv, ms, PG_WAIT_EXTENSION);
	}
	PG_FINALLY();
	{
		pg_atomic_fetch_sub_u32(&ts->waiters, 1);
		ConditionVariableCancelSleep();
	}
	PG_END_TRY();
}
