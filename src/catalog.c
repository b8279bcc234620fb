/*-------------------------------------------------------------------------
 *
 * catalog.c
 *	  A backend-local cache of topics, their segments and their groups,
 *	  plus name validation and the heavyweight locks that guard them.
 *
 * Invalidation (DESIGN.md section 5, "caches follow PostgreSQL's
 * invalidation")
 * ------------------------------------------------------------------------
 * Whoever changes courier.topic_meta, courier.segment or courier.group_meta
 * queues a relcache invalidation of courier.topic_meta in its transaction
 * (CourierCatalogChanged).  PostgreSQL carries that message in the commit
 * record, so every backend receives it at its next AcceptInvalidationMessages
 * -- on this server, on a standby replaying the commit, and at COMMIT
 * PREPARED -- and our relcache callback marks the cache stale.  The same
 * callback fires for any invalidation of our three catalog tables (and for a
 * full reset), so nothing can change them behind our back.  There is no
 * counter of our own.
 *
 * Our own changes: one message per transaction is enough for the others
 * (they reload everything when it arrives), so CourierCatalogChanged queues
 * it only for the first change of a transaction (again if the subtransaction
 * that queued it rolls back, which discards it).  PostgreSQL hands that
 * message to our own callback too, at the end of the command, and the next
 * lookup reloads everything once; for every later change the caller names
 * what changed (a topic, with its segments and groups, or a group) and the
 * next lookup re-reads just that (refresh_own).  Otherwise a transaction
 * creating N groups reloaded N times, each reading every group: O(N^2)
 * time.  Whatever may have undone our changes reloads everything: a
 * rollback to a savepoint after a change, and the end of the transaction.
 *
 * The cache is (re)loaded with SPI under a fresh snapshot (GetLatestSnapshot),
 * never under the caller's transaction snapshot: a REPEATABLE READ or
 * SERIALIZABLE transaction must not load a stale catalog and then mark it
 * current for everybody who uses this backend afterwards.  Our own
 * transaction's uncommitted changes are visible to that snapshot, as they
 * must be to the DDL functions that made them.
 *
 * Memory: a reload compares every row with the cached object of that id
 * and keeps the object when nothing changed, so a pointer handed out
 * earlier stays valid and equal to the catalog.  A new or changed row gets
 * a new object; the one it replaces (and a dropped one) stays allocated as
 * garbage, because callers may still hold it.  When the garbage outgrows
 * the live objects (in number, or the context has doubled since its first
 * load), the whole context is retired at a safe point (the end
 * of a transaction, or between two sleeps of a waiting receive, which looks
 * everything up again) and the next lookup loads afresh; a retired context
 * is freed at the next safe point.  So repeated reloads allocate in
 * proportion to what changed, not to the whole catalog each time (review
 * 54), and a long poll does not accumulate old caches.
 *
 * Locking: callers look an object up, lock it (an advisory-space lock, see
 * CourierLockTopic), accept invalidation messages and look again: a DDL
 * transaction holds the lock exclusively until after it has sent its
 * invalidations, so a concurrent drop or change is always noticed.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/pg_extension.h"
#include "commands/extension.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/rel.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "pg_courier.h"

/* every hash entry carries the load that last saw it (stale ones are swept) */
typedef struct TopicByName
{
	char		name[NAMEDATALEN];
	CourierTopic *topic;
	uint64		gen;
} TopicByName;

typedef struct TopicById
{
	int32		topic_id;
	CourierTopic *topic;
	uint64		gen;
} TopicById;

typedef struct GroupKey
{
	int32		topic_id;
	char		name[NAMEDATALEN];
} GroupKey;

typedef struct GroupByName
{
	GroupKey	key;
	CourierGroup *group;
	uint64		gen;
} GroupByName;

typedef struct GroupById
{
	int32		group_id;
	CourierGroup *group;
	uint64		gen;
} GroupById;

static MemoryContext cache_cxt = NULL;
static List *retired_cxts = NIL;
static bool cache_valid = false;
static bool discard_pending = false;	/* next reload starts a new context */
static uint64 load_gen = 0;		/* bumped by every reload */
static uint64 full_loads = 0;	/* bumped by every full reload */
static int	live_objects = 0;	/* topics and groups in the hashes */
static int	garbage_objects = 0;	/* replaced or dropped, still allocated */
static Size fresh_bytes = 0;	/* the context's size after its first load */
static Oid	cache_instance = InvalidOid;	/* the installation it was loaded from */
static HTAB *topics_by_name = NULL;
static HTAB *topics_by_id = NULL;
static HTAB *groups_by_name = NULL;
static HTAB *groups_by_id = NULL;

/*
 * This backend's own changes (see the file header): the nesting level of
 * the (sub)transaction whose invalidation message is queued (0: none), the
 * deepest level that changed something (0: nothing), and what changed since
 * the cache was last loaded, to re-read at the next lookup.  More than
 * MAX_OWN_CHANGES between two lookups reload everything instead.
 */
#define MAX_OWN_CHANGES 64
typedef struct OwnChange
{
	int32		topic_id;		/* the topic, its segments and its groups */
	int32		group_id;		/* or only this group (topic_id 0) */
} OwnChange;

static int	inval_queued_level = 0;
static int	changed_level = 0;
static OwnChange own_changes[MAX_OWN_CHANGES];
static int	n_own_changes = 0;

/* OIDs of our catalog tables, as of the last load (for the callback) */
static Oid	topic_meta_relid = InvalidOid;
static Oid	segment_relid = InvalidOid;
static Oid	group_meta_relid = InvalidOid;

static void cache_reload(void);
static void check_version(void);
static void cache_xact_callback(XactEvent event, void *arg);
static void cache_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
								   SubTransactionId parentSubid, void *arg);
static void refresh_own(void);
static void cache_relcache_callback(Datum arg, Oid relid);
static HTAB *make_hash(const char *name, Size keysize, Size entrysize, bool strings);
static Datum spi_get(HeapTuple tup, int col, bool *isnull);
static CourierTopic *lookup_topic(const char *name);
static CourierGroup *lookup_group(int32 topic_id, const char *name);

/*
 * CourierCatalogInit
 *		Register the invalidation and end-of-transaction callbacks (from
 *		_PG_init; backends inherit them).
 */
void
CourierCatalogInit(void)
{
	CacheRegisterRelcacheCallback(cache_relcache_callback, (Datum) 0);
	RegisterXactCallback(cache_xact_callback, NULL);
	RegisterSubXactCallback(cache_subxact_callback, NULL);
}

/*
 * cache_relcache_callback
 *		A relcache invalidation arrived: if it concerns one of our catalog
 *		tables (or everything), the cache is stale.  Only sets a flag:
 *		callbacks run inside lock acquisition and must not do real work.
 */
static void
cache_relcache_callback(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == topic_meta_relid ||
		relid == segment_relid || relid == group_meta_relid)
		cache_valid = false;
}

/*
 * CourierCatalogChanged
 *		This transaction changed the topic topic_id (its row, segments or
 *		groups), or only the group group_id (topic_id 0), or anything (both
 *		0): every other backend must reload its cache when we commit (and
 *		standbys when they replay our commit), and ours must see the change
 *		at its next lookup (see the file header).
 */
void
CourierCatalogChanged(int32 topic_id, int32 group_id)
{
	int			level = GetCurrentTransactionNestLevel();

	changed_level = Max(changed_level, level);
	if (inval_queued_level == 0)
	{
		CacheInvalidateRelcacheByRelid(CourierRelid("topic_meta"));
		inval_queued_level = level;
		cache_valid = false;
	}
	if (!cache_valid)
		return;					/* the next lookup reloads everything anyway */
	if ((topic_id == 0 && group_id == 0) || n_own_changes == MAX_OWN_CHANGES)
	{
		cache_valid = false;
		return;
	}
	own_changes[n_own_changes].topic_id = topic_id;
	own_changes[n_own_changes].group_id = topic_id != 0 ? 0 : group_id;
	n_own_changes++;
}

/*
 * CourierCacheFreeRetired
 *		Free cache contexts replaced by reloads.  Only safe where no caller
 *		holds pointers into them: at the end of a transaction, and between
 *		two sleeps of a waiting receive (which looks everything up again).
 */
void
CourierCacheFreeRetired(void)
{
	ListCell   *lc;

	foreach(lc, retired_cxts)
		MemoryContextDelete((MemoryContext) lfirst(lc));
	list_free(retired_cxts);
	retired_cxts = NIL;

	/*
	 * Too much garbage (by count, or by size: a compiled filter is several
	 * times a group's size): the next lookup loads into a new context.
	 */
	if (cache_cxt != NULL &&
		(garbage_objects > live_objects + 64 ||
		 MemoryContextMemAllocated(cache_cxt, true) > 2 * fresh_bytes + 1024 * 1024))
	{
		discard_pending = true;
		cache_valid = false;
	}
}

/*
 * cache_xact_callback
 *		Free cache contexts retired during the transaction.
 */
static void
cache_xact_callback(XactEvent event, void *arg)
{
	if (event != XACT_EVENT_COMMIT && event != XACT_EVENT_ABORT &&
		event != XACT_EVENT_PARALLEL_COMMIT && event != XACT_EVENT_PARALLEL_ABORT &&
		event != XACT_EVENT_PREPARE)
		return;
	CourierCacheFreeRetired();
	/* a rolled-back DDL transaction sent no invalidations: reload anyway */
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
		cache_valid = false;

	/*
	 * Our own invalidation comes back to us after a commit, but objects we
	 * created are no longer uncommitted (and after PREPARE, ours to see no
	 * more) from now on: reload without waiting for it.
	 */
	if (changed_level > 0)
		cache_valid = false;
	inval_queued_level = 0;
	changed_level = 0;
	n_own_changes = 0;
}

/*
 * cache_subxact_callback
 *		Follow our own changes through subtransactions: a committed one hands
 *		its queued invalidation and its changes to its parent; a rolled-back
 *		one discards the invalidation, and its changes are undone behind the
 *		cache's back, so the next lookup reloads everything.
 */
static void
cache_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					   SubTransactionId parentSubid, void *arg)
{
	int			level = GetCurrentTransactionNestLevel();

	if (event == SUBXACT_EVENT_COMMIT_SUB)
	{
		if (inval_queued_level == level)
			inval_queued_level = level - 1;
		if (changed_level == level)
			changed_level = level - 1;
	}
	else if (event == SUBXACT_EVENT_ABORT_SUB)
	{
		if (inval_queued_level >= level)
			inval_queued_level = 0;
		if (changed_level >= level)
		{
			/* (the parent may have changed something too: assume it did) */
			changed_level = level - 1;
			cache_valid = false;
			n_own_changes = 0;
		}
	}
}

/*
 * CourierValidateName
 *		Topic and group names: 1 to 48 bytes of [a-z0-9_.-].  Names are
 *		quoted wherever they reach SQL anyway; this keeps them readable and
 *		makes injection attempts fail loudly.
 */
void
CourierValidateName(const char *what, const char *name)
{
	const char *p;
	size_t		len;

	if (name == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s name must not be NULL", what)));
	len = strlen(name);
	if (len == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s name must not be empty", what)));
	if (len > COURIER_NAME_MAXLEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s name is too long", what),
				 errdetail("Names are at most %d bytes; this one has %zu.",
						   COURIER_NAME_MAXLEN, len)));
	for (p = name; *p; p++)
	{
		char		c = *p;

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
			  c == '_' || c == '.' || c == '-'))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid %s name \"%s\"", what, name),
					 errdetail("Names may contain only lower-case letters, digits, \"_\", \".\" and \"-\".")));
	}
}

/*
 * CourierTextArg
 *		A text argument as a C string; NULL is an error naming the argument.
 */
char *
CourierTextArg(FunctionCallInfo fcinfo, int argno, const char *what)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be NULL", what)));
	return text_to_cstring(PG_GETARG_TEXT_PP(argno));
}

/*
 * make_hash
 *		A dynahash in the cache context.
 */
static HTAB *
make_hash(const char *name, Size keysize, Size entrysize, bool strings)
{
	HASHCTL		ctl;

	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = keysize;
	ctl.entrysize = entrysize;
	ctl.hcxt = cache_cxt;
	return hash_create(name, 64, &ctl,
					   HASH_ELEM | HASH_CONTEXT | (strings ? HASH_STRINGS : HASH_BLOBS));
}

/*
 * spi_get
 *		Column col (1-based) of an SPI result row.
 */
static Datum
spi_get(HeapTuple tup, int col, bool *isnull)
{
	return SPI_getbinval(tup, SPI_tuptable->tupdesc, col, isnull);
}

/*
 * topic_equal / group_equal
 *		Whether a cached object says exactly what a freshly read row says
 *		(then the cached one is kept, see the file header).
 */
static bool
topic_equal(const CourierTopic *a, const CourierTopic *b)
{
	if (a->topic_id != b->topic_id || strcmp(a->name, b->name) != 0 ||
		a->seq_relid != b->seq_relid ||
		memcmp(&a->retention, &b->retention, sizeof(Interval)) != 0 ||
		a->has_max_retention != b->has_max_retention ||
		(a->has_max_retention &&
		 memcmp(&a->max_retention, &b->max_retention, sizeof(Interval)) != 0) ||
		a->uncommitted != b->uncommitted || a->nsegments != b->nsegments)
		return false;
	for (int j = 0; j < a->nsegments; j++)
	{
		const CourierSegment *x = &a->segments[j];
		const CourierSegment *y = &b->segments[j];

		if (x->seg_no != y->seg_no || x->relid != y->relid ||
			x->created_at != y->created_at || x->uncommitted != y->uncommitted)
			return false;
	}
	return true;
}

static bool
group_equal(const CourierGroup *a, const CourierGroup *b)
{
	if (a->group_id != b->group_id || a->topic_id != b->topic_id ||
		strcmp(a->name, b->name) != 0 || a->ordered != b->ordered ||
		a->paused != b->paused || a->max_attempts != b->max_attempts ||
		a->nbackoff != b->nbackoff ||
		(a->nbackoff > 0 &&
		 memcmp(a->backoff_usec, b->backoff_usec, sizeof(int64) * a->nbackoff) != 0))
		return false;
	if (a->filter_text == NULL || b->filter_text == NULL)
		return a->filter_text == b->filter_text;
	return strcmp(a->filter_text, b->filter_text) == 0;
}

/*
 * backoff_usec
 *		A retry_backoff interval in microseconds, computed as
 *		(date_part('epoch', b) * 1000000)::int8 would, with the same
 *		functions (so with the same rounding and range errors).
 */
static int64
backoff_usec(Datum interval)
{
	Datum		epoch = DirectFunctionCall2(interval_part, CStringGetTextDatum("epoch"), interval);
	Datum		usec = DirectFunctionCall2(float8mul, epoch, Float8GetDatum(1000000.0));

	return DatumGetInt64(DirectFunctionCall1(dtoi8, usec));
}

/*
 * cache_start
 *		Begin a new cache context (the first load, a new installation of the
 *		extension, or too much garbage); the old one is retired, not freed.
 */
static void
cache_start(void)
{
	if (cache_cxt != NULL)
	{
		MemoryContext oldcxt = MemoryContextSwitchTo(TopMemoryContext);

		retired_cxts = lappend(retired_cxts, cache_cxt);
		MemoryContextSwitchTo(oldcxt);
	}
	cache_cxt = AllocSetContextCreate(TopMemoryContext, "pg_courier catalog cache",
									  ALLOCSET_DEFAULT_SIZES);
	topics_by_name = make_hash("courier topics", NAMEDATALEN, sizeof(TopicByName), true);
	topics_by_id = make_hash("courier topic ids", sizeof(int32), sizeof(TopicById), false);
	groups_by_name = make_hash("courier groups", sizeof(GroupKey), sizeof(GroupByName), false);
	groups_by_id = make_hash("courier group ids", sizeof(int32), sizeof(GroupById), false);
	live_objects = 0;
	garbage_objects = 0;
	fresh_bytes = 0;
	discard_pending = false;
	cache_instance = topic_meta_relid;
}

/*
 * sweep
 *		Remove the entries of a hash that this load did not see (dropped
 *		objects); with "count", they leave the live objects for the garbage.
 *		gen_offset is where the entry keeps its generation.
 */
static void
sweep(HTAB *hash, Size gen_offset, bool count)
{
	HASH_SEQ_STATUS status;
	char	   *e;

	hash_seq_init(&status, hash);
	while ((e = hash_seq_search(&status)) != NULL)
	{
		if (*(uint64 *) (e + gen_offset) == load_gen)
			continue;
		/* deleting the entry just returned is allowed during a scan */
		hash_search(hash, e, HASH_REMOVE, NULL);
		if (count)
		{
			live_objects--;
			garbage_objects++;
		}
	}
}

/*
 * forget_topic / forget_group
 *		Take a cached object out of both hashes (it was dropped): it stays
 *		allocated as garbage, see the file header.
 */
static void
forget_topic(TopicById *byid)
{
	CourierTopic *t = byid->topic;
	TopicByName *byname;
	char		key[NAMEDATALEN];

	memset(key, 0, sizeof(key));
	strlcpy(key, t->name, NAMEDATALEN);
	byname = hash_search(topics_by_name, key, HASH_FIND, NULL);
	if (byname != NULL && byname->topic == t)
		hash_search(topics_by_name, key, HASH_REMOVE, NULL);
	hash_search(topics_by_id, &t->topic_id, HASH_REMOVE, NULL);
	live_objects--;
	garbage_objects++;
}

static void
forget_group(GroupById *byid)
{
	CourierGroup *g = byid->group;
	GroupByName *byname;
	GroupKey	key;

	memset(&key, 0, sizeof(key));
	key.topic_id = g->topic_id;
	strlcpy(key.name, g->name, NAMEDATALEN);
	byname = hash_search(groups_by_name, &key, HASH_FIND, NULL);
	if (byname != NULL && byname->group == g)
		hash_search(groups_by_name, &key, HASH_REMOVE, NULL);
	hash_search(groups_by_id, &g->group_id, HASH_REMOVE, NULL);
	live_objects--;
	garbage_objects++;
}

/*
 * load_topics
 *		Read every topic and its segments (only_topic 0), or that one topic,
 *		and bring the topic hashes up to date.  Candidates are built in the
 *		load's scratch context "tmp"; a candidate is copied into the cache
 *		only if it differs from the cached object.
 */
static void
load_topics(MemoryContext tmp, int32 only_topic)
{
	MemoryContext oldcxt;
	CourierTopic *cand;
	HTAB	   *index;
	HASHCTL		ctl;
	uint64		n;
	uint64		i;
	int			ret;
	Oid			types[1] = {INT4OID};
	Datum		args[1] = {Int32GetDatum(only_topic)};
	int			nargs = only_topic != 0 ? 1 : 0;

	/*
	 * The sequence's pg_sequence row tells whether our transaction created
	 * the topic: it is written once, by CREATE SEQUENCE (ALTER SEQUENCE is
	 * refused by the guard).  Not its pg_class row: GRANT, REVOKE and owner
	 * changes of the topic update that one.
	 */
	ret = CourierExecuteOnce(psprintf("SELECT topic_id, name, seq::pg_catalog.oid, retention, max_retention, "
									  "(SELECT s.xmin FROM pg_catalog.pg_sequence s "
									  " WHERE s.seqrelid OPERATOR(pg_catalog.=) t.seq::pg_catalog.oid) "
									  "FROM courier.topic_meta t%s",
									  nargs ? " WHERE t.topic_id OPERATOR(pg_catalog.=) $1" : ""),
							 nargs, types, args, NULL, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read courier.topic_meta: %s", SPI_result_code_string(ret));
	n = SPI_processed;
	oldcxt = MemoryContextSwitchTo(tmp);
	cand = palloc0(sizeof(CourierTopic) * Max(n, 1));
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(int32);
	ctl.entrysize = sizeof(TopicById);
	ctl.hcxt = tmp;
	index = hash_create("courier topic load", Max(n, 16), &ctl,
						HASH_ELEM | HASH_CONTEXT | HASH_BLOBS);
	for (i = 0; i < n; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		CourierTopic *t = &cand[i];
		TopicById  *ix;
		bool		isnull;
		Datum		d;

		t->topic_id = DatumGetInt32(spi_get(tup, 1, &isnull));
		strlcpy(t->name, TextDatumGetCString(spi_get(tup, 2, &isnull)), NAMEDATALEN);
		t->seq_relid = DatumGetObjectId(spi_get(tup, 3, &isnull));
		t->retention = *DatumGetIntervalP(spi_get(tup, 4, &isnull));
		d = spi_get(tup, 5, &isnull);
		t->has_max_retention = !isnull;
		if (!isnull)
			t->max_retention = *DatumGetIntervalP(d);
		d = spi_get(tup, 6, &isnull);
		t->uncommitted = !isnull && TransactionIdIsCurrentTransactionId(DatumGetTransactionId(d));
		ix = hash_search(index, &t->topic_id, HASH_ENTER, NULL);
		ix->topic = t;
	}
	MemoryContextSwitchTo(oldcxt);

	ret = CourierExecuteOnce(psprintf("SELECT topic_id, pg_catalog.count(*)::pg_catalog.int4, "
									  "pg_catalog.array_agg(seg_no ORDER BY seg_no), "
									  "pg_catalog.array_agg(relid::pg_catalog.oid ORDER BY seg_no), "
									  "pg_catalog.array_agg(created_at ORDER BY seg_no), "
									  "pg_catalog.array_agg(xmin ORDER BY seg_no) "
									  "FROM courier.segment%s GROUP BY topic_id",
									  nargs ? " WHERE topic_id OPERATOR(pg_catalog.=) $1" : ""),
							 nargs, types, args, NULL, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read courier.segment: %s", SPI_result_code_string(ret));
	oldcxt = MemoryContextSwitchTo(tmp);
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		bool		isnull;
		int32		topic_id = DatumGetInt32(spi_get(tup, 1, &isnull));
		int			nseg = DatumGetInt32(spi_get(tup, 2, &isnull));
		ArrayType  *segnos = DatumGetArrayTypeP(spi_get(tup, 3, &isnull));
		ArrayType  *relids = DatumGetArrayTypeP(spi_get(tup, 4, &isnull));
		ArrayType  *created = DatumGetArrayTypeP(spi_get(tup, 5, &isnull));
		ArrayType  *xmins = DatumGetArrayTypeP(spi_get(tup, 6, &isnull));
		int32	   *segno_p = (int32 *) ARR_DATA_PTR(segnos);
		Oid		   *relid_p = (Oid *) ARR_DATA_PTR(relids);
		TimestampTz *created_p = (TimestampTz *) ARR_DATA_PTR(created);
		TransactionId *xmin_p = (TransactionId *) ARR_DATA_PTR(xmins);
		TopicById  *ix;
		CourierTopic *t;
		int			j;

		ix = hash_search(index, &topic_id, HASH_FIND, NULL);
		if (ix == NULL)
			continue;
		t = ix->topic;
		t->nsegments = nseg;
		t->segments = palloc0(sizeof(CourierSegment) * nseg);
		for (j = 0; j < nseg; j++)
		{
			t->segments[j].seg_no = segno_p[j];
			t->segments[j].relid = relid_p[j];
			t->segments[j].created_at = created_p[j];
			/* a rotation of our own that has not committed yet */
			t->segments[j].uncommitted = TransactionIdIsCurrentTransactionId(xmin_p[j]);
		}
	}
	MemoryContextSwitchTo(oldcxt);

	for (i = 0; i < n; i++)
	{
		CourierTopic *t = &cand[i];
		TopicById  *byid;
		TopicByName *byname;
		bool		found;

		/* build the copy before entering it: an error leaves no empty entry */
		byid = hash_search(topics_by_id, &t->topic_id, HASH_FIND, NULL);
		if (byid == NULL || !topic_equal(byid->topic, t))
		{
			CourierTopic *copy = MemoryContextAlloc(cache_cxt, sizeof(CourierTopic));

			*copy = *t;
			copy->segments = NULL;
			if (t->nsegments > 0)
			{
				copy->segments = MemoryContextAlloc(cache_cxt,
													sizeof(CourierSegment) * t->nsegments);
				memcpy(copy->segments, t->segments, sizeof(CourierSegment) * t->nsegments);
			}
			if (byid != NULL)
			{
				/* a name the topic no longer has leaves with it */
				if (strcmp(byid->topic->name, copy->name) != 0)
				{
					byname = hash_search(topics_by_name, byid->topic->name, HASH_FIND, NULL);
					if (byname != NULL && byname->topic == byid->topic)
						hash_search(topics_by_name, byid->topic->name, HASH_REMOVE, NULL);
				}
				garbage_objects++;
			}
			else
			{
				byid = hash_search(topics_by_id, &t->topic_id, HASH_ENTER, NULL);
				live_objects++;
			}
			byid->topic = copy;
		}
		byid->gen = load_gen;
		byname = hash_search(topics_by_name, byid->topic->name, HASH_ENTER, &found);
		byname->topic = byid->topic;
		byname->gen = load_gen;
	}
	if (only_topic == 0)
	{
		sweep(topics_by_id, offsetof(TopicById, gen), true);
		sweep(topics_by_name, offsetof(TopicByName, gen), false);
	}
	else
	{
		TopicById  *byid = hash_search(topics_by_id, &only_topic, HASH_FIND, NULL);

		if (byid != NULL && byid->gen != load_gen)
			forget_topic(byid);
	}
}

/*
 * load_groups
 *		Read every group (only_topic and only_group 0), the groups of topic
 *		only_topic, or the group only_group, and bring the group hashes up
 *		to date, like load_topics.  Only new or changed groups have their
 *		filter compiled.
 */
static void
load_groups(MemoryContext tmp, int32 only_topic, int32 only_group)
{
	uint64		i;
	int			ret;
	Oid			types[1] = {INT4OID};
	Datum		args[1] = {Int32GetDatum(only_topic != 0 ? only_topic : only_group)};
	int			nargs = (only_topic != 0 || only_group != 0) ? 1 : 0;

	ret = CourierExecuteOnce(psprintf("SELECT group_id, topic_id, name, filter, ordered, max_attempts, "
									  "retry_backoff, paused FROM courier.group_meta%s",
									  only_topic != 0 ? " WHERE topic_id OPERATOR(pg_catalog.=) $1" :
									  only_group != 0 ? " WHERE group_id OPERATOR(pg_catalog.=) $1" : ""),
							 nargs, types, args, NULL, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read courier.group_meta: %s", SPI_result_code_string(ret));
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		MemoryContext oldcxt = MemoryContextSwitchTo(tmp);
		CourierGroup g;
		GroupById  *byid;
		GroupByName *byname;
		GroupKey	key;
		bool		isnull;
		bool		found;
		Datum		d;

		memset(&g, 0, sizeof(g));
		g.group_id = DatumGetInt32(spi_get(tup, 1, &isnull));
		g.topic_id = DatumGetInt32(spi_get(tup, 2, &isnull));
		strlcpy(g.name, TextDatumGetCString(spi_get(tup, 3, &isnull)), NAMEDATALEN);
		d = spi_get(tup, 4, &isnull);
		if (!isnull)
			g.filter_text = TextDatumGetCString(d);
		g.ordered = DatumGetBool(spi_get(tup, 5, &isnull));
		g.max_attempts = DatumGetInt32(spi_get(tup, 6, &isnull));
		d = spi_get(tup, 7, &isnull);
		if (!isnull)
		{
			Datum	   *elems;
			bool	   *nulls;
			int			nelems;

			deconstruct_array(DatumGetArrayTypeP(d), INTERVALOID, sizeof(Interval), false,
							  TYPALIGN_DOUBLE, &elems, &nulls, &nelems);
			g.nbackoff = nelems;
			g.backoff_usec = palloc(sizeof(int64) * Max(nelems, 1));
			for (int j = 0; j < nelems; j++)
				g.backoff_usec[j] = nulls[j] ? 0 : backoff_usec(elems[j]);
		}
		g.paused = DatumGetBool(spi_get(tup, 8, &isnull));
		MemoryContextSwitchTo(oldcxt);

		byid = hash_search(groups_by_id, &g.group_id, HASH_FIND, NULL);
		if (byid == NULL || !group_equal(byid->group, &g))
		{
			CourierGroup *copy = MemoryContextAlloc(cache_cxt, sizeof(CourierGroup));

			*copy = g;
			copy->backoff_usec = NULL;
			copy->filter_text = NULL;
			copy->filter = NULL;
			if (g.backoff_usec != NULL)
			{
				copy->backoff_usec = MemoryContextAlloc(cache_cxt,
														sizeof(int64) * Max(g.nbackoff, 1));
				memcpy(copy->backoff_usec, g.backoff_usec, sizeof(int64) * g.nbackoff);
			}
			if (g.filter_text != NULL)
			{
				copy->filter = CourierCompileFilter(g.filter_text, cache_cxt, NULL);
				copy->filter_text = MemoryContextStrdup(cache_cxt, g.filter_text);
			}
			if (byid != NULL)
			{
				/* a name the group no longer has leaves with it */
				if (byid->group->topic_id != copy->topic_id ||
					strcmp(byid->group->name, copy->name) != 0)
				{
					memset(&key, 0, sizeof(key));
					key.topic_id = byid->group->topic_id;
					strlcpy(key.name, byid->group->name, NAMEDATALEN);
					byname = hash_search(groups_by_name, &key, HASH_FIND, NULL);
					if (byname != NULL && byname->group == byid->group)
						hash_search(groups_by_name, &key, HASH_REMOVE, NULL);
				}
				garbage_objects++;
			}
			else
			{
				byid = hash_search(groups_by_id, &g.group_id, HASH_ENTER, NULL);
				live_objects++;
			}
			byid->group = copy;
		}
		byid->gen = load_gen;
		memset(&key, 0, sizeof(key));
		key.topic_id = g.topic_id;
		strlcpy(key.name, g.name, NAMEDATALEN);
		byname = hash_search(groups_by_name, &key, HASH_ENTER, &found);
		byname->group = byid->group;
		byname->gen = load_gen;
	}
	if (only_topic == 0 && only_group == 0)
	{
		sweep(groups_by_id, offsetof(GroupById, gen), true);
		sweep(groups_by_name, offsetof(GroupByName, gen), false);
	}
	else if (only_group != 0)
	{
		GroupById  *byid = hash_search(groups_by_id, &only_group, HASH_FIND, NULL);

		if (byid != NULL && byid->gen != load_gen)
			forget_group(byid);
	}
	else
	{
		HASH_SEQ_STATUS status;
		GroupById  *byid;

		/* the topic's groups this read did not see are gone */
		hash_seq_init(&status, groups_by_id);
		while ((byid = hash_seq_search(&status)) != NULL)
			if (byid->group->topic_id == only_topic && byid->gen != load_gen)
				forget_group(byid);
	}
}

/*
 * cache_reload
 *		Bring the cache up to date with every topic, segment and group of
 *		this database, read under a fresh snapshot (see the file header).
 */
static void
cache_reload(void)
{
	MemoryContext tmp;
	Oid			nsp;

	/*
	 * Mark the cache valid before reading: an invalidation that arrives
	 * while we read (we take locks) clears the flag again, and the next
	 * lookup reloads once more.  Our own changes so far are in what we read.
	 */
	cache_valid = true;
	n_own_changes = 0;

	nsp = get_namespace_oid("courier", true);
	topic_meta_relid = OidIsValid(nsp) ? get_relname_relid("topic_meta", nsp) : InvalidOid;
	segment_relid = OidIsValid(nsp) ? get_relname_relid("segment", nsp) : InvalidOid;
	group_meta_relid = OidIsValid(nsp) ? get_relname_relid("group_meta", nsp) : InvalidOid;
	if (!OidIsValid(topic_meta_relid) || !OidIsValid(segment_relid) ||
		!OidIsValid(group_meta_relid))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension \"pg_courier\" is not installed in this database"),
				 errhint("Run CREATE EXTENSION pg_courier CASCADE.")));
	check_version();

	/*
	 * Another installation reuses ids: never compare with the old one's
	 * objects (compared with the installation the context was started for,
	 * not the last one looked up: a reload that failed its version check
	 * has already set topic_meta_relid, review 55).
	 */
	if (cache_cxt == NULL || discard_pending || topic_meta_relid != cache_instance)
		cache_start();
	load_gen++;

	tmp = AllocSetContextCreate(CurrentMemoryContext, "pg_courier catalog load",
								ALLOCSET_DEFAULT_SIZES);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PushActiveSnapshot(GetLatestSnapshot());
	load_topics(tmp, 0);
	load_groups(tmp, 0, 0);
	full_loads++;
	PopActiveSnapshot();
	SPI_finish();
	MemoryContextDelete(tmp);
	if (fresh_bytes == 0)
		fresh_bytes = MemoryContextMemAllocated(cache_cxt, true);
	/* TAP 065 counts these: how often a transaction's DDL reloads everything */
	ereport(DEBUG1,
			(errmsg_internal("pg_courier: catalog cache reloaded (%d topics and groups)",
							 live_objects)));
}

/*
 * refresh_own
 *		Re-read what this backend changed since the last load (see the file
 *		header), under a fresh snapshot like a reload: a topic with its
 *		segments and groups, or a group.
 */
static void
refresh_own(void)
{
	MemoryContext tmp;
	int			i;

	load_gen++;
	tmp = AllocSetContextCreate(CurrentMemoryContext, "pg_courier catalog refresh",
								ALLOCSET_DEFAULT_SIZES);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PushActiveSnapshot(GetLatestSnapshot());
	for (i = 0; i < n_own_changes; i++)
	{
		if (own_changes[i].topic_id != 0)
		{
			load_topics(tmp, own_changes[i].topic_id);
			load_groups(tmp, own_changes[i].topic_id, 0);
		}
		else
			load_groups(tmp, 0, own_changes[i].group_id);
		MemoryContextReset(tmp);
	}
	PopActiveSnapshot();
	SPI_finish();
	MemoryContextDelete(tmp);
	n_own_changes = 0;
}

/*
 * check_version
 *		This library reads the catalog of its own version only: a database
 *		whose extension objects are older (the library was upgraded, ALTER
 *		EXTENSION UPDATE not run yet) gets a clear refusal instead of errors
 *		about missing columns.  CREATE and ALTER EXTENSION themselves pass.
 */
static void
check_version(void)
{
	Relation	rel;
	SysScanDesc scan;
	ScanKeyData key;
	HeapTuple	tup;
	char	   *version = NULL;

	if (creating_extension)
		return;
	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber, F_NAMEEQ,
				CStringGetDatum("pg_courier"));
	scan = systable_beginscan(rel, ExtensionNameIndexId, true, NULL, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
	{
		bool		isnull;
		Datum		d = heap_getattr(tup, Anum_pg_extension_extversion, RelationGetDescr(rel),
									 &isnull);

		if (!isnull)
			version = TextDatumGetCString(d);
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	if (version != NULL && strcmp(version, COURIER_VERSION) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pg_courier's library is version %s, but this database has version %s of the extension",
						COURIER_VERSION, version),
				 errhint("Run ALTER EXTENSION pg_courier UPDATE in this database.")));
}

/*
 * CourierCacheCheck
 *		Take in pending invalidations and reload the cache if it is stale;
 *		else re-read what this backend changed since (refresh_own).
 */
void
CourierCacheCheck(void)
{
	AcceptInvalidationMessages();
	if (cache_cxt == NULL || !cache_valid)
	{
		/*
		 * A reload that fails part-way (a read cancelled, a lock timeout)
		 * leaves a partial cache: never valid, even if the error is caught
		 * by a savepoint and the transaction goes on.
		 */
		PG_TRY();
		{
			cache_reload();
		}
		PG_CATCH();
		{
			cache_valid = false;
			PG_RE_THROW();
		}
		PG_END_TRY();
	}
	else if (n_own_changes > 0)
	{
		/* the same for a refresh of our own changes */
		PG_TRY();
		{
			refresh_own();
		}
		PG_CATCH();
		{
			cache_valid = false;
			PG_RE_THROW();
		}
		PG_END_TRY();
	}
}

/*
 * CourierInstanceId
 *		Identifies this installation of the extension in this database (the
 *		OID of courier.topic_meta): shared-memory entries carry it, so a
 *		DROP and CREATE EXTENSION never inherits the state of the previous
 *		installation, whose topic and group ids it reuses.
 */
Oid
CourierInstanceId(void)
{
	if (cache_cxt == NULL || !OidIsValid(topic_meta_relid))
		CourierCacheCheck();
	return topic_meta_relid;
}

/*
 * lookup_topic / lookup_group
 *		The cached object of that name, or NULL (after a cache check).
 */
static CourierTopic *
lookup_topic(const char *name)
{
	TopicByName *e;
	char		key[NAMEDATALEN];

	CourierCacheCheck();
	memset(key, 0, sizeof(key));
	strlcpy(key, name, NAMEDATALEN);
	e = hash_search(topics_by_name, key, HASH_FIND, NULL);
	return e ? e->topic : NULL;
}

static CourierGroup *
lookup_group(int32 topic_id, const char *name)
{
	GroupByName *e;
	GroupKey	key;

	CourierCacheCheck();
	memset(&key, 0, sizeof(key));
	key.topic_id = topic_id;
	strlcpy(key.name, name, NAMEDATALEN);
	e = hash_search(groups_by_name, &key, HASH_FIND, NULL);
	return e ? e->group : NULL;
}

/*
 * CourierGetTopic
 *		Look up a topic by name and lock it in share mode for the rest of
 *		the transaction.  Unknown topics are an error; so is, on Citus, a
 *		topic that another node owns (citus.c).
 */
CourierTopic *
CourierGetTopic(const char *name)
{
	CourierValidateName("topic", name);
	CourierCitusCheckTopic(name);	/* on Citus: only on the topic's node */
	for (;;)
	{
		CourierTopic *t = lookup_topic(name);
		CourierTopic *again;

		if (t == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("topic \"%s\" does not exist", name)));
		CourierLockTopic(t->topic_id, AccessShareLock);
		/* a DDL that held the lock has sent its invalidations by now */
		again = lookup_topic(name);
		if (again != NULL && again->topic_id == t->topic_id)
			return again;
		/* dropped (and maybe created again) while we waited: look again */
	}
}

/*
 * CourierGetTopicById
 *		Like CourierGetTopic, by id; NULL if the topic is gone.
 */
CourierTopic *
CourierGetTopicById(int32 topic_id)
{
	TopicById  *e;

	CourierCacheCheck();
	e = hash_search(topics_by_id, &topic_id, HASH_FIND, NULL);
	if (e == NULL)
		return NULL;
	CourierLockTopic(topic_id, AccessShareLock);
	CourierCacheCheck();
	e = hash_search(topics_by_id, &topic_id, HASH_FIND, NULL);
	return e ? e->topic : NULL;
}

/*
 * CourierGetGroup
 *		Look up a group of a topic and lock it in share mode for the rest of
 *		the transaction.  Unknown groups are an error.  The topic must have
 *		been obtained with CourierGetTopic in this transaction.
 */
CourierGroup *
CourierGetGroup(CourierTopic *topic, const char *name)
{
	CourierValidateName("group", name);
	for (;;)
	{
		CourierGroup *g = lookup_group(topic->topic_id, name);
		CourierGroup *again;

		if (g == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("group \"%s\" of topic \"%s\" does not exist", name, topic->name)));
		CourierLockGroup(g->group_id, AccessShareLock);
		again = lookup_group(topic->topic_id, name);
		if (again != NULL && again->group_id == g->group_id)
			return again;
	}
}

/*
 * CourierGetGroupById
 *		Like CourierGetGroup, by id; NULL if the group is gone.
 */
CourierGroup *
CourierGetGroupById(int32 group_id)
{
	GroupById  *e;

	CourierCacheCheck();
	e = hash_search(groups_by_id, &group_id, HASH_FIND, NULL);
	if (e == NULL)
		return NULL;
	CourierLockGroup(group_id, AccessShareLock);
	CourierCacheCheck();
	e = hash_search(groups_by_id, &group_id, HASH_FIND, NULL);
	return e ? e->group : NULL;
}

/*
 * CourierGetGroupWithTopic
 *		CourierGetGroupById for callers that also need the group's topic:
 *		the topic is locked first, as purge, drop_topic and every other
 *		caller that holds both take them (group before topic deadlocked
 *		the views with purge, review 42).  NULL if either is gone.
 */
CourierGroup *
CourierGetGroupWithTopic(int32 group_id, CourierTopic **topic)
{
	CourierGroup *group = CourierFindGroupById(group_id);

	*topic = NULL;
	if (group == NULL)
		return NULL;
	/* a group never moves to another topic: its topic_id is safe to use */
	*topic = CourierGetTopicById(group->topic_id);
	if (*topic == NULL)
		return NULL;
	group = CourierGetGroupById(group_id);
	if (group == NULL || group->topic_id != (*topic)->topic_id)
		return NULL;
	return group;
}

/*
 * CourierFindTopicById / CourierFindGroupById
 *		Unlocked lookups, for callers that already hold the object's lock
 *		and only need a pointer into the current cache.
 */
CourierTopic *
CourierFindTopicById(int32 topic_id)
{
	TopicById  *e;

	CourierCacheCheck();
	e = hash_search(topics_by_id, &topic_id, HASH_FIND, NULL);
	return e ? e->topic : NULL;
}

CourierGroup *
CourierFindGroupById(int32 group_id)
{
	GroupById  *e;

	CourierCacheCheck();
	e = hash_search(groups_by_id, &group_id, HASH_FIND, NULL);
	return e ? e->group : NULL;
}

/*
 * in_cache
 *		Whether the group (is_group) or topic id is in the cache (after a
 *		cache check).
 */
static bool
in_cache(bool is_group, int32 id)
{
	return is_group ? CourierFindGroupById(id) != NULL : CourierFindTopicById(id) != NULL;
}

/*
 * CourierExistsNow
 *		Whether the group (is_group) or topic id exists, for a caller that
 *		has just read its id in its own snapshot (_lock, _check_privilege).
 *		A hit is believed: under the object's existence lock (_lock) it is
 *		exact, as whoever drops an object holds that lock until after its
 *		invalidations are sent; without it (_check_privilege) a drop is
 *		noticed at the lock the caller takes next.  A miss is
 *		not, until a reload under a fresh snapshot confirms it (DESIGN.md 5,
 *		never conclude absence from a stale view): a creator holds no such
 *		lock, and its commit is visible to snapshots before it sends its
 *		invalidation (between ProcArrayEndTransaction and AtEOXact_Inval,
 *		and likewise in COMMIT PREPARED), so a group or topic it created can
 *		already be in the caller's rows and not yet in our cache.
 */
bool
CourierExistsNow(bool is_group, int32 id)
{
	uint64		loads = full_loads;

	if (in_cache(is_group, id))
		return true;
	if (full_loads != loads)
		return false;			/* that lookup read everything afresh */
	cache_valid = false;		/* read everything afresh, then believe it */
	return in_cache(is_group, id);
}

/*
 * CourierTopicGroups
 *		Ids of the groups of a topic (a list of ints, unlocked).
 */
List *
CourierTopicGroups(int32 topic_id)
{
	HASH_SEQ_STATUS status;
	GroupById  *e;
	List	   *result = NIL;

	CourierCacheCheck();
	hash_seq_init(&status, groups_by_id);
	while ((e = hash_seq_search(&status)) != NULL)
	{
		if (e->group->topic_id == topic_id)
			result = lappend_int(result, e->group->group_id);
	}
	return result;
}

/*
 * CourierAllTopics
 *		Ids of every topic of this database (a list of ints, unlocked).
 */
List *
CourierAllTopics(void)
{
	HASH_SEQ_STATUS status;
	TopicById  *e;
	List	   *result = NIL;

	CourierCacheCheck();
	hash_seq_init(&status, topics_by_id);
	while ((e = hash_seq_search(&status)) != NULL)
		result = lappend_int(result, e->topic->topic_id);
	return result;
}

/*
 * existence_tag
 *		The lock tag of a topic's or group's existence lock (kind
 *		COURIER_LOCK_TOPIC or COURIER_LOCK_GROUP) in this database.
 */
static void
existence_tag(LOCKTAG *tag, uint16 kind, int32 id)
{
	SET_LOCKTAG_ADVISORY(*tag, MyDatabaseId, (uint32) id, 0, kind);
}

/*
 * existence_lock
 *		Take the existence lock of a topic or group (kind COURIER_LOCK_TOPIC
 *		or COURIER_LOCK_GROUP); with dont_wait, only if that needs no wait.
 *		Returns whether it is held.
 */
static bool
existence_lock(uint16 kind, int32 id, LOCKMODE mode, bool dont_wait)
{
	LOCKTAG		tag;

	existence_tag(&tag, kind, id);
	return LockAcquire(&tag, mode, false, dont_wait) != LOCKACQUIRE_NOT_AVAIL;
}

/*
 * CourierLockGroup
 *		Take a group's existence lock; DDL takes it exclusively.
 */
void
CourierLockGroup(int32 group_id, LOCKMODE mode)
{
	(void) existence_lock(COURIER_LOCK_GROUP, group_id, mode, false);
}

/*
 * CourierLockTopic
 *		Take a topic's existence lock; DDL takes it exclusively.
 */
void
CourierLockTopic(int32 topic_id, LOCKMODE mode)
{
	(void) existence_lock(COURIER_LOCK_TOPIC, topic_id, mode, false);
}

/*
 * CourierTryLockExclusive
 *		A topic's (or group's) existence lock exclusively, only if that
 *		needs no wait: nobody uses the object, creates it in an open or
 *		prepared transaction, or drops it (CourierForgetStaleEntries).
 */
bool
CourierTryLockExclusive(bool topic, int32 id)
{
	return existence_lock(topic ? COURIER_LOCK_TOPIC : COURIER_LOCK_GROUP, id,
						  AccessExclusiveLock, true);
}

/*
 * CourierUnlockExclusive
 *		Release what CourierTryLockExclusive took, before the end of the
 *		transaction (a reclaim step checks thousands of objects, and must
 *		not fill the lock table, review 57).
 */
void
CourierUnlockExclusive(bool topic, int32 id)
{
	LOCKTAG		tag;

	existence_tag(&tag, topic ? COURIER_LOCK_TOPIC : COURIER_LOCK_GROUP, id);
	LockRelease(&tag, AccessExclusiveLock, false);
}

/*
 * CourierTryLockForWorker
 *		For maintenance (the worker's steps and run_maintenance()): the
 *		topic's existence lock in share mode, and the group's if group_id is
 *		not 0, only if that needs no wait.  A seek or a drop that waits for
 *		an open or prepared transaction has an exclusive request queued; a
 *		share request queues behind it, and the worker would wait as long,
 *		with maintenance of every other topic of the database (review 40);
 *		run_maintenance() would also hold, while it waited, the locks of the
 *		objects it had already visited, which DDL taking several groups'
 *		locks in its own order may want next (a deadlock, maint.c,
 *		courier_run_maintenance).  Maintenance skips the object this round
 *		instead.  What was taken stays held until commit.
 */
bool
CourierTryLockForWorker(int32 topic_id, int32 group_id)
{
	return existence_lock(COURIER_LOCK_TOPIC, topic_id, AccessShareLock, true) &&
		(group_id == 0 ||
		 existence_lock(COURIER_LOCK_GROUP, group_id, AccessShareLock, true));
}

/*
 * CourierCurrentInstance
 *		The installation this backend's cache was loaded from, without
 *		loading anything (for transaction callbacks, which must not error).
 */
Oid
CourierCurrentInstance(void)
{
	return topic_meta_relid;
}

/*
 * CourierTopicFloor
 *		Every id of the topic at or below this was in a segment retention
 *		dropped: read as committed now (a fresh snapshot), for callers that
 *		must be sure a message is gone before they act on it.
 */
int64
CourierTopicFloor(int32 topic_id)
{
	Oid			types[1] = {INT4OID};
	Datum		args[1];
	int64		floor_id = 0;
	bool		isnull;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PushActiveSnapshot(GetLatestSnapshot());
	args[0] = Int32GetDatum(topic_id);
	if (CourierExecuteOnce("SELECT floor_id FROM courier.topic_meta "
						   "WHERE topic_id OPERATOR(pg_catalog.=) $1",
						   1, types, args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read courier.topic_meta");
	if (SPI_processed == 1)
		floor_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	PopActiveSnapshot();
	SPI_finish();
	return floor_id;
}
