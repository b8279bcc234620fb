/*-------------------------------------------------------------------------
 *
 * guard.c
 *	  What may be done to pg_courier's relations, and what happens around
 *	  DROP EXTENSION and COMMIT PREPARED.  This file owns:
 *
 *	- the ProcessUtility hook that refuses DDL on the relations in schema
 *	  courier (its catalog tables, the segment tables of every topic's log,
 *	  the per-topic sequences, their indexes and views);
 *	- the extension's own door for DDL: CourierExecInternalDDL() from C and
 *	  courier._ddl(sql) from the install script's PL/pgSQL;
 *	- DROP EXTENSION pg_courier: the relations the extension created at run
 *	  time (segments, their indexes, per-topic sequences; none of them is an
 *	  extension member) are dropped before the standard DROP runs, and the
 *	  database's shared-memory entries are forgotten when it commits;
 *	- COMMIT PREPARED wakes the database's waiting receivers;
 *	- DROP DATABASE forgets the database's shared-memory entries.
 *
 * Why a hook and not ownership or event triggers
 * ----------------------------------------------
 * pg_courier inserts into its segment tables directly (heap.c): no
 * executor, so triggers, CHECK constraints and row-level security are
 * bypassed, and the C code reads rows with the shape it created.  A column
 * added by ALTER TABLE crashed the server (issue 13), a trigger or policy
 * would silently never fire.  The tables are owned by a superuser (the
 * extension is superuser-only), so ownership protects nothing against a
 * superuser, and an event trigger can be disabled or dropped by the same
 * superuser.  A hook in the server binary is always there, for superusers
 * too, and it sees the statement before anything happens.
 *
 * What is refused, what is allowed
 * --------------------------------
 * Every relation in schema courier (whatever its kind) is "ours".  Refused,
 * with SQLSTATE 42501 and a message naming the relation: every ALTER
 * TABLE/INDEX/SEQUENCE/VIEW subcommand, RENAME, SET SCHEMA, CREATE
 * TRIGGER/POLICY/RULE/INDEX/STATISTICS on them, ALTER POLICY, TRUNCATE,
 * DROP, CLUSTER, GRANT/REVOKE on tables and the extension's sequences
 * (views may be granted: that is how monitoring roles read courier.topics;
 * a topic's sequence may be granted and given another owner, without grant
 * options: its owner and ACL are the topic's, acl.c), SECURITY
 * LABEL, ALTER EXTENSION ADD/DROP, creating relations in schema courier,
 * moving relations into it, and statements that tie another relation to
 * ours (foreign keys referencing them, INHERITS, PARTITION OF, ATTACH
 * PARTITION).  On the schema itself: RENAME, OWNER TO, DROP, and granting
 * CREATE.  On roles that own our relations other than topics' sequences
 * (the extension's owner): DROP OWNED and REASSIGN OWNED.  For a role that
 * owns topics, DROP OWNED drops them through drop_topic first.
 * On the functions and types of schema courier (named with their schema):
 * ALTER, RENAME, OWNER TO, SET SCHEMA, CREATE OR REPLACE, and creating
 * new ones there (an overload of courier.send would capture its callers);
 * GRANT EXECUTE stays allowed.
 *
 * Allowed: SELECT, COPY, LOCK, COMMENT, VACUUM (FULL too), ANALYZE, REINDEX
 * (CONCURRENTLY too), DROP INDEX of an invalid index (what a cancelled
 * REINDEX CONCURRENTLY leaves), publications, and GRANT on views.  VACUUM FULL and
 * REINDEX rewrite storage but keep every column value, ids included, and
 * keep the relation's OID, which is all pg_courier refers to.  CLUSTER is
 * refused: it rewrites like VACUUM FULL but also records a clustering index
 * in the catalog (which a later bare CLUSTER reuses), and it buys nothing:
 * segments are already in id order and the claim and lease tables churn.
 *
 * Who passes
 * ----------
 *	- CREATE EXTENSION / ALTER EXTENSION UPDATE of pg_courier itself
 *	  (creating_extension with CurrentExtensionObject = our extension): the
 *	  install and upgrade scripts may do anything.
 *	- Statements run through CourierExecInternalDDL() (depth counter > 0),
 *	  and everything nested inside them (index builds of a CREATE TABLE,
 *	  and also users' event triggers that fire on our DDL: refusing those
 *	  would make create_topic and rotation fail in databases that have an
 *	  "auto-grant" event trigger).
 *	- pg_upgrade (binary-upgrade mode): _PG_init does not even install the
 *	  hook, and the hook checks again.
 *	- A restore.  pg_dump writes the run-time relations (not extension
 *	  members) as ordinary statements: CREATE TABLE courier.log_N_M (...)
 *	  WITH (fillfactor='100'), CREATE SEQUENCE courier.seq_N ..., ALTER
 *	  TABLE ... OWNER TO, a parallel pg_restore a TRUNCATE of each new table
 *	  before its COPY, and after the data CREATE [UNIQUE] INDEX.  Nothing
 *	  tells a restore apart from a user, so those statements pass when their
 *	  result is exactly what the extension itself creates: a table with the
 *	  segment shape, a sequence with the default parameters, one of the two
 *	  segment indexes on a segment-shaped table that lacks it, an owner
 *	  that is a superuser (any role for a topic's sequence: the topic's
 *	  owner), GRANT/REVOKE on a topic's sequence (the topic's grants), a
 *	  TRUNCATE of an empty run-time table.  The
 *	  check of what is created runs after the statement, on the
 *	  catalog (the shape is compared field by field, the index by its
 *	  pg_get_indexdef text); anything else is refused and rolled back.
 *	  Keep segment_columns[] and segment_indexes[] below in step with
 *	  courier._create_segment (sql/pg_courier.sql); test/t/011_dump_restore.pl
 *	  fails when they drift.
 *
 * A superuser can still write to the tables with INSERT/UPDATE/DELETE,
 * call setval(), edit pg_class, or call courier._ddl() directly: the guard
 * is a seat belt against mistakes, not a wall against a superuser.
 *
 * DROP EXTENSION
 * --------------
 * The run-time relations are not extension members.  Making them members
 * (pg_depend 'e' entries) would make DROP EXTENSION take them along, but
 * pg_dump never dumps members: a dump would lose every message (and
 * pg_extension_config_dump() cannot be called outside the extension
 * script, so they cannot become config tables either).  So the hook drops
 * them itself, just before the standard DROP EXTENSION, in the same
 * transaction and with the statement's RESTRICT/CASCADE behaviour (a user
 * view on a segment stops a RESTRICT drop, as it should).
 *
 * Locking for DROP EXTENSION, in the order the users of a topic take their
 * locks (existence lock first, relations after): each topic's and group's
 * existence lock exclusively, in id order, as drop_topic does -- so nobody
 * holds a pointer into their shared entries and new users wait -- reading
 * the ids again until no new topic or group shows up; then each run-time
 * relation AccessExclusive as it is dropped; then topic_meta, segment and
 * group_meta, never waiting for one while holding another (readers take
 * them in either order, and the standard DROP's own order differs after
 * pg_upgrade), which waits for every transaction that read them; then the
 * standard DROP locks the rest.
 * (Taking the catalog tables first deadlocks with the worker, which takes a
 * topic's lock and then reads courier.topic_meta.)  One narrow window
 * remains: a topic whose create_topic commits after the last read and
 * before the standard DROP queues for courier.topic_meta is dropped with
 * everything else, but without its existence lock, so a receiver that
 * learned of it in an earlier transaction and waits on it could still
 * hold a pointer into its shared entry when the entries are removed.
 * Shared-memory keys that differ per install (shmem.c) make that entry
 * unreachable for anyone else.  The shared entries are
 * removed by the xact callback at COMMIT, while the locks are still held --
 * never before: a rolled-back DROP must leave them alone -- and the meta
 * generation is bumped so that every backend, the worker included, drops
 * what it cached of this install.  A transaction that dropped the
 * extension cannot be PREPAREd: COMMIT PREPARED releases its locks before
 * anyone could remove the entries.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/reloptions.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/index.h"
#include "catalog/namespace.h"
#include "catalog/objectaccess.h"
#include "catalog/objectaddress.h"
#include "catalog/indexing.h"
#include "catalog/pg_depend.h"
#include "catalog/pg_am_d.h"
#include "catalog/pg_attrdef.h"
#include "catalog/pg_class.h"
#include "catalog/pg_extension_d.h"
#include "catalog/pg_index.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_sequence.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "commands/defrem.h"
#include "commands/extension.h"
#include "commands/tablespace.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/parsenodes.h"
#include "storage/lmgr.h"
#include "tcop/cmdtag.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/ruleutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "pg_courier.h"

PG_FUNCTION_INFO_V1(courier_ddl);

#define COURIER_SCHEMA		"courier"
#define COURIER_EXTENSION	"pg_courier"

static const char *const guard_hint =
	"Manage topics, groups and privileges through pg_courier's functions; "
	"see \"What you may do to pg_courier's relations\" in docs/operations.md.";

/* ---- the canonical run-time relations (see "A restore" above) ---- */

typedef struct SegmentColumn
{
	int			attnum;
	const char *name;
	Oid			typid;
	bool		notnull;
} SegmentColumn;

/* courier._create_segment's CREATE TABLE, column by column */
static const SegmentColumn segment_columns[] = {
	{Anum_seg_id, "id", INT8OID, true},
	{Anum_seg_sent_at, "sent_at", TIMESTAMPTZOID, true},
	{Anum_seg_deliver_at, "deliver_at", TIMESTAMPTZOID, false},
	{Anum_seg_tag, "tag", TEXTOID, false},
	{Anum_seg_keys, "keys", TEXTARRAYOID, false},
	{Anum_seg_headers, "headers", JSONBOID, false},
	{Anum_seg_body, "body", JSONBOID, true},
};

#define SEGMENT_FILLFACTOR "100"

/*
 * courier._create_segment's indexes, as pg_get_indexdef prints them (and
 * pg_dump writes them): first %s is the index name, second the table.
 */
static const char *const segment_indexes[] = {
	"CREATE UNIQUE INDEX %s ON %s USING btree (id)",
	"CREATE INDEX %s ON %s USING gin (keys) WHERE (keys IS NOT NULL)",
};

#define N_SEGMENT_INDEXES lengthof(segment_indexes)

/* What to verify after the standard statement ran (the restore path) */
typedef enum PostCheck
{
	POST_NONE,
	POST_TABLE,					/* a new segment-shaped table */
	POST_SEQUENCE,				/* a new per-topic sequence */
	POST_INDEX					/* a missing segment index */
} PostCheck;

/* The extension as the current statement sees it */
typedef struct GuardCtx
{
	Oid			extoid;			/* InvalidOid: not installed here */
	Oid			nspoid;			/* schema courier */
	const char *tag;			/* command tag, for messages */
} GuardCtx;

/* A relation of schema courier, as found in pg_class */
typedef struct CourierRel
{
	Oid			relid;
	char		relkind;
	Oid			relowner;
	Oid			reltablespace;
} CourierRel;

static ProcessUtility_hook_type prev_ProcessUtility = NULL;

/* > 0 while CourierExecInternalDDL runs a statement */
static int	internal_ddl_depth = 0;

/*
 * Nesting of our ProcessUtility hook, and the level at which the statement
 * CourierExecInternalDDL runs enters it: only that statement is internal.
 * Statements nested deeper -- a user's event trigger firing on our CREATE
 * TABLE, say -- are guarded like any other.
 */
static int	utility_level = 0;
static int	internal_level = -1;

/*
 * What the utility statements running now created or altered, as the
 * object access hook reported it (guard_object_access): checked for
 * dependencies on our relations when each statement ends
 * (check_new_dependencies).  Kept in guard_objects_cxt and emptied when the
 * outermost utility statement ends, by error too.
 */
static object_access_hook_type prev_object_access_hook = NULL;
static MemoryContext guard_objects_cxt = NULL;
static ObjectAddress *guard_objects = NULL;
static int	n_guard_objects = 0;
static int	max_guard_objects = 0;

/*
 * Set while a CREATE INDEX CONCURRENTLY on a relation not ours runs: it
 * commits the new index before the statement ends, so the hook checks the
 * index's dependencies at once (index_create records them before it calls
 * the hook), while an error still rolls everything back.
 */
static bool cic_check = false;
static GuardCtx cic_ctx;

/* This transaction ran DROP EXTENSION pg_courier on this extension */
static Oid	dropped_extoid = InvalidOid;

/* Set at pre-commit when that extension is really gone */
static bool forget_at_commit = false;

static void courier_ProcessUtility_guarded(PlannedStmt *pstmt, const char *queryString,
										   bool readOnlyTree, ProcessUtilityContext context,
										   ParamListInfo params, QueryEnvironment *queryEnv,
										   DestReceiver *dest, QueryCompletion *qc);
static void courier_ProcessUtility(PlannedStmt *pstmt, const char *queryString,
								   bool readOnlyTree, ProcessUtilityContext context,
								   ParamListInfo params, QueryEnvironment *queryEnv,
								   DestReceiver *dest, QueryCompletion *qc);
static void guard_xact_callback(XactEvent event, void *arg);
static bool statement_may_concern_us(Node *parsetree);
static bool guard_context(Node *parsetree, GuardCtx *ctx);
static PostCheck check_statement(Node *parsetree, GuardCtx *ctx, RangeVar **post_rv);
static Oid	rangevar_ours(RangeVar *rv, GuardCtx *ctx);
static void check_rangevar(RangeVar *rv, GuardCtx *ctx);
static bool index_is_leftover(Oid relid);
static void check_namelist(List *names, bool drop_last, GuardCtx *ctx);
static void check_constraint(Node *node, GuardCtx *ctx);
static void check_column_constraints(List *elts, GuardCtx *ctx);
static void check_schema_name(const char *name, GuardCtx *ctx);
static void check_names(List *names, GuardCtx *ctx);
static void check_object(ObjectType objtype, Node *object, GuardCtx *ctx);
static void check_roles(List *roles, bool drop, GuardCtx *ctx);
static void drop_owned_topics(Oid roleid, GuardCtx *ctx);
static bool is_topic_sequence(Oid relid, GuardCtx *ctx);
static bool creates_in_courier(RangeVar *rv, GuardCtx *ctx);
static void refuse_relation(Oid relid, const char *relname, GuardCtx *ctx,
							const char *detail) pg_attribute_noreturn();
static void refuse_schema(GuardCtx *ctx) pg_attribute_noreturn();
static List *courier_relations(Oid nspoid);
static bool is_member(Oid relid, GuardCtx *ctx);
static bool owner_change_allowed(AlterTableStmt *stmt, Oid relid, GuardCtx *ctx);
static PostCheck index_restore_allowed(IndexStmt *stmt, Oid relid, GuardCtx *ctx);
static bool truncate_restore_allowed(Oid relid, GuardCtx *ctx);
static void post_check(PostCheck what, RangeVar *rv, GuardCtx *ctx);
static bool segment_shaped(Relation rel, bool allow_indexes);
static bool sequence_canonical(Oid relid);
static int	segment_index_kind(Oid indexoid);
static void drop_runtime_objects(Oid extoid, DropBehavior behavior);
static void lock_catalog_tables(Oid nspoid);
static List *read_ids(Oid relid, const char *column);
static void check_move_all(AlterTableMoveAllStmt *stmt, GuardCtx *ctx);
static void guard_object_access(ObjectAccessType access, Oid classId, Oid objectId,
								int subId, void *arg);
static void check_new_dependencies(Node *parsetree, int first);
static void check_object_dependencies(Relation depRel, ObjectAddress obj, GuardCtx *ctx,
									  Snapshot snap);
static Oid	internal_relation_of(Oid classId, Oid objectId, GuardCtx *ctx);
static bool object_is_ours(const ObjectAddress *obj, GuardCtx *ctx);

/*
 * CourierGuardInit
 *		Install the ProcessUtility hook and the transaction callback.  Called
 *		from _PG_init (never in binary-upgrade mode), before xact.c
 *		registers its callbacks: callbacks run in the reverse order of
 *		registration, so at the commit of a DROP EXTENSION the database's
 *		shared entries are forgotten after xact.c's commit-time work (which
 *		could otherwise create an entry again, e.g. for a segment switch).
 */
void
CourierGuardInit(void)
{
	prev_ProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = courier_ProcessUtility;
	prev_object_access_hook = object_access_hook;
	object_access_hook = guard_object_access;
	RegisterXactCallback(guard_xact_callback, NULL);
}

/*
 * CourierExecInternalDDL
 *		Run a DDL statement of the extension's own (fully schema-qualified)
 *		through SPI, with the guard open and search_path pinned to
 *		pg_catalog, pg_temp.  The depth counter is restored on error too, so
 *		a caller that catches the error (a PL/pgSQL exception block) does
 *		not keep the guard open.
 */
void
CourierExecInternalDDL(const char *sql)
{
	int			saved_depth = internal_ddl_depth;
	int			saved_level = internal_level;

	internal_ddl_depth++;
	internal_level = utility_level + 1;
	PG_TRY();
	{
		int			nestlevel;
		int			ret;

		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		nestlevel = NewGUCNestLevel();
		(void) set_config_option("search_path", "pg_catalog, pg_temp",
								 PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
		ret = SPI_execute(sql, false, 0);
		if (ret != SPI_OK_UTILITY)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("courier._ddl runs utility statements only"),
					 errdetail("The statement was not one (SPI code %d).", ret)));
		AtEOXact_GUC(true, nestlevel);
		SPI_finish();
	}
	PG_FINALLY();
	{
		internal_ddl_depth = saved_depth;
		internal_level = saved_level;
	}
	PG_END_TRY();
}

/*
 * courier_ddl
 *		courier._ddl(sql): CourierExecInternalDDL for the install script's
 *		PL/pgSQL.  EXECUTE is granted to nobody.
 */
Datum
courier_ddl(PG_FUNCTION_ARGS)
{
	CourierExecInternalDDL(text_to_cstring(PG_GETARG_TEXT_PP(0)));
	PG_RETURN_VOID();
}

/*
 * courier_ProcessUtility_guarded
 *		Check the statement, run it (chaining to the previous hook), then do
 *		what must follow it: the restore-path verification, the COMMIT
 *		PREPARED wake-up, forgetting a dropped database.
 */
static void
courier_ProcessUtility_guarded(PlannedStmt *pstmt, const char *queryString,
					   bool readOnlyTree, ProcessUtilityContext context,
					   ParamListInfo params, QueryEnvironment *queryEnv,
					   DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *parsetree = pstmt->utilityStmt;
	GuardCtx	ctx;
	PostCheck	post = POST_NONE;
	RangeVar   *post_rv = NULL;
	Oid			dropped_db = InvalidOid;
	int			first_object = n_guard_objects;

	memset(&ctx, 0, sizeof(ctx));
	if (statement_may_concern_us(parsetree) && guard_context(parsetree, &ctx))
	{
		if (IsA(parsetree, DropStmt) &&
			((DropStmt *) parsetree)->removeType == OBJECT_EXTENSION)
		{
			DropStmt   *stmt = (DropStmt *) parsetree;
			ListCell   *lc;

			foreach(lc, stmt->objects)
			{
				/*
				 * Not the owner, or a read-only transaction (a standby): leave
				 * it to the standard DROP's error.
				 */
				if (strcmp(strVal(lfirst(lc)), COURIER_EXTENSION) == 0 &&
					pg_extension_ownercheck(ctx.extoid, GetUserId()) && !XactReadOnly)
				{
					drop_runtime_objects(ctx.extoid, stmt->behavior);
					dropped_extoid = ctx.extoid;
				}
			}
		}
		else
			post = check_statement(parsetree, &ctx, &post_rv);
	}
	if (IsA(parsetree, DropdbStmt))
		dropped_db = get_database_oid(((DropdbStmt *) parsetree)->dbname, true);

	if (IsA(parsetree, IndexStmt) && ((IndexStmt *) parsetree)->concurrent &&
		OidIsValid(ctx.extoid))
	{
		cic_ctx = ctx;
		cic_check = true;
	}
	if (prev_ProcessUtility)
		prev_ProcessUtility(pstmt, queryString, readOnlyTree, context, params,
							queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context, params,
								queryEnv, dest, qc);
	cic_check = false;

	if (post != POST_NONE)
		post_check(post, post_rv, &ctx);
	if (n_guard_objects > first_object)
		check_new_dependencies(parsetree, first_object);

	if (IsA(parsetree, TransactionStmt) &&
		(((TransactionStmt *) parsetree)->kind == TRANS_STMT_COMMIT_PREPARED ||
		 ((TransactionStmt *) parsetree)->kind == TRANS_STMT_ROLLBACK_PREPARED))
	{
		/*
		 * The prepared transaction may have sent messages (COMMIT PREPARED)
		 * or held leases (ROLLBACK PREPARED gives them back): our callbacks
		 * never run for it, so wake every topic of the database (it must run
		 * in the database of the transaction).
		 */
		CourierWakeDatabase(MyDatabaseId);
		/* nor our commit or abort callback: the worker's next round looks
		 * for the shared state of objects it dropped or undid (shmem.c) */
		pg_atomic_fetch_add_u32(&CourierState->twophase_ends, 1);
	}

	/*
	 * DROP DATABASE is done (it cannot run in a transaction block, and no
	 * one can be connected to the database): its entries would otherwise
	 * stay until a restart, and be inherited by a database that reuses the
	 * OID.
	 */
	if (OidIsValid(dropped_db))
		CourierForgetDatabase(dropped_db);
}

/*
 * courier_ProcessUtility
 *		The hook: count the nesting, then guard.
 */
static void
courier_ProcessUtility(PlannedStmt *pstmt, const char *queryString,
					   bool readOnlyTree, ProcessUtilityContext context,
					   ParamListInfo params, QueryEnvironment *queryEnv,
					   DestReceiver *dest, QueryCompletion *qc)
{
	bool		save_cic_check = cic_check;

	utility_level++;
	PG_TRY();
	{
		courier_ProcessUtility_guarded(pstmt, queryString, readOnlyTree, context, params,
									   queryEnv, dest, qc);
	}
	PG_FINALLY();
	{
		cic_check = save_cic_check;
		utility_level--;
		if (utility_level == 0)
			n_guard_objects = 0;
	}
	PG_END_TRY();
}

/*
 * guard_xact_callback
 *		Refuse to PREPARE a transaction that dropped the extension; forget
 *		the database's shared entries when it commits.
 */
static void
guard_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_PREPARE:
			if (OidIsValid(dropped_extoid) && get_extension_name(dropped_extoid) == NULL)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("cannot PREPARE a transaction that dropped extension pg_courier")));
			break;
		case XACT_EVENT_PRE_COMMIT:
			/* a DROP in a rolled-back savepoint leaves the extension in place */
			if (OidIsValid(dropped_extoid) && get_extension_name(dropped_extoid) == NULL)
				forget_at_commit = true;
			break;
		case XACT_EVENT_COMMIT:
			/* still holding the DROP's locks: nobody is using the entries */
			if (forget_at_commit)
				CourierForgetDatabase(MyDatabaseId);
			dropped_extoid = InvalidOid;
			forget_at_commit = false;
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PREPARE:
			dropped_extoid = InvalidOid;
			forget_at_commit = false;
			break;
		default:
			break;
	}
}

/*
 * statement_may_concern_us
 *		Cheap filter on the node type, so that the statements we never look
 *		at (SET, BEGIN, ...) cost no catalog lookup.
 */
static bool
statement_may_concern_us(Node *parsetree)
{
	switch (nodeTag(parsetree))
	{
		case T_AlterTableStmt:
		case T_AlterTableMoveAllStmt:
		case T_RenameStmt:
		case T_AlterObjectSchemaStmt:
		case T_AlterOwnerStmt:
		case T_CreateTrigStmt:
		case T_CreatePolicyStmt:
		case T_AlterPolicyStmt:
		case T_RuleStmt:
		case T_TruncateStmt:
		case T_DropStmt:
		case T_IndexStmt:
		case T_CreateStmt:
		case T_CreateForeignTableStmt:
		case T_CreateTableAsStmt:
		case T_ViewStmt:
		case T_CreateSeqStmt:
		case T_AlterSeqStmt:
		case T_GrantStmt:
		case T_AlterDefaultPrivilegesStmt:
		case T_ClusterStmt:
		case T_SecLabelStmt:
		case T_CreateStatsStmt:
		case T_AlterExtensionContentsStmt:
		case T_DropOwnedStmt:
		case T_ReassignOwnedStmt:
		case T_ImportForeignSchemaStmt:
		case T_ExplainStmt:
		case T_AlterFunctionStmt:
		case T_AlterObjectDependsStmt:
		case T_CreateFunctionStmt:
		case T_CreateExtensionStmt:
		case T_DefineStmt:
		case T_CompositeTypeStmt:
		case T_CreateEnumStmt:
		case T_CreateRangeStmt:
		case T_CreateDomainStmt:
		case T_AlterTypeStmt:
		case T_AlterEnumStmt:
		case T_AlterDomainStmt:
			return true;
		default:
			return false;
	}
}

/*
 * guard_context
 *		Is the guard active for this statement?  Only where pg_courier is
 *		installed and schema courier exists, and not for the extension's
 *		own scripts, internal DDL or binary upgrade.  Fills ctx.
 */
static bool
guard_context(Node *parsetree, GuardCtx *ctx)
{
	if (IsBinaryUpgrade || (internal_ddl_depth > 0 && utility_level == internal_level))
		return false;

	/*
	 * A user's event trigger firing on our own DDL (one level deeper) is
	 * guarded like anything else -- except GRANT and REVOKE, which change
	 * no shape: "grant every new table to the reporting role" triggers are
	 * common, and must not make create_topic fail.
	 */
	if (internal_ddl_depth > 0 && utility_level > internal_level && IsA(parsetree, GrantStmt))
		return false;
	ctx->nspoid = get_namespace_oid(COURIER_SCHEMA, true);
	if (!OidIsValid(ctx->nspoid))
		return false;
	ctx->extoid = get_extension_oid(COURIER_EXTENSION, true);
	if (!OidIsValid(ctx->extoid))
		return false;
	if (creating_extension && CurrentExtensionObject == ctx->extoid)
		return false;
	ctx->tag = GetCommandTagName(CreateCommandTag(parsetree));
	return true;
}

/*
 * check_statement
 *		Raise an error if the statement touches our relations in a way that
 *		is not allowed.  Returns what must be verified after the statement
 *		ran (the restore path), with *post_rv naming the new relation.
 */
static PostCheck
check_statement(Node *parsetree, GuardCtx *ctx, RangeVar **post_rv)
{
	ListCell   *lc;
	Oid			relid;

	switch (nodeTag(parsetree))
	{
		case T_AlterTableStmt:
			{
				AlterTableStmt *stmt = (AlterTableStmt *) parsetree;

				relid = rangevar_ours(stmt->relation, ctx);
				if (OidIsValid(relid))
				{
					if (owner_change_allowed(stmt, relid, ctx))
						return POST_NONE;
					refuse_relation(relid, NULL, ctx, NULL);
				}
				/* another relation's subcommands that reach ours */
				foreach(lc, stmt->cmds)
				{
					AlterTableCmd *cmd = lfirst_node(AlterTableCmd, lc);

					switch (cmd->subtype)
					{
						case AT_AddConstraint:
							check_constraint(cmd->def, ctx);
							break;
						case AT_AddColumn:
							check_column_constraints(list_make1(cmd->def), ctx);
							break;
						case AT_AddInherit:
						case AT_DropInherit:
							check_rangevar((RangeVar *) cmd->def, ctx);
							break;
						case AT_AttachPartition:
						case AT_DetachPartition:
						case AT_DetachPartitionFinalize:
							check_rangevar(((PartitionCmd *) cmd->def)->name, ctx);
							break;
						default:
							break;
					}
				}
				return POST_NONE;
			}
		case T_AlterTableMoveAllStmt:
			check_move_all((AlterTableMoveAllStmt *) parsetree, ctx);
			return POST_NONE;
		case T_RenameStmt:
			{
				RenameStmt *stmt = (RenameStmt *) parsetree;

				if (stmt->renameType == OBJECT_SCHEMA)
					check_schema_name(stmt->subname, ctx);
				else if (stmt->relation)
					check_rangevar(stmt->relation, ctx);
				else
					check_object(stmt->renameType, stmt->object, ctx);
				return POST_NONE;
			}
		case T_AlterObjectSchemaStmt:
			{
				AlterObjectSchemaStmt *stmt = (AlterObjectSchemaStmt *) parsetree;

				if (stmt->relation)
				{
					check_rangevar(stmt->relation, ctx);
					if (strcmp(stmt->newschema, COURIER_SCHEMA) == 0)
						refuse_relation(InvalidOid, stmt->relation->relname, ctx,
										"Only pg_courier itself creates relations in schema courier.");
				}
				else
				{
					check_object(stmt->objectType, stmt->object, ctx);
					check_schema_name(stmt->newschema, ctx);
				}
				return POST_NONE;
			}
		case T_AlterOwnerStmt:
			{
				AlterOwnerStmt *stmt = (AlterOwnerStmt *) parsetree;

				if (stmt->objectType == OBJECT_SCHEMA)
					check_schema_name(strVal(stmt->object), ctx);
				else
					check_object(stmt->objectType, stmt->object, ctx);
				return POST_NONE;
			}
		case T_CreateTrigStmt:
			check_rangevar(((CreateTrigStmt *) parsetree)->relation, ctx);
			check_rangevar(((CreateTrigStmt *) parsetree)->constrrel, ctx);
			return POST_NONE;
		case T_CreatePolicyStmt:
			check_rangevar(((CreatePolicyStmt *) parsetree)->table, ctx);
			return POST_NONE;
		case T_AlterPolicyStmt:
			check_rangevar(((AlterPolicyStmt *) parsetree)->table, ctx);
			return POST_NONE;
		case T_RuleStmt:
			check_rangevar(((RuleStmt *) parsetree)->relation, ctx);
			return POST_NONE;
		case T_TruncateStmt:
			foreach(lc, ((TruncateStmt *) parsetree)->relations)
			{
				relid = rangevar_ours(lfirst_node(RangeVar, lc), ctx);
				if (OidIsValid(relid) && !truncate_restore_allowed(relid, ctx))
					refuse_relation(relid, NULL, ctx, NULL);
			}
			return POST_NONE;
		case T_DropStmt:
			{
				DropStmt   *stmt = (DropStmt *) parsetree;

				switch (stmt->removeType)
				{
					case OBJECT_INDEX:
						foreach(lc, stmt->objects)
						{
							relid = rangevar_ours(makeRangeVarFromNameList(lfirst(lc)), ctx);
							if (OidIsValid(relid) && !index_is_leftover(relid))
								refuse_relation(relid, NULL, ctx, NULL);
						}
						break;
					case OBJECT_TABLE:
					case OBJECT_SEQUENCE:
					case OBJECT_VIEW:
					case OBJECT_MATVIEW:
					case OBJECT_FOREIGN_TABLE:
						foreach(lc, stmt->objects)
							check_namelist(lfirst(lc), false, ctx);
						break;
					case OBJECT_TRIGGER:
					case OBJECT_POLICY:
					case OBJECT_RULE:
						/* table name followed by the object's name */
						foreach(lc, stmt->objects)
							check_namelist(lfirst(lc), true, ctx);
						break;
					case OBJECT_SCHEMA:
						foreach(lc, stmt->objects)
							check_schema_name(strVal(lfirst(lc)), ctx);
						break;
					default:
						break;
				}
				return POST_NONE;
			}
		case T_IndexStmt:
			{
				IndexStmt  *stmt = (IndexStmt *) parsetree;

				relid = rangevar_ours(stmt->relation, ctx);
				if (!OidIsValid(relid))
					return POST_NONE;
				if (index_restore_allowed(stmt, relid, ctx) == POST_INDEX)
				{
					*post_rv = makeRangeVar(COURIER_SCHEMA, stmt->idxname, -1);
					return POST_INDEX;
				}
				refuse_relation(relid, NULL, ctx, NULL);
				pg_unreachable();
			}
		case T_CreateStmt:
		case T_CreateForeignTableStmt:
			{
				CreateStmt *stmt = (CreateStmt *) parsetree;

				foreach(lc, stmt->inhRelations)
					check_rangevar(lfirst_node(RangeVar, lc), ctx);
				check_column_constraints(stmt->tableElts, ctx);
				foreach(lc, stmt->constraints)
					check_constraint(lfirst(lc), ctx);
				if (!creates_in_courier(stmt->relation, ctx))
					return POST_NONE;
				if (IsA(parsetree, CreateStmt) && stmt->inhRelations == NIL &&
					stmt->partspec == NULL && stmt->ofTypename == NULL)
				{
					*post_rv = stmt->relation;
					return POST_TABLE;
				}
				refuse_relation(InvalidOid, stmt->relation->relname, ctx,
								"Only pg_courier itself creates relations in schema courier.");
				pg_unreachable();
			}
		case T_CreateTableAsStmt:
			if (creates_in_courier(((CreateTableAsStmt *) parsetree)->into->rel, ctx))
				refuse_relation(InvalidOid, ((CreateTableAsStmt *) parsetree)->into->rel->relname,
								ctx, "Only pg_courier itself creates relations in schema courier.");
			return POST_NONE;
		case T_ExplainStmt:
			{
				/* EXPLAIN ANALYZE CREATE TABLE AS does not come back here */
				Node	   *query = ((ExplainStmt *) parsetree)->query;

				if (IsA(query, Query) && ((Query *) query)->utilityStmt &&
					IsA(((Query *) query)->utilityStmt, CreateTableAsStmt))
				{
					CreateTableAsStmt *ctas = (CreateTableAsStmt *) ((Query *) query)->utilityStmt;

					ctx->tag = GetCommandTagName(CreateCommandTag((Node *) ctas));
					if (creates_in_courier(ctas->into->rel, ctx))
						refuse_relation(InvalidOid, ctas->into->rel->relname, ctx,
										"Only pg_courier itself creates relations in schema courier.");
				}
				return POST_NONE;
			}
		case T_ViewStmt:
			if (creates_in_courier(((ViewStmt *) parsetree)->view, ctx))
				refuse_relation(InvalidOid, ((ViewStmt *) parsetree)->view->relname, ctx,
								"Only pg_courier itself creates relations in schema courier.");
			return POST_NONE;
		case T_CreateSeqStmt:
			if (creates_in_courier(((CreateSeqStmt *) parsetree)->sequence, ctx))
			{
				*post_rv = ((CreateSeqStmt *) parsetree)->sequence;
				return POST_SEQUENCE;
			}
			return POST_NONE;
		case T_AlterSeqStmt:
			check_rangevar(((AlterSeqStmt *) parsetree)->sequence, ctx);
			return POST_NONE;
		case T_GrantStmt:
			{
				GrantStmt  *stmt = (GrantStmt *) parsetree;

				if (stmt->targtype == ACL_TARGET_OBJECT &&
					(stmt->objtype == OBJECT_TABLE || stmt->objtype == OBJECT_SEQUENCE))
				{
					foreach(lc, stmt->objects)
					{
						relid = rangevar_ours(lfirst_node(RangeVar, lc), ctx);
						/* views may be granted: that is how monitoring reads them */
						if (!OidIsValid(relid) || get_rel_relkind(relid) == RELKIND_VIEW)
							continue;

						/*
						 * A topic's sequence carries the topic's privileges
						 * (acl.c): GRANT/REVOKE on it is a topic grant, what
						 * courier.grant runs and pg_dump writes.  Without
						 * grant options: a topic is granted by its owner.
						 */
						if (is_topic_sequence(relid, ctx))
						{
							if (stmt->is_grant && stmt->grant_option)
								refuse_relation(relid, NULL, ctx,
												"Topic privileges cannot be granted WITH GRANT OPTION.");
							continue;
						}
						refuse_relation(relid, NULL, ctx, NULL);
					}
				}
				else if (stmt->targtype == ACL_TARGET_ALL_IN_SCHEMA &&
						 (stmt->objtype == OBJECT_TABLE || stmt->objtype == OBJECT_SEQUENCE))
				{
					foreach(lc, stmt->objects)
						check_schema_name(strVal(lfirst(lc)), ctx);
				}
				else if (stmt->targtype == ACL_TARGET_OBJECT && stmt->objtype == OBJECT_SCHEMA &&
						 stmt->is_grant)
				{
					bool		create = (stmt->privileges == NIL);	/* ALL */
					ListCell   *lp;

					foreach(lp, stmt->privileges)
					{
						AccessPriv *priv = lfirst_node(AccessPriv, lp);

						if (priv->priv_name == NULL || strcmp(priv->priv_name, "create") == 0)
							create = true;
					}
					if (create)
						foreach(lc, stmt->objects)
							check_schema_name(strVal(lfirst(lc)), ctx);
				}
				return POST_NONE;
			}
		case T_AlterDefaultPrivilegesStmt:
			{
				AlterDefaultPrivilegesStmt *stmt = (AlterDefaultPrivilegesStmt *) parsetree;

				if (stmt->action->objtype != OBJECT_TABLE && stmt->action->objtype != OBJECT_SEQUENCE)
					return POST_NONE;
				foreach(lc, stmt->options)
				{
					DefElem    *opt = lfirst_node(DefElem, lc);
					ListCell   *ls;

					if (strcmp(opt->defname, "schemas") != 0)
						continue;
					foreach(ls, (List *) opt->arg)
						check_schema_name(strVal(lfirst(ls)), ctx);
				}
				return POST_NONE;
			}
		case T_ClusterStmt:
			check_rangevar(((ClusterStmt *) parsetree)->relation, ctx);
			return POST_NONE;
		case T_SecLabelStmt:
			{
				SecLabelStmt *stmt = (SecLabelStmt *) parsetree;

				switch (stmt->objtype)
				{
					case OBJECT_TABLE:
					case OBJECT_SEQUENCE:
					case OBJECT_VIEW:
					case OBJECT_MATVIEW:
					case OBJECT_FOREIGN_TABLE:
						check_namelist((List *) stmt->object, false, ctx);
						break;
					case OBJECT_COLUMN:
						check_namelist((List *) stmt->object, true, ctx);
						break;
					case OBJECT_SCHEMA:
						check_schema_name(strVal(stmt->object), ctx);
						break;
					default:
						break;
				}
				return POST_NONE;
			}
		case T_CreateStatsStmt:
			foreach(lc, ((CreateStatsStmt *) parsetree)->relations)
				if (IsA(lfirst(lc), RangeVar))
					check_rangevar(lfirst_node(RangeVar, lc), ctx);
			return POST_NONE;
		case T_AlterExtensionContentsStmt:
			{
				AlterExtensionContentsStmt *stmt = (AlterExtensionContentsStmt *) parsetree;

				if (strcmp(stmt->extname, COURIER_EXTENSION) == 0)
					ereport(ERROR,
							(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
							 errmsg("%s is not allowed on extension pg_courier", ctx->tag),
							 errdetail("Only pg_courier's install and upgrade scripts choose its members."),
							 errhint("%s", guard_hint)));
				switch (stmt->objtype)
				{
					case OBJECT_TABLE:
					case OBJECT_SEQUENCE:
					case OBJECT_VIEW:
					case OBJECT_MATVIEW:
					case OBJECT_INDEX:
					case OBJECT_FOREIGN_TABLE:
						check_namelist((List *) stmt->object, false, ctx);
						break;
					case OBJECT_SCHEMA:
						check_schema_name(strVal(stmt->object), ctx);
						break;
					default:
						break;
				}
				return POST_NONE;
			}
		case T_DropOwnedStmt:
			check_roles(((DropOwnedStmt *) parsetree)->roles, true, ctx);
			return POST_NONE;
		case T_ReassignOwnedStmt:
			check_roles(((ReassignOwnedStmt *) parsetree)->roles, false, ctx);
			return POST_NONE;
		case T_ImportForeignSchemaStmt:
			if (strcmp(((ImportForeignSchemaStmt *) parsetree)->local_schema, COURIER_SCHEMA) == 0)
				refuse_schema(ctx);
			return POST_NONE;

			/*
			 * The functions and types of schema courier: ALTER (SECURITY
			 * INVOKER, RESET search_path, OWNER TO, ...), CREATE OR REPLACE,
			 * and new ones (an overload of courier.send would capture calls
			 * meant for the real one).  GRANT EXECUTE stays allowed: that is
			 * how privileges are given.
			 */
		case T_AlterFunctionStmt:
			check_names(((AlterFunctionStmt *) parsetree)->func->objname, ctx);
			return POST_NONE;
		case T_AlterObjectDependsStmt:
			{
				AlterObjectDependsStmt *stmt = (AlterObjectDependsStmt *) parsetree;

				if (stmt->relation)
					check_rangevar(stmt->relation, ctx);
				else
					check_object(stmt->objectType, stmt->object, ctx);
				return POST_NONE;
			}
		case T_CreateFunctionStmt:
			check_names(((CreateFunctionStmt *) parsetree)->funcname, ctx);
			return POST_NONE;
		case T_CreateExtensionStmt:
			{
				/*
				 * Another extension's objects in schema courier: a trusted
				 * one's script runs as a superuser, so the schema's ACL
				 * does not stop it (review 45).
				 */
				CreateExtensionStmt *stmt = (CreateExtensionStmt *) parsetree;

				if (strcmp(stmt->extname, COURIER_EXTENSION) == 0)
					return POST_NONE;
				foreach(lc, stmt->options)
				{
					DefElem    *d = lfirst_node(DefElem, lc);

					if (strcmp(d->defname, "schema") == 0)
						check_schema_name(defGetString(d), ctx);
				}
				return POST_NONE;
			}
		case T_DefineStmt:
			check_names(((DefineStmt *) parsetree)->defnames, ctx);
			return POST_NONE;
		case T_CompositeTypeStmt:
			if (creates_in_courier(((CompositeTypeStmt *) parsetree)->typevar, ctx))
				check_names(list_make2(makeString(COURIER_SCHEMA),
									   makeString(((CompositeTypeStmt *) parsetree)->typevar->relname)),
							ctx);
			return POST_NONE;
		case T_CreateEnumStmt:
			check_names(((CreateEnumStmt *) parsetree)->typeName, ctx);
			return POST_NONE;
		case T_CreateRangeStmt:
			check_names(((CreateRangeStmt *) parsetree)->typeName, ctx);
			return POST_NONE;
		case T_CreateDomainStmt:
			check_names(((CreateDomainStmt *) parsetree)->domainname, ctx);
			return POST_NONE;
		case T_AlterTypeStmt:
			check_names(((AlterTypeStmt *) parsetree)->typeName, ctx);
			return POST_NONE;
		case T_AlterEnumStmt:
			check_names(((AlterEnumStmt *) parsetree)->typeName, ctx);
			return POST_NONE;
		case T_AlterDomainStmt:
			check_names(((AlterDomainStmt *) parsetree)->typeName, ctx);
			return POST_NONE;
		default:
			return POST_NONE;
	}
}

/*
 * rangevar_ours
 *		The OID of the relation rv names if it is in schema courier, else
 *		InvalidOid (also when it does not exist: the standard code reports
 *		that).  No lock is taken: the standard code looks the name up again
 *		with the right lock.  A qualified name is judged by its schema, so
 *		that race can only matter for an unqualified name whose resolution
 *		changes in between, which needs a concurrent CREATE of a relation of
 *		that name in schema courier, i.e. pg_courier itself.
 */
static Oid
rangevar_ours(RangeVar *rv, GuardCtx *ctx)
{
	Oid			relid;

	if (rv == NULL)
		return InvalidOid;
	if (rv->schemaname != NULL)
	{
		if (strcmp(rv->schemaname, COURIER_SCHEMA) != 0)
			return InvalidOid;
		return get_relname_relid(rv->relname, ctx->nspoid);
	}
	relid = RangeVarGetRelid(rv, NoLock, true);
	if (OidIsValid(relid) && get_rel_namespace(relid) == ctx->nspoid)
		return relid;
	return InvalidOid;
}

/*
 * index_is_leftover
 *		An invalid index: what a failed or cancelled CREATE INDEX
 *		CONCURRENTLY or REINDEX CONCURRENTLY leaves behind (*_ccnew,
 *		*_ccold).  pg_courier never reads through an invalid index (segment.c
 *		picks a valid one each time it opens a segment) and creates none, so
 *		dropping one is the documented clean-up and harms nothing.
 */
static bool
index_is_leftover(Oid relid)
{
	HeapTuple	tup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(relid));
	bool		leftover = false;

	if (HeapTupleIsValid(tup))
	{
		leftover = !((Form_pg_index) GETSTRUCT(tup))->indisvalid;
		ReleaseSysCache(tup);
	}
	return leftover;
}

/*
 * check_rangevar
 *		Refuse the statement if rv names one of our relations.
 */
static void
check_rangevar(RangeVar *rv, GuardCtx *ctx)
{
	Oid			relid = rangevar_ours(rv, ctx);

	if (OidIsValid(relid))
		refuse_relation(relid, NULL, ctx, NULL);
}

/*
 * check_namelist
 *		check_rangevar for a qualified name given as a list of Strings,
 *		without its last element if drop_last (trigger, policy, rule and
 *		column names follow their table's name).
 */
static void
check_namelist(List *names, bool drop_last, GuardCtx *ctx)
{
	if (drop_last)
		names = list_truncate(list_copy(names), list_length(names) - 1);
	if (names == NIL)
		return;
	check_rangevar(makeRangeVarFromNameList(names), ctx);
}

/*
 * check_constraint
 *		A foreign key that references one of our relations would put
 *		triggers on it: refuse.
 */
static void
check_constraint(Node *node, GuardCtx *ctx)
{
	if (node != NULL && IsA(node, Constraint) &&
		((Constraint *) node)->contype == CONSTR_FOREIGN)
		check_rangevar(((Constraint *) node)->pktable, ctx);
}

/*
 * check_column_constraints
 *		check_constraint for the table constraints and the column
 *		constraints of a CREATE TABLE element list (or one ColumnDef).
 */
static void
check_column_constraints(List *elts, GuardCtx *ctx)
{
	ListCell   *lc;

	foreach(lc, elts)
	{
		Node	   *elt = lfirst(lc);

		if (IsA(elt, ColumnDef))
		{
			ListCell   *lc2;

			foreach(lc2, ((ColumnDef *) elt)->constraints)
				check_constraint(lfirst(lc2), ctx);
		}
		else
			check_constraint(elt, ctx);
	}
}

/*
 * check_schema_name
 *		Refuse the statement if it names schema courier.
 */
static void
check_schema_name(const char *name, GuardCtx *ctx)
{
	if (name != NULL && strcmp(name, COURIER_SCHEMA) == 0)
		refuse_schema(ctx);
}

/*
 * check_names
 *		Refuse the statement if a qualified name (a list of Strings) names
 *		an object in schema courier.  Only explicitly qualified names are
 *		judged: functions and types are not looked up here (their lookup
 *		needs argument types), and an unqualified name finds schema courier
 *		only for a session that put it in its search_path.
 */
static void
check_names(List *names, GuardCtx *ctx)
{
	ListCell   *lc;
	const char *schemaname;

	foreach(lc, names)
		if (!IsA(lfirst(lc), String))
			return;
	switch (list_length(names))
	{
		case 2:
			schemaname = strVal(linitial(names));
			break;
		case 3:
			schemaname = strVal(lsecond(names));
			break;
		default:
			return;
	}
	if (strcmp(schemaname, COURIER_SCHEMA) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("%s is not allowed on \"%s\"", ctx->tag, NameListToString(names)),
				 errdetail("Objects in schema courier belong to extension pg_courier."),
				 errhint("%s", guard_hint)));
}

/*
 * check_object
 *		check_names for the object of a RENAME, OWNER TO, SET SCHEMA or
 *		DEPENDS ON EXTENSION, for the object types that live in a schema and
 *		are named by a plain qualified name.
 */
static void
check_object(ObjectType objtype, Node *object, GuardCtx *ctx)
{
	if (object == NULL)
		return;
	switch (objtype)
	{
		case OBJECT_FUNCTION:
		case OBJECT_PROCEDURE:
		case OBJECT_ROUTINE:
		case OBJECT_AGGREGATE:
		case OBJECT_OPERATOR:
			if (IsA(object, ObjectWithArgs))
				check_names(((ObjectWithArgs *) object)->objname, ctx);
			break;
		case OBJECT_TYPE:
		case OBJECT_DOMAIN:
		case OBJECT_DOMCONSTRAINT:
		case OBJECT_COLLATION:
		case OBJECT_CONVERSION:
		case OBJECT_STATISTIC_EXT:
		case OBJECT_TSCONFIGURATION:
		case OBJECT_TSDICTIONARY:
		case OBJECT_TSPARSER:
		case OBJECT_TSTEMPLATE:
			if (IsA(object, List))
				check_names((List *) object, ctx);
			break;
		default:
			break;
	}
}

/*
 * check_roles
 *		DROP OWNED and REASSIGN OWNED would drop our relations or hand them
 *		to someone else: refuse them for a role that owns any of them, or
 *		the schema -- except topics' sequences, whose owner is the topic's
 *		owner (acl.c): REASSIGN OWNED hands the topics to the new role (the
 *		standard code changes the sequences' owner), and DROP OWNED drops
 *		the role's topics, which we do here first, through drop_topic (the
 *		standard code would drop the sequences alone).  Privileges on
 *		topics are revoked by the standard DROP OWNED.
 */
static void
check_roles(List *roles, bool drop, GuardCtx *ctx)
{
	List	   *rels = courier_relations(ctx->nspoid);
	Oid			nspowner = InvalidOid;
	List	   *drop_roles = NIL;
	HeapTuple	tup;
	ListCell   *lc;

	tup = SearchSysCache1(NAMESPACEOID, ObjectIdGetDatum(ctx->nspoid));
	if (HeapTupleIsValid(tup))
	{
		nspowner = ((Form_pg_namespace) GETSTRUCT(tup))->nspowner;
		ReleaseSysCache(tup);
	}
	foreach(lc, roles)
	{
		RoleSpec   *spec = lfirst_node(RoleSpec, lc);
		Oid			roleid = get_rolespec_oid(spec, true);
		bool		owns = OidIsValid(roleid) && roleid == nspowner;
		bool		owns_topics = false;
		ListCell   *lr;

		foreach(lr, rels)
		{
			CourierRel *r = (CourierRel *) lfirst(lr);

			if (r->relowner != roleid)
				continue;
			if (r->relkind == RELKIND_SEQUENCE && !is_member(r->relid, ctx))
				owns_topics = true;
			else
				owns = true;
		}
		if (owns)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("%s is not allowed for a role that owns relations of extension pg_courier",
							ctx->tag),
					 errdetail("Role \"%s\" owns relations in schema courier.", get_rolespec_name(spec)),
					 errhint("Drop extension pg_courier first.")));
		/* without the right, the standard DROP OWNED refuses */
		if (drop && owns_topics && has_privs_of_role(GetUserId(), roleid))
			drop_roles = lappend_oid(drop_roles, roleid);
	}
	foreach(lc, drop_roles)
		drop_owned_topics(lfirst_oid(lc), ctx);
}

/*
 * drop_owned_topics
 *		DROP OWNED BY role: drop the topics it owns with courier.drop_topic
 *		(groups, leases, dead letters, segments, the sequence, the shared
 *		entries), as the extension's owner -- the caller may lack EXECUTE on
 *		drop_topic; drop_topic still checks that the role in effect owns the
 *		topic, which the standard DROP OWNED requires as well.
 */
static void
drop_owned_topics(Oid roleid, GuardCtx *ctx)
{
	Oid			save_userid;
	int			save_sec;
	Oid			extowner = InvalidOid;
	HeapTuple	tup;

	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(get_relname_relid("topic_meta", ctx->nspoid)));
	if (!HeapTupleIsValid(tup))
		return;
	extowner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);

	GetUserIdAndSecContext(&save_userid, &save_sec);
	SetUserIdAndSecContext(extowner, save_sec | SECURITY_LOCAL_USERID_CHANGE);
	PG_TRY();
	{
		Oid			argtypes[1] = {OIDOID};
		Datum		values[1] = {ObjectIdGetDatum(roleid)};
		int			nestlevel;
		int			ret;

		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		nestlevel = NewGUCNestLevel();
		(void) set_config_option("search_path", "pg_catalog, pg_temp",
								 PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
		ret = SPI_execute_with_args("SELECT courier.drop_topic(t.name) "
									"FROM courier.topic_meta t "
									"JOIN pg_catalog.pg_class c "
									"  ON c.oid OPERATOR(pg_catalog.=) t.seq::pg_catalog.oid "
									"WHERE c.relowner OPERATOR(pg_catalog.=) $1 "
									"ORDER BY t.topic_id",
									1, argtypes, values, NULL, false, 0);
		if (ret != SPI_OK_SELECT)
			elog(ERROR, "could not drop the topics of role %u (SPI code %d)", roleid, ret);
		AtEOXact_GUC(true, nestlevel);
		SPI_finish();
	}
	PG_FINALLY();
	{
		SetUserIdAndSecContext(save_userid, save_sec);
	}
	PG_END_TRY();
}

/*
 * is_topic_sequence
 *		A topic's sequence courier.seq_<id>: a sequence of ours created at
 *		run time (the extension's own sequences are members).
 */
static bool
is_topic_sequence(Oid relid, GuardCtx *ctx)
{
	return get_rel_relkind(relid) == RELKIND_SEQUENCE && !is_member(relid, ctx);
}

/*
 * check_move_all
 *		ALTER TABLE ALL IN TABLESPACE would move our relations too.
 */
static void
check_move_all(AlterTableMoveAllStmt *stmt, GuardCtx *ctx)
{
	Oid			orig = get_tablespace_oid(stmt->orig_tablespacename, true);
	ListCell   *lc;

	if (!OidIsValid(orig))
		return;
	if (orig == MyDatabaseTableSpace)
		orig = InvalidOid;		/* pg_class says 0 for the default */
	foreach(lc, courier_relations(ctx->nspoid))
	{
		CourierRel *r = lfirst(lc);
		bool		kind_matches;

		switch (stmt->objtype)
		{
			case OBJECT_TABLE:
				kind_matches = (r->relkind == RELKIND_RELATION || r->relkind == RELKIND_SEQUENCE);
				break;
			case OBJECT_INDEX:
				kind_matches = (r->relkind == RELKIND_INDEX);
				break;
			case OBJECT_MATVIEW:
				kind_matches = (r->relkind == RELKIND_MATVIEW);
				break;
			default:
				kind_matches = false;
				break;
		}
		if (kind_matches && r->reltablespace == orig)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("%s is not allowed on tablespace \"%s\"", ctx->tag,
							stmt->orig_tablespacename),
					 errdetail("The tablespace holds relations of extension pg_courier."),
					 errhint("Move other relations one by one, or the whole database "
							 "with ALTER DATABASE ... SET TABLESPACE.")));
	}
}

/*
 * creates_in_courier
 *		Does this statement create a relation in schema courier?
 */
static bool
creates_in_courier(RangeVar *rv, GuardCtx *ctx)
{
	if (rv == NULL)
		return false;
	if (rv->schemaname != NULL)
		return strcmp(rv->schemaname, COURIER_SCHEMA) == 0;
	if (rv->relpersistence == RELPERSISTENCE_TEMP)
		return false;
	/* the same lookup the standard code does (errors included) */
	return RangeVarGetCreationNamespace(rv) == ctx->nspoid;
}

/*
 * refuse_relation
 *		The error for a statement on one of our relations (relid), or for
 *		creating one (relname).
 */
static void
refuse_relation(Oid relid, const char *relname, GuardCtx *ctx, const char *detail)
{
	if (OidIsValid(relid))
		relname = get_rel_name(relid);
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("%s is not allowed on relation \"%s\"", ctx->tag,
					quote_qualified_identifier(COURIER_SCHEMA, relname ? relname : "?")),
			 errdetail("%s", detail ? detail :
					   "Relations in schema courier are managed by extension pg_courier."),
			 errhint("%s", guard_hint)));
}

/*
 * refuse_schema
 *		The error for a statement on schema courier itself.
 */
static void
refuse_schema(GuardCtx *ctx)
{
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("%s is not allowed on schema courier", ctx->tag),
			 errdetail("Schema courier belongs to extension pg_courier."),
			 errhint("%s", guard_hint)));
}

/*
 * courier_relations
 *		Every relation in our schema, read from pg_class (a catalog scan:
 *		the catalog snapshot is always fresh).
 */
static List *
courier_relations(Oid nspoid)
{
	List	   *result = NIL;
	Relation	rel;
	TableScanDesc scan;
	ScanKeyData key;
	HeapTuple	tup;

	ScanKeyInit(&key, Anum_pg_class_relnamespace, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(nspoid));
	rel = table_open(RelationRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 1, &key);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Form_pg_class c = (Form_pg_class) GETSTRUCT(tup);
		CourierRel *r = palloc(sizeof(CourierRel));

		r->relid = c->oid;
		r->relkind = c->relkind;
		r->relowner = c->relowner;
		r->reltablespace = c->reltablespace;
		result = lappend(result, r);
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	return result;
}

/*
 * is_member
 *		Is the relation a member of our extension (created by its script)?
 */
static bool
is_member(Oid relid, GuardCtx *ctx)
{
	return getExtensionOfObject(RelationRelationId, relid) == ctx->extoid;
}

/*
 * owner_change_allowed
 *		The restore path: ALTER TABLE/SEQUENCE ... OWNER TO as the only
 *		subcommand, on a run-time relation (not a member): a segment table
 *		to a superuser (what the extension gives them anyway: it is
 *		superuser-only), a topic's sequence to any role (its owner is the
 *		topic's owner).  pg_dump writes it after each CREATE.
 */
static bool
owner_change_allowed(AlterTableStmt *stmt, Oid relid, GuardCtx *ctx)
{
	ListCell   *lc;
	char		relkind = get_rel_relkind(relid);

	if (relkind != RELKIND_RELATION && relkind != RELKIND_SEQUENCE)
		return false;
	if (stmt->cmds == NIL || is_member(relid, ctx))
		return false;
	foreach(lc, stmt->cmds)
	{
		AlterTableCmd *cmd = lfirst_node(AlterTableCmd, lc);
		Oid			newowner;

		if (cmd->subtype != AT_ChangeOwner)
			return false;
		newowner = get_rolespec_oid(cmd->newowner, true);
		if (!OidIsValid(newowner))
			return false;

		/*
		 * A topic's sequence: its owner is the topic's owner (acl.c), any
		 * role; the standard checks apply (the current owner, a member of
		 * the new one, or a superuser).
		 */
		if (relkind == RELKIND_SEQUENCE)
			continue;
		if (!superuser_arg(newowner))
			return false;
	}
	return true;
}

/*
 * index_restore_allowed
 *		The restore path for CREATE INDEX: a named, non-concurrent index on
 *		a run-time relation.  What it builds is verified afterwards.
 */
static PostCheck
index_restore_allowed(IndexStmt *stmt, Oid relid, GuardCtx *ctx)
{
	if (stmt->idxname == NULL || stmt->concurrent || stmt->if_not_exists ||
		stmt->primary || stmt->isconstraint)
		return POST_NONE;
	if (get_rel_relkind(relid) != RELKIND_RELATION || is_member(relid, ctx))
		return POST_NONE;
	if (OidIsValid(get_relname_relid(stmt->idxname, ctx->nspoid)))
		return POST_NONE;		/* let it fail as a refusal, not "exists" */
	return POST_INDEX;
}

/*
 * truncate_restore_allowed
 *		The restore path for TRUNCATE: a parallel pg_restore truncates each
 *		table it created in the same run before loading it (so that the COPY
 *		may skip WAL).  Allowed on a run-time table that is empty, which
 *		makes the TRUNCATE a no-op.  Emptiness is judged under the lock the
 *		TRUNCATE takes anyway, AccessExclusiveLock, so no sender can be
 *		inserting, and with the latest snapshot, so every committed row
 *		counts.
 */
static bool
truncate_restore_allowed(Oid relid, GuardCtx *ctx)
{
	Relation	rel;
	Snapshot	snap;
	TableScanDesc scan;
	bool		empty;

	if (get_rel_relkind(relid) != RELKIND_RELATION || is_member(relid, ctx))
		return false;
	rel = table_open(relid, AccessExclusiveLock);
	snap = RegisterSnapshot(GetLatestSnapshot());
	scan = table_beginscan(rel, snap, 0, NULL);
	empty = (heap_getnext(scan, ForwardScanDirection) == NULL);
	table_endscan(scan);
	UnregisterSnapshot(snap);
	table_close(rel, NoLock);	/* keep the lock: the TRUNCATE needs it */
	return empty;
}

/*
 * post_check
 *		After a restore-path statement ran: refuse (and so roll back) unless
 *		it created exactly what pg_courier creates.
 */
static void
post_check(PostCheck what, RangeVar *rv, GuardCtx *ctx)
{
	Oid			relid = get_relname_relid(rv->relname, ctx->nspoid);
	bool		ok = false;

	CommandCounterIncrement();
	if (!OidIsValid(relid))
		return;					/* IF NOT EXISTS skipped it, or nothing was made */

	switch (what)
	{
		case POST_TABLE:
			{
				Relation	rel = table_open(relid, AccessShareLock);

				ok = segment_shaped(rel, false);
				table_close(rel, AccessShareLock);
				break;
			}
		case POST_SEQUENCE:
			ok = sequence_canonical(relid);
			break;
		case POST_INDEX:
			{
				Oid			tabid = IndexGetRelation(relid, false);
				Relation	rel = table_open(tabid, AccessShareLock);
				int			kind = segment_index_kind(relid);
				List	   *indexes = RelationGetIndexList(rel);
				ListCell   *lc;

				ok = kind >= 0 && segment_shaped(rel, true);
				foreach(lc, indexes)
				{
					Oid			other = lfirst_oid(lc);

					if (other != relid && segment_index_kind(other) == kind)
						ok = false;		/* it had one already */
				}
				table_close(rel, AccessShareLock);
				break;
			}
		case POST_NONE:
			return;
	}
	if (!ok)
		refuse_relation(InvalidOid, rv->relname, ctx,
						"Only pg_courier itself creates relations in schema courier "
						"(a restore may recreate its segment tables, sequences and their "
						"indexes exactly as pg_dump wrote them).");
}

/*
 * segment_shaped
 *		Does rel look exactly like a segment table made by
 *		courier._create_segment?  Without allow_indexes it must have none
 *		(a fresh CREATE TABLE).
 */
static bool
segment_shaped(Relation rel, bool allow_indexes)
{
	TupleDesc	desc = RelationGetDescr(rel);
	Form_pg_class c = rel->rd_rel;
	int			natts = 0;
	int			i;
	HeapTuple	tup;
	Datum		d;
	bool		isnull;
	List	   *opts;
	DefElem    *opt;

	if (c->relkind != RELKIND_RELATION || c->relpersistence != RELPERSISTENCE_PERMANENT ||
		c->relispartition || c->relam != HEAP_TABLE_AM_OID || OidIsValid(c->reloftype) ||
		c->relchecks != 0 || c->relhastriggers || c->relhasrules || c->relrowsecurity ||
		c->relforcerowsecurity || has_superclass(RelationGetRelid(rel)))
		return false;
	if (!allow_indexes && RelationGetIndexList(rel) != NIL)
		return false;

	for (i = 0; i < desc->natts; i++)
		if (!TupleDescAttr(desc, i)->attisdropped)
			natts++;
	if (natts != lengthof(segment_columns) || desc->natts != lengthof(segment_columns))
		return false;
	for (i = 0; i < lengthof(segment_columns); i++)
	{
		const SegmentColumn *want = &segment_columns[i];
		Form_pg_attribute att = TupleDescAttr(desc, want->attnum - 1);

		if (strcmp(NameStr(att->attname), want->name) != 0 ||
			att->atttypid != want->typid || att->atttypmod != -1 ||
			att->attnotnull != want->notnull || att->atthasdef ||
			att->attidentity != '\0' || att->attgenerated != '\0' ||
			att->attcollation != get_typcollation(want->typid))
			return false;
	}

	/* reloptions: exactly fillfactor=100 */
	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(RelationGetRelid(rel)));
	if (!HeapTupleIsValid(tup))
		return false;
	d = SysCacheGetAttr(RELOID, tup, Anum_pg_class_reloptions, &isnull);
	opts = isnull ? NIL : untransformRelOptions(d);
	ReleaseSysCache(tup);
	if (list_length(opts) != 1)
		return false;
	opt = linitial_node(DefElem, opts);
	return strcmp(opt->defname, "fillfactor") == 0 &&
		strcmp(defGetString(opt), SEGMENT_FILLFACTOR) == 0;
}

/*
 * sequence_canonical
 *		Is relid a sequence as create_topic makes it (bigint, 1 up to the
 *		maximum by 1, cache 1, no cycle)?
 */
static bool
sequence_canonical(Oid relid)
{
	HeapTuple	tup;
	Form_pg_sequence seq;
	bool		ok;

	if (get_rel_relkind(relid) != RELKIND_SEQUENCE ||
		get_rel_persistence(relid) != RELPERSISTENCE_PERMANENT)
		return false;
	tup = SearchSysCache1(SEQRELID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tup))
		return false;
	seq = (Form_pg_sequence) GETSTRUCT(tup);
	ok = seq->seqtypid == INT8OID && seq->seqstart == 1 && seq->seqincrement == 1 &&
		seq->seqmin == 1 && seq->seqmax == PG_INT64_MAX && seq->seqcache == 1 &&
		!seq->seqcycle;
	ReleaseSysCache(tup);
	return ok;
}

/*
 * segment_index_kind
 *		Which of segment_indexes[] the index is (compared as pg_dump would
 *		write it), or -1.
 */
static int
segment_index_kind(Oid indexoid)
{
	char	   *def = pg_get_indexdef_string(indexoid);
	Oid			tabid = IndexGetRelation(indexoid, false);
	const char *idxname = quote_identifier(get_rel_name(indexoid));
	const char *tabname = quote_qualified_identifier(get_namespace_name(get_rel_namespace(tabid)),
													 get_rel_name(tabid));
	int			i;

	for (i = 0; i < N_SEGMENT_INDEXES; i++)
	{
		char	   *want = psprintf(segment_indexes[i], idxname, tabname);

		if (strcmp(def, want) == 0)
			return i;
	}
	return -1;
}

/*
 * read_ids
 *		The int4 column "column" of every row of one of our catalog tables,
 *		read with the latest snapshot: a REPEATABLE READ caller's old
 *		snapshot must not hide a topic created since.
 */
static List *
read_ids(Oid relid, const char *column)
{
	List	   *ids = NIL;
	AttrNumber	attnum = get_attnum(relid, column);
	Relation	rel;
	Snapshot	snap;
	TableScanDesc scan;
	HeapTuple	tup;

	/* a catalog of another shape: nothing to lock, but let the DROP go on */
	if (attnum == InvalidAttrNumber || get_atttype(relid, attnum) != INT4OID)
		return NIL;
	rel = table_open(relid, AccessShareLock);
	snap = RegisterSnapshot(GetLatestSnapshot());
	scan = table_beginscan(rel, snap, 0, NULL);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		bool		isnull;
		Datum		d = heap_getattr(tup, attnum, RelationGetDescr(rel), &isnull);

		if (!isnull)
			ids = lappend_int(ids, DatumGetInt32(d));
	}
	table_endscan(scan);
	UnregisterSnapshot(snap);
	table_close(rel, AccessShareLock);
	list_sort(ids, list_int_cmp);
	return ids;
}

/*
 * lock_catalog_tables
 *		AccessExclusiveLock on courier.topic_meta, segment and group_meta,
 *		never waiting for one while holding another (see step 3 of
 *		drop_runtime_objects).
 */
static void
lock_catalog_tables(Oid nspoid)
{
	const char *const names[3] = {"topic_meta", "segment", "group_meta"};
	Oid			rels[3];
	int			n = 0;
	int			i;

	for (i = 0; i < 3; i++)
	{
		Oid			relid = get_relname_relid(names[i], nspoid);

		if (OidIsValid(relid))
			rels[n++] = relid;
	}
	for (;;)
	{
		int			busy = -1;

		CHECK_FOR_INTERRUPTS();
		for (i = 0; i < n; i++)
			if (!ConditionalLockRelationOid(rels[i], AccessExclusiveLock))
			{
				busy = i;
				break;
			}
		if (busy < 0)
			return;
		while (--i >= 0)
			UnlockRelationOid(rels[i], AccessExclusiveLock);
		LockRelationOid(rels[busy], AccessExclusiveLock);
		UnlockRelationOid(rels[busy], AccessExclusiveLock);
	}
}

/*
 * drop_runtime_objects
 *		DROP EXTENSION pg_courier, before the standard code runs: drop every
 *		relation in schema courier that is not an extension member (segment
 *		tables with their indexes, per-topic sequences), with the
 *		statement's behaviour.  See the header comment for the locking.
 */
static void
drop_runtime_objects(Oid extoid, DropBehavior behavior)
{
	Oid			nspoid = get_namespace_oid(COURIER_SCHEMA, false);
	Oid			topic_meta = get_relname_relid("topic_meta", nspoid);
	Oid			group_meta = get_relname_relid("group_meta", nspoid);
	List	   *topics = NIL;
	List	   *groups = NIL;
	ObjectAddresses *objects = new_object_addresses();
	GuardCtx	ctx;
	ListCell   *lc;
	bool		more;

	ctx.extoid = extoid;
	ctx.nspoid = nspoid;

	/*
	 * 1. Every topic's and group's existence lock, exclusively, in id order:
	 * nobody holds a pointer into their shared entries any more, and new
	 * users wait.  Topics and groups committed while we waited are picked
	 * up by reading again until nothing new shows up.
	 */
	do
	{
		more = false;
		if (OidIsValid(topic_meta))
			foreach(lc, read_ids(topic_meta, "topic_id"))
			{
				if (list_member_int(topics, lfirst_int(lc)))
					continue;
				CourierLockTopic(lfirst_int(lc), AccessExclusiveLock);
				topics = lappend_int(topics, lfirst_int(lc));
				more = true;
			}
		if (OidIsValid(group_meta))
			foreach(lc, read_ids(group_meta, "group_id"))
			{
				if (list_member_int(groups, lfirst_int(lc)))
					continue;
				CourierLockGroup(lfirst_int(lc), AccessExclusiveLock);
				groups = lappend_int(groups, lfirst_int(lc));
				more = true;
			}
	} while (more);

	/*
	 * 2. The run-time relations, each locked AccessExclusive before it is
	 * looked at again; indexes, TOAST tables and row types go with their
	 * relation.
	 */
	foreach(lc, courier_relations(nspoid))
	{
		CourierRel *r = lfirst(lc);
		ObjectAddress addr;

		if (r->relkind == RELKIND_INDEX || r->relkind == RELKIND_PARTITIONED_INDEX ||
			r->relkind == RELKIND_TOASTVALUE || r->relkind == RELKIND_COMPOSITE_TYPE)
			continue;
		if (is_member(r->relid, &ctx))
			continue;
		LockRelationOid(r->relid, AccessExclusiveLock);
		if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(r->relid)))
			continue;			/* dropped while we waited */
		ObjectAddressSet(addr, RelationRelationId, r->relid);
		add_exact_object_address(&addr, objects);
	}
	performMultipleDeletions(objects, behavior, 0);
	CommandCounterIncrement();

	/*
	 * 3. The catalog tables topic_meta, segment and group_meta, never
	 * waiting for one while holding another.  The standard DROP locks them
	 * in the order of their pg_depend entries -- topic_meta first in a fresh
	 * install, group_meta first after pg_upgrade, which recreates the
	 * members in pg_dump's order -- while a catalog-cache reload reads
	 * topic_meta, segment, group_meta and the views read group_meta before
	 * topic_meta: whatever single order we took, one kind of reader could
	 * hold one table and wait for the other (the worker's reload
	 * deadlocked with DROP EXTENSION in TAP 012 once).  So: take them
	 * without waiting; if one is busy, let go of the others, wait for that
	 * one alone, and start over.  Once we hold all three, the standard DROP
	 * finds them locked.
	 */
	lock_catalog_tables(nspoid);

	/* every backend drops what it cached about this install */
	CourierCatalogChanged(0, 0);
}

/* ---- objects that would depend on our relations ---- */

/*
 * guard_object_access
 *		The object access hook: remember what a utility statement creates or
 *		alters (tables and their columns, views' rules, functions, types,
 *		defaults, constraints, indexes, ...), for check_new_dependencies.
 */
static void
guard_object_access(ObjectAccessType access, Oid classId, Oid objectId,
					int subId, void *arg)
{
	if (prev_object_access_hook)
		prev_object_access_hook(access, classId, objectId, subId, arg);
	if (utility_level == 0 || (access != OAT_POST_CREATE && access != OAT_POST_ALTER))
		return;
	/* an extension's own script (ours, or one that needs ours) is trusted */
	if (creating_extension)
		return;
	if (cic_check && access == OAT_POST_CREATE && classId == RelationRelationId)
	{
		Relation	depRel = table_open(DependRelationId, AccessShareLock);
		ObjectAddress obj;

		obj.classId = classId;
		obj.objectId = objectId;
		obj.objectSubId = 0;
		/* its dependencies are not visible to a catalog snapshot yet */
		check_object_dependencies(depRel, obj, &cic_ctx, SnapshotSelf);
		table_close(depRel, AccessShareLock);
	}
	if (n_guard_objects > 0 &&
		guard_objects[n_guard_objects - 1].classId == classId &&
		guard_objects[n_guard_objects - 1].objectId == objectId)
		return;					/* the next column of the same table */
	if (guard_objects_cxt == NULL)
		guard_objects_cxt = AllocSetContextCreate(TopMemoryContext, "pg_courier guard objects",
												  ALLOCSET_SMALL_SIZES);
	if (n_guard_objects == max_guard_objects)
	{
		max_guard_objects = Max(64, max_guard_objects * 2);
		guard_objects = guard_objects == NULL ?
			MemoryContextAlloc(guard_objects_cxt, max_guard_objects * sizeof(ObjectAddress)) :
			repalloc(guard_objects, max_guard_objects * sizeof(ObjectAddress));
	}
	guard_objects[n_guard_objects].classId = classId;
	guard_objects[n_guard_objects].objectId = objectId;
	guard_objects[n_guard_objects].objectSubId = 0;
	n_guard_objects++;
}

/*
 * check_new_dependencies
 *		Refuse the statement if something it created or altered (objects
 *		first..end of guard_objects) now depends on one of our relations
 *		other than a view: a column of a segment's row type, a view or a
 *		function reading a segment or courier.claim, a default calling
 *		nextval() on a topic's sequence, a domain over a row type, ...
 *		(review 43).  None of these needs a privilege on the relation (a
 *		type is PUBLIC's to use, a view is checked when it is read), and
 *		each would stop our DROP TABLE of a segment past its retention, of
 *		a purged or dropped topic, with "other objects depend on it" --
 *		any role able to create a temporary table could keep a topic's log
 *		from ever being reclaimed.  Only NORMAL dependencies count: AUTO and
 *		INTERNAL ones are parts of the object (an index of its table).  The
 *		views of schema courier are there to be built on.
 */
static void
check_new_dependencies(Node *parsetree, int first)
{
	GuardCtx	ctx;
	Relation	depRel;
	int			i;

	memset(&ctx, 0, sizeof(ctx));
	if (!IsTransactionState() || !guard_context(parsetree, &ctx))
		return;

	CommandCounterIncrement();
	depRel = table_open(DependRelationId, AccessShareLock);
	for (i = first; i < n_guard_objects; i++)
	{
		ObjectAddress obj = guard_objects[i];

		if (obj.classId == AttrDefaultRelationId)
		{
			/* the hook names a default by its table: check each default */
			Relation	adRel = table_open(AttrDefaultRelationId, AccessShareLock);
			ScanKeyData key;
			SysScanDesc scan;
			HeapTuple	tup;

			ScanKeyInit(&key, Anum_pg_attrdef_adrelid, BTEqualStrategyNumber, F_OIDEQ,
						ObjectIdGetDatum(obj.objectId));
			scan = systable_beginscan(adRel, AttrDefaultIndexId, true, NULL, 1, &key);
			while (HeapTupleIsValid(tup = systable_getnext(scan)))
			{
				obj.objectId = ((Form_pg_attrdef) GETSTRUCT(tup))->oid;
				check_object_dependencies(depRel, obj, &ctx, NULL);
			}
			systable_endscan(scan);
			table_close(adRel, AccessShareLock);
		}
		else
			check_object_dependencies(depRel, obj, &ctx, NULL);
	}
	table_close(depRel, AccessShareLock);
}

/*
 * check_object_dependencies
 *		check_new_dependencies for one object.
 */
static void
check_object_dependencies(Relation depRel, ObjectAddress obj, GuardCtx *ctx, Snapshot snap)
{
	ScanKeyData key[2];
	SysScanDesc scan;
	HeapTuple	tup;

	ScanKeyInit(&key[0], Anum_pg_depend_classid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(obj.classId));
	ScanKeyInit(&key[1], Anum_pg_depend_objid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(obj.objectId));
	scan = systable_beginscan(depRel, DependDependerIndexId, true, snap, 2, key);
	while (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Form_pg_depend dep = (Form_pg_depend) GETSTRUCT(tup);
		Oid			relid;
		char	   *what;

		if (dep->deptype != DEPENDENCY_NORMAL)
			continue;
		relid = internal_relation_of(dep->refclassid, dep->refobjid, ctx);
		if (!OidIsValid(relid) || object_is_ours(&obj, ctx))
			continue;
		obj.objectSubId = dep->objsubid;
		/* (an index being created concurrently is not in the caches yet) */
		what = getObjectDescription(&obj, true);
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("%s may not depend on relation \"%s\"",
						what ? what : "an index being created",
						quote_qualified_identifier(COURIER_SCHEMA, get_rel_name(relid))),
				 errdetail("pg_courier drops its segments and sequences when retention, "
						   "a purge or drop_topic says so; an object that depends on one "
						   "would stop that."),
				 errhint("Read messages through pg_courier's functions and the views of "
						 "schema courier; see \"What you may do to pg_courier's "
						 "relations\" in docs/operations.md.")));
	}
	systable_endscan(scan);
}

/*
 * internal_relation_of
 *		The relation of schema courier, other than a view or a composite
 *		type, that a referenced object is or is the row type (or the array
 *		of the row type) of; InvalidOid if none.
 */
static Oid
internal_relation_of(Oid classId, Oid objectId, GuardCtx *ctx)
{
	Oid			relid = InvalidOid;
	char		relkind;

	if (classId == RelationRelationId)
		relid = objectId;
	else if (classId == TypeRelationId)
	{
		Oid			elem = get_element_type(objectId);

		relid = get_typ_typrelid(OidIsValid(elem) ? elem : objectId);
	}
	if (!OidIsValid(relid) || get_rel_namespace(relid) != ctx->nspoid)
		return InvalidOid;
	relkind = get_rel_relkind(relid);
	if (relkind == RELKIND_VIEW || relkind == RELKIND_COMPOSITE_TYPE)
		return InvalidOid;
	return relid;
}

/*
 * object_is_ours
 *		A relation or type of schema courier (a restored segment's parts), or
 *		a member of the extension.
 */
static bool
object_is_ours(const ObjectAddress *obj, GuardCtx *ctx)
{
	if (obj->classId == RelationRelationId &&
		get_rel_namespace(obj->objectId) == ctx->nspoid)
		return true;
	if (obj->classId == TypeRelationId)
	{
		HeapTuple	tup = SearchSysCache1(TYPEOID, ObjectIdGetDatum(obj->objectId));
		bool		ours = false;

		if (HeapTupleIsValid(tup))
		{
			ours = ((Form_pg_type) GETSTRUCT(tup))->typnamespace == ctx->nspoid;
			ReleaseSysCache(tup);
		}
		if (ours)
			return true;
	}
	return getExtensionOfObject(obj->classId, obj->objectId) == ctx->extoid;
}

