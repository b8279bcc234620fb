/*-------------------------------------------------------------------------
 *
 * receive.c
 *	  courier.receive and courier.peek (the statistics behind the views
 *	  are in ops.c).
 *
 * A receive leases up to max_messages messages to the caller, oldest work
 * first:
 *	1. claims whose lease expired are turned into per-message rows,
 *	2. receivable rows of the lease table (retries, expired leases, delayed
 *	   messages that came due, heads of ordered keys) are leased,
 *	3. the rest comes from walking the log (walk.c).
 * With wait => interval, an empty receive sleeps on the topic's condition
 * variable until a commit (or a timer it computed itself) may have made
 * something receivable, then tries again (wait.c).
 * courier.ack_and_receive acks the previous batch and receives the next in
 * one call, so that a consumer's cycle is one commit.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "tcop/utility.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"

#include "pg_courier.h"

PG_FUNCTION_INFO_V1(courier_receive);
PG_FUNCTION_INFO_V1(courier_ack_and_receive);
PG_FUNCTION_INFO_V1(courier_peek);

#define MAX_VISIBILITY_USEC	(INT64CONST(12) * USECS_PER_HOUR)
#define MAX_WAIT_USEC		(INT64CONST(3600) * USECS_PER_SEC)
#define MAX_LINGER_USEC		(INT64CONST(60) * USECS_PER_SEC)
/* how long ack_and_receive may sleep on its uncommitted acks (receive_acks) */
#define ACK_HOLD_USEC		(INT64CONST(1) * USECS_PER_SEC)

static SPIPlanPtr plan_peek_leases = NULL;

static int	receive_once(CourierTopic *topic, CourierGroup *group, int max_messages,
						 int64 vt_usec, CourierDelivery *out, bool *more);
static int64 linger_fill_at(CourierGroup *group, int need);
static bool linger_may_fill(CourierTopic *topic, CourierGroup *group, int need,
							TimestampTz now);
static void emit(ReturnSetInfo *rsinfo, CourierDelivery *d, bool with_lease);
static int	max_messages_arg(FunctionCallInfo fcinfo, int argno);

/*
 * max_messages_arg
 *		The max_messages argument, checked: 1 to COURIER_MAX_RECEIVE.
 */
static int
max_messages_arg(FunctionCallInfo fcinfo, int argno)
{
	int			max_messages;

	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("max_messages must not be NULL")));
	max_messages = PG_GETARG_INT32(argno);
	if (max_messages < 1 || max_messages > COURIER_MAX_RECEIVE)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_messages must be between 1 and %d", COURIER_MAX_RECEIVE),
				 errdetail("max_messages was %d.", max_messages)));
	return max_messages;
}

/*
 * receive_once
 *		One attempt at leasing messages; returns how many.
 */
static int
receive_once(CourierTopic *topic, CourierGroup *group, int max_messages, int64 vt_usec,
			 CourierDelivery *out, bool *more)
{
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz lease_until;
	CourierWalkResult res;
	int			n;
	int			due;			/* redeliveries taken before the walk */
	TimestampTz due_base;		/* what their leases count from */

	*more = false;
	if (group->paused)
		return 0;
	CourierLockClaimTables();
	(void) CourierExpireClaims(group, Max(max_messages, 16), now);

	/*
	 * A lease runs from the hand-out: each step takes the time anew, and
	 * the walk adds what it waited for the claim lock.  Counted from the
	 * call's start, a receive that waited longer than the visibility
	 * timeout (for an operator's transaction holding the claim lock) handed
	 * out leases that had already ended, and a second receiver took the
	 * same messages at once (review 41).
	 */
	now = GetCurrentTimestamp();
	lease_until = now + vt_usec;
	due_base = now;
	n = due = CourierLeaseDue(topic, group, max_messages, now, lease_until, out);
	if (n < max_messages)
	{
		lease_until = GetCurrentTimestamp() + vt_usec;
		CourierWalk(topic, group, WALK_CLAIM, max_messages - n, lease_until, 0, &res);
		if (res.ndelivered > 0)
			memcpy(&out[n], res.delivered, sizeof(CourierDelivery) * res.ndelivered);
		n += res.ndelivered;
		*more = res.more;
		/* an ordered group's walk queues messages in the lease table */
		if (res.diverted > 0 && n < max_messages)
		{
			now = GetCurrentTimestamp();
			lease_until = now + vt_usec;
			n += CourierLeaseDue(topic, group, max_messages - n, now, lease_until, &out[n]);
		}
	}
	/* the walk may have waited: the redeliveries taken before it, too */
	if (due > 0 && GetCurrentTimestamp() - due_base > COURIER_LEASE_SLACK_USEC)
		CourierExtendLeases(topic, group, out, due, GetCurrentTimestamp() + vt_usec);
	if (n > 0)
	{
		CourierWakeAtAbort(topic->topic_id);
		CourierGroupTouch(group->group_id, false);
	}
	return n;
}

/*
 * linger_may_fill
 *		Whether a lingering receive woken before its timer should look
 *		again: something of the lease table is receivable now (a nack, a
 *		released or expired lease, a redrive, a rolled-back receive's rows),
 *		or enough ids were sent since the group's last walk (or wait in its
 *		recheck and hole spans) to fill the rest of the batch -- from shared
 *		memory, an overestimate (ids of other groups' filters, or still
 *		being written, count too), so a walk may still come back short.  So
 *		a lingering receive no longer walks, and claims, on every commit to
 *		the topic; its timer (linger's end, a due time) always walks.
 */
static bool
linger_may_fill(CourierTopic *topic, CourierGroup *group, int need, TimestampTz now)
{
	int64		frontier,
				lowest,
				span_ids;
	CourierDeferredCount deferred;

	if (CourierDueNow(group, now))
		return true;
	CourierGroupPosition(group, &frontier, &lowest, &span_ids, &deferred);
	return CourierNextIdOf(topic) - frontier + (span_ids - deferred.ids) >= need;
}

/*
 * linger_fill_at
 *		The lowest id whose send, once committed, may let linger_may_fill
 *		find the rest of the batch (need ids): a lingering receive sleeps
 *		through commits of sends below it (wait.c, "Lingering receives").
 *		0 if any send may.
 *
 *		What can fill the batch lies in the hole and recheck spans (below
 *		the frontier) or at the frontier and beyond, so the batch fills only
 *		once the highest committed id reaches frontier + need - spans - 1
 *		(where linger_may_fill holds) -- unless the spans alone hold enough
 *		ids.  Then what fills it may be the commit of a transaction writing
 *		a hole, all of whose ids lie below the frontier (review 29: a low-id
 *		transaction committing after a high-id one was slept through until
 *		linger's end): wake for any send from the lowest span on.
 */
static int64
linger_fill_at(CourierGroup *group, int need)
{
	int64		frontier,
				lowest,
				span_ids;
	CourierDeferredCount deferred;
	int64		at;

	CourierGroupPosition(group, &frontier, &lowest, &span_ids, &deferred);
	/* linger_may_fill holds once next_id - frontier + spans >= need */
	at = frontier + need - (span_ids - deferred.ids) - 1;
	if (at < frontier)
		at = Min(at, lowest);
	return Max(at, 0);
}

/*
 * emit
 *		Append one courier.message row to the result.
 */
static void
emit(ReturnSetInfo *rsinfo, CourierDelivery *d, bool with_lease)
{
	Datum		values[9];
	bool		nulls[9];

	memset(nulls, 0, sizeof(nulls));
	values[0] = Int64GetDatum(d->msg.id);
	values[1] = Int32GetDatum(d->attempt);
	values[2] = d->msg.tag;
	nulls[2] = d->msg.tag == (Datum) 0;
	values[3] = d->msg.keys;
	nulls[3] = d->msg.keys == (Datum) 0;
	values[4] = d->msg.headers;
	nulls[4] = d->msg.headers == (Datum) 0;
	values[5] = d->msg.body;
	values[6] = TimestampTzGetDatum(d->msg.sent_at);
	values[7] = TimestampTzGetDatum(d->lease_until);
	nulls[7] = !with_lease;
	if (with_lease)
		values[8] = CourierMakeReceipt(d->msg.id, d->attempt, d->delivered_at);
	nulls[8] = !with_lease;
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

/*
 * CourierIntervalUsec
 *		An interval as microseconds (months count as 30 days, like
 *		interval comparison does).
 */
int64
CourierIntervalUsec(Interval *iv)
{
	int128		usec = (int128) iv->time + (int128) iv->day * USECS_PER_DAY +
		(int128) iv->month * (INT64CONST(30) * USECS_PER_DAY);

	if (usec > PG_INT64_MAX)
		return PG_INT64_MAX;
	if (usec < PG_INT64_MIN)
		return PG_INT64_MIN;
	return (int64) usec;
}

/*
 * begin_look / end_look
 *		A look of a waiting receive that has nothing in hand, in a
 *		transaction that has written nothing, runs under a resource owner of
 *		its own.  If it finds nothing and writes nothing, every lock it took
 *		is read-only -- AccessShareLock on the catalog tables, segments and
 *		their indexes, the topic and group locks, RowExclusiveLock on claim
 *		and lease taken before it knew -- and end_look gives them all back
 *		before the sleep: DDL must never queue behind a sleeper, and every
 *		send and receive of the database behind the DDL (DESIGN.md section
 *		5).  Giving back only the topic and group locks left VACUUM FULL or
 *		REINDEX of courier.claim waiting for the whole wait, up to an hour,
 *		and every queue of the database behind it (review 42).  A look that
 *		delivered or wrote (its transaction has an xid now: claims over
 *		passed-over ids, expired leases, promotions) keeps its locks until
 *		commit, as any writer must: end_look hands them to the caller's
 *		resource owner.  Nothing else outlives a look (relations are closed,
 *		SPI finished, snapshots popped), so releasing the owner releases
 *		only locks.
 */
static ResourceOwner
begin_look(bool waiting)
{
	ResourceOwner owner;

	if (!waiting || TransactionIdIsValid(GetTopTransactionIdIfAny()))
		return NULL;
	owner = ResourceOwnerCreate(CurrentResourceOwner, "pg_courier receive look");
	CurrentResourceOwner = owner;
	return owner;
}

static void
end_look(ResourceOwner owner, bool give_back)
{
	bool		keep = !give_back;

	ResourceOwnerRelease(owner, RESOURCE_RELEASE_BEFORE_LOCKS, keep, false);
	ResourceOwnerRelease(owner, RESOURCE_RELEASE_LOCKS, keep, false);
	ResourceOwnerRelease(owner, RESOURCE_RELEASE_AFTER_LOCKS, keep, false);
	ResourceOwnerDelete(owner);
}

/* Where receive_run finds its arguments: receive's and ack_and_receive's order */
typedef struct ReceiveArgs
{
	int			max_messages;
	int			visibility_timeout;
	int			wait;
	int			linger;
	int			ids;			/* -1: none (receive) */
	int			receipts;
	const char *what;			/* the function, for errors */
} ReceiveArgs;

static const ReceiveArgs receive_layout = {2, 3, 4, 5, -1, -1, "courier.receive"};
static const ReceiveArgs ack_and_receive_layout = {4, 5, 6, 7, 2, 3, "courier.ack_and_receive"};

/*
 * receive_acks
 *		ack_and_receive's ack of the previous batch, in the same transaction
 *		as the receive that follows: a consumer's cycle is one call and one
 *		commit instead of two (Kafka's commit with the next poll).  Both
 *		commit or roll back together; an ordered key's next message is
 *		receivable in the same call once the ack took its predecessor.
 *		Returns whether there were ids to ack.
 *
 *		A call given ids to ack waits at most ACK_HOLD_USEC (1 s) for a
 *		first message: its acks stay uncommitted until it returns, and
 *		sleeping on them for up to an hour would hold their claim rows'
 *		locks, an xid that holds back vacuum's horizon, and the claim
 *		tables' locks DDL waits for.  A short hold is what makes the call
 *		pay under a trickle of messages: the next one usually comes within
 *		it, and its claim commits with the acks (one commit per cycle).
 *		Past the hold the call returns empty; the client's next call, with
 *		nothing to ack, waits as long as it likes.  linger still applies:
 *		a lingering receive holds claims anyway, for at most a minute.
 */
static bool
receive_acks(FunctionCallInfo fcinfo, const ReceiveArgs *args, const char *topic_name,
			 const char *group_name)
{
	ArrayType  *ids;
	ArrayType  *receipts = NULL;
	CourierTopic *topic;
	CourierGroup *group;

	if (args->ids < 0 || PG_ARGISNULL(args->ids))
	{
		if (args->ids >= 0 && !PG_ARGISNULL(args->receipts))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("receipts need ids"),
					 errhint("Pass the ids the receipts belong to.")));
		return false;
	}
	ids = PG_GETARG_ARRAYTYPE_P(args->ids);
	if (!PG_ARGISNULL(args->receipts))
		receipts = PG_GETARG_ARRAYTYPE_P(args->receipts);
	if (ArrayGetNItems(ARR_NDIM(ids), ARR_DIMS(ids)) == 0)
	{
		if (receipts != NULL && ArrayGetNItems(ARR_NDIM(receipts), ARR_DIMS(receipts)) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("receipts must have one element per id"),
					 errdetail("There are 0 ids and %d receipts.",
							   ArrayGetNItems(ARR_NDIM(receipts), ARR_DIMS(receipts)))));
		return false;
	}
	topic = CourierGetTopic(topic_name);
	CourierCheckTopicPrivilege(topic, COURIER_PRIV_RECEIVE);
	group = CourierGetGroup(topic, group_name);
	CourierLockClaimTables();
	(void) CourierAckArrays(topic, group, ids, receipts, "ids", "receipts");
	return true;
}

/*
 * receive_run
 *		receive(topic, grp, max_messages, visibility_timeout, wait, linger)
 *		and ack_and_receive(topic, grp, ids, receipts, max_messages, ...)
 *		-> SETOF courier.message; args says where each argument is.
 *
 *		A waiting receive loops: look, and if nothing came, sleep until a
 *		commit or a timer may have made something receivable.  Each round
 *		runs in a memory context reset before the next, so a receive that
 *		waits for an hour uses no more memory than one that does not.  Before
 *		it sleeps it gives back the locks it took (begin_look / end_look:
 *		DDL must never queue behind a sleeper, and everything else behind
 *		the DDL) and looks the topic and group up again when it wakes up.
 *
 *		linger (Kafka's fetch.max.wait.ms with fetch.min.bytes): once a round
 *		found something, keep collecting until max_messages are in hand or
 *		linger has passed since that first round.  While it lingers the call
 *		holds claims of the group, so it keeps its topic and group locks
 *		(DDL waits at most linger, which is at most a minute).
 */
static Datum
receive_run(FunctionCallInfo fcinfo, const ReceiveArgs *args)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *topic_name = CourierTextArg(fcinfo, 0, "topic");
	char	   *group_name = CourierTextArg(fcinfo, 1, "group");
	int			max_messages;
	int64		vt_usec;
	int64		wait_usec = 0;
	int64		linger_usec = 0;
	int			total = 0;
	TimestampTz linger_end = 0;
	TimestampTz hand_end = DT_NOEND;	/* lingering ends by then (see below) */
	MemoryContext call_cxt = CurrentMemoryContext;
	MemoryContext round_cxt;
	TimestampTz deadline;
	TimestampTz wake = 0;		/* when the last sleep was to end */
	int			i;

	max_messages = max_messages_arg(fcinfo, args->max_messages);
	if (PG_ARGISNULL(args->visibility_timeout))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("visibility_timeout must not be NULL")));
	vt_usec = CourierIntervalUsec(PG_GETARG_INTERVAL_P(args->visibility_timeout));
	if (vt_usec < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("visibility_timeout must not be negative")));
	if (vt_usec > MAX_VISIBILITY_USEC)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("visibility_timeout must not exceed 12 hours"),
				 errhint("Extend a lease while you work with courier.set_visibility.")));
	if (!PG_ARGISNULL(args->wait))
	{
		wait_usec = CourierIntervalUsec(PG_GETARG_INTERVAL_P(args->wait));
		if (wait_usec < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("wait must not be negative")));
		if (wait_usec > MAX_WAIT_USEC)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("wait must not exceed 1 hour")));
	}
	if (PG_NARGS() > args->linger && !PG_ARGISNULL(args->linger))
	{
		linger_usec = CourierIntervalUsec(PG_GETARG_INTERVAL_P(args->linger));
		if (linger_usec < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("linger must not be negative")));
		if (linger_usec > MAX_LINGER_USEC)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("linger must not exceed 1 minute"),
					 errhint("linger bounds how long a receive that has messages waits for more.")));
	}
	PreventCommandDuringRecovery(args->what);
	PreventCommandIfReadOnly(args->what);
	if (receive_acks(fcinfo, args, topic_name, group_name))
		wait_usec = Min(wait_usec, ACK_HOLD_USEC);

	InitMaterializedSRF(fcinfo, 0);
	round_cxt = AllocSetContextCreate(call_cxt, "pg_courier receive round",
									  ALLOCSET_DEFAULT_SIZES);
	deadline = GetCurrentTimestamp() + wait_usec;
	for (;;)
	{
		CourierTopic *topic;
		CourierGroup *group;
		CourierDelivery *out;
		int32		topic_id;
		int32		group_id;
		uint64		seq;
		uint64		dueseq;
		bool		more;
		int			n;
		TimestampTz now;
		TimestampTz looked;		/* when this round started to look */
		TimestampTz stop;
		int64		fill_at;
		ResourceOwner save_owner = CurrentResourceOwner;
		ResourceOwner volatile look_owner;
		bool		give_back;
		bool		done;
		TimestampTz next_due;

		MemoryContextReset(round_cxt);
		MemoryContextSwitchTo(round_cxt);
		look_owner = begin_look(wait_usec > 0 && total == 0);
		PG_TRY();
		{
			topic = CourierGetTopic(topic_name);
			/* every round: a revoke takes effect for a waiting receive too */
			CourierCheckTopicPrivilege(topic, COURIER_PRIV_RECEIVE);
			group = CourierGetGroup(topic, group_name);
			CourierRequireWorker();
			topic_id = topic->topic_id;
			group_id = group->group_id;

			seq = CourierWakeSeq(topic_id);
			dueseq = CourierDueSeq(topic_id);
			out = palloc(sizeof(CourierDelivery) * (max_messages - total));
			now = looked = GetCurrentTimestamp();
			if (total > 0 && now >= hand_end)
			{
				/* a lease in hand is half gone: return it, do not look again */
				n = 0;
				more = false;
			}
			else if (total > 0 && now < wake &&
					 !linger_may_fill(topic, group, max_messages - total, now))
			{
				/*
				 * Lingering, woken before the timer by what cannot fill the
				 * batch: sleep on (until wake, which is at most linger's
				 * end, where the timer walks once more).
				 */
				n = 0;
				more = false;
			}
			else
			{
				n = receive_once(topic, group, max_messages - total, vt_usec, out, &more);
				now = GetCurrentTimestamp();
			}

			/*
			 * When the next lease row comes due, for the sleep -- asked here,
			 * as part of the look (it reads courier.lease).  From the time
			 * we started looking, not from now: a lease row that came due
			 * while we walked was seen by neither the due scan nor a next
			 * due time counted from now.
			 */
			next_due = (n == 0 && total == 0 && wait_usec > 0 && !more) ?
				CourierNextDue(group, looked) : 0;
		}
		PG_CATCH();
		{
			/* the abort releases look_owner with its parent */
			CurrentResourceOwner = save_owner;
			PG_RE_THROW();
		}
		PG_END_TRY();
		CurrentResourceOwner = save_owner;
		give_back = (n == 0 && !TransactionIdIsValid(GetTopTransactionIdIfAny()));
		if (n > 0)
		{
			/* the tuplestore copies what it keeps */
			MemoryContextSwitchTo(call_cxt);
			for (i = 0; i < n; i++)
			{
				emit(rsinfo, &out[i], true);
				/*
				 * Linger only while every lease in hand has at least half
				 * of it left (and 100 ms): a lease that ran out during the
				 * linger would be turned into a redelivery by the next
				 * look's expiry pass, and the call would hand out the same
				 * message twice and use up its attempts (review 46).
				 */
				hand_end = Min(hand_end, out[i].lease_until -
							   Max(COURIER_LEASE_SLACK_USEC, vt_usec / 2));
			}
			MemoryContextSwitchTo(round_cxt);
			if (total == 0)
				linger_end = now + linger_usec;
			total += n;
		}
		if (total >= max_messages)
			done = true;
		else if (total > 0)
		{
			/* lingering for a fuller batch, or done */
			stop = Min(linger_end, hand_end);
			done = (now >= stop);
		}
		else
		{
			done = (wait_usec == 0 || now >= deadline);
			stop = deadline;
		}
		if (done || more)
		{
			if (look_owner)
				end_look(look_owner, give_back);
			if (done)
				break;
			wake = 0;			/* the walk stopped early: keep walking */
			continue;
		}
		/*
		 * Lingering, sleep to linger's end: what comes due by time before it
		 * is collected then (or earlier, when a commit wakes us and
		 * linger_may_fill finds it due), and this look at the tables is
		 * not repeated at every commit to the topic.
		 */
		wake = (total > 0) ? stop : Min(stop, next_due);
		wake = Min(wake, CourierGroupDeferredDue(group_id));

		/*
		 * Sleep, and look everything up again after.  A look that wrote
		 * nothing gives its locks back in end_look, so DDL never queues
		 * behind a sleeper.  One that wrote (claims over passed-over ids, or
		 * claims in hand while lingering), or one in a transaction that had
		 * written before, keeps this round's topic and group locks too: it
		 * used to drop them here, and a drop_group then took the group,
		 * waited for the sleeper's uncommitted claim row, and deadlocked
		 * with it when it woke up and asked for the group again (seen in the
		 * failover chaos test).
		 */
		if (look_owner)
			end_look(look_owner, give_back);
		fill_at = (total > 0) ? linger_fill_at(group, max_messages - total) : 0;
		MemoryContextSwitchTo(call_cxt);
		CourierCacheFreeRetired();
		CourierWaitTopic(topic_id, seq, dueseq, wake, fill_at);
		CHECK_FOR_INTERRUPTS();
		/* what woke it up, for tests and for whoever wonders (wait.c) */
		ereport(DEBUG2,
				(errmsg_internal("pg_courier receive: awake again, %d in hand", total)));
	}
	MemoryContextSwitchTo(call_cxt);
	MemoryContextDelete(round_cxt);
	return (Datum) 0;
}

/* receive_body: receive's arguments */
static Datum
receive_body(PG_FUNCTION_ARGS)
{
	return receive_run(fcinfo, &receive_layout);
}

/* ack_and_receive_body: ack_and_receive's arguments */
static Datum
ack_and_receive_body(PG_FUNCTION_ARGS)
{
	return receive_run(fcinfo, &ack_and_receive_layout);
}

/* courier_receive: the SQL entry point, receive_body as the extension owner (acl.c) */
Datum
courier_receive(PG_FUNCTION_ARGS)
{
	return CourierRunAsOwner(fcinfo, receive_body);
}

/* courier_ack_and_receive: the SQL entry point, as the extension owner (acl.c) */
Datum
courier_ack_and_receive(PG_FUNCTION_ARGS)
{
	return CourierRunAsOwner(fcinfo, ack_and_receive_body);
}

/*
 * peek_body
 *		peek(topic, grp, max_messages) -> what a receive would return next,
 *		without leasing anything or counting an attempt.  attempt shows how
 *		many times the message was delivered so far; lease_until is NULL.
 */
static Datum
peek_body(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *topic_name = CourierTextArg(fcinfo, 0, "topic");
	char	   *group_name = CourierTextArg(fcinfo, 1, "group");
	int			max_messages;
	CourierTopic *topic;
	CourierGroup *group;
	CourierWalkResult res;
	TimestampTz now = GetCurrentTimestamp();
	Oid			types[3] = {INT4OID, TIMESTAMPTZOID, INT4OID};
	Datum		args[3];
	int			n = 0;
	int64	   *ids;
	int32	   *attempts;
	uint64		nleases;
	uint64		i;
	MemoryContext outer = CurrentMemoryContext;

	max_messages = max_messages_arg(fcinfo, 2);

	InitMaterializedSRF(fcinfo, 0);
	topic = CourierGetTopic(topic_name);
	CourierCheckTopicPrivilege(topic, COURIER_PRIV_RECEIVE);
	group = CourierGetGroup(topic, group_name);

	/* redeliveries first, as receive would */
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	CourierPrepare(&plan_peek_leases,
				   "SELECT id, attempt FROM ("
				   "  SELECT msg_id AS id, attempt, visible_at AS due FROM courier.lease l "
				   "  WHERE group_id OPERATOR(pg_catalog.=) $1 AND visible_at OPERATOR(pg_catalog.<=) $2 "
				   "  AND state OPERATOR(pg_catalog.=) ANY ('{l,w}'::pg_catalog.\"char\"[]) "
				   /* ordered groups: a key has one such row at most, its head */
				   "  UNION ALL "
				   "  SELECT pg_catalog.unnest(pending), 1, lease_until FROM courier.claim "
				   "  WHERE group_id OPERATOR(pg_catalog.=) $1 "
				   "  AND lease_until OPERATOR(pg_catalog.<=) $2) d "
				   "ORDER BY due, id LIMIT $3",
				   3, types);
	args[0] = Int32GetDatum(group->group_id);
	args[1] = TimestampTzGetDatum(now);
	args[2] = Int32GetDatum(max_messages);
	if (SPI_execute_plan(plan_peek_leases, args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the lease table");
	nleases = SPI_processed;
	ids = MemoryContextAlloc(outer, sizeof(int64) * Max(nleases, 1));
	attempts = MemoryContextAlloc(outer, sizeof(int32) * Max(nleases, 1));
	for (i = 0; i < nleases; i++)
	{
		bool		isnull;

		ids[i] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		attempts[i] = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull));
	}
	SPI_finish();

	for (i = 0; i < nleases; i++)
	{
		CourierDelivery d;

		if (!CourierFetchMessage(topic, ids[i], &d.msg))
			continue;
		d.attempt = attempts[i];
		d.lease_until = 0;
		emit(rsinfo, &d, false);
		n++;
	}

	if (n < max_messages)
	{
		CourierWalk(topic, group, WALK_PEEK, max_messages - n, 0, 0, &res);
		for (i = 0; i < (uint64) res.ndelivered; i++)
		{
			res.delivered[i].attempt = 0;
			emit(rsinfo, &res.delivered[i], false);
		}
	}
	return (Datum) 0;
}

/* courier_peek: the SQL entry point, peek_body as the extension owner (acl.c) */
Datum
courier_peek(PG_FUNCTION_ARGS)
{
	return CourierRunAsOwner(fcinfo, peek_body);
}
