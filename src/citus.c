/*-------------------------------------------------------------------------
 *
 * citus.c
 *	  Running on Citus: the ownership guard of topic-keyed calls and the
 *	  refusal of shard moves that would leave topics behind.  This file
 *	  owns both, and nothing else of pg_courier knows about Citus.
 *
 * The deployment (docs/citus.md)
 * ------------------------------------------------------------------------
 * courier.citus_distribute() makes every topic-keyed function a Citus
 * distributed function whose first argument (the topic) is its
 * distribution argument, colocated with a hash-distributed "anchor" table.
 * A topic then lives on exactly one node: the one holding the anchor shard
 * that its name hashes to.  pg_courier's own tables stay local to each node.
 *
 * The guard
 * ------------------------------------------------------------------------
 * Citus delegates only some call shapes (a top-level SELECT f('t', ...)
 * with a constant topic).  Anything else -- a wrapper function, a call in a
 * FROM list with other relations, a CTE, an overload nobody registered --
 * runs where it was issued, which would act on a stray local topic of that
 * name or fail obscurely.  So every call that names a topic
 * (CourierValidateName for a topic, called by CourierGetTopic and by every
 * PL/pgSQL function through courier._validate_name) asks
 * CourierCitusCheckTopic, which refuses unless this node holds the topic's
 * anchor shard.
 *
 * Cost: without Citus in shared_preload_libraries, one cached test.  With
 * Citus, the state (is pg_courier distributed here, which table anchors it)
 * and each topic's owner are cached per backend and dropped by the relcache
 * invalidations Citus sends when its metadata changes (pg_dist_object,
 * pg_dist_node, pg_dist_local_group, and the anchor table itself for
 * placement changes), so a warm call costs one hash lookup.
 *
 * Shard moves
 * ------------------------------------------------------------------------
 * A topic's messages, claims, leases and dead letters are local tables of
 * its node; Citus moves only the anchor shard.  Moving the anchor's shards
 * (or any table colocated with it) would route calls to a node that has
 * none of the topic's state.  We refuse such moves: an fmgr hook sees every
 * call of Citus's move, copy, split, isolate, rebalance and drain functions
 * and raises an error when its target belongs to the anchor colocation
 * group (or cannot be determined).  See docs/citus.md for why we refuse
 * instead of moving, and for the escape hatch (courier.citus_guard = off).
 *
 * Call shapes that crash Citus
 * ------------------------------------------------------------------------
 * Citus 12.1 tries to delegate a statement after standard_planner has
 * rewritten it in place: when the top-level FROM list then holds a single
 * RTE_RESULT or RTE_FUNCTION and the target list is one distributed function
 * call (or the FROM function is one).  A FROM clause that planning folds
 * away, such as SELECT courier.peek('t') FROM (VALUES (1)) v, reaches
 * that code with a range table it does not expect, and the backend dies of
 * SIGSEGV (TryToDelegateFunctionCall -> AcquireRewriteLocks) before
 * EXECUTE is checked, so any login role could restart a node.  Our
 * planner_hook runs before Citus's (we are loaded after it) and refuses
 * such statements when they call one of our distributed functions: see
 * courier_planner.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_language.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "nodes/primnodes.h"
#include "optimizer/optimizer.h"
#include "optimizer/planner.h"
#include "parser/parsetree.h"
#include "utils/acl.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/syscache.h"
#include "utils/varlena.h"

#include "pg_courier.h"

PG_FUNCTION_INFO_V1(courier_citus_owner);

bool		courier_citus_guard = true;

/* what we know about Citus in this database */
typedef enum CitusState
{
	CS_UNKNOWN = 0,				/* to be computed */
	CS_NO_EXT,					/* extension citus not installed here */
	CS_OFF,						/* citus installed, pg_courier not distributed */
	CS_ON						/* distributed: the guard applies */
} CitusState;

/* the catalog of Citus whose invalidation makes our state stale */
#define NDIST_RELS 6
static const char *const dist_rel_names[NDIST_RELS] = {
	"pg_dist_object", "pg_dist_node", "pg_dist_local_group",
	"pg_dist_partition", "pg_dist_placement", "pg_dist_shard"
};

typedef struct OwnerEntry
{
	char		topic[NAMEDATALEN]; /* hash key */
	bool		local;			/* this node holds the topic's anchor shard */
	int64		shardid;
	char		owner[NAMEDATALEN + 16];	/* "host:port" of the owner */
} OwnerEntry;

/* what a Citus function does to shard placements (see move_kind) */
typedef enum MoveKind
{
	MK_NONE = 0,
	MK_SHARD,					/* first argument: a shard id */
	MK_TABLE,					/* first argument: a table (NULL: every table) */
	MK_NODE,					/* first two arguments: node name and port */
	MK_REBALANCE,				/* rebalance_table_shards: a table, or NULL for all */
	MK_REBALANCE_START			/* citus_rebalance_start: every colocation group */
} MoveKind;

typedef struct MoveFunc
{
	const char *prosrc;			/* C symbol in citus.so */
	MoveKind	kind;
} MoveFunc;

static const MoveFunc move_funcs[] = {
	{"citus_move_shard_placement", MK_SHARD},
	{"citus_move_shard_placement_with_nodeid", MK_SHARD},
	{"master_move_shard_placement", MK_SHARD},
	{"citus_copy_shard_placement", MK_SHARD},
	{"citus_copy_shard_placement_with_nodeid", MK_SHARD},
	{"master_copy_shard_placement", MK_SHARD},
	{"citus_split_shard_by_split_points", MK_SHARD},
	{"isolate_tenant_to_new_shard", MK_TABLE},
	{"rebalance_table_shards", MK_REBALANCE},
	{"replicate_table_shards", MK_TABLE},
	{"alter_distributed_table", MK_TABLE},
	{"undistribute_table", MK_TABLE},
	{"citus_drain_node", MK_NODE},
	{"master_drain_node", MK_NODE},
	{"citus_rebalance_start", MK_REBALANCE_START},
};

typedef struct MoveKindEntry
{
	Oid			fn_oid;			/* hash key */
	MoveKind	kind;
} MoveKindEntry;

static int	citus_preloaded = -1;	/* -1: not looked at yet */
static CitusState state = CS_UNKNOWN;
static uint64 inval_count = 0;	/* invalidations seen, to detect a race */
static bool owners_stale = false;
static Oid	dist_rel_oids[NDIST_RELS];
static Oid	anchor_relid = InvalidOid;
static int32 anchor_colocation = 0;
static MemoryContext citus_cxt = NULL;
static HTAB *owners = NULL;
#define OWNERS_MAX 1024			/* topics whose owner a backend remembers */
static OwnerEntry *last_owner = NULL;	/* the entry found last (a backend
										 * usually names one topic over and
										 * over) */
static HTAB *move_kinds = NULL;
static bool move_kinds_stale = false;
static Oid	last_kind_oid = InvalidOid;	/* the function looked up last */
static MoveKind last_kind = MK_NONE;

static needs_fmgr_hook_type prev_needs_fmgr_hook = NULL;
static planner_hook_type prev_planner_hook = NULL;

/* is a function one of our distributed (topic-keyed) functions? */
typedef struct OursEntry
{
	Oid			fn_oid;			/* hash key */
	bool		ours;
} OursEntry;

static HTAB *ours_cache = NULL;
static bool ours_stale = false;
static Oid	courier_nsp = InvalidOid;	/* reset when a namespace changes */
static fmgr_hook_type prev_fmgr_hook = NULL;

static bool is_citus_preloaded(void);
static void citus_relcache_callback(Datum arg, Oid relid);
static void citus_proc_callback(Datum arg, int cacheid, uint32 hashvalue);
static CitusState compute_state(void);
static OwnerEntry *topic_owner(const char *topic);
static MoveKind move_kind(Oid fn_oid);
static bool courier_needs_fmgr(Oid fn_oid);
static void citus_nsp_callback(Datum arg, int cacheid, uint32 hashvalue);
static PlannedStmt *courier_planner(Query *parse, const char *query_string,
									int cursorOptions, ParamListInfo boundParams);
static void courier_fmgr(FmgrHookEventType event, FmgrInfo *flinfo, Datum *arg);
static void check_move(MoveKind kind, FmgrInfo *flinfo);
static void check_rebalance(MoveKind kind, FmgrInfo *flinfo, const char *fname);
static void refuse_move(const char *what, const char *detail);
static const char *anchor_name(void);

/*
 * CourierCitusInit
 *		From _PG_init: the invalidation callbacks, the fmgr hook and the
 *		planner hook.
 */
void
CourierCitusInit(void)
{
	CacheRegisterRelcacheCallback(citus_relcache_callback, (Datum) 0);
	CacheRegisterSyscacheCallback(PROCOID, citus_proc_callback, (Datum) 0);
	prev_needs_fmgr_hook = needs_fmgr_hook;
	needs_fmgr_hook = courier_needs_fmgr;
	prev_fmgr_hook = fmgr_hook;
	fmgr_hook = courier_fmgr;
	CacheRegisterSyscacheCallback(NAMESPACEOID, citus_nsp_callback, (Datum) 0);
	/* loaded after citus: our hook runs first and Citus's is prev */
	prev_planner_hook = planner_hook;
	planner_hook = courier_planner;
}

/*
 * is_citus_preloaded
 *		Is citus in shared_preload_libraries?  Looked at once: the list
 *		cannot change without a restart.
 */
static bool
is_citus_preloaded(void)
{
	if (citus_preloaded < 0)
	{
		const char *libs = GetConfigOption("shared_preload_libraries", true, false);
		char	   *raw;
		List	   *names;
		ListCell   *lc;

		citus_preloaded = 0;
		if (libs != NULL)
		{
			raw = pstrdup(libs);
			if (SplitDirectoriesString(raw, ',', &names))
			{
				foreach(lc, names)
				{
					const char *n = (const char *) lfirst(lc);
					const char *base = strrchr(n, '/');

					base = base ? base + 1 : n;
					if (strcmp(base, "citus") == 0 || strcmp(base, "citus.so") == 0)
						citus_preloaded = 1;
				}
			}
			pfree(raw);
		}
	}
	return citus_preloaded == 1;
}

/*
 * citus_relcache_callback
 *		Citus metadata changed (or everything did): our state is stale.
 *		Only flags: callbacks run inside lock acquisition.
 */
static void
citus_relcache_callback(Datum arg, Oid relid)
{
	int			i;

	inval_count++;
	if (state == CS_UNKNOWN)
		return;
	/*
	 * Without the extension we know no OIDs to watch; CREATE EXTENSION citus
	 * creates relations, whose invalidations bring us here.
	 */
	if (state == CS_NO_EXT || relid == InvalidOid ||
		(OidIsValid(anchor_relid) && relid == anchor_relid))
	{
		state = CS_UNKNOWN;
		owners_stale = true;
		return;
	}
	for (i = 0; i < NDIST_RELS; i++)
	{
		if (relid == dist_rel_oids[i])
		{
			state = CS_UNKNOWN;
			owners_stale = true;
			return;
		}
	}
}

/*
 * citus_proc_callback
 *		A function changed: the cached move kinds may name stale OIDs.
 */
static void
citus_proc_callback(Datum arg, int cacheid, uint32 hashvalue)
{
	move_kinds_stale = true;
	ours_stale = true;
}

/*
 * citus_nsp_callback
 *		A schema changed (schema courier dropped and created again, say):
 *		forget its OID and which functions live in it.
 */
static void
citus_nsp_callback(Datum arg, int cacheid, uint32 hashvalue)
{
	courier_nsp = InvalidOid;
	ours_stale = true;
}

/*
 * ensure_cxt
 *		Our long-lived memory: the owner and move-kind caches, bounded by
 *		the number of topics and functions used.
 */
static void
ensure_cxt(void)
{
	if (citus_cxt == NULL)
		citus_cxt = AllocSetContextCreate(TopMemoryContext, "pg_courier citus",
										  ALLOCSET_SMALL_SIZES);
}

/*
 * fresh_cache
 *		One of our caches (owners, move kinds, our functions): dropped first
 *		if an invalidation marked it stale (*stale), created in our
 *		long-lived context if missing.  keyflag is HASH_STRINGS or
 *		HASH_BLOBS.
 */
static HTAB *
fresh_cache(HTAB *cache, bool *stale, const char *name, Size keysize, Size entrysize,
			int keyflag)
{
	ensure_cxt();
	if (*stale && cache != NULL)
	{
		hash_destroy(cache);
		cache = NULL;
	}
	*stale = false;
	if (cache == NULL)
	{
		HASHCTL		ctl;

		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = keysize;
		ctl.entrysize = entrysize;
		ctl.hcxt = citus_cxt;
		cache = hash_create(name, 64, &ctl, HASH_ELEM | HASH_CONTEXT | keyflag);
	}
	return cache;
}

/*
 * compute_state
 *		Is pg_courier distributed in this database, and by which anchor?
 *		Cached until Citus's metadata changes.
 */
static CitusState
compute_state(void)
{
	Oid			nsp;
	Oid			argtypes[1] = {OIDOID};
	Datum		values[1];
	int			i;
	int			ret;
	uint64		seen = inval_count;

	if (state != CS_UNKNOWN)
		return state;

	anchor_relid = InvalidOid;
	anchor_colocation = 0;
	owners_stale = true;
	if (!OidIsValid(get_extension_oid("citus", true)))
	{
		state = CS_NO_EXT;
		return state;
	}
	for (i = 0; i < NDIST_RELS; i++)
		dist_rel_oids[i] = get_relname_relid(dist_rel_names[i], PG_CATALOG_NAMESPACE);
	nsp = get_namespace_oid("courier", true);
	if (!OidIsValid(nsp) || !OidIsValid(dist_rel_oids[0]))
	{
		state = CS_OFF;
		return state;
	}

	values[0] = ObjectIdGetDatum(nsp);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	ret = CourierExecuteOnce(
		"SELECT o.colocationid, "
		"  (SELECT p.logicalrelid::pg_catalog.oid FROM pg_catalog.pg_dist_partition p"
		"    WHERE p.colocationid OPERATOR(pg_catalog.=) o.colocationid"
		"      AND p.partmethod OPERATOR(pg_catalog.=) 'h'"
		"    ORDER BY p.logicalrelid::pg_catalog.oid LIMIT 1)"
		"  FROM pg_catalog.pg_dist_object o"
		"  JOIN pg_catalog.pg_proc f ON f.oid OPERATOR(pg_catalog.=) o.objid"
		" WHERE o.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass"
		"   AND f.pronamespace OPERATOR(pg_catalog.=) $1"
		"   AND o.colocationid IS NOT NULL"
		" GROUP BY o.colocationid",
		1, argtypes, values, NULL, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read Citus metadata: %s", SPI_result_code_string(ret));
	if (SPI_processed == 0)
	{
		SPI_finish();
		state = (seen == inval_count) ? CS_OFF : CS_UNKNOWN;
		return CS_OFF;
	}
	if (SPI_processed > 1)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pg_courier's functions are distributed in %d different colocation groups",
						(int) SPI_processed),
				 errhint("Run SELECT courier.citus_distribute() on the coordinator.")));
	{
		bool		isnull;
		Datum		d;

		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		anchor_colocation = isnull ? 0 : DatumGetInt32(d);
		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
		if (isnull)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("pg_courier's functions are distributed with colocation group %d, "
							"which has no hash-distributed table", anchor_colocation),
					 errdetail("Without that table nobody can tell which node owns a topic."),
					 errhint("Run SELECT courier.citus_distribute() on the coordinator.")));
		anchor_relid = DatumGetObjectId(d);
	}
	SPI_finish();
	/* an invalidation that arrived meanwhile may concern what we read */
	state = (seen == inval_count) ? CS_ON : CS_UNKNOWN;
	return CS_ON;
}

/*
 * topic_owner
 *		Which node holds the topic's anchor shard (cached).
 */
static OwnerEntry *
topic_owner(const char *topic)
{
	OwnerEntry *e;
	bool		found;
	char		key[NAMEDATALEN];
	Oid			argtypes[2] = {REGCLASSOID, TEXTOID};
	Datum		values[2];
	int			ret;
	bool		isnull;
	Datum		d;

	if (!owners_stale && last_owner != NULL && strcmp(last_owner->topic, topic) == 0)
		return last_owner;
	last_owner = NULL;
	owners = fresh_cache(owners, &owners_stale, "pg_courier topic owners",
						 NAMEDATALEN, sizeof(OwnerEntry), HASH_STRINGS);
	memset(key, 0, sizeof(key));
	strlcpy(key, topic, NAMEDATALEN);
	e = hash_search(owners, key, HASH_FIND, NULL);
	if (e != NULL)
		return (last_owner = e);

	values[0] = ObjectIdGetDatum(anchor_relid);
	values[1] = CStringGetTextDatum(topic);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	ret = CourierExecuteOnce(
		"SELECT p.groupid OPERATOR(pg_catalog.=)"
		"         (SELECT l.groupid FROM pg_catalog.pg_dist_local_group l),"
		"       (SELECT n.nodename OPERATOR(pg_catalog.||) ':'"
		"                OPERATOR(pg_catalog.||) n.nodeport"
		"          FROM pg_catalog.pg_dist_node n"
		"         WHERE n.groupid OPERATOR(pg_catalog.=) p.groupid"
		"           AND n.noderole OPERATOR(pg_catalog.=) 'primary' LIMIT 1),"
		"       p.shardid, p.groupid"
		"  FROM pg_catalog.pg_dist_placement p"
		" WHERE p.shardid OPERATOR(pg_catalog.=)"
		"       pg_catalog.get_shard_id_for_distribution_column($1, $2)",
		2, argtypes, values, NULL, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read Citus metadata: %s", SPI_result_code_string(ret));
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the anchor shard of topic \"%s\" has %d placements, not one",
						topic, (int) SPI_processed),
				 errdetail("A topic lives on exactly one node; the anchor table %s must have "
						   "one placement per shard.", anchor_name())));

	/*
	 * Bounded: a backend that names ever new topics (or random names) does
	 * not grow the cache past OWNERS_MAX entries; it starts afresh instead.
	 */
	if (hash_get_num_entries(owners) >= OWNERS_MAX)
	{
		owners_stale = true;
		owners = fresh_cache(owners, &owners_stale, "pg_courier topic owners",
							 NAMEDATALEN, sizeof(OwnerEntry), HASH_STRINGS);
	}
	e = hash_search(owners, key, HASH_ENTER, &found);
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	e->local = !isnull && DatumGetBool(d);
	e->shardid = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull));
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
	if (isnull)
		snprintf(e->owner, sizeof(e->owner), "group %d",
				 DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4, &isnull)));
	else
		strlcpy(e->owner, TextDatumGetCString(d), sizeof(e->owner));
	SPI_finish();
	return (last_owner = e);
}

/*
 * anchor_name
 *		The anchor table, for messages.
 */
static const char *
anchor_name(void)
{
	char	   *n = OidIsValid(anchor_relid) ? get_rel_name(anchor_relid) : NULL;

	return n ? n : "the anchor table";
}

/*
 * CourierCitusCheckTopic
 *		The ownership guard: with pg_courier distributed on Citus, a call
 *		naming a topic runs only on the node that holds the topic's anchor
 *		shard.  Without Citus (or with courier.citus_guard off) it does
 *		nothing.
 */
void
CourierCitusCheckTopic(const char *topic)
{
	OwnerEntry *e;

	if (!is_citus_preloaded() || !courier_citus_guard)
		return;
	if (!IsTransactionState() || IsBinaryUpgrade || creating_extension)
		return;
	if (compute_state() != CS_ON)
		return;
	e = topic_owner(topic);
	if (e->local)
		return;
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("topic \"%s\" belongs to Citus node %s, not to this node", topic, e->owner),
			 errdetail("pg_courier keeps each topic on the node that holds its shard %ld of %s; "
					   "this call was not delegated there.",
					   (long) e->shardid, anchor_name()),
			 errhint("Call it as a top-level SELECT with a constant topic through the coordinator "
					 "(Citus then delegates it), or connect to %s.", e->owner)));
}

/*
 * courier_citus_owner
 *		citus_owner(topic): "host:port" of the node that owns the topic,
 *		NULL when pg_courier is not distributed.
 */
Datum
courier_citus_owner(PG_FUNCTION_ARGS)
{
	char	   *topic = CourierTextArg(fcinfo, 0, "topic");
	OwnerEntry *e;

	CourierValidateName("topic", topic);
	if (!is_citus_preloaded() || compute_state() != CS_ON)
		PG_RETURN_NULL();
	e = topic_owner(topic);
	PG_RETURN_TEXT_P(cstring_to_text(e->owner));
}

/*
 * move_kind
 *		Is fn_oid one of Citus's functions that move shard placements?
 *		Cached per function OID (a syscache lookup the first time).
 */
static MoveKind
move_kind(Oid fn_oid)
{
	MoveKindEntry *e;
	bool		found;
	HeapTuple	tup;
	MoveKind	kind = MK_NONE;

	if (!move_kinds_stale && fn_oid == last_kind_oid)
		return last_kind;
	last_kind_oid = InvalidOid;
	move_kinds = fresh_cache(move_kinds, &move_kinds_stale, "pg_courier citus move functions",
							 sizeof(Oid), sizeof(MoveKindEntry), HASH_BLOBS);
	e = hash_search(move_kinds, &fn_oid, HASH_FIND, NULL);
	if (e != NULL)
	{
		last_kind_oid = fn_oid;
		last_kind = e->kind;
		return e->kind;
	}

	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn_oid));
	if (HeapTupleIsValid(tup))
	{
		Form_pg_proc proc = (Form_pg_proc) GETSTRUCT(tup);

		if (proc->prolang == ClanguageId)
		{
			bool		isnull;
			Datum		bin = SysCacheGetAttr(PROCOID, tup, Anum_pg_proc_probin, &isnull);

			if (!isnull)
			{
				char	   *probin = TextDatumGetCString(bin);
				const char *base = strrchr(probin, '/');

				base = base ? base + 1 : probin;
				if (strcmp(base, "citus") == 0 || strcmp(base, "citus.so") == 0)
				{
					char	   *src = TextDatumGetCString(SysCacheGetAttr(PROCOID, tup,
																		  Anum_pg_proc_prosrc,
																		  &isnull));
					int			i;

					for (i = 0; i < lengthof(move_funcs); i++)
						if (strcmp(src, move_funcs[i].prosrc) == 0)
							kind = move_funcs[i].kind;
					pfree(src);
				}
				pfree(probin);
			}
		}
		ReleaseSysCache(tup);
	}
	/* entered after the lookup: a callback during it may have reset the hash */
	if (move_kinds == NULL || move_kinds_stale)
		return kind;
	e = hash_search(move_kinds, &fn_oid, HASH_ENTER, &found);
	e->kind = kind;
	last_kind_oid = fn_oid;
	last_kind = kind;
	return kind;
}

/*
 * courier_needs_fmgr
 *		needs_fmgr_hook: route Citus's shard-moving functions through
 *		courier_fmgr.  Without Citus preloaded, one cached test.
 */
static bool
courier_needs_fmgr(Oid fn_oid)
{
	if (prev_needs_fmgr_hook && prev_needs_fmgr_hook(fn_oid))
		return true;
	if (!is_citus_preloaded() || IsBinaryUpgrade)
		return false;
	return move_kind(fn_oid) != MK_NONE;
}

/*
 * courier_fmgr
 *		fmgr_hook: before a shard-moving function runs, check what it moves.
 *		Also called for every SECURITY DEFINER function, so the test for
 *		"not ours" is one hash lookup.
 */
static void
courier_fmgr(FmgrHookEventType event, FmgrInfo *flinfo, Datum *arg)
{
	if (event == FHET_START && is_citus_preloaded() && courier_citus_guard &&
		!IsBinaryUpgrade && IsTransactionState())
	{
		MoveKind	kind = move_kind(flinfo->fn_oid);

		if (kind != MK_NONE)
			check_move(kind, flinfo);
	}
	if (prev_fmgr_hook)
		(*prev_fmgr_hook) (event, flinfo, arg);
}

/*
 * const_arg
 *		The n-th argument of the call if it is a constant; false if it is
 *		not (a parameter, a column, no expression at all).
 */
static bool
const_arg(FmgrInfo *flinfo, int n, Datum *value, bool *isnull)
{
	List	   *args;
	Node	   *a;

	if (flinfo->fn_expr == NULL || !IsA(flinfo->fn_expr, FuncExpr))
		return false;
	args = ((FuncExpr *) flinfo->fn_expr)->args;
	if (list_length(args) <= n)
		return false;
	a = (Node *) list_nth(args, n);
	while (a && IsA(a, RelabelType))
		a = (Node *) ((RelabelType *) a)->arg;
	if (a == NULL || !IsA(a, Const))
		return false;
	*value = ((Const *) a)->constvalue;
	*isnull = ((Const *) a)->constisnull;
	return true;
}

/*
 * spi_count
 *		Run a query with one or two arguments that returns one bigint.
 */
static int64
spi_count(const char *sql, int nargs, Oid *argtypes, Datum *values)
{
	int64		n = 0;
	bool		isnull;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (CourierExecuteOnce(sql, nargs, argtypes, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read Citus metadata");
	if (SPI_processed == 1)
	{
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		n = isnull ? 0 : DatumGetInt64(d);
	}
	SPI_finish();
	return n;
}

/*
 * refuse_move
 *		The error of a refused move.
 */
static void
refuse_move(const char *what, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("%s would move pg_courier topics", what),
			 errdetail("%s Each topic's messages, claims, leases and dead letters are local "
					   "tables of the node that holds its shard of %s; a move takes only the "
					   "shard and leaves the topic behind.", detail, anchor_name()),
			 errhint("Move or rebalance other tables by naming them. To take topics off a node, "
					 "see docs/citus.md (\"Shard moves\").")));
}

/*
 * check_rebalance
 *		A rebalance moves what its plan says: refuse it if the plan (with
 *		the call's own strategy, threshold and exclusions) moves a shard of
 *		the anchor group.  Each move it then makes passes check_move again,
 *		so a plan that changes meanwhile is still caught, move by move.
 */
static void
check_rebalance(MoveKind kind, FmgrInfo *flinfo, const char *fname)
{
	/* plan argument i comes from argument map[i] of the call (-1: default) */
	static const int rebalance_map[7] = {0, 1, 2, 3, 5, 6, -1};
	static const int start_map[7] = {-1, -1, -1, -1, 1, 0, -1};
	static const Oid plan_types[7] = {REGCLASSOID, FLOAT4OID, INT4OID, INT8ARRAYOID,
	BOOLOID, NAMEOID, FLOAT4OID};
	static const char *const plan_defaults[7] = {"NULL", "NULL", "1000000", "'{}'", "false",
	"NULL", "NULL"};
	const int  *map = (kind == MK_REBALANCE) ? rebalance_map : start_map;
	Datum		vals[8];
	char		nulls[8];
	Oid			types[8];
	StringInfoData sql;
	char		detail[256];
	int			nargs = 0;
	int			i;
	int64		n;

	if (kind == MK_REBALANCE)
	{
		Datum		v;
		bool		isnull;

		/* with a table: only its colocation group moves */
		if (const_arg(flinfo, 0, &v, &isnull) && !isnull)
		{
			check_move(MK_TABLE, flinfo);
			return;
		}
	}
	initStringInfo(&sql);
	appendStringInfoString(&sql,
						   "SELECT pg_catalog.count(*) FROM pg_catalog.get_rebalance_table_shards_plan(");
	for (i = 0; i < 7; i++)
	{
		Datum		v;
		bool		isnull;

		if (i > 0)
			appendStringInfoString(&sql, ", ");
		if (map[i] < 0)
		{
			appendStringInfo(&sql, "%s::%s", plan_defaults[i], format_type_be(plan_types[i]));
			continue;
		}
		if (!const_arg(flinfo, map[i], &v, &isnull))
		{
			snprintf(detail, sizeof(detail),
					 "pg_courier cannot tell what %s moves unless its arguments are constants.",
					 fname);
			refuse_move(fname, detail);
		}
		vals[nargs] = v;
		nulls[nargs] = isnull ? 'n' : ' ';
		types[nargs] = plan_types[i];
		nargs++;
		appendStringInfo(&sql, "$%d", nargs);
	}
	appendStringInfo(&sql, ") p JOIN pg_catalog.pg_dist_shard s USING (shardid)"
					 " JOIN pg_catalog.pg_dist_partition t ON t.logicalrelid OPERATOR(pg_catalog.=) s.logicalrelid"
					 " WHERE t.colocationid OPERATOR(pg_catalog.=) %d", anchor_colocation);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (CourierExecuteOnce(sql.data, nargs, types, vals, nulls, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not plan the rebalance");
	n = 0;
	if (SPI_processed == 1)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		n = isnull ? 0 : DatumGetInt64(d);
	}
	SPI_finish();
	if (n > 0)
	{
		snprintf(detail, sizeof(detail),
				 "Its plan moves " INT64_FORMAT " shard(s) of colocation group %d, pg_courier's anchor group.",
				 n, anchor_colocation);
		refuse_move(fname, detail);
	}
}

/*
 * check_move
 *		Refuse a call that would move a shard of the anchor colocation
 *		group, or whose target cannot be told from constant arguments.
 */
static void
check_move(MoveKind kind, FmgrInfo *flinfo)
{
	Datum		v;
	bool		isnull;
	char	   *fname;
	char		detail[256];

	if (compute_state() != CS_ON)
		return;
	fname = get_func_name(flinfo->fn_oid);
	if (fname == NULL)
		fname = "this function";

	switch (kind)
	{
		case MK_SHARD:
			if (!const_arg(flinfo, 0, &v, &isnull) || isnull)
			{
				snprintf(detail, sizeof(detail),
						 "pg_courier cannot tell which shard %s moves unless the shard id is a constant.",
						 fname);
				refuse_move(fname, detail);
			}
			else
			{
				Oid			types[2] = {INT8OID, INT4OID};
				Datum		vals[2];

				vals[0] = v;
				vals[1] = Int32GetDatum(anchor_colocation);
				if (spi_count("SELECT pg_catalog.count(*) FROM pg_catalog.pg_dist_shard s"
							  " JOIN pg_catalog.pg_dist_partition p USING (logicalrelid)"
							  " WHERE s.shardid OPERATOR(pg_catalog.=) $1"
							  "   AND p.colocationid OPERATOR(pg_catalog.=) $2",
							  2, types, vals) > 0)
				{
					snprintf(detail, sizeof(detail),
							 "Shard " INT64_FORMAT " belongs to colocation group %d, pg_courier's anchor group.",
							 DatumGetInt64(v), anchor_colocation);
					refuse_move(fname, detail);
				}
			}
			break;
		case MK_TABLE:
			if (!const_arg(flinfo, 0, &v, &isnull))
			{
				snprintf(detail, sizeof(detail),
						 "pg_courier cannot tell which table %s changes unless it is a constant.",
						 fname);
				refuse_move(fname, detail);
			}
			else if (isnull)
			{
				snprintf(detail, sizeof(detail),
						 "Without a table, %s treats every colocation group, pg_courier's anchor group %d too.",
						 fname, anchor_colocation);
				refuse_move(fname, detail);
			}
			else
			{
				Oid			types[2] = {OIDOID, INT4OID};
				Datum		vals[2];

				vals[0] = v;
				vals[1] = Int32GetDatum(anchor_colocation);
				if (spi_count("SELECT pg_catalog.count(*) FROM pg_catalog.pg_dist_partition p"
							  " WHERE p.logicalrelid::pg_catalog.oid OPERATOR(pg_catalog.=) $1"
							  "   AND p.colocationid OPERATOR(pg_catalog.=) $2",
							  2, types, vals) > 0)
				{
					snprintf(detail, sizeof(detail),
							 "Table %s is in colocation group %d, pg_courier's anchor group.",
							 get_rel_name(DatumGetObjectId(v)) ? get_rel_name(DatumGetObjectId(v)) : "?",
							 anchor_colocation);
					refuse_move(fname, detail);
				}
			}
			break;
		case MK_NODE:
			{
				Datum		port;
				bool		portnull;

				if (!const_arg(flinfo, 0, &v, &isnull) || isnull ||
					!const_arg(flinfo, 1, &port, &portnull) || portnull)
				{
					snprintf(detail, sizeof(detail),
							 "pg_courier cannot tell which node %s drains unless its name and port are constants.",
							 fname);
					refuse_move(fname, detail);
				}
				else
				{
					Oid			types[3] = {TEXTOID, INT4OID, INT4OID};
					Datum		vals[3];

					vals[0] = v;
					vals[1] = port;
					vals[2] = Int32GetDatum(anchor_colocation);
					if (spi_count("SELECT pg_catalog.count(*) FROM pg_catalog.pg_dist_placement pl"
								  " JOIN pg_catalog.pg_dist_node n USING (groupid)"
								  " JOIN pg_catalog.pg_dist_shard s USING (shardid)"
								  " JOIN pg_catalog.pg_dist_partition p USING (logicalrelid)"
								  " WHERE n.nodename OPERATOR(pg_catalog.=) $1"
								  "   AND n.nodeport OPERATOR(pg_catalog.=) $2"
								  "   AND p.colocationid OPERATOR(pg_catalog.=) $3",
								  3, types, vals) > 0)
					{
						snprintf(detail, sizeof(detail),
								 "That node holds shards of colocation group %d, pg_courier's anchor group.",
								 anchor_colocation);
						refuse_move(fname, detail);
					}
				}
			}
			break;
		case MK_REBALANCE:
		case MK_REBALANCE_START:
			check_rebalance(kind, flinfo, fname);
			break;
		case MK_NONE:
			break;
	}
}

/*
 * is_ours
 *		Is fn_oid one of the functions courier.citus_distribute() registers
 *		with Citus: in schema courier, not internal (no leading "_"), first
 *		argument "topic text", not citus_owner?  The same rule as the SQL of
 *		citus_distribute.  Cached per function OID, so a warm query costs a
 *		hash lookup per function call it contains.
 */
static bool
is_ours(Oid fn_oid)
{
	OursEntry  *e;
	HeapTuple	tup;
	bool		ours = false;
	bool		found;

	ours_cache = fresh_cache(ours_cache, &ours_stale, "pg_courier distributed functions",
							 sizeof(Oid), sizeof(OursEntry), HASH_BLOBS);
	e = hash_search(ours_cache, &fn_oid, HASH_FIND, NULL);
	if (e != NULL)
		return e->ours;

	if (!OidIsValid(courier_nsp))
		courier_nsp = get_namespace_oid("courier", true);
	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn_oid));
	if (HeapTupleIsValid(tup))
	{
		Form_pg_proc proc = (Form_pg_proc) GETSTRUCT(tup);

		if (OidIsValid(courier_nsp) && proc->pronamespace == courier_nsp &&
			NameStr(proc->proname)[0] != '_' &&
			strcmp(NameStr(proc->proname), "citus_owner") != 0 &&
			proc->pronargs >= 1 && proc->proargtypes.values[0] == TEXTOID)
		{
			bool		isnull;
			Datum		names = SysCacheGetAttr(PROCOID, tup, Anum_pg_proc_proargnames,
												&isnull);

			if (!isnull)
			{
				Datum	   *elems;
				bool	   *nulls;
				int			n;

				deconstruct_array(DatumGetArrayTypeP(names), TEXTOID, -1, false,
								  TYPALIGN_INT, &elems, &nulls, &n);
				ours = n >= 1 && !nulls[0] &&
					strcmp(TextDatumGetCString(elems[0]), "topic") == 0;
			}
		}
		ReleaseSysCache(tup);
	}
	/* entered after the lookup: a callback during it may have reset the hash */
	if (ours_cache == NULL || ours_stale)
		return ours;
	e = hash_search(ours_cache, &fn_oid, HASH_ENTER, &found);
	e->ours = ours;
	return ours;
}

/*
 * find_ours_walker
 *		The first call of one of our distributed functions anywhere in a
 *		query: target lists, quals, FROM functions, subqueries, CTEs.
 */
static bool
find_ours_walker(Node *node, Oid *found)
{
	if (node == NULL)
		return false;
	if (IsA(node, FuncExpr))
	{
		FuncExpr   *f = (FuncExpr *) node;

		if (f->funcid >= FirstNormalObjectId && is_ours(f->funcid))
		{
			*found = f->funcid;
			return true;
		}
	}
	if (IsA(node, Query))
		return query_tree_walker((Query *) node, find_ours_walker, (void *) found, 0);
	return expression_tree_walker(node, find_ours_walker, (void *) found);
}

/*
 * FromShape
 *		What standard_planner may leave of a FROM clause: "solid" items that
 *		no pull-up removes (tables, multi-function ROWS FROM, materialized
 *		CTEs, ...) and single function scans.  Subqueries, VALUES and CTEs
 *		that may be inlined are looked into, as they may be pulled up and
 *		folded into an RTE_RESULT.  Conservative: it may count fewer items
 *		than survive, never more.
 */
typedef struct FromShape
{
	int			solid;
	int			funcs;
	bool		volatility;		/* look at CTEs' volatility (catalog lookups);
								 * without, every CTE counts as inlinable */
} FromShape;

static void from_shape(Node *n, Query *q, FromShape *s, List *outer);

/* outer: the queries around q, innermost first (for CTE references) */
static void
query_shape(Query *sub, Query *q, FromShape *s, List *outer)
{
	if (sub->setOperations != NULL || sub->jointree == NULL)
		s->solid++;
	else
		from_shape((Node *) sub->jointree, sub, s, lcons(q, outer));
}

static void
from_shape(Node *n, Query *q, FromShape *s, List *outer)
{
	ListCell   *lc;

	if (n == NULL || s->solid > 0 || s->funcs > 1)
		return;
	check_stack_depth();
	if (IsA(n, FromExpr))
	{
		foreach(lc, ((FromExpr *) n)->fromlist)
			from_shape((Node *) lfirst(lc), q, s, outer);
	}
	else if (IsA(n, JoinExpr))
	{
		from_shape(((JoinExpr *) n)->larg, q, s, outer);
		from_shape(((JoinExpr *) n)->rarg, q, s, outer);
	}
	else if (IsA(n, RangeTblRef))
	{
		RangeTblEntry *rte = rt_fetch(((RangeTblRef *) n)->rtindex, q->rtable);

		switch (rte->rtekind)
		{
			case RTE_FUNCTION:
				s->funcs++;
				break;
			case RTE_SUBQUERY:
				query_shape(rte->subquery, q, s, outer);
				break;
			case RTE_VALUES:
				/* a single row of VALUES becomes a RESULT; more stay */
				if (list_length(rte->values_lists) > 1)
					s->solid++;
				break;
			case RTE_RESULT:
				break;
			case RTE_CTE:
				{
					CommonTableExpr *cte = NULL;
					Query	   *owner = q;

					if (rte->ctelevelsup > 0)
						owner = (rte->ctelevelsup <= list_length(outer)) ?
							(Query *) list_nth(outer, rte->ctelevelsup - 1) : NULL;
					if (owner != NULL && !rte->self_reference)
					{
						foreach(lc, owner->cteList)
						{
							CommonTableExpr *c = (CommonTableExpr *) lfirst(lc);

							if (strcmp(c->ctename, rte->ctename) == 0)
								cte = c;
						}
					}
					/* a CTE the planner may inline (see inline_cte in subselect.c) */
					if (cte != NULL && !cte->cterecursive &&
						cte->ctematerialized != CTEMaterializeAlways &&
						IsA(cte->ctequery, Query) &&
						((Query *) cte->ctequery)->commandType == CMD_SELECT &&
						(!s->volatility || !contain_volatile_functions(cte->ctequery)))
						query_shape((Query *) cte->ctequery, owner, s,
									list_copy_tail(lcons(q, outer), rte->ctelevelsup + 1));
					else
						s->solid++;
				}
				break;
			default:
				s->solid++;
				break;
		}
	}
	else
		s->solid++;
}

/*
 * courier_planner
 *		planner_hook, run before Citus's.  Refuse a SELECT that calls one of
 *		our distributed functions with a FROM clause that standard_planner
 *		may fold into the shape Citus then tries, and fails, to delegate
 *		(see "Call shapes that crash Citus" above).  Shapes Citus handles
 *		pass: no FROM clause at all, a FROM clause of one function call
 *		(SELECT * FROM courier.receive(...)), and anything with a table, a
 *		join of two functions, a materialized CTE.
 *
 *		Cost: without Citus preloaded, one cached test; with it, a look at
 *		the top-level FROM list, and only when that has something other than
 *		one function, a walk of the FROM tree (in memory; a table ends it),
 *		and only when no table, materialized CTE or second function is left,
 *		a walk of the query with a cached hash lookup per function call.
 *		Catalog lookups happen only once a call of ours is found.
 */
static PlannedStmt *
courier_planner(Query *parse, const char *query_string, int cursorOptions,
				ParamListInfo boundParams)
{
	if (is_citus_preloaded() && !IsBinaryUpgrade && parse->commandType == CMD_SELECT &&
		parse->jointree != NULL && parse->jointree->fromlist != NIL)
	{
		List	   *from = parse->jointree->fromlist;
		bool		one_func = false;

		if (list_length(from) == 1 && IsA(linitial(from), RangeTblRef))
		{
			RangeTblEntry *rte = rt_fetch(((RangeTblRef *) linitial(from))->rtindex,
										  parse->rtable);

			one_func = (rte->rtekind == RTE_FUNCTION);
		}
		if (!one_func)
		{
			Oid			fn = InvalidOid;
			FromShape	s = {0, 0, false};

			/* in memory first: a table in FROM ends it for most queries */
			from_shape((Node *) parse->jointree, parse, &s, NIL);
			if (s.solid == 0 && s.funcs <= 1 &&
				query_tree_walker(parse, find_ours_walker, (void *) &fn, 0))
			{
				FromShape	sv = {0, 0, true};

				from_shape((Node *) parse->jointree, parse, &sv, NIL);
				if (sv.solid == 0 && sv.funcs <= 1 && compute_state() == CS_ON)
				{
					AclResult	acl = pg_proc_aclcheck(fn, GetUserId(), ACL_EXECUTE);

					if (acl != ACLCHECK_OK)
						aclcheck_error(acl, OBJECT_FUNCTION, get_func_name(fn));
					ereport(ERROR,
							(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
							 errmsg("courier.%s cannot be called with this FROM clause on Citus",
									get_func_name(fn)),
							 errdetail("Citus 12.1 would try to delegate the call after planning "
									   "folds the FROM clause away, and crashes doing so."),
							 errhint("Call courier.%s without a FROM clause (SELECT courier.%s(...)) "
									 "or as the only item of one (SELECT * FROM courier.%s(...)) "
									 "on Citus.",
									 get_func_name(fn), get_func_name(fn), get_func_name(fn))));
				}
			}
		}
	}
	if (prev_planner_hook)
		return prev_planner_hook(parse, query_string, cursorOptions, boundParams);
	return standard_planner(parse, query_string, cursorOptions, boundParams);
}
