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
 *	  covered must be walked again: the group's recheck position R is
 *	  lowered to the claim's first id and its epoch bumped, so a concurrent
 *	  walker does not raise R over them again.
 *	- Topics to wake: at commit, receivers sleeping on a topic we sent to
 *	  (or released leases of) are woken; at abort, topics whose messages we
 *	  had leased are woken, since the leases are gone.
 *	- DDL: the meta generation is bumped at commit, and shared entries of
 *	  dropped topics and groups are removed.  The dropping transaction still
 *	  holds their locks exclusively at that point, so nobody is using them.
 *
 * Every item carries the nesting level of the subtransaction that made it,
 * so a rolled-back savepoint discards (or, for claims, undoes) exactly its
 * own items.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "utils/memutils.h"

#include "pg_courier.h"

typedef enum ItemKind
{
	ITEM_CLAIM,					/* a claim row we inserted */
	ITEM_WAKE_COMMIT,			/* wake topic waiters at commit */
	ITEM_WAKE_ABORT,			/* wake topic waiters at abort */
	ITEM_BUMP,					/* bump the meta generation at commit */
	ITEM_FORGET_TOPIC,			/* remove a topic's shared entry at commit */
	ITEM_FORGET_GROUP,			/* remove a group's shared entry at commit */
	ITEM_SWITCH					/* make a new segment current at commit */
} ItemKind;

typedef struct XactItem
{
	ItemKind	kind;
	int			level;			/* subtransaction nesting level */
	int32		id;				/* topic or group id */
	int32		topic_id;		/* ITEM_CLAIM: the group's topic */
	int64		lo;				/* ITEM_CLAIM: first id covered; ITEM_SWITCH: seg_no */
	Oid			relid;			/* ITEM_SWITCH: the new segment */
	CourierGroupShared *gs;		/* ITEM_CLAIM */
} XactItem;

static XactItem *items = NULL;
static int	nitems = 0;
static int	maxitems = 0;

static void add_item(XactItem *item);
static void undo_claim(XactItem *item);
static void switch_segment(XactItem *item);
static void courier_xact_callback(XactEvent event, void *arg);
static void courier_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
									 SubTransactionId parentSubid, void *arg);

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
 * add_item
 *		Append an item, skipping exact duplicates of wake-ups and bumps.
 */
static void
add_item(XactItem *item)
{
	int			i;

	item->level = GetCurrentTransactionNestLevel();
	if (item->kind != ITEM_CLAIM)
	{
		for (i = nitems - 1; i >= 0; i--)
		{
			if (items[i].kind == item->kind && items[i].id == item->id &&
				items[i].level == item->level)
				return;
		}
	}
	if (nitems == maxitems)
	{
		int			newmax = maxitems == 0 ? 16 : maxitems * 2;

		if (items == NULL)
			items = MemoryContextAlloc(TopMemoryContext, sizeof(XactItem) * newmax);
		else
			items = repalloc(items, sizeof(XactItem) * newmax);
		maxitems = newmax;
	}
	items[nitems++] = *item;
}

/*
 * CourierRememberClaim
 *		Note a claim inserted by this transaction (see undo_claim).
 */
void
CourierRememberClaim(CourierGroupShared *gs, int32 group_id, int32 topic_id, int64 lo)
{
	XactItem	item;

	memset(&item, 0, sizeof(item));
	item.kind = ITEM_CLAIM;
	item.id = group_id;
	item.topic_id = topic_id;
	item.lo = lo;
	item.gs = gs;
	add_item(&item);
}

/*
 * CourierWakeAtCommit
 *		Wake the topic's waiting receivers if this transaction commits.
 */
void
CourierWakeAtCommit(int32 topic_id)
{
	XactItem	item;

	memset(&item, 0, sizeof(item));
	item.kind = ITEM_WAKE_COMMIT;
	item.id = topic_id;
	add_item(&item);
}

/*
 * CourierWakeAtAbort
 *		Wake the topic's waiting receivers if this transaction rolls back.
 */
void
CourierWakeAtAbort(int32 topic_id)
{
	XactItem	item;

	memset(&item, 0, sizeof(item));
	item.kind = ITEM_WAKE_ABORT;
	item.id = topic_id;
	add_item(&item);
}

/*
 * CourierBumpGenerationAtCommit
 *		Make every backend reload its catalog cache once we commit.
 */
void
CourierBumpGenerationAtCommit(void)
{
	XactItem	item;

	memset(&item, 0, sizeof(item));
	item.kind = ITEM_BUMP;
	add_item(&item);
	CourierCacheInvalidate();
}

/*
 * CourierForgetAtCommit
 *		Remove the shared entry of a dropped topic (or group) at commit.
 */
void
CourierForgetAtCommit(int32 topic_id, int32 group_id)
{
	XactItem	item;

	memset(&item, 0, sizeof(item));
	if (topic_id != 0)
	{
		item.kind = ITEM_FORGET_TOPIC;
		item.id = topic_id;
		add_item(&item);
	}
	if (group_id != 0)
	{
		item.kind = ITEM_FORGET_GROUP;
		item.id = group_id;
		add_item(&item);
	}
}

/*
 * CourierSwitchSegmentAtCommit
 *		A new segment was created: senders move to it once we commit.
 */
void
CourierSwitchSegmentAtCommit(int32 topic_id, int32 seg_no, Oid relid)
{
	XactItem	item;

	memset(&item, 0, sizeof(item));
	item.kind = ITEM_SWITCH;
	item.id = topic_id;
	item.lo = seg_no;
	item.relid = relid;
	add_item(&item);
}

/*
 * switch_segment
 *		Point senders at the new segment.  Ids allocated from now on go
 *		there; later ids never go to an older segment.
 */
static void
switch_segment(XactItem *item)
{
	CourierTopicShared *ts = CourierTopicSharedFind(item->id);

	if (ts == NULL)
		return;					/* never loaded: it will read the catalog */
	LWLockAcquire(&ts->lock, LW_EXCLUSIVE);
	if (ts->valid && ts->key.topic_id == item->id && ts->cur_seg_no < (int32) item->lo)
	{
		ts->cur_seg_no = (int32) item->lo;
		ts->cur_seg_relid = item->relid;
	}
	LWLockRelease(&ts->lock);
}

/*
 * CourierHasClaims
 *		Whether this transaction inserted claims.
 */
bool
CourierHasClaims(void)
{
	int			i;

	for (i = 0; i < nitems; i++)
		if (items[i].kind == ITEM_CLAIM)
			return true;
	return false;
}

/*
 * undo_claim
 *		Our claim row is gone with the (sub)transaction: make the group walk
 *		its ids again.  The transaction still holds the group's lock, so the
 *		shared entry is alive; still check its key in case it was rebuilt.
 */
static void
undo_claim(XactItem *item)
{
	CourierGroupShared *gs = item->gs;

	SpinLockAcquire(&gs->mutex);
	if (gs->key.dbid == MyDatabaseId && gs->key.group_id == item->id && gs->valid)
	{
		if (item->lo < gs->recheck)
			gs->recheck = item->lo;
		gs->epoch++;
	}
	SpinLockRelease(&gs->mutex);
}

/*
 * courier_xact_callback
 *		Carry out the recorded items at the end of the top-level transaction.
 */
static void
courier_xact_callback(XactEvent event, void *arg)
{
	int			i;

	switch (event)
	{
		case XACT_EVENT_PRE_PREPARE:
			if (CourierHasClaims())
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("cannot PREPARE a transaction that has received pg_courier messages")));
			return;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			for (i = 0; i < nitems; i++)
			{
				switch (items[i].kind)
				{
					case ITEM_BUMP:
						pg_atomic_fetch_add_u64(&CourierState->meta_generation, 1);
						break;
					case ITEM_FORGET_TOPIC:
						CourierTopicSharedForget(items[i].id);
						break;
					case ITEM_FORGET_GROUP:
						CourierGroupSharedForget(items[i].id);
						break;
					case ITEM_SWITCH:
						switch_segment(&items[i]);
						break;
					default:
						break;
				}
			}
			for (i = 0; i < nitems; i++)
			{
				if (items[i].kind == ITEM_WAKE_COMMIT)
					CourierWakeTopic(items[i].id);
			}
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			CourierClearMark();
			for (i = 0; i < nitems; i++)
			{
				if (items[i].kind == ITEM_CLAIM)
					undo_claim(&items[i]);
				else if (items[i].kind == ITEM_BUMP)
					CourierCacheInvalidate();
			}
			for (i = 0; i < nitems; i++)
			{
				if (items[i].kind == ITEM_WAKE_ABORT)
					CourierWakeTopic(items[i].id);
			}
			break;
		case XACT_EVENT_PREPARE:
			break;
		default:
			return;
	}
	nitems = 0;
}

/*
 * courier_subxact_callback
 *		A savepoint was released (items move to the parent) or rolled back
 *		(its claims are undone, everything else it recorded is dropped).
 */
static void
courier_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						 SubTransactionId parentSubid, void *arg)
{
	int			level = GetCurrentTransactionNestLevel();
	int			i,
				j;

	if (event == SUBXACT_EVENT_COMMIT_SUB)
	{
		for (i = 0; i < nitems; i++)
			if (items[i].level >= level)
				items[i].level = level - 1;
	}
	else if (event == SUBXACT_EVENT_ABORT_SUB)
	{
		CourierClearMark();
		for (i = 0, j = 0; i < nitems; i++)
		{
			if (items[i].level >= level)
			{
				if (items[i].kind == ITEM_CLAIM)
				{
					undo_claim(&items[i]);
					CourierWakeTopic(items[i].topic_id);
				}
				else if (items[i].kind == ITEM_WAKE_ABORT)
					CourierWakeTopic(items[i].id);
				else if (items[i].kind == ITEM_BUMP)
					CourierCacheInvalidate();
				continue;
			}
			items[j++] = items[i];
		}
		nitems = j;
	}
}
