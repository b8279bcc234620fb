/*-------------------------------------------------------------------------
 *
 * pg_courier.h
 *	  Declarations shared between the C files of pg_courier.
 *
 * Every cross-file type, GUC variable and function lives here; everything
 * else in the .c files is static.  The filter parser is a standalone C
 * library with its own header (filter.h) so that it can be fuzzed outside
 * the server.
 *
 * See docs/design.md for the storage model: an append-only, segmented log
 * per topic, a claim table holding batches of first deliveries, a lease
 * table for per-message redelivery state, and a small per-group position
 * kept in shared memory.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PG_COURIER_H
#define PG_COURIER_H

#include "access/htup.h"
#include "datatype/timestamp.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "nodes/execnodes.h"
#include "nodes/pg_list.h"
#include "port/atomics.h"
#include "storage/condition_variable.h"
#include "storage/latch.h"
#include "storage/lock.h"
#include "storage/lwlock.h"
#include "storage/spin.h"
#include "utils/acl.h"
#include "utils/relcache.h"

#include "filter.h"

/* The version of the SQL objects this library works with (pg_courier.control) */
#define COURIER_VERSION			"0.2.0"

/* Limits that are part of the API */
#define COURIER_NAME_MAXLEN		48	/* topic and group names, in bytes */
#define COURIER_MAX_RECEIVE		10000	/* receive(max_messages) upper bound */
#define COURIER_MAX_TAG_LEN		255		/* tag, in bytes */
#define COURIER_MAX_KEY_LEN		255		/* each element of keys, in bytes */
#define COURIER_MAX_DB_WORKERS	64	/* upper bound of courier.max_workers */
#define COURIER_CLAIM_PENDING	128	/* most delivered ids one claim row lists */
#define COURIER_MAX_MSG_ID		(PG_INT64_MAX - PG_INT32_MAX)	/* last id send hands out */
#define COURIER_DEFAULT_GROUP	"default"

/* Lock tag "field4" values that keep our advisory-space locks apart from users' */
#define COURIER_LOCK_GROUP		0x4331	/* group existence: share by users, exclusive by DDL */
#define COURIER_LOCK_CLAIM		0x4332	/* group claim: serialises log walks of one group */
#define COURIER_LOCK_TOPIC		0x4333	/* topic existence */
#define COURIER_LOCK_MAINT		0x4334	/* topic maintenance: one maintainer at a time */
#define COURIER_LOCK_KEY		0x4335	/* ordering key of a group: look and write a head */

/* ---- GUC variables (guc.c) ---- */
extern int	courier_max_topics;
extern int	courier_max_groups;
extern int	courier_max_body_size;
extern int	courier_scan_limit;
extern int	courier_delay_spans;
extern int	courier_segment_size;
extern int	courier_worker_naptime;
extern int	courier_maintenance_batch;
extern int	courier_vacuum_threshold;
extern char *courier_databases;
extern bool courier_worker_enabled;
extern int	courier_max_workers;
extern int	courier_max_databases;
extern bool courier_test_pauses;

/* courier.test_pauses: pg_advisory_lock(COURIER_TEST_PAUSE_KEY, point) holds a call at point */
#define COURIER_TEST_PAUSE_KEY	7321
#define COURIER_PAUSE_READER_POSITION 1 /* a reading walk has read the group's position */
extern void CourierTestPause(int point);

extern void CourierDefineGucs(void);

/* ---- Shared memory (shmem.c) ---- */

/*
 * A sender's allocation mark: ids [lo, hi] of topic_id were handed to an
 * open transaction that may not have inserted them yet.  One per backend;
 * topic_id 0 means "no mark".  See send.c for the protocol.
 */
typedef struct CourierSenderMark
{
	Oid			dbid;
	Oid			instance;
	int32		topic_id;
	int64		lo;
	int64		hi;
	TransactionId xid;
} CourierSenderMark;

/*
 * Shared entries are keyed by database, installation (CourierInstanceId:
 * a DROP and CREATE EXTENSION reuses topic and group ids, never the
 * instance) and id.
 */
typedef struct CourierTopicKey
{
	Oid			dbid;
	Oid			instance;
	int32		topic_id;
} CourierTopicKey;

/*
 * Shared state of one topic.  "lock" protects next_id, reserved, seq_relid,
 * cur_seg_no and valid; the wake-up fields are atomics.
 *
 * Ids: every id below next_id has been handed out; ids up to reserved have
 * been taken from the topic's sequence (which is WAL-logged, so after a
 * crash next_id restarts above every id ever handed out).
 *
 * cur_seg_no: the segment senders insert into.  It only grows, and it
 * changes under "lock" together with id allocation, so every id of segment
 * k is below every id of segment k + 1 (send.c).
 */
typedef struct CourierTopicShared
{
	CourierTopicKey key;
	LWLock		lock;
	uint32		lock_ready;		/* COURIER_LOCK_READY once lock is initialized */
	bool		valid;			/* fields below loaded from the catalog */
	int64		next_id;
	int64		reserved;
	Oid			seq_relid;
	int32		cur_seg_no;
} CourierTopicShared;

/*
 * Where waiting receivers sleep (wait.c).  Topics hash into a fixed set of
 * buckets, so a sleeper never touches a topic's entry, which a DROP may
 * free; two topics sharing a bucket only cost a spurious wake-up.
 */
typedef struct CourierWaitBucket
{
	pg_atomic_uint64 wake_seq;	/* bumped whenever something may have become receivable */
	pg_atomic_uint64 due_seq;	/* bumped whenever a due time was created */
	pg_atomic_uint32 waiters;	/* receivers sleeping on cv */
	ConditionVariable cv;
} CourierWaitBucket;

#define COURIER_WAIT_BUCKETS	256

/* What a sleeping receiver waits for (one per backend) */
typedef struct CourierSleep
{
	Oid			dbid;			/* InvalidOid: not sleeping */
	int32		topic_id;
	TimestampTz until;			/* when it wakes up on its own */
	int64		fill_at;		/* 0, or: a send's commit wakes it only if
								 * the send took this id or a later one */
} CourierSleep;

typedef struct CourierGroupKey
{
	Oid			dbid;
	Oid			instance;
	int32		group_id;
} CourierGroupKey;

/*
 * A range of ids a group must look at again (see walk.c).  For a hole, xid
 * is the top-level transaction that was still writing ids in [lo, hi] when a
 * walk stepped over them; for a recheck, xid is invalid.
 */
typedef struct CourierSpan
{
	int64		lo;
	int64		hi;
	TransactionId xid;
	uint64		gen;			/* recheck: when it was added (see publish in walk.c) */
} CourierSpan;

#define COURIER_MAX_RECHECKS	32

/*
 * Delayed messages a walk stepped over because they were not due yet (see
 * walk.c, "Delayed messages"): no claim covers their ids, and the span comes
 * back as a recheck once due_min has passed.  n counts the messages parked
 * in it (for estimated statistics).  Every message of a span comes due
 * within COURIER_DEFER_WINDOW of the first, so a span is walked again at
 * most a few times before it is all due.
 */
typedef struct CourierDeferred
{
	int64		lo;
	int64		hi;
	TimestampTz due_min;
	TimestampTz due_max;
	int64		n;
} CourierDeferred;

#define COURIER_MAX_DEFERRED	16
#define COURIER_DEFER_WINDOW	((TimestampTz) 100000)	/* 100 ms, in microseconds */

/*
 * Shared position of one consumer group (walk.c explains the invariant).
 * "lock" protects every field after it.  Walks of a group are serialized by
 * its claim lock (a heavyweight lock); this LWLock only makes the updates
 * of the arrays atomic for transaction callbacks and maintenance.
 */
#define COURIER_DUE_RING		32	/* lowerings a floor computation can span */

typedef struct CourierGroupShared
{
	CourierGroupKey key;
	LWLock		lock;
	uint32		lock_ready;		/* COURIER_LOCK_READY once lock is initialized */
	bool		valid;			/* false: rebuild from the claim table */
	int64		frontier;		/* P: no id >= P has ever been looked at */
	int64		folded;			/* no id <= this is walked again (walk.c,
								 * CourierGroupFolded); 0 after invalidation */
	uint64		fold_gen;		/* bumped by every fold, never reset (readers,
								 * CourierWalk) */
	bool		orphan_scan;	/* ordered: look for keys left without a head */
	TransactionId orphan_after; /* ... once every xid before this has ended */
	uint64		recheck_gen;	/* last gen given to a recheck */
	pg_atomic_uint64 last_receive;	/* statistics (ops.c): TimestampTz, 0 = never */
	pg_atomic_uint64 last_ack;
	/* the due-time floor of waiting receives (wait.c, "Due-time floors") */
	bool		due_known;		/* due_floor holds */
	TimestampTz due_floor;		/* no later committed due time is earlier */
	uint64		due_epoch;		/* CourierShared->due_epoch when it was computed */
	uint64		due_lseq;		/* lowerings so far */
	TimestampTz due_ring[COURIER_DUE_RING];	/* the last ones, by due_lseq */
	int			nrechecks;
	CourierSpan rechecks[COURIER_MAX_RECHECKS];
	int			ndeferred;
	CourierDeferred deferred[COURIER_MAX_DEFERRED];
	int			nholes;
	CourierSpan holes[FLEXIBLE_ARRAY_MEMBER];	/* CourierHoleSlots() of them */
} CourierGroupShared;

/*
 * Claims inserted by a transaction that was then prepared (two-phase
 * commit): our end-of-transaction callbacks will not run for it, so walkers
 * look here to learn whether it rolled back (walk.c).
 */
typedef struct CourierPreparedClaim
{
	Oid			dbid;			/* InvalidOid: free */
	Oid			instance;
	int32		group_id;
	TransactionId xid;
	int64		lo;
	int64		hi;
} CourierPreparedClaim;

/*
 * A promotion to check later (ordered groups, see lease.c): once xid has
 * ended -- or, if xid is invalid, once the group has settled every id below
 * msg_id -- the oldest queued message of key okey in the group may have to
 * become the head of its key.
 */
typedef struct CourierPromotion
{
	Oid			dbid;			/* InvalidOid: free */
	Oid			instance;
	int32		group_id;
	TransactionId xid;
	int64		msg_id;
	char		okey[COURIER_MAX_KEY_LEN + 1];
} CourierPromotion;

#define COURIER_MAX_PROMOTIONS	256
#define COURIER_PROMOTION_RESERVE 16	/* of those, kept for overflow scans (lease.c) */

typedef struct CourierShared
{
	int			tranche_id;
	CourierPromotion promotions[COURIER_MAX_PROMOTIONS];	/* CourierPromotionsLock() */
	CourierWaitBucket buckets[COURIER_WAIT_BUCKETS];
	pg_atomic_uint64 due_epoch;	/* bumped when due times may have come unseen (wait.c) */
	pg_atomic_uint32 twophase_ends;	/* bumped at every COMMIT / ROLLBACK
									 * PREPARED (CourierForgetStaleEntries) */
	pg_atomic_uint64 fold_gen;	/* bumped by every fold, for readers without a
								 * shared entry of their group (CourierWalk) */
	CourierSleep *sleeps;		/* MaxBackends of them */
	int			nprepared;		/* capacity of prepared[] */
	CourierPreparedClaim *prepared; /* protected by CourierPreparedLock() */
	int			nmarks;
	CourierSenderMark marks[FLEXIBLE_ARRAY_MEMBER];
} CourierShared;

extern CourierShared *CourierState;

extern void CourierShmemInit(void);
extern int	CourierHoleSlots(void);
extern CourierTopicShared *CourierTopicSharedGet(int32 topic_id);
extern CourierTopicShared *CourierTopicSharedFind(int32 topic_id);
extern CourierTopicShared *CourierTopicSharedTryGet(int32 topic_id);
extern CourierGroupShared *CourierGroupSharedTryGet(int32 group_id);
extern CourierGroupShared *CourierGroupSharedLocal(int32 group_id);
extern LWLock *CourierWorkerLock(void);
extern LWLock *CourierPreparedLock(void);
extern LWLock *CourierPromotionsLock(void);
extern CourierGroupShared *CourierGroupSharedGet(int32 group_id);
extern CourierGroupShared *CourierGroupSharedFind(int32 group_id);
extern void CourierTopicSharedForget(int32 topic_id, Oid instance);
extern void CourierGroupSharedForget(int32 group_id, Oid instance);
extern void CourierGroupInvalidate(CourierGroupShared *gs, int32 group_id);
extern CourierSenderMark *CourierMyMark(void);
extern void CourierWakeDatabase(Oid dbid);
extern void CourierForgetDatabase(Oid dbid);
extern void CourierForgetStaleEntries(void);

/* ---- Catalog cache (catalog.c) ---- */

typedef struct CourierSegment
{
	int32		seg_no;
	Oid			relid;
	TimestampTz created_at;
	int64		min_lb;			/* <= every id it holds; 0 = not known yet */
	int64		max_ub;			/* >= every id it holds (sealed only); 0 = not known */
	bool		uncommitted;	/* created by our own transaction, not committed yet */
} CourierSegment;

typedef struct CourierTopic
{
	int32		topic_id;
	char		name[NAMEDATALEN];
	Oid			seq_relid;
	Interval	retention;
	bool		has_max_retention;
	Interval	max_retention;
	/* owner and privileges: the sequence's pg_class row, read in acl.c */
	bool		uncommitted;	/* created by our own transaction, not committed yet */
	int			nsegments;
	CourierSegment *segments;	/* ascending seg_no */
} CourierTopic;

typedef struct CourierGroup
{
	int32		group_id;
	int32		topic_id;
	char		name[NAMEDATALEN];
	bool		ordered;
	bool		paused;
	int32		max_attempts;
	int			nbackoff;
	int64	   *backoff_usec;	/* retry ladder, microseconds */
	char	   *filter_text;	/* normalized; NULL = '*' */
	CourierFilter *filter;		/* compiled; NULL = everything */
} CourierGroup;

extern void CourierCatalogInit(void);
extern void CourierCatalogChanged(int32 topic_id, int32 group_id);
extern void CourierCacheCheck(void);
extern void CourierCacheFreeRetired(void);
extern Oid	CourierInstanceId(void);
extern Oid	CourierCurrentInstance(void);
extern int64 CourierTopicFloor(int32 topic_id);
extern void CourierValidateName(const char *what, const char *name);
extern CourierTopic *CourierGetTopic(const char *name);
extern CourierTopic *CourierGetTopicById(int32 topic_id);
extern CourierTopic *CourierFindTopicById(int32 topic_id);
extern CourierGroup *CourierGetGroup(CourierTopic *topic, const char *name);
extern CourierGroup *CourierGetGroupById(int32 group_id);
extern CourierGroup *CourierGetGroupWithTopic(int32 group_id, CourierTopic **topic);
extern CourierGroup *CourierFindGroupById(int32 group_id);
extern bool CourierExistsNow(bool is_group, int32 id);
extern List *CourierTopicGroups(int32 topic_id);
extern List *CourierAllTopics(void);
extern char *CourierTextArg(FunctionCallInfo fcinfo, int argno, const char *what);
extern void CourierLockGroup(int32 group_id, LOCKMODE mode);
extern void CourierLockTopic(int32 topic_id, LOCKMODE mode);
extern bool CourierTryLockExclusive(bool topic, int32 id);
extern void CourierUnlockExclusive(bool topic, int32 id);
extern bool CourierTryLockForWorker(int32 topic_id, int32 group_id);
extern void CourierRequireWorker(void);

/* ---- Per-topic privileges (acl.c) ---- */

/*
 * What the bits of the topic sequence's ACL (pg_class.relacl) mean, shown as
 * send/receive/admin.  Sequence privileges, so that GRANT/REVOKE ON
 * SEQUENCE and pg_dump understand them.
 */
#define COURIER_PRIV_SEND		ACL_USAGE
#define COURIER_PRIV_RECEIVE	ACL_SELECT
#define COURIER_PRIV_ADMIN		ACL_UPDATE
#define COURIER_PRIV_ALL		(COURIER_PRIV_SEND | COURIER_PRIV_RECEIVE | COURIER_PRIV_ADMIN)

extern bool CourierTopicPrivilegeOk(CourierTopic *topic, Oid roleid, AclMode mode);
extern void CourierCheckTopicPrivilege(CourierTopic *topic, AclMode mode);
extern bool CourierMaySeeTopic(CourierTopic *topic);
extern Oid	CourierOuterUser(void);
extern bool CourierPathIsPinned(void);
extern void CourierPushPinnedPath(void);
extern Datum CourierRunAsOwner(FunctionCallInfo fcinfo, PGFunction body);

/* ---- Statistics and operator helpers (ops.c) ---- */
extern int	courier_stats_exact_limit;
extern void CourierGroupTouch(int32 group_id, bool ack);

/* ---- Segments of the log (segment.c) ---- */

/* Payload of one message, as read from the log */
typedef struct CourierPayload
{
	int64		id;
	TimestampTz sent_at;
	bool		has_deliver_at;
	TimestampTz deliver_at;
	Datum		tag;			/* text, or 0 */
	Datum		keys;			/* text[], or 0 */
	Datum		headers;		/* jsonb, or 0 */
	Datum		body;			/* jsonb */
} CourierPayload;

/* Column numbers of a segment table */
#define Anum_seg_id			1
#define Anum_seg_sent_at	2
#define Anum_seg_deliver_at 3
#define Anum_seg_tag		4
#define Anum_seg_keys		5
#define Anum_seg_headers	6
#define Anum_seg_body		7
#define Natts_seg			7

/* Column numbers of courier.claim */
#define Anum_claim_group_id		1
#define Anum_claim_lo			2
#define Anum_claim_hi			3
#define Anum_claim_lease_until	4
#define Anum_claim_delivered_at 5
#define Anum_claim_pending		6
#define Natts_claim				6

/* Column numbers of courier.lease */
#define Anum_lease_group_id		1
#define Anum_lease_msg_id		2
#define Anum_lease_state		3
#define Anum_lease_visible_at	4
#define Anum_lease_attempt		5
#define Anum_lease_first		6
#define Anum_lease_last			7
#define Anum_lease_last_error	8
#define Anum_lease_okey			9
#define Anum_lease_body			10
#define Anum_lease_tag			11
#define Anum_lease_keys			12
#define Anum_lease_headers		13
#define Anum_lease_sent_at		14
#define Natts_lease				14
#define Natts_claim				6

extern void CourierTopicSharedLoad(CourierTopic *topic, CourierTopicShared *ts);
extern int	CourierReadAllocation(CourierTopic *topic, int64 *next_id, int32 *cur_seg_no,
								  CourierSenderMark *marks);
extern void CourierSegmentBounds(CourierTopic *topic, int segidx);
extern int	CourierNewestCommittedSegment(CourierTopic *topic);
extern void CourierCheckSegment(Relation rel);
extern bool CourierOpenSegment(CourierSegment *seg, LOCKMODE lockmode, Relation *relp,
							   Relation *idxp);
extern void CourierCloseSegment(Relation rel, Relation idx);
extern bool CourierFetchMessage(CourierTopic *topic, int64 id, CourierPayload *out);
extern void CourierPayloadFromSlot(TupleTableSlot *slot, CourierPayload *out);

/* ---- Direct heap writes (heap.c) ---- */
typedef struct CourierInserter
{
	Relation	rel;
	EState	   *estate;
	ResultRelInfo *rri;
	TupleTableSlot *slot;
	TupleTableSlot **slots;		/* CourierInserterInsertMany's, made once */
	int			nslots;
	CommandId	cid;
} CourierInserter;

extern Oid	CourierRelid(const char *relname);
extern void CourierLockClaimTables(void);
extern Relation CourierIndexOpen(const char *relname, LOCKMODE lockmode);
extern Snapshot CourierPushReadSnapshot(void);
extern void CourierInserterBegin(CourierInserter *ins, Relation rel);
extern void CourierInserterInsert(CourierInserter *ins, Datum *values, bool *nulls, int natts);
#define COURIER_MULTI_INSERT_MAX	1000	/* tuples per CourierInserterInsertMany */
extern void CourierInserterInsertMany(CourierInserter *ins, int n, Datum *values, bool *nulls,
									  int natts);
extern void CourierInserterEnd(CourierInserter *ins);
extern bool CourierUpdateTuple(Relation rel, ItemPointer otid, Datum *values, bool *nulls,
							   int natts);
extern void CourierInsertTuple(Relation rel, Datum *values, bool *nulls, int natts);

/* ---- Sending (send.c) ---- */
extern void CourierClearMark(void);
extern int64 CourierNextIdOf(CourierTopic *topic);

/* ---- Walking the log (walk.c) ---- */

typedef enum CourierWalkMode
{
	WALK_CLAIM,					/* deliver and record claims (receive) */
	WALK_PEEK,					/* list what would be delivered, change nothing */
	WALK_COUNT,					/* count the backlog, change nothing */
	WALK_COUNT_DEFERRED			/* count only what the deferred spans hold */
} CourierWalkMode;

typedef struct CourierDelivery
{
	CourierPayload msg;
	int32		attempt;
	TimestampTz lease_until;
	TimestampTz delivered_at;	/* with attempt, identifies this delivery (receipts) */
} CourierDelivery;

typedef struct CourierWalkResult
{
	int			ndelivered;
	CourierDelivery *delivered;
	int64		backlog;		/* WALK_COUNT: deliverable now */
	int64		delayed;		/* WALK_COUNT: matching but not yet due */
	int			diverted;		/* WALK_CLAIM: rows added to the lease table */
	bool		more;			/* stopped early: more may be waiting */
} CourierWalkResult;

extern void CourierWalk(CourierTopic *topic, CourierGroup *group, CourierWalkMode mode,
						int max_messages, TimestampTz lease_until, int64 upto,
						CourierWalkResult *result);
extern void CourierWalkInit(void);
/* What a group's deferred spans hold (walk.c), for estimated statistics */
typedef struct CourierDeferredCount
{
	int64		ids;			/* ids the spans cover */
	int64		due;			/* messages in spans already due */
	int64		delayed;		/* messages in spans not due yet */
	int64		first;			/* the lowest deferred id, 0 if none */
	int64		last;			/* the highest id a span covers, 0 if none */
} CourierDeferredCount;

extern void CourierGroupPosition(CourierGroup *group, int64 *frontier, int64 *lowest,
								 int64 *span_ids, CourierDeferredCount *deferred);
extern TimestampTz CourierGroupDeferredDue(int32 group_id);
extern void CourierClaimLock(int32 group_id);
extern void CourierClaimUnlock(int32 group_id);
extern void CourierGroupFolded(int32 group_id, int64 lw);
extern void CourierGroupRecheck(int32 group_id, int64 lo, int64 hi);
extern int64 CourierGroupSettledBelow(int32 group_id);
extern bool CourierRegisterPreparedClaim(int32 group_id, TransactionId xid, int64 lo, int64 hi);

/* ---- Per-message lease table (lease.c) ---- */
extern SPIPlanPtr CourierPrepare(SPIPlanPtr *cache, const char *sql, int nargs, Oid *argtypes);
extern int	CourierExecuteOnce(const char *sql, int nargs, Oid *argtypes, Datum *values,
							   const char *nulls, bool read_only, long count);
extern int	CourierExecuteShaped(SPIPlanPtr plan, Datum *args, const char *nulls, long count,
								 const char *const *off);
extern const char *const CourierIndexShape[];
extern const char *const CourierKeyShape[];
extern const char *const CourierTidShape[];
extern char *CourierOrderingKey(Datum keys, bool isnull);
extern Datum CourierInt8Array(int64 *vals, int n);
extern int	CourierLeaseDue(CourierTopic *topic, CourierGroup *group, int max_messages,
							TimestampTz now, TimestampTz lease_until,
							CourierDelivery *out);
extern void CourierExtendLeases(CourierTopic *topic, CourierGroup *group, CourierDelivery *out,
								int n, TimestampTz until);
/* how much of a lease a slow hand-out may eat before the lease is moved on */
#define COURIER_LEASE_SLACK_USEC	(100 * 1000)
extern int	CourierExpireClaims(CourierGroup *group, int limit, TimestampTz now);
extern char *CourierForgetLease(CourierGroup *group, int64 msg_id);
extern bool CourierPayloadFromLease(HeapTuple tup, TupleDesc desc, int col, MemoryContext cxt,
									CourierPayload *out);
/* The lease rows of an ordering key, as a dirty snapshot sees them */
typedef struct CourierKeyRows
{
	bool		any;			/* the key has rows (any state) */
	bool		head;			/* it has a head (a row not in state 'q') */
	TransactionId head_xid;		/* a transaction in progress writing, changing
								 * or deleting the head, or invalid */
	bool		queued;			/* it has queued rows ('q') */
	int64		first_q;		/* the smallest queued id */
	TransactionId first_q_xmin; /* its inserter, if still in progress */
	TransactionId first_q_xmax; /* its deleter or changer, if in progress */
} CourierKeyRows;

extern void CourierKeyLock(int32 group_id, const char *okey, bool acquire);
extern void CourierKeyLook(Relation lease_rel, int32 group_id, const char *okey,
						   bool need_queued, CourierKeyRows *out);
extern void CourierPromoteNext(CourierTopic *topic, CourierGroup *group, const char *okey);
extern void CourierPromoteLater(int32 group_id, const char *okey, TransactionId xid, int64 msg_id);
extern void CourierRunPromotions(CourierTopic *topic, CourierGroup *group);
extern void CourierPromotionRestore(Oid instance, int32 group_id, const char *okey,
									TransactionId xid);
extern TimestampTz CourierNextDue(CourierGroup *group, TimestampTz now);
extern bool CourierDueNow(CourierGroup *group, TimestampTz now);
/* What is known of a message when it dies */
typedef struct CourierDeadRow
{
	int64		id;
	int32		attempts;
	TimestampTz first_delivered;	/* 0 if unknown */
	TimestampTz last_delivered;		/* 0 if unknown */
	char	   *reason;			/* or NULL */
} CourierDeadRow;

extern void CourierDeadRowFromLease(HeapTuple tup, TupleDesc desc, MemoryContext cxt,
									CourierDeadRow *out);
extern void CourierDeadLetter(CourierTopic *topic, CourierGroup *group,
							  const CourierDeadRow *row);

/* ---- Acknowledging (ack.c) ---- */
extern Datum CourierMakeReceipt(int64 id, int32 attempt, TimestampTz delivered_at);
extern int	CourierAckArrays(CourierTopic *topic, CourierGroup *group, ArrayType *ids,
							 ArrayType *receipts, const char *ids_name,
							 const char *receipts_name);

/* ---- Receiving (receive.c) ---- */
extern int64 CourierIntervalUsec(Interval *iv);

/* ---- Filters inside the server (match.c) ---- */
extern CourierFilter *CourierCompileFilter(const char *text, MemoryContext cxt, char **normalized);
extern CfResult CourierEvalFilter(CourierFilter *filter, Datum headers, Datum tag);

/* ---- Waiting (wait.c) ---- */
/* a CourierNextDue computing the group's due-time floor */
typedef struct CourierDueTicket
{
	CourierGroupShared *gs;		/* NULL: the group has no shared entry */
	int32		group_id;
	uint64		epoch;
	uint64		lseq;			/* the group's due_lseq when it began */
} CourierDueTicket;

extern void CourierWaitInit(CourierShared *state, bool init);
extern bool CourierDueFloorBegin(int32 group_id, TimestampTz now, TimestampTz *floor,
								 CourierDueTicket *ticket);
extern void CourierDueFloorEnd(CourierDueTicket *ticket, bool computed, TimestampTz next);
extern void CourierGroupDueLower(int32 group_id, TimestampTz due);
extern uint64 CourierWakeSeq(int32 topic_id);
extern uint64 CourierDueSeq(int32 topic_id);
extern void CourierWakeTopic(int32 topic_id);
extern void CourierWakeTopicSent(int32 topic_id, int64 hi);
extern void CourierWakeIfOversleeping(int32 topic_id, TimestampTz due);
extern void CourierWaitTopic(int32 topic_id, uint64 seq, uint64 dueseq, TimestampTz until,
							 int64 fill_at);

/* ---- Maintenance (maint.c) and background worker (worker.c) ---- */
typedef struct CourierMaintStats
{
	int64		expired;
	int64		dead_lettered;
	int64		compacted;
	int64		rotated;
	int64		dropped_segments;
	int64		dropped_messages;
	int64		skipped;		/* steps left for a later round: a lock was busy */
} CourierMaintStats;

extern void CourierMaintainGroup(CourierTopic *topic, CourierGroup *group, TimestampTz now,
								 CourierMaintStats *st);
extern void CourierMaintainTopic(CourierTopic *topic, TimestampTz now, CourierMaintStats *st);
/*
 * What the worker remembers of its VACUUMs of one of the bookkeeping tables
 * (maint.c); kept per database in the worker pool's status entry, so that a
 * database's next worker, after a rotation, remembers it too
 */
#define COURIER_VACUUM_TABLES 2		/* courier.claim, courier.lease */
typedef struct CourierVacuumState
{
	TransactionId horizon;		/* xmin horizon of its last VACUUM, or invalid */
	TimestampTz last;			/* when it last started one, or 0 */
	TimestampTz retry_after;	/* after one that ran out of time: not before */
} CourierVacuumState;

extern void CourierVacuumBookkeeping(MemoryContext cxt, CourierVacuumState *state);
extern void CourierWorkerInit(void);
extern bool CourierLockMaintenance(int32 topic_id, bool wait);


/* ---- Transaction bookkeeping (xact.c) ---- */
extern void CourierXactInit(void);
extern void CourierRememberClaim(int32 group_id, int32 topic_id, int64 lo, int64 hi);
extern void CourierWakeAtCommit(int32 topic_id);
extern void CourierWakeAtCommitSent(int32 topic_id, int64 hi);
extern void CourierWakeAtAbort(int32 topic_id);
extern void CourierDueAtCommit(int32 topic_id, int32 group_id, TimestampTz due);
extern TimestampTz CourierOwnDue(int32 group_id);
extern void CourierWakeIfPassedAtEnd(int32 topic_id, TimestampTz due);
extern void CourierUndoAtAbort(int32 topic_id, int32 group_id);
extern void CourierInvalidateGroupAtEnd(int32 group_id);
extern void CourierForgetAtCommit(int32 topic_id, int32 group_id);
extern bool CourierHasClaims(void);
extern bool CourierClaimedHere(int32 group_id, int64 lo, int64 hi);
extern void CourierRememberPromotion(Oid instance, int32 group_id, const char *okey);

/* ---- DDL guard, internal DDL, DROP EXTENSION clean-up (guard.c) ---- */
extern void CourierGuardInit(void);
extern void CourierExecInternalDDL(const char *sql);

/* citus.c */
extern bool courier_citus_guard;
extern void CourierCitusInit(void);
extern void CourierCitusCheckTopic(const char *topic);

/* ---- Time arithmetic (send.c) ---- */
extern bool CourierIntervalIsNegative(Interval *iv);
extern TimestampTz CourierTimestampPlus(TimestampTz ts, Interval *iv);

#endif							/* PG_COURIER_H */
