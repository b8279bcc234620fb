/*-------------------------------------------------------------------------
 *
 * xact.c
 *	  What pg_courier does when a transaction or subtransaction ends.
 *
 * Work that must follow the fate of the transaction is recorded here while
 * the transaction runs and carried out by the callbacks:
 *
 *	- Claims inserted by a receive (walk.c).  If the (sub)transaction that
 *	  inserted them rolls back, the claim rows vanish and the ids they
 *	  covered must be walked again: their span becomes a recheck of the
 *	  group.  If the transaction is prepared (two-phase commit), no callback
 *	  of ours will run when it is finished, so at PREPARE the spans move to
 *	  the shared prepared-claims table, where walkers find out how it ended.
 *	- Topics to wake: at commit, receivers sleeping on a topic we sent to
 *	  (or released leases of) are woken; at abort, topics whose messages we
 *	  had leased are woken, since the leases are gone.  COMMIT PREPARED and
 *	  ROLLBACK PREPARED wake the whole database (guard.c).
 *	- Due times: a transaction that created a lease or a delay wakes the
 *	  topic's sleepers at commit only if one of them plans to sleep past it
 *	  (wait.c), so a sleeper never oversleeps a timer it could not see.
 *	- DDL: shared entries of dropped topics and groups are removed at
 *	  commit.  The dropping transaction still holds their locks
 *	  exclusively at that point, so nobody is using them.  Entries of
 *	  topics and groups created by a transaction that rolls back are
 *	  removed at abort (nobody else ever saw them).
 *	- Positions rebuilt from this transaction's own uncommitted rows: seek
 *	  and purge rewrite a group's claims and low_water and forget its
 *	  shared position, and a walk later in the same transaction rebuilds
 *	  it from what the transaction sees.  Whatever way the transaction (or
 *	  the savepoint) ends, the position is forgotten again, so the next
 *	  walk rebuilds it from what was committed.  Such a transaction cannot
 *	  be prepared: no callback of ours would run at COMMIT/ROLLBACK PREPARED.
 *	- Promotion checks of ordered groups taken out of shared memory
 *	  (lease.c, CourierRunPromotions).  The promotion a check leads to is
 *	  an UPDATE of this transaction; if the (sub)transaction rolls back,
 *	  the UPDATE is undone and the check goes back into shared memory, due
 *	  at once.  At PREPARE it goes back too, due once the prepared
 *	  transaction is finished (ROLLBACK PREPARED runs no callback of ours).
 *	  At commit it is simply forgotten: the promotion, or the check it
 *	  re-registered, is in place.
 *
 * Cost: a transaction may send or receive thousands of times, each under a
 * savepoint of its own (JDBC's autosave does exactly that).  Claims are kept
 * in an array whose nesting levels never decrease, so a subtransaction's end
 * only looks at the tail; consecutive claims of a group at one level merge
 * into one span.  Wake-ups and due times are a small set keyed by topic.
 * Nothing is rescanned per savepoint.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/transam.h"
#include "access/xact.h"
#include "miscadmin.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "pg_courier.h"

/* A span of claims a (sub)transaction inserted */
typedef struct ClaimItem
{
	int			level;			/* subtransaction nesting level */
	int32		group_id;
	int32		topic_id;
	int64		lo;
	int64		hi;
} ClaimItem;

/* A promotion check (or, okey NULL, an orphan scan) this transaction took */
typedef struct PromoItem
{
	int			level;			/* subtransaction nesting level */
	Oid			instance;
	int32		group_id;
	char	   *okey;			/* in xact_cxt; NULL: the group's orphan scan */
} PromoItem;

typedef enum SetKind
{
	SET_WAKE_COMMIT,			/* wake topic waiters at commit */
	SET_WAKE_ABORT,				/* wake topic waiters at abort */
	SET_DUE,					/* a due time created for the topic */
	SET_GROUP_DUE,				/* a due time created for the group */
	SET_WAKE_PASSED,			/* wake topic waiters at the end if due has passed */
	SET_FORGET_TOPIC,			/* remove a topic's shared entry at commit */
	SET_FORGET_GROUP,			/* remove a group's shared entry at commit */
	SET_UNDO_TOPIC,				/* remove a topic's shared entry at abort (created here) */
	SET_UNDO_GROUP,				/* remove a group's shared entry at abort (created here) */
	SET_INVALIDATE_GROUP		/* forget a group's position at the end, however it ends */
} SetKind;

typedef struct SetKey
{
	int32		kind;
	int32		id;
} SetKey;

typedef struct SetEntry
{
	SetKey		key;
	int			level;			/* lowest level that recorded it */
	int			deep;			/* deepest level that recorded it since
								 * that level began (see the subxact
								 * callback) */
	TimestampTz due;			/* SET_DUE: the earliest due time */
	int64		wake_hi;		/* SET_WAKE_COMMIT: the highest id sent, or
								 * PG_INT64_MAX: wake everyone */
	Oid			instance;		/* SET_FORGET_*: the installation (CourierInstanceId) */
} SetEntry;

static MemoryContext xact_cxt = NULL;
static ClaimItem *claims = NULL;
static int	nclaims = 0;
static int	maxclaims = 0;
static HTAB *sets = NULL;
static PromoItem *promos = NULL;
static int	npromos = 0;
static int	maxpromos = 0;

static void courier_xact_callback(XactEvent event, void *arg);
static void courier_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
									 SubTransactionId parentSubid, void *arg);
static SetEntry *add_set(SetKind kind, int32 id, TimestampTz due);
static void reset_all(void);
static void prepare_claims(void);
static void restore_promotions(int level, TransactionId xid);

/*
 * CourierXactInit
 *		Register the callbacks (every backend inherits them from _PG_init).
 */
void
CourierXactInit(void)
{
	RegisterXactCallback(courier_xact_callback, NULL);
	RegisterSubXactCallback(courier_subxact_callback, NULL);
}

/*
 * xact_memory
 *		Our bookkeeping lives in a context reset at every transaction end.
 */
static MemoryContext
xact_memory(void)
{
	if (xact_cxt == NULL)
		xact_cxt = AllocSetContextCreate(TopMemoryContext, "pg_courier transaction",
										 ALLOCSET_SMALL_SIZES);
	return xact_cxt;
}

/*
 * add_set
 *		Record (kind, id) at the current level, keeping the lowest level and
 *		the earliest due time.
 */
static SetEntry *
add_set(SetKind kind, int32 id, TimestampTz due)
{
	SetKey		key;
	SetEntry   *e;
	bool		found;
	int			level = GetCurrentTransactionNestLevel();

	if (sets == NULL)
	{
		HASHCTL		ctl;

		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = sizeof(SetKey);
		ctl.entrysize = sizeof(SetEntry);
		ctl.hcxt = xact_memory();
		sets = hash_create("pg_courier transaction set", 16, &ctl,
						   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	memset(&key, 0, sizeof(key));
	key.kind = kind;
	key.id = id;
	e = hash_search(sets, &key, HASH_ENTER, &found);
	if (!found)
	{
		e->level = level;
		e->deep = level;
		e->due = due;
		e->wake_hi = 0;
	}
	else
	{
		e->level = Min(e->level, level);
		e->deep = Max(e->deep, level);
		e->due = Min(e->due, due);
	}
	return e;
}

/*
 * CourierRememberClaim
 *		Note a claim inserted by this transaction (see the file header).
 */
void
CourierRememberClaim(int32 group_id, int32 topic_id, int64 lo, int64 hi)
{
	int			level = GetCurrentTransactionNestLevel();
	ClaimItem  *last = nclaims > 0 ? &claims[nclaims - 1] : NULL;

	if (last && last->level == level && last->group_id == group_id)
	{
		last->lo = Min(last->lo, lo);
		last->hi = Max(last->hi, hi);
		return;
	}
	if (nclaims == maxclaims)
	{
		int			newmax = maxclaims == 0 ? 16 : maxclaims * 2;

		if (claims == NULL)
			claims = MemoryContextAlloc(xact_memory(), sizeof(ClaimItem) * newmax);
		else
			claims = repalloc(claims, sizeof(ClaimItem) * newmax);
		maxclaims = newmax;
	}
	claims[nclaims].level = level;
	claims[nclaims].group_id = group_id;
	claims[nclaims].topic_id = topic_id;
	claims[nclaims].lo = lo;
	claims[nclaims].hi = hi;
	nclaims++;
}

/*
 * CourierRememberPromotion
 *		Note a promotion check of group_id (key okey, or the group's scan
 *		for keys without a head if okey is NULL) that this transaction took
 *		out of shared memory (see the file header).  Called before the check
 *		leaves shared memory, so that running out of memory here loses
 *		nothing.
 */
void
CourierRememberPromotion(Oid instance, int32 group_id, const char *okey)
{
	int			level = GetCurrentTransactionNestLevel();
	PromoItem  *p;

	if (npromos == maxpromos)
	{
		int			newmax = maxpromos == 0 ? 16 : maxpromos * 2;

		if (promos == NULL)
			promos = MemoryContextAlloc(xact_memory(), sizeof(PromoItem) * newmax);
		else
			promos = repalloc(promos, sizeof(PromoItem) * newmax);
		maxpromos = newmax;
	}
	p = &promos[npromos];
	p->level = level;
	p->instance = instance;
	p->group_id = group_id;
	p->okey = okey ? MemoryContextStrdup(xact_memory(), okey) : NULL;
	npromos++;
}

/*
 * restore_promotions
 *		Put the promotion checks taken at nesting level >= level back into
 *		shared memory, due once xid has ended (at once if xid is invalid),
 *		and forget them.  Never errors.
 */
static void
restore_promotions(int level, TransactionId xid)
{
	while (npromos > 0 && promos[npromos - 1].level >= level)
	{
		PromoItem  *p = &promos[--npromos];

		CourierPromotionRestore(p->instance, p->group_id, p->okey, xid);
	}
}

/*
 * CourierWakeAtCommit / CourierWakeAtAbort
 *		Wake the topic's waiting receivers when this transaction commits
 *		(or rolls back).
 */
void
CourierWakeAtCommit(int32 topic_id)
{
	CourierWakeAtCommitSent(topic_id, PG_INT64_MAX);
}

/*
 * CourierWakeAtCommitSent
 *		The same for a send of ids up to hi: a lingering receive waiting for
 *		later ids need not wake up for it (wait.c, "Lingering receives").
 */
void
CourierWakeAtCommitSent(int32 topic_id, int64 hi)
{
	SetEntry   *e = add_set(SET_WAKE_COMMIT, topic_id, 0);

	e->wake_hi = Max(e->wake_hi, hi);
}

void
CourierWakeAtAbort(int32 topic_id)
{
	(void) add_set(SET_WAKE_ABORT, topic_id, 0);
}

/*
 * CourierDueAtCommit
 *		This transaction made something of a group of the topic due at time
 *		due (a lease that will expire, a delayed or backed-off message).
 */
void
CourierDueAtCommit(int32 topic_id, int32 group_id, TimestampTz due)
{
	(void) add_set(SET_DUE, topic_id, due);
	(void) add_set(SET_GROUP_DUE, group_id, due);
}

/*
 * CourierWakeIfPassedAtEnd
 *		This transaction holds a row lock on something of the topic that
 *		comes due at time due (a claim whose lease ends then): receivers skip
 *		it while we hold it, and once due has passed their next due time no
 *		longer counts it.  So when we end (commit, abort, or the savepoint
 *		that took the lock rolls back) and due has passed, wake the topic.
 */
void
CourierWakeIfPassedAtEnd(int32 topic_id, TimestampTz due)
{
	(void) add_set(SET_WAKE_PASSED, topic_id, due);
}

/*
 * CourierOwnDue
 *		The earliest due time of the group this transaction created so far
 *		(DT_NOEND if none): a sleeper's own uncommitted due times are in no
 *		shared floor (wait.c).
 */
TimestampTz
CourierOwnDue(int32 group_id)
{
	SetKey		key;
	SetEntry   *e;

	if (sets == NULL)
		return DT_NOEND;
	memset(&key, 0, sizeof(key));
	key.kind = SET_GROUP_DUE;
	key.id = group_id;
	e = hash_search(sets, &key, HASH_FIND, NULL);
	return e ? e->due : DT_NOEND;
}

/*
 * CourierForgetAtCommit
 *		Remove the shared entry of a dropped topic (or group) at commit.
 */
void
CourierForgetAtCommit(int32 topic_id, int32 group_id)
{
	/* the key needs the installation: known now, maybe not in the callback */
	Oid			instance = CourierInstanceId();

	if (topic_id != 0)
		add_set(SET_FORGET_TOPIC, topic_id, 0)->instance = instance;
	if (group_id != 0)
		add_set(SET_FORGET_GROUP, group_id, 0)->instance = instance;
}

/*
 * CourierUndoAtAbort
 *		A topic or group created by this transaction: remove its shared
 *		entry if the transaction (or the savepoint) rolls back.
 */
void
CourierUndoAtAbort(int32 topic_id, int32 group_id)
{
	Oid			instance = CourierInstanceId();

	if (topic_id != 0)
		add_set(SET_UNDO_TOPIC, topic_id, 0)->instance = instance;
	if (group_id != 0)
		add_set(SET_UNDO_GROUP, group_id, 0)->instance = instance;
}

/*
 * CourierInvalidateGroupAtEnd
 *		Forget the group's shared position when this transaction ends, and
 *		when a savepoint around this call rolls back (see the file header).
 */
void
CourierInvalidateGroupAtEnd(int32 group_id)
{
	add_set(SET_INVALIDATE_GROUP, group_id, 0)->instance = CourierInstanceId();
}

/*
 * invalidate_group
 *		Forget a group's shared position, if it has one (never errors).
 */
static void
invalidate_group(int32 group_id)
{
	CourierGroupShared *gs = CourierGroupSharedFind(group_id);

	if (gs != NULL)
		CourierGroupInvalidate(gs, group_id);
}

/*
 * CourierHasClaims
 *		Whether this transaction inserted claims.
 */
bool
CourierHasClaims(void)
{
	return nclaims > 0;
}

/*
 * CourierClaimedHere
 *		Whether this transaction (or one of its open subtransactions) may
 *		have inserted a claim of the group reaching into [lo, hi]: the spans
 *		kept here cover every claim it inserted, and maybe more.  Compaction
 *		leaves such claims alone (maint.c).
 */
bool
CourierClaimedHere(int32 group_id, int64 lo, int64 hi)
{
	int			i;

	for (i = 0; i < nclaims; i++)
		if (claims[i].group_id == group_id && claims[i].lo <= hi && claims[i].hi >= lo)
			return true;
	return false;
}

/*
 * reset_all
 *		Forget everything recorded (end of the top-level transaction).
 */
static void
reset_all(void)
{
	claims = NULL;
	nclaims = 0;
	maxclaims = 0;
	sets = NULL;
	promos = NULL;
	npromos = 0;
	maxpromos = 0;
	if (xact_cxt != NULL)
		MemoryContextReset(xact_cxt);
}

/*
 * prepare_claims
 *		PREPARE TRANSACTION: hand our claim spans to the prepared-claims
 *		table (walk.c), since no callback of ours runs when the prepared
 *		transaction is finished.  Runs at PRE_PREPARE, where an error still
 *		aborts the transaction cleanly.
 */
static void
prepare_claims(void)
{
	TransactionId xid = GetTopTransactionIdIfAny();
	int			i;

	for (i = 0; i < nclaims; i++)
	{
		if (!CourierRegisterPreparedClaim(claims[i].group_id, xid, claims[i].lo, claims[i].hi))
			ereport(ERROR,
					(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
					 errmsg("too many prepared transactions hold pg_courier messages"),
					 errdetail("pg_courier remembers the receives of at most %d prepared transactions and groups.",
							   CourierState->nprepared),
					 errhint("Finish prepared transactions (COMMIT PREPARED or ROLLBACK PREPARED), "
							 "or raise max_prepared_transactions.")));
	}
}

/*
 * courier_xact_callback
 *		Carry out the recorded items at the end of the top-level transaction.
 *		Must not error after the commit or abort: everything it calls is
 *		error-free.
 */
static void
courier_xact_callback(XactEvent event, void *arg)
{
	HASH_SEQ_STATUS status;
	SetEntry   *e;
	int			i;

	switch (event)
	{
		case XACT_EVENT_PRE_PREPARE:
			if (sets != NULL)
			{
				hash_seq_init(&status, sets);
				while ((e = hash_seq_search(&status)) != NULL)
				{
					if (e->key.kind == SET_INVALIDATE_GROUP)
					{
						hash_seq_term(&status);
						ereport(ERROR,
								(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
								 errmsg("cannot PREPARE a transaction that moved a consumer group's position"),
								 errdetail("courier.seek, courier.purge and a courier.run_maintenance() "
										   "that dropped messages past max_retention do."),
								 errhint("Run them in a transaction of their own.")));
					}
				}
			}
			prepare_claims();
			/* due once the prepared transaction is finished, either way */
			restore_promotions(0, GetTopTransactionIdIfAny());
			return;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			if (sets != NULL)
			{
				/*
				 * Lower the groups' due-time floors before the due sequences
				 * move (wait.c, "Due-time floors"): a sleeper that missed
				 * the bump finds the lowered floor.
				 */
				hash_seq_init(&status, sets);
				while ((e = hash_seq_search(&status)) != NULL)
					if (e->key.kind == SET_GROUP_DUE)
						CourierGroupDueLower(e->key.id, e->due);
				hash_seq_init(&status, sets);
				while ((e = hash_seq_search(&status)) != NULL)
				{
					switch (e->key.kind)
					{
						case SET_FORGET_TOPIC:
							CourierTopicSharedForget(e->key.id, e->instance);
							break;
						case SET_FORGET_GROUP:
							CourierGroupSharedForget(e->key.id, e->instance);
							break;
						case SET_WAKE_COMMIT:
							CourierWakeTopicSent(e->key.id, e->wake_hi);
							break;
						case SET_DUE:
							CourierWakeIfOversleeping(e->key.id, e->due);
							break;
						case SET_WAKE_PASSED:
							if (e->due <= GetCurrentTimestamp())
								CourierWakeTopic(e->key.id);
							break;
						case SET_INVALIDATE_GROUP:
							invalidate_group(e->key.id);
							break;
						default:
							break;
					}
				}
			}
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			CourierClearMark();
			restore_promotions(0, InvalidTransactionId);
			for (i = 0; i < nclaims; i++)
			{
				CourierGroupRecheck(claims[i].group_id, claims[i].lo, claims[i].hi);
				CourierWakeTopic(claims[i].topic_id);
			}
			if (sets != NULL)
			{
				hash_seq_init(&status, sets);
				while ((e = hash_seq_search(&status)) != NULL)
				{
					if (e->key.kind == SET_WAKE_ABORT)
						CourierWakeTopic(e->key.id);
					else if (e->key.kind == SET_WAKE_PASSED && e->due <= GetCurrentTimestamp())
						CourierWakeTopic(e->key.id);
					else if (e->key.kind == SET_INVALIDATE_GROUP)
						invalidate_group(e->key.id);
					else if (e->key.kind == SET_UNDO_TOPIC)
						CourierTopicSharedForget(e->key.id, e->instance);
					else if (e->key.kind == SET_UNDO_GROUP)
						CourierGroupSharedForget(e->key.id, e->instance);
				}
			}
			break;
		case XACT_EVENT_PREPARE:
			/* the prepared transaction's fate is the prepared-claims table's business */
			break;
		default:
			return;
	}
	reset_all();
}

/*
 * courier_subxact_callback
 *		A savepoint was released (its items move to the parent) or rolled
 *		back (its claims are undone, everything else it recorded dropped).
 *		Only the tail of the claim array can belong to the ending level.
 */
static void
courier_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						 SubTransactionId parentSubid, void *arg)
{
	int			level = GetCurrentTransactionNestLevel();
	HASH_SEQ_STATUS status;
	SetEntry   *e;
	int			i;

	if (event == SUBXACT_EVENT_COMMIT_SUB)
	{
		for (i = nclaims - 1; i >= 0 && claims[i].level >= level; i--)
			claims[i].level = level - 1;
		for (i = npromos - 1; i >= 0 && promos[i].level >= level; i--)
			promos[i].level = level - 1;
		/* merge the tail into its predecessor when they now agree */
		while (nclaims >= 2 && claims[nclaims - 1].level == claims[nclaims - 2].level &&
			   claims[nclaims - 1].group_id == claims[nclaims - 2].group_id)
		{
			claims[nclaims - 2].lo = Min(claims[nclaims - 2].lo, claims[nclaims - 1].lo);
			claims[nclaims - 2].hi = Max(claims[nclaims - 2].hi, claims[nclaims - 1].hi);
			nclaims--;
		}
		if (sets != NULL)
		{
			hash_seq_init(&status, sets);
			while ((e = hash_seq_search(&status)) != NULL)
			{
				if (e->level >= level)
					e->level = level - 1;
				if (e->deep >= level)
					e->deep = level - 1;
			}
		}
	}
	else if (event == SUBXACT_EVENT_ABORT_SUB)
	{
		CourierClearMark();
		restore_promotions(level, InvalidTransactionId);
		while (nclaims > 0 && claims[nclaims - 1].level >= level)
		{
			ClaimItem  *c = &claims[--nclaims];

			CourierGroupRecheck(c->group_id, c->lo, c->hi);
			CourierWakeTopic(c->topic_id);
		}
		if (sets != NULL)
		{
			hash_seq_init(&status, sets);
			while ((e = hash_seq_search(&status)) != NULL)
			{
				if (e->level < level)
				{
					/*
					 * Recorded by an outer level first, and again by this one
					 * (one entry per kind and topic): what this level locked
					 * is released now, and the entry's earliest due time may
					 * be this level's.  Wake now if it has passed (review 28:
					 * an ack under a savepoint rolled back left the claim
					 * free and expired with nobody woken until the
					 * transaction ended).  The outer level's part stays.
					 */
					if (e->deep >= level)
					{
						if ((e->key.kind == SET_WAKE_ABORT) ||
							(e->key.kind == SET_WAKE_PASSED && e->due <= GetCurrentTimestamp()))
							CourierWakeTopic(e->key.id);
						e->deep = level - 1;
					}
					continue;
				}
				if (e->key.kind == SET_WAKE_ABORT)
					CourierWakeTopic(e->key.id);
				else if (e->key.kind == SET_WAKE_PASSED && e->due <= GetCurrentTimestamp())
					CourierWakeTopic(e->key.id);
				else if (e->key.kind == SET_UNDO_TOPIC)
					CourierTopicSharedForget(e->key.id, e->instance);
				else if (e->key.kind == SET_UNDO_GROUP)
					CourierGroupSharedForget(e->key.id, e->instance);
				if (e->key.kind == SET_INVALIDATE_GROUP)
				{
					/* forget it now, and again when the transaction ends */
					invalidate_group(e->key.id);
					continue;
				}
				(void) hash_search(sets, &e->key, HASH_REMOVE, NULL);
			}
		}
	}
}
