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
 * The cache is (re)loaded with SPI under a fresh snapshot (GetLatestSnapshot),
 * never under the caller's transaction snapshot: a REPEATABLE READ or
 * SERIALIZABLE transaction must not load a stale catalog and then mark it
 * current for everybody who uses this backend afterwards.  Our own
 * transaction's uncommitted changes are visible to that snapshot, as they
 * must be to the DDL functions that made them.
 *
 * Memory: a reload builds a new context.  The previous one is kept until the
 * end of the transaction (pointers handed out earlier stay valid), or until
 * a waiting receive frees it between two sleeps (CourierCacheFreeRetired),
 * so a long poll does not accumulate old caches.
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

typedef struct TopicByName
{
	char		name[NAMEDATALEN];
	CourierTopic *topic;
} TopicByName;

typedef struct TopicById
{
	int32		topic_id;
	CourierTopic *topic;
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
} GroupByName;

typedef struct GroupById
{
	int32		group_id;
	CourierGroup *group;
} GroupById;

static MemoryContext cache_cxt = NULL;
static List *retired_cxts = NIL;
static bool cache_valid = false;
static HTAB *topics_by_name = NULL;
static HTAB *topics_by_id = NULL;
static HTAB *groups_by_name = NULL;
static HTAB *groups_by_id = NULL;

/* OIDs of our catalog tables, as of the last load (for the callback) */
static Oid	topic_meta_relid = InvalidOid;
static Oid	segment_relid = InvalidOid;
static Oid	group_meta_relid = InvalidOid;

static void cache_reload(void);
static void check_version(void);
static void cache_xact_callback(XactEvent event, void *arg);
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
 *		This transaction changed topics, segments or groups: every backend
 *		(ours at once, others when we commit, standbys when they replay
 *		our commit) must reload its cache.
 */
void
CourierCatalogChanged(void)
{
	Oid			relid = CourierRelid("topic_meta");

	CacheInvalidateRelcacheByRelid(relid);
	cache_valid = false;
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
 * cache_reload
 *		Load every topic, segment and group of this database, under a fresh
 *		snapshot (see the file header).
 */
static void
cache_reload(void)
{
	MemoryContext oldcxt;
	Oid			nsp;
	uint64		i;
	int			ret;

	/*
	 * Mark the cache valid before reading: an invalidation that arrives
	 * while we read (we take locks) clears the flag again, and the next
	 * lookup reloads once more.
	 */
	cache_valid = true;

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

	if (cache_cxt != NULL)
	{
		oldcxt = MemoryContextSwitchTo(TopMemoryContext);
		retired_cxts = lappend(retired_cxts, cache_cxt);
		MemoryContextSwitchTo(oldcxt);
	}
	cache_cxt = AllocSetContextCreate(TopMemoryContext, "pg_courier catalog cache",
									  ALLOCSET_DEFAULT_SIZES);
	topics_by_name = make_hash("courier topics", NAMEDATALEN, sizeof(TopicByName), true);
	topics_by_id = make_hash("courier topic ids", sizeof(int32), sizeof(TopicById), false);
	groups_by_name = make_hash("courier groups", sizeof(GroupKey), sizeof(GroupByName), false);
	groups_by_id = make_hash("courier group ids", sizeof(int32), sizeof(GroupById), false);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PushActiveSnapshot(GetLatestSnapshot());

	/*
	 * The sequence's pg_sequence row tells whether our transaction created
	 * the topic: it is written once, by CREATE SEQUENCE (ALTER SEQUENCE is
	 * refused by the guard).  Not its pg_class row: GRANT, REVOKE and owner
	 * changes of the topic update that one.
	 */
	ret = CourierExecuteOnce("SELECT topic_id, name, seq::pg_catalog.oid, retention, max_retention, "
							 "(SELECT s.xmin FROM pg_catalog.pg_sequence s "
							 " WHERE s.seqrelid OPERATOR(pg_catalog.=) t.seq::pg_catalog.oid) "
							 "FROM courier.topic_meta t", 0, NULL, NULL, NULL, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read courier.topic_meta: %s", SPI_result_code_string(ret));
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		bool		isnull;
		CourierTopic *t;
		TopicByName *byname;
		TopicById  *byid;
		char	   *name;
		Datum		d;
		bool		found;

		oldcxt = MemoryContextSwitchTo(cache_cxt);
		t = palloc0(sizeof(CourierTopic));
		t->topic_id = DatumGetInt32(spi_get(tup, 1, &isnull));
		name = TextDatumGetCString(spi_get(tup, 2, &isnull));
		strlcpy(t->name, name, NAMEDATALEN);
		t->seq_relid = DatumGetObjectId(spi_get(tup, 3, &isnull));
		t->retention = *DatumGetIntervalP(spi_get(tup, 4, &isnull));
		d = spi_get(tup, 5, &isnull);
		t->has_max_retention = !isnull;
		if (!isnull)
			t->max_retention = *DatumGetIntervalP(d);
		d = spi_get(tup, 6, &isnull);
		t->uncommitted = !isnull && TransactionIdIsCurrentTransactionId(DatumGetTransactionId(d));
		MemoryContextSwitchTo(oldcxt);

		byname = hash_search(topics_by_name, t->name, HASH_ENTER, &found);
		byname->topic = t;
		byid = hash_search(topics_by_id, &t->topic_id, HASH_ENTER, &found);
		byid->topic = t;
	}

	ret = CourierExecuteOnce("SELECT topic_id, pg_catalog.count(*)::pg_catalog.int4, "
							 "pg_catalog.array_agg(seg_no ORDER BY seg_no), "
							 "pg_catalog.array_agg(relid::pg_catalog.oid ORDER BY seg_no), "
							 "pg_catalog.array_agg(created_at ORDER BY seg_no), "
							 "pg_catalog.array_agg(xmin ORDER BY seg_no) "
							 "FROM courier.segment GROUP BY topic_id", 0, NULL, NULL, NULL, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read courier.segment: %s", SPI_result_code_string(ret));
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		bool		isnull;
		int32		topic_id = DatumGetInt32(spi_get(tup, 1, &isnull));
		int			n = DatumGetInt32(spi_get(tup, 2, &isnull));
		ArrayType  *segnos = DatumGetArrayTypeP(spi_get(tup, 3, &isnull));
		ArrayType  *relids = DatumGetArrayTypeP(spi_get(tup, 4, &isnull));
		ArrayType  *created = DatumGetArrayTypeP(spi_get(tup, 5, &isnull));
		ArrayType  *xmins = DatumGetArrayTypeP(spi_get(tup, 6, &isnull));
		int32	   *segno_p = (int32 *) ARR_DATA_PTR(segnos);
		Oid		   *relid_p = (Oid *) ARR_DATA_PTR(relids);
		TimestampTz *created_p = (TimestampTz *) ARR_DATA_PTR(created);
		TransactionId *xmin_p = (TransactionId *) ARR_DATA_PTR(xmins);
		TopicById  *byid;
		int			j;

		byid = hash_search(topics_by_id, &topic_id, HASH_FIND, NULL);
		if (byid == NULL)
			continue;
		byid->topic->nsegments = n;
		byid->topic->segments = MemoryContextAllocZero(cache_cxt, sizeof(CourierSegment) * n);
		for (j = 0; j < n; j++)
		{
			byid->topic->segments[j].seg_no = segno_p[j];
			byid->topic->segments[j].relid = relid_p[j];
			byid->topic->segments[j].created_at = created_p[j];
			/* a rotation of our own that has not committed yet */
			byid->topic->segments[j].uncommitted = TransactionIdIsCurrentTransactionId(xmin_p[j]);
		}
	}

	ret = CourierExecuteOnce("SELECT group_id, topic_id, name, filter, ordered, max_attempts, "
							 "ARRAY(SELECT (pg_catalog.date_part('epoch', b) "
							 "  OPERATOR(pg_catalog.*) 1000000)::pg_catalog.int8 "
							 "  FROM pg_catalog.unnest(retry_backoff) b), paused "
							 "FROM courier.group_meta", 0, NULL, NULL, NULL, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read courier.group_meta: %s", SPI_result_code_string(ret));
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		bool		isnull;
		CourierGroup *g;
		GroupByName *byname;
		GroupById  *byid;
		GroupKey	key;
		char	   *name;
		Datum		d;
		bool		found;

		oldcxt = MemoryContextSwitchTo(cache_cxt);
		g = palloc0(sizeof(CourierGroup));
		g->group_id = DatumGetInt32(spi_get(tup, 1, &isnull));
		g->topic_id = DatumGetInt32(spi_get(tup, 2, &isnull));
		name = TextDatumGetCString(spi_get(tup, 3, &isnull));
		strlcpy(g->name, name, NAMEDATALEN);
		d = spi_get(tup, 4, &isnull);
		if (!isnull)
		{
			char	   *ftext = TextDatumGetCString(d);

			g->filter = CourierCompileFilter(ftext, cache_cxt, NULL);
			g->filter_text = ftext;
		}
		g->ordered = DatumGetBool(spi_get(tup, 5, &isnull));
		g->max_attempts = DatumGetInt32(spi_get(tup, 6, &isnull));
		d = spi_get(tup, 7, &isnull);
		if (!isnull)
		{
			ArrayType  *arr = DatumGetArrayTypeP(d);

			g->nbackoff = ArrayGetNItems(ARR_NDIM(arr), ARR_DIMS(arr));
			g->backoff_usec = palloc(sizeof(int64) * Max(g->nbackoff, 1));
			memcpy(g->backoff_usec, ARR_DATA_PTR(arr), sizeof(int64) * g->nbackoff);
		}
		g->paused = DatumGetBool(spi_get(tup, 8, &isnull));
		MemoryContextSwitchTo(oldcxt);

		memset(&key, 0, sizeof(key));
		key.topic_id = g->topic_id;
		strlcpy(key.name, g->name, NAMEDATALEN);
		byname = hash_search(groups_by_name, &key, HASH_ENTER, &found);
		byname->group = g;
		byid = hash_search(groups_by_id, &g->group_id, HASH_ENTER, &found);
		byid->group = g;
	}

	PopActiveSnapshot();
	SPI_finish();
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
 *		Take in pending invalidations and reload the cache if it is stale.
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
 * existence_lock
 *		Take the existence lock of a topic or group (kind COURIER_LOCK_TOPIC
 *		or COURIER_LOCK_GROUP); with dont_wait, only if that needs no wait.
 *		Returns whether it is held.
 */
static bool
existence_lock(uint16 kind, int32 id, LOCKMODE mode, bool dont_wait)
{
	LOCKTAG		tag;

	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, (uint32) id, 0, kind);
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
 * CourierTryLockForWorker
 *		For the worker: the topic's existence lock in share mode, and the
 *		group's if group_id is not 0, only if that needs no wait.  A seek or
 *		a drop that waits for an open or prepared transaction has an
 *		exclusive request queued; a share request queues behind it, and the
 *		worker would wait as long, with maintenance of every other topic of
 *		the database (review 40).  The worker skips the object this round
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
