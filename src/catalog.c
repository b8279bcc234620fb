/*-------------------------------------------------------------------------
 *
 * catalog.c
 *	  A backend-local cache of topics, their segments and their groups,
 *	  plus name validation and the heavyweight locks that guard them.
 *
 * The cache is loaded with SPI from courier.topic_meta, courier.segment and
 * courier.group_meta, and reloaded whenever the shared meta generation moves
 * (see shmem.c).  A reload builds a new memory context; the old one is kept
 * until the end of the transaction, so pointers handed out earlier in the
 * same transaction stay valid.
 *
 * Locking: callers look an object up, lock it, and look it up again if the
 * generation moved while they waited (CourierGetTopic / CourierGetGroup do
 * this), so a concurrent drop is always noticed.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
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
static uint64 cache_generation = 0;
static bool cache_invalid = false;	/* our own transaction changed the catalog */
static HTAB *topics_by_name = NULL;
static HTAB *topics_by_id = NULL;
static HTAB *groups_by_name = NULL;
static HTAB *groups_by_id = NULL;
static bool xact_callback_registered = false;

static void cache_reload(void);
static void cache_xact_callback(XactEvent event, void *arg);
static HTAB *make_hash(const char *name, Size keysize, Size entrysize, bool strings);
static Datum spi_get(HeapTuple tup, int col, bool *isnull);

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
 *		Load every topic, segment and group of this database.
 */
static void
cache_reload(void)
{
	MemoryContext oldcxt;
	uint64		gen;
	uint64		i;
	int			ret;

	if (!xact_callback_registered)
	{
		RegisterXactCallback(cache_xact_callback, NULL);
		xact_callback_registered = true;
	}

	/* read the generation first: a change after this point forces another reload */
	gen = CourierMetaGeneration();

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

	ret = SPI_execute("SELECT topic_id, name, seq::oid, retention FROM courier.topic_meta",
					  false, 0);
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
		bool		found;

		oldcxt = MemoryContextSwitchTo(cache_cxt);
		t = palloc0(sizeof(CourierTopic));
		t->topic_id = DatumGetInt32(spi_get(tup, 1, &isnull));
		name = TextDatumGetCString(spi_get(tup, 2, &isnull));
		strlcpy(t->name, name, NAMEDATALEN);
		t->seq_relid = DatumGetObjectId(spi_get(tup, 3, &isnull));
		t->retention = *DatumGetIntervalP(spi_get(tup, 4, &isnull));
		t->valid = true;
		MemoryContextSwitchTo(oldcxt);

		byname = hash_search(topics_by_name, t->name, HASH_ENTER, &found);
		byname->topic = t;
		byid = hash_search(topics_by_id, &t->topic_id, HASH_ENTER, &found);
		byid->topic = t;
	}

	ret = SPI_execute("SELECT topic_id, count(*)::int4, array_agg(seg_no ORDER BY seg_no), "
					  "array_agg(relid::oid ORDER BY seg_no), array_agg(created_at ORDER BY seg_no) "
					  "FROM courier.segment GROUP BY topic_id", false, 0);
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
		int32	   *segno_p = (int32 *) ARR_DATA_PTR(segnos);
		Oid		   *relid_p = (Oid *) ARR_DATA_PTR(relids);
		TimestampTz *created_p = (TimestampTz *) ARR_DATA_PTR(created);
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
		}
	}

	ret = SPI_execute("SELECT group_id, topic_id, name, filter, ordered, max_attempts, "
					  "ARRAY(SELECT (extract(epoch FROM b) * 1000000)::int8 FROM unnest(retry_backoff) b) "
					  "FROM courier.group_meta", false, 0);
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
		g->valid = true;
		MemoryContextSwitchTo(oldcxt);

		memset(&key, 0, sizeof(key));
		key.topic_id = g->topic_id;
		strlcpy(key.name, g->name, NAMEDATALEN);
		byname = hash_search(groups_by_name, &key, HASH_ENTER, &found);
		byname->group = g;
		byid = hash_search(groups_by_id, &g->group_id, HASH_ENTER, &found);
		byid->group = g;
	}

	SPI_finish();
	cache_generation = gen;
	cache_invalid = false;
}

/*
 * cache_xact_callback
 *		Free cache contexts retired during the transaction.
 */
static void
cache_xact_callback(XactEvent event, void *arg)
{
	ListCell   *lc;

	if (event != XACT_EVENT_COMMIT && event != XACT_EVENT_ABORT &&
		event != XACT_EVENT_PARALLEL_COMMIT && event != XACT_EVENT_PARALLEL_ABORT &&
		event != XACT_EVENT_PREPARE)
		return;
	foreach(lc, retired_cxts)
		MemoryContextDelete((MemoryContext) lfirst(lc));
	list_free(retired_cxts);
	retired_cxts = NIL;
}

/*
 * CourierCacheCheck
 *		Reload the cache if any topic or group changed since it was loaded.
 */
void
CourierCacheCheck(void)
{
	if (cache_cxt == NULL || cache_invalid || cache_generation != CourierMetaGeneration())
		cache_reload();
}

/*
 * CourierCacheInvalidate
 *		Our own transaction changed topics or groups (or rolled such a
 *		change back): reload at the next lookup.  Other backends learn of it
 *		through the meta generation, at commit.
 */
void
CourierCacheInvalidate(void)
{
	cache_invalid = true;
}

/*
 * lookup_topic
 *		The cached topic of that name, or NULL.
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

/*
 * CourierGetTopic
 *		Look up a topic by name and lock it in share mode for the rest of
 *		the transaction.  Unknown topics are an error.
 */
CourierTopic *
CourierGetTopic(const char *name)
{
	CourierTopic *t;

	CourierValidateName("topic", name);
	for (;;)
	{
		uint64		gen;

		t = lookup_topic(name);
		if (t == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("topic \"%s\" does not exist", name)));
		gen = cache_generation;
		CourierLockTopic(t->topic_id, AccessShareLock);
		if (CourierMetaGeneration() == gen)
			return t;
		/* something changed while we waited for the lock: look again */
	}
}

/*
 * CourierGetTopicById
 *		Like CourierGetTopic, by id; NULL if the topic is gone.
 */
CourierTopic *
CourierGetTopicById(int32 topic_id)
{
	for (;;)
	{
		TopicById  *e;
		uint64		gen;

		CourierCacheCheck();
		e = hash_search(topics_by_id, &topic_id, HASH_FIND, NULL);
		if (e == NULL)
			return NULL;
		gen = cache_generation;
		CourierLockTopic(topic_id, AccessShareLock);
		if (CourierMetaGeneration() == gen)
			return e->topic;
	}
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
		GroupByName *e;
		GroupKey	key;
		uint64		gen;

		CourierCacheCheck();
		memset(&key, 0, sizeof(key));
		key.topic_id = topic->topic_id;
		strlcpy(key.name, name, NAMEDATALEN);
		e = hash_search(groups_by_name, &key, HASH_FIND, NULL);
		if (e == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("group \"%s\" of topic \"%s\" does not exist", name, topic->name)));
		gen = cache_generation;
		CourierLockGroup(e->group->group_id, AccessShareLock);
		if (CourierMetaGeneration() == gen)
			return e->group;
	}
}

/*
 * CourierGetGroupById
 *		Like CourierGetGroup, by id; NULL if the group is gone.
 */
CourierGroup *
CourierGetGroupById(int32 group_id)
{
	for (;;)
	{
		GroupById  *e;
		uint64		gen;

		CourierCacheCheck();
		e = hash_search(groups_by_id, &group_id, HASH_FIND, NULL);
		if (e == NULL)
			return NULL;
		gen = cache_generation;
		CourierLockGroup(group_id, AccessShareLock);
		if (CourierMetaGeneration() == gen)
			return e->group;
	}
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
 * CourierLockGroup
 *		Take a group's existence lock; DDL takes it exclusively.
 */
void
CourierLockGroup(int32 group_id, LOCKMODE mode)
{
	LOCKTAG		tag;

	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, (uint32) group_id, 0, COURIER_LOCK_GROUP);
	(void) LockAcquire(&tag, mode, false, false);
}

/*
 * CourierLockTopic
 *		Take a topic's existence lock; DDL takes it exclusively.
 */
void
CourierLockTopic(int32 topic_id, LOCKMODE mode)
{
	LOCKTAG		tag;

	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, (uint32) topic_id, 0, COURIER_LOCK_TOPIC);
	(void) LockAcquire(&tag, mode, false, false);
}
