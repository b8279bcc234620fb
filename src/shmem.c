/*-------------------------------------------------------------------------
 *
 * shmem.c
 *	  pg_courier's shared memory: per-topic and per-group state and the
 *	  senders' allocation marks.  (The worker pool's shared state is
 *	  worker.c's; it only borrows the LWLock below.)
 *
 * Design and locking
 * ------------------
 * Shared state is a cache of what the tables say, never the only copy:
 * after a restart or crash every entry starts invalid and is rebuilt from
 * the catalog the first time it is used.  Entries are keyed by database and
 * topic (or group) id; ids come from sequences and are never reused.
 *
 *	- The two hash tables are protected by one LWLock each (lookups share it,
 *	  inserts and removals take it exclusively).
 *	- A backend may only dereference a topic entry while it holds the topic's
 *	  COURIER_LOCK_TOPIC heavyweight lock, and a group entry while it holds
 *	  COURIER_LOCK_GROUP, each at least in share mode.  DDL takes them
 *	  exclusively and removes entries at commit, so no one can be looking at
 *	  an entry when it is freed.
 *	- Inside an entry, a topic's LWLock and a group's spinlock protect the
 *	  fields, as described in pg_courier.h.
 *	- Both tables are of fixed size (HASH_FIXED_SIZE): when courier.max_topics
 *	  or courier.max_groups entries are in use, a new one is refused with a
 *	  clear error instead of being taken from the server's spare shared
 *	  memory, which the lock manager needs.
 *	- Keys carry the installation (CourierInstanceId), so a DROP and CREATE
 *	  EXTENSION, which starts ids at 1 again, never finds old entries.
 *	- The prepared-claims table has its own LWLock (CourierPreparedLock).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/twophase.h"
#include "catalog/namespace.h"
#include "commands/extension.h"
#include "executor/tuptable.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lmgr.h"
#include "storage/shmem.h"
#include "utils/fmgroids.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "pg_courier.h"

CourierShared *CourierState = NULL;

static HTAB *topic_hash = NULL;
static HTAB *group_hash = NULL;
static LWLockPadded *courier_locks = NULL;

#define TOPIC_HASH_LOCK	(&courier_locks[0].lock)
#define GROUP_HASH_LOCK	(&courier_locks[1].lock)
#define WORKER_LOCK		(&courier_locks[2].lock)
#define PREPARED_LOCK	(&courier_locks[3].lock)
#define PROMOTIONS_LOCK	(&courier_locks[4].lock)
#define COURIER_NUM_LOCKS 5

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static Size courier_state_size(void);
static Size group_entry_size(void);
static int	prepared_slots(void);
static void courier_shmem_request(void);
static void courier_shmem_startup(void);
static void *shared_enter(HTAB *htab, LWLock *lock, const void *key, void (*init) (void *entry),
						  const char *what, const char *guc, int max);
static void init_topic(void *p);
static void init_group(void *p);

/*
 * CourierHoleSlots
 *		Holes a group can remember: one per transaction that can be running
 *		at once (a hole is keyed by its top-level transaction).
 */
int
CourierHoleSlots(void)
{
	return MaxBackends + max_prepared_xacts + 1;
}

/*
 * group_entry_size
 *		Size of one group entry, holes included.
 */
static Size
group_entry_size(void)
{
	return add_size(offsetof(CourierGroupShared, holes),
					mul_size(CourierHoleSlots(), sizeof(CourierSpan)));
}

/*
 * prepared_slots
 *		Entries of the prepared-claims table.
 */
static int
prepared_slots(void)
{
	return max_prepared_xacts * 8 + 16;
}

/*
 * courier_state_size
 *		Size of the fixed part: the global struct, one mark per backend and
 *		the prepared-claims table.
 */
static Size
courier_state_size(void)
{
	Size		size = add_size(offsetof(CourierShared, marks),
								mul_size(MaxBackends, sizeof(CourierSenderMark)));

	size = MAXALIGN(size);
	size = add_size(size, mul_size(prepared_slots(), sizeof(CourierPreparedClaim)));
	size = MAXALIGN(size);
	return add_size(size, mul_size(MaxBackends, sizeof(CourierSleep)));
}

/*
 * courier_shmem_request
 *		Ask the postmaster for our share of shared memory and LWLocks.
 */
static void
courier_shmem_request(void)
{
	Size		size;

	if (prev_shmem_request_hook)
		prev_shmem_request_hook();

	size = courier_state_size();
	size = add_size(size, hash_estimate_size(courier_max_topics, sizeof(CourierTopicShared)));
	size = add_size(size, hash_estimate_size(courier_max_groups, group_entry_size()));
	RequestAddinShmemSpace(size);
	RequestNamedLWLockTranche("pg_courier", COURIER_NUM_LOCKS);
}

/*
 * courier_shmem_startup
 *		Create or attach to the shared structures.  Runs in the postmaster
 *		at start and after every crash restart, which resets all state.
 */
static void
courier_shmem_startup(void)
{
	bool		found;
	HASHCTL		info;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);

	CourierState = ShmemInitStruct("pg_courier", courier_state_size(), &found);
	if (!found)
	{
		memset(CourierState, 0, courier_state_size());
		CourierState->tranche_id = LWLockNewTrancheId();
		CourierState->nmarks = MaxBackends;
		CourierState->nprepared = prepared_slots();
		pg_atomic_init_u64(&CourierState->fold_gen, 0);
		pg_atomic_init_u32(&CourierState->twophase_ends, 0);
	}
	/* the prepared-claims table and the sleep slots follow the marks */
	{
		Size		off = MAXALIGN(offsetof(CourierShared, marks) +
								   MaxBackends * sizeof(CourierSenderMark));

		CourierState->prepared = (CourierPreparedClaim *) ((char *) CourierState + off);
		off = MAXALIGN(off + prepared_slots() * sizeof(CourierPreparedClaim));
		CourierState->sleeps = (CourierSleep *) ((char *) CourierState + off);
	}
	CourierWaitInit(CourierState, !found);
	courier_locks = GetNamedLWLockTranche("pg_courier");

	memset(&info, 0, sizeof(info));
	info.keysize = sizeof(CourierTopicKey);
	info.entrysize = sizeof(CourierTopicShared);
	topic_hash = ShmemInitHash("pg_courier topics", courier_max_topics, courier_max_topics,
							   &info, HASH_ELEM | HASH_BLOBS | HASH_FIXED_SIZE);

	memset(&info, 0, sizeof(info));
	info.keysize = sizeof(CourierGroupKey);
	info.entrysize = group_entry_size();
	group_hash = ShmemInitHash("pg_courier groups", courier_max_groups, courier_max_groups,
							   &info, HASH_ELEM | HASH_BLOBS | HASH_FIXED_SIZE);

	LWLockRelease(AddinShmemInitLock);

	LWLockRegisterTranche(CourierState->tranche_id, "pg_courier_topic");
}

/*
 * CourierShmemInit
 *		Install the shared memory hooks (called from _PG_init).
 */
void
CourierShmemInit(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = courier_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = courier_shmem_startup;
}

/*
 * shared_enter
 *		Find the entry with key in a shared hash table, creating (and
 *		initializing, under the exclusive lock) a missing one.  what and
 *		guc name the limit in the error raised when the table is full.
 */
static void *
shared_enter(HTAB *htab, LWLock *lock, const void *key, void (*init) (void *entry),
			 const char *what, const char *guc, int max)
{
	void	   *entry;
	bool		found;

	LWLockAcquire(lock, LW_SHARED);
	entry = hash_search(htab, key, HASH_FIND, NULL);
	LWLockRelease(lock);
	if (entry)
		return entry;

	LWLockAcquire(lock, LW_EXCLUSIVE);
	entry = hash_search(htab, key, HASH_ENTER_NULL, &found);
	if (entry == NULL && what == NULL)
	{
		LWLockRelease(lock);
		return NULL;			/* the caller copes without an entry */
	}
	if (entry == NULL)
	{
		LWLockRelease(lock);
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("too many %s in use", what),
				 errdetail("pg_courier keeps state for at most %d %s in shared memory.", max, what),
				 errhint("Increase %s and restart the server.", guc)));
	}
	if (!found)
		init(entry);
	LWLockRelease(lock);
	return entry;
}

/*
 * init_lock
 *		Initialize an entry's LWLock the first time its memory is used
 *		(shared memory starts zeroed).  A reused entry keeps its lock: a
 *		backend that found the entry before it was removed may still hold
 *		or wait for it (CourierGroupDueLower checks, under the lock, that
 *		the entry is still its group's), and LWLockInitialize on a held lock
 *		would corrupt it.
 */
#define COURIER_LOCK_READY	0x434F5552	/* "COUR" */

static void
init_lock(LWLock *lock, uint32 *ready)
{
	if (*ready == COURIER_LOCK_READY)
		return;
	LWLockInitialize(lock, CourierState->tranche_id);
	*ready = COURIER_LOCK_READY;
}

/*
 * init_topic / init_group
 *		A new shared entry: nothing known yet, rebuilt from the tables on
 *		first use.
 */
static void
init_topic(void *p)
{
	CourierTopicShared *entry = p;

	entry->valid = false;
	entry->next_id = 1;
	entry->reserved = 0;
	entry->seq_relid = InvalidOid;
	entry->cur_seg_no = 0;
	init_lock(&entry->lock, &entry->lock_ready);
}

static void
init_group(void *p)
{
	CourierGroupShared *entry = p;

	init_lock(&entry->lock, &entry->lock_ready);
	entry->valid = false;
	entry->frontier = 0;
	entry->folded = 0;
	entry->fold_gen = 0;
	entry->recheck_gen = 0;
	entry->nrechecks = 0;
	entry->ndeferred = 0;
	entry->nholes = 0;
	entry->orphan_scan = false;
	entry->orphan_after = InvalidTransactionId;
	entry->due_known = false;
	entry->due_lseq = 0;
	pg_atomic_init_u64(&entry->last_receive, 0);
	pg_atomic_init_u64(&entry->last_ack, 0);
}

/*
 * topic_key / group_key
 *		The shared-table key of a topic or group of this database.
 */
static inline void
topic_key(CourierTopicKey *key, int32 topic_id, Oid instance)
{
	memset(key, 0, sizeof(*key));
	key->dbid = MyDatabaseId;
	key->instance = instance;
	key->topic_id = topic_id;
}

static inline void
group_key(CourierGroupKey *key, int32 group_id, Oid instance)
{
	memset(key, 0, sizeof(*key));
	key->dbid = MyDatabaseId;
	key->instance = instance;
	key->group_id = group_id;
}

/*
 * CourierTopicSharedGet
 *		Find or create the shared entry of a topic of the current database.
 *		The caller holds the topic's COURIER_LOCK_TOPIC lock.
 */
CourierTopicShared *
CourierTopicSharedGet(int32 topic_id)
{
	CourierTopicKey key;

	topic_key(&key, topic_id, CourierInstanceId());
	return shared_enter(topic_hash, TOPIC_HASH_LOCK, &key, init_topic,
						"topics", "courier.max_topics", courier_max_topics);
}

/*
 * CourierTopicSharedTryGet / CourierGroupSharedTryGet
 *		Like the Get functions, but NULL instead of an error when the table
 *		is full: for readers (views, peek) that can work without an entry.
 */
CourierTopicShared *
CourierTopicSharedTryGet(int32 topic_id)
{
	CourierTopicKey key;

	topic_key(&key, topic_id, CourierInstanceId());
	return shared_enter(topic_hash, TOPIC_HASH_LOCK, &key, init_topic, NULL, NULL, 0);
}

CourierGroupShared *
CourierGroupSharedTryGet(int32 group_id)
{
	CourierGroupKey key;

	group_key(&key, group_id, CourierInstanceId());
	return shared_enter(group_hash, GROUP_HASH_LOCK, &key, init_group, NULL, NULL, 0);
}

/*
 * CourierGroupSharedLocal
 *		A private, empty group entry for a reader that found the shared table
 *		full: it is rebuilt from the tables for one walk.
 */
CourierGroupShared *
CourierGroupSharedLocal(int32 group_id)
{
	CourierGroupShared *gs = palloc0(group_entry_size());

	gs->key.dbid = MyDatabaseId;
	gs->key.instance = CourierInstanceId();
	gs->key.group_id = group_id;
	init_group(gs);
	return gs;
}

/*
 * CourierTopicSharedFind
 *		The shared entry of a topic if it exists; never creates one and
 *		never errors (used from transaction callbacks).
 */
CourierTopicShared *
CourierTopicSharedFind(int32 topic_id)
{
	CourierTopicKey key;
	CourierTopicShared *entry;

	if (topic_hash == NULL)
		return NULL;
	topic_key(&key, topic_id, CourierCurrentInstance());
	LWLockAcquire(TOPIC_HASH_LOCK, LW_SHARED);
	entry = hash_search(topic_hash, &key, HASH_FIND, NULL);
	LWLockRelease(TOPIC_HASH_LOCK);
	return entry;
}

/*
 * CourierWorkerLock
 *		The LWLock protecting the worker pool (see worker.c).
 */
LWLock *
CourierWorkerLock(void)
{
	return WORKER_LOCK;
}

/*
 * CourierGroupSharedGet
 *		Find or create the shared entry of a group of the current database.
 *		The caller holds the group's COURIER_LOCK_GROUP lock.
 */
CourierGroupShared *
CourierGroupSharedGet(int32 group_id)
{
	CourierGroupKey key;

	group_key(&key, group_id, CourierInstanceId());
	return shared_enter(group_hash, GROUP_HASH_LOCK, &key, init_group,
						"consumer groups", "courier.max_groups", courier_max_groups);
}

/*
 * CourierGroupSharedFind
 *		The shared entry of a group if it exists; never creates one and
 *		never errors (used from transaction callbacks).
 */
CourierGroupShared *
CourierGroupSharedFind(int32 group_id)
{
	CourierGroupKey key;
	CourierGroupShared *entry;

	if (group_hash == NULL)
		return NULL;
	group_key(&key, group_id, CourierCurrentInstance());
	LWLockAcquire(GROUP_HASH_LOCK, LW_SHARED);
	entry = hash_search(group_hash, &key, HASH_FIND, NULL);
	LWLockRelease(GROUP_HASH_LOCK);
	return entry;
}

/*
 * CourierPreparedLock
 *		The LWLock protecting the prepared-claims table.
 */
LWLock *
CourierPreparedLock(void)
{
	return PREPARED_LOCK;
}

/*
 * CourierPromotionsLock
 *		The LWLock protecting the list of promotions to check later.
 */
LWLock *
CourierPromotionsLock(void)
{
	return PROMOTIONS_LOCK;
}

/*
 * CourierGroupInvalidate
 *		Forget a group's position; the next receive rebuilds it from the
 *		claim table.
 */
void
CourierGroupInvalidate(CourierGroupShared *gs, int32 group_id)
{
	LWLockAcquire(&gs->lock, LW_EXCLUSIVE);
	if (gs->key.group_id == group_id && gs->key.dbid == MyDatabaseId)
	{
		gs->valid = false;
		gs->folded = 0;			/* a seek may have moved low_water back */
	}
	LWLockRelease(&gs->lock);
}

/*
 * CourierTopicSharedForget
 *		Remove a dropped topic's entry.  Called at commit of the dropping
 *		transaction, which still holds the topic lock exclusively.
 */
void
CourierTopicSharedForget(int32 topic_id, Oid instance)
{
	CourierTopicKey key;

	topic_key(&key, topic_id, instance);
	LWLockAcquire(TOPIC_HASH_LOCK, LW_EXCLUSIVE);
	hash_search(topic_hash, &key, HASH_REMOVE, NULL);
	LWLockRelease(TOPIC_HASH_LOCK);
}

/*
 * CourierGroupSharedForget
 *		Remove a dropped group's entry (same rules as for topics).
 */
void
CourierGroupSharedForget(int32 group_id, Oid instance)
{
	CourierGroupKey key;

	group_key(&key, group_id, instance);
	LWLockAcquire(GROUP_HASH_LOCK, LW_EXCLUSIVE);
	hash_search(group_hash, &key, HASH_REMOVE, NULL);
	LWLockRelease(GROUP_HASH_LOCK);
}

/*
 * CourierMyMark
 *		This backend's allocation mark.
 */
CourierSenderMark *
CourierMyMark(void)
{
	if (MyBackendId < 1 || MyBackendId > CourierState->nmarks)
		elog(ERROR, "backend id %d has no pg_courier allocation mark", MyBackendId);
	return &CourierState->marks[MyBackendId - 1];
}

/*
 * CourierForgetDatabase
 *		Remove every shared entry of a database (DROP EXTENSION): a later
 *		CREATE EXTENSION starts its ids again at 1 and must not inherit
 *		positions or allocation state.  The caller holds the locks that
 *		keep the extension's users out.
 */
void
CourierForgetDatabase(Oid dbid)
{
	HASH_SEQ_STATUS status;
	CourierTopicShared *ts;
	CourierGroupShared *gs;

	if (topic_hash == NULL)
		return;
	LWLockAcquire(TOPIC_HASH_LOCK, LW_EXCLUSIVE);
	hash_seq_init(&status, topic_hash);
	while ((ts = hash_seq_search(&status)) != NULL)
		if (ts->key.dbid == dbid)
			hash_search(topic_hash, &ts->key, HASH_REMOVE, NULL);
	LWLockRelease(TOPIC_HASH_LOCK);

	LWLockAcquire(GROUP_HASH_LOCK, LW_EXCLUSIVE);
	hash_seq_init(&status, group_hash);
	while ((gs = hash_seq_search(&status)) != NULL)
		if (gs->key.dbid == dbid)
			hash_search(group_hash, &gs->key, HASH_REMOVE, NULL);
	LWLockRelease(GROUP_HASH_LOCK);
}

/* qsort / bsearch order of int32 */
static int
cmp_int32(const void *a, const void *b)
{
	int32		x = *(const int32 *) a,
				y = *(const int32 *) b;

	return (x > y) - (x < y);
}

/*
 * live_ids
 *		The ids (column idcol) of the rows of courier.<relname> that a dirty
 *		snapshot sees: committed, or being inserted or deleted by a
 *		transaction still running or prepared.  Sorted; *n gets how many.
 *		NULL if the table is gone or locked (a DROP EXTENSION, a VACUUM
 *		FULL): the caller tries again later, it never waits.  Only a
 *		prefilter: a row that a concurrent UPDATE moves behind the scan is
 *		missed (review 56), so absence is confirmed by row_seen.
 */
static int32 *
live_ids(Oid nsp, const char *relname, const char *idcol, int *n)
{
	Oid			relid = get_relname_relid(relname, nsp);
	Relation	rel;
	TableScanDesc scan;
	TupleTableSlot *slot;
	SnapshotData dirty;
	AttrNumber	att;
	int			cap = 64;
	int32	   *ids;

	*n = 0;
	if (!OidIsValid(relid) || !ConditionalLockRelationOid(relid, AccessShareLock))
		return NULL;
	/* dropped between the name lookup and the lock */
	if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(relid)) ||
		(att = get_attnum(relid, idcol)) == InvalidAttrNumber)
	{
		UnlockRelationOid(relid, AccessShareLock);
		return NULL;
	}
	rel = table_open(relid, NoLock);
	ids = palloc(sizeof(int32) * cap);
	InitDirtySnapshot(dirty);
	slot = table_slot_create(rel, NULL);
	scan = table_beginscan(rel, &dirty, 0, NULL);
	while (table_scan_getnextslot(scan, ForwardScanDirection, slot))
	{
		bool		isnull;
		Datum		d = slot_getattr(slot, att, &isnull);

		if (isnull)
			continue;
		if (*n == cap)
			ids = repalloc(ids, sizeof(int32) * (cap *= 2));
		ids[(*n)++] = DatumGetInt32(d);
	}
	table_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	table_close(rel, NoLock);
	qsort(ids, *n, sizeof(int32), cmp_int32);
	return ids;
}

/*
 * row_seen
 *		Whether a dirty snapshot sees the row of this id (column idcol) in
 *		courier.<relname>, through its primary key <relname>_pkey; true when
 *		unsure (the index is locked or gone).  Called with the
 *		object's existence lock held exclusively, so nobody updates the row
 *		meanwhile (every UPDATE of it holds that lock at least in share
 *		mode) and the answer is stable, unlike the scan's.
 */
static bool
row_seen(Oid nsp, const char *relname, const char *idcol, int32 id)
{
	char		idxname[NAMEDATALEN];
	Oid			relid = get_relname_relid(relname, nsp);
	Oid			idxid;
	AttrNumber	att;
	Relation	rel;
	SysScanDesc scan;
	ScanKeyData key;
	SnapshotData dirty;
	bool		seen;

	snprintf(idxname, sizeof(idxname), "%s_pkey", relname);
	idxid = get_relname_relid(idxname, nsp);
	/* live_ids locked the table for the rest of the transaction */
	if (!OidIsValid(relid) || !OidIsValid(idxid) ||
		(att = get_attnum(relid, idcol)) == InvalidAttrNumber ||
		!ConditionalLockRelationOid(idxid, AccessShareLock))
		return true;
	if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(idxid)))
	{
		UnlockRelationOid(idxid, AccessShareLock);
		return true;
	}
	rel = table_open(relid, NoLock);
	InitDirtySnapshot(dirty);
	ScanKeyInit(&key, att, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(id));
	scan = systable_beginscan(rel, idxid, true, &dirty, 1, &key);
	seen = HeapTupleIsValid(systable_getnext(scan));
	systable_endscan(scan);
	table_close(rel, NoLock);
	return seen;
}

/* Both hashes' entries start with their key: (dbid, instance, id) */
StaticAssertDecl(offsetof(CourierTopicShared, key) == 0 && offsetof(CourierGroupShared, key) == 0 &&
				 offsetof(CourierTopicKey, topic_id) == offsetof(CourierGroupKey, group_id),
				 "shared entries must start with (dbid, instance, id)");

/*
 * hash_ids
 *		Append to ids (at most cap) the ids of the entries of one shared hash
 *		that belong to this database's installation.
 */
static void
hash_ids(HTAB *htab, LWLock *lock, Oid instance, int32 *ids, int *n, int cap)
{
	HASH_SEQ_STATUS status;
	CourierTopicKey *k;

	LWLockAcquire(lock, LW_SHARED);
	hash_seq_init(&status, htab);
	while ((k = hash_seq_search(&status)) != NULL)
		if (k->dbid == MyDatabaseId && k->instance == instance && *n < cap)
			ids[(*n)++] = k->topic_id;
	LWLockRelease(lock);
}

/*
 * own_ids
 *		The ids of this database's installation that one of the shared
 *		tables mentions: the topic hash (topics), or the group hash, the
 *		prepared-claims table and the promotions table (groups).  Sorted and
 *		without duplicates; *n gets how many.  (Entries made meanwhile may be
 *		left out: they are of rows the caller's scan sees.)
 */
static int32 *
own_ids(bool topics, Oid instance, int *n)
{
	int32	   *ids;
	int			cap;
	int			i,
				k;

	*n = 0;
	if (topics)
	{
		cap = Max(hash_get_num_entries(topic_hash), 1);
		ids = palloc(sizeof(int32) * cap);
		hash_ids(topic_hash, TOPIC_HASH_LOCK, instance, ids, n, cap);
	}
	else
	{
		cap = hash_get_num_entries(group_hash) + CourierState->nprepared + COURIER_MAX_PROMOTIONS;
		ids = palloc(sizeof(int32) * Max(cap, 1));
		hash_ids(group_hash, GROUP_HASH_LOCK, instance, ids, n, cap);
		LWLockAcquire(PREPARED_LOCK, LW_SHARED);
		for (i = 0; i < CourierState->nprepared && *n < cap; i++)
		{
			CourierPreparedClaim *p = &CourierState->prepared[i];

			if (p->dbid == MyDatabaseId && p->instance == instance)
				ids[(*n)++] = p->group_id;
		}
		LWLockRelease(PREPARED_LOCK);
		LWLockAcquire(PROMOTIONS_LOCK, LW_SHARED);
		for (i = 0; i < COURIER_MAX_PROMOTIONS && *n < cap; i++)
		{
			CourierPromotion *p = &CourierState->promotions[i];

			if (p->dbid == MyDatabaseId && p->instance == instance)
				ids[(*n)++] = p->group_id;
		}
		LWLockRelease(PROMOTIONS_LOCK);
	}
	qsort(ids, *n, sizeof(int32), cmp_int32);
	for (i = 0, k = 0; i < *n; i++)
		if (k == 0 || ids[k - 1] != ids[i])
			ids[k++] = ids[i];
	*n = k;
	return ids;
}

/*
 * forget_group_state
 *		Remove everything shared memory holds of a group that no longer
 *		exists: its entry, its prepared claims and its pending promotions.
 *		Those transactions have ended: a prepared one that received from
 *		the group, or queued a promotion, holds its existence lock, which
 *		the caller holds exclusively.
 */
static void
forget_group_state(int32 group_id, Oid instance)
{
	int			i;

	CourierGroupSharedForget(group_id, instance);
	LWLockAcquire(PREPARED_LOCK, LW_EXCLUSIVE);
	for (i = 0; i < CourierState->nprepared; i++)
	{
		CourierPreparedClaim *p = &CourierState->prepared[i];

		if (p->dbid == MyDatabaseId && p->instance == instance && p->group_id == group_id)
			p->dbid = InvalidOid;
	}
	LWLockRelease(PREPARED_LOCK);
	LWLockAcquire(PROMOTIONS_LOCK, LW_EXCLUSIVE);
	for (i = 0; i < COURIER_MAX_PROMOTIONS; i++)
	{
		CourierPromotion *p = &CourierState->promotions[i];

		if (p->dbid == MyDatabaseId && p->instance == instance && p->group_id == group_id)
			p->dbid = InvalidOid;
	}
	LWLockRelease(PROMOTIONS_LOCK);
}

/*
 * forget_gone
 *		Of the topic (or group) ids cand, forget those gone for good: not
 *		among the rows the dirty scan saw (live, sorted), their existence
 *		lock taken exclusively without waiting, and their row not seen under
 *		that lock (see CourierForgetStaleEntries).  One lock at a time:
 *		thousands could fill the lock table (review 57).
 */
static void
forget_gone(Oid nsp, Oid instance, bool topic, int32 *cand, int ncand, int32 *live, int nlive)
{
	for (int i = 0; i < ncand; i++)
	{
		int32		id = cand[i];

		if (bsearch(&id, live, nlive, sizeof(int32), cmp_int32) ||
			!CourierTryLockExclusive(topic, id))
			continue;
		if (!row_seen(nsp, topic ? "topic_meta" : "group_meta", topic ? "topic_id" : "group_id", id))
		{
			if (topic)
				CourierTopicSharedForget(id, instance);
			else
				forget_group_state(id, instance);
		}
		CourierUnlockExclusive(topic, id);
	}
}

/*
 * CourierForgetStaleEntries
 *		For the worker, in a transaction of its own that holds no other
 *		lock: remove what shared memory holds of this database's topics and
 *		groups that no longer exist.  A prepared
 *		transaction that dropped a topic or group, or that created one and
 *		is rolled back, never runs the callback that would have removed the
 *		entry (xact.c); nor does a standby replaying a drop (its readers make
 *		entries too), so after a promotion the slots stayed taken; and the
 *		prepared claims and promotions of a dropped group were only settled
 *		by that group's own walks (review 56).  Until a restart these used
 *		up courier.max_groups and the prepared-claims table of every
 *		database.  (Doing it in COMMIT PREPARED itself could make that
 *		statement fail or wait after its commit, review 54.)
 *
 *		Removed: an object whose row the dirty scan does not see, whose
 *		existence lock we get exclusively without waiting, and whose row a
 *		dirty look-up by primary key, made under that lock, does not see
 *		either.  Whoever uses the object, or created it in a transaction
 *		still open (or prepared) and used it, holds that lock at least in
 *		share mode, and a drop holds it exclusively until it ends.  The
 *		shared tables are listed before the rows are read: an entry made
 *		after that is of a row the scan sees.  Ids are never reused.
 */
void
CourierForgetStaleEntries(void)
{
	Oid			nsp,
				instance;
	int32	   *topics,
			   *groups,
			   *cand_t,
			   *cand_g;
	int			ntopics,
				ngroups,
				nct,
				ncg;

	if (topic_hash == NULL)
		return;
	if (!OidIsValid(get_extension_oid("pg_courier", true)) ||
		!OidIsValid(nsp = get_namespace_oid("courier", true)) ||
		!OidIsValid(instance = get_relname_relid("topic_meta", nsp)))
		return;

	cand_t = own_ids(true, instance, &nct);
	cand_g = own_ids(false, instance, &ncg);
	if (nct == 0 && ncg == 0)
		return;
	topics = live_ids(nsp, "topic_meta", "topic_id", &ntopics);
	groups = live_ids(nsp, "group_meta", "group_id", &ngroups);
	if (topics == NULL || groups == NULL)
		return;
	forget_gone(nsp, instance, false, cand_g, ncg, groups, ngroups);
	forget_gone(nsp, instance, true, cand_t, nct, topics, ntopics);
}

PG_FUNCTION_INFO_V1(courier_entries_elsewhere);

/*
 * courier_entries_elsewhere
 *		_entries_elsewhere() -> (topics, groups): shared entries that other
 *		databases (or an older installation in this one) hold.  The limits
 *		courier.max_topics / max_groups are over all databases: create_topic
 *		and create_group count these beside their own database's objects.
 */
Datum
courier_entries_elsewhere(PG_FUNCTION_ARGS)
{
	Oid			instance = CourierInstanceId();
	HASH_SEQ_STATUS status;
	CourierTopicShared *ts;
	CourierGroupShared *gs;
	int64		ntopics = 0;
	int64		ngroups = 0;
	TupleDesc	desc;
	Datum		values[2];
	bool		nulls[2] = {false, false};

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	LWLockAcquire(TOPIC_HASH_LOCK, LW_SHARED);
	hash_seq_init(&status, topic_hash);
	while ((ts = hash_seq_search(&status)) != NULL)
		if (ts->key.dbid != MyDatabaseId || ts->key.instance != instance)
			ntopics++;
	LWLockRelease(TOPIC_HASH_LOCK);
	LWLockAcquire(GROUP_HASH_LOCK, LW_SHARED);
	hash_seq_init(&status, group_hash);
	while ((gs = hash_seq_search(&status)) != NULL)
		if (gs->key.dbid != MyDatabaseId || gs->key.instance != instance)
			ngroups++;
	LWLockRelease(GROUP_HASH_LOCK);
	values[0] = Int64GetDatum(ntopics);
	values[1] = Int64GetDatum(ngroups);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
}
