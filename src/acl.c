/*-------------------------------------------------------------------------
 *
 * acl.c
 *	  Per-topic privileges: send, receive and admin.
 *
 * A topic's owner and ACL are those of its sequence, courier.seq_<id>:
 * pg_class.relowner and pg_class.relacl.  So PostgreSQL itself tracks them
 * in pg_shdepend, as for any table: DROP ROLE is refused while a role owns
 * a topic or holds a privilege on one ("owner of sequence courier.seq_3",
 * "privileges for sequence courier.seq_3"), REASSIGN OWNED hands topics to
 * another role, DROP OWNED revokes the role's topic privileges and drops
 * the topics it owns (guard.c drops them properly first), and pg_dump
 * writes ALTER SEQUENCE ... OWNER TO and GRANT ... ON SEQUENCE with role
 * *names*.  The privileges are sequence privileges, shown to users only as
 * names through courier.grant / courier.revoke / courier.privileges:
 *
 *		send	= USAGE ('U')	send, send_batch
 *		receive = SELECT ('r')	receive, ack, nack, set_visibility, peek,
 *								find, the topic's dead letters
 *		admin	= UPDATE ('w')	group DDL, alter_topic, redrive, purges,
 *								seek, pause/resume, grant/revoke
 *
 * What they allow on the sequence itself is harmless to the topic: SELECT
 * reads its last value, USAGE and UPDATE nextval() (a gap in the ids, as a
 * rolled-back send leaves), and UPDATE and ownership setval(): send.c
 * never hands out an id at or below one it handed out before, whatever the
 * sequence says (take_ids).  courier.grant runs GRANT ... ON SEQUENCE as
 * the extension owner, a superuser, so every entry's grantor is the topic's
 * owner, as for GRANT by a superuser on a table.
 *
 * Superusers and the owner (and members of the owner's role, as for tables)
 * hold all three.  Dropping a topic needs ownership.
 *
 * Whose privileges: every SQL-callable function of pg_courier runs as the
 * extension owner to reach the tables -- declared SECURITY DEFINER, or, for
 * the message functions, switched in C (CourierRunAsOwner below) -- so the
 * current user inside it is the extension owner.  We check GetOuterUserId():
 * the role in effect outside any SECURITY DEFINER function -- the session
 * user, or the role chosen with SET ROLE.  Consequence: a user's own
 * SECURITY DEFINER wrapper around courier.send is checked as the role that
 * called the wrapper, not as the wrapper's owner.  Such a wrapper fails
 * closed (the caller needs the privilege itself); grant the topic
 * privilege to the callers, or to a role they are members of.  Inside a
 * security-restricted operation (ANALYZE evaluating an index expression,
 * REFRESH MATERIALIZED VIEW, ...) the outer user is whoever started the
 * operation, not the relation owner whose code runs, so every function that
 * needs the outer user refuses there (CourierOuterUser).
 *
 * The checks run in C right after the topic lookup of every entry point (so
 * a caller without privilege cannot even learn whether a group exists), and
 * in the PL/pgSQL administration functions through courier._check_privilege.
 * The owner and ACL are read from the syscache (the sequence's pg_class
 * row) at each check, never kept elsewhere: GRANT, REVOKE and owner changes
 * send the usual invalidations, so a grant or revoke takes effect in every
 * session at its next call after the granting transaction commits (and on
 * standbys when they replay it).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_class.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_proc.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/syscache.h"

#include "pg_courier.h"

PG_FUNCTION_INFO_V1(courier_check_privilege);
PG_FUNCTION_INFO_V1(courier_outer_user);
PG_FUNCTION_INFO_V1(courier_may_see);
PG_FUNCTION_INFO_V1(courier_has_topic_privilege);

#define PRIV_OWNER		((AclMode) 1 << 30) /* pseudo: ownership (drop_topic) */
#define PRIV_ANY		((AclMode) 1 << 29) /* pseudo: any of the three */

/*
 * privilege_mode
 *		A privilege name as aclitem bits, in any case (as GRANT and
 *		has_table_privilege take them).  allow_pseudo admits 'owner' and
 *		'any' (internal checks), allow_all admits 'all' (grant/revoke).
 */
static AclMode
privilege_mode(const char *name, bool allow_pseudo, bool allow_all)
{
	if (pg_strcasecmp(name, "send") == 0)
		return COURIER_PRIV_SEND;
	if (pg_strcasecmp(name, "receive") == 0)
		return COURIER_PRIV_RECEIVE;
	if (pg_strcasecmp(name, "admin") == 0)
		return COURIER_PRIV_ADMIN;
	if (allow_all && pg_strcasecmp(name, "all") == 0)
		return COURIER_PRIV_ALL;
	if (allow_pseudo && pg_strcasecmp(name, "owner") == 0)
		return PRIV_OWNER;
	if (allow_pseudo && pg_strcasecmp(name, "any") == 0)
		return PRIV_ANY;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown topic privilege \"%s\"", name),
			 errhint("Topic privileges are send, receive and admin%s.",
					 allow_all ? " (or all)" : "")));
	return 0;					/* keep the compiler quiet */
}

static const char *
privilege_name(AclMode mode)
{
	if (mode == PRIV_OWNER)
		return "ownership";
	if (mode == PRIV_ANY)
		return "any privilege";
	if (mode == COURIER_PRIV_SEND)
		return "send";
	if (mode == COURIER_PRIV_RECEIVE)
		return "receive";
	if (mode == COURIER_PRIV_ADMIN)
		return "admin";
	return "?";
}

/*
 * CourierTopicPrivilegeOk
 *		Does roleid hold mode on the topic?  Superusers and the owner (and
 *		the members of the owner role) hold everything.
 */
bool
CourierTopicPrivilegeOk(CourierTopic *topic, Oid roleid, AclMode mode)
{
	HeapTuple	tup;
	Oid			owner;
	Datum		d;
	bool		isnull;
	bool		ok;

	if (superuser_arg(roleid))
		return true;
	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(topic->seq_relid));
	if (!HeapTupleIsValid(tup))
		return false;			/* dropped under us: nobody but superusers */
	owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	if (has_privs_of_role(roleid, owner))
		ok = true;
	else if (mode == PRIV_OWNER)
		ok = false;
	else
	{
		d = SysCacheGetAttr(RELOID, tup, Anum_pg_class_relacl, &isnull);
		if (isnull)
			ok = false;			/* default ACL: the owner only */
		else
		{
			Acl		   *acl = DatumGetAclPCopy(d);

			if (mode == PRIV_ANY)
				mode = COURIER_PRIV_ALL;
			ok = aclmask(acl, roleid, owner, mode, ACLMASK_ANY) != 0;
			pfree(acl);
		}
	}
	ReleaseSysCache(tup);
	return ok;
}

/*
 * CourierCheckTopicPrivilege
 *		Raise 42501 naming the topic unless the outer user holds mode.
 */
void
CourierCheckTopicPrivilege(CourierTopic *topic, AclMode mode)
{
	Oid			roleid = CourierOuterUser();

	if (!CourierTopicPrivilegeOk(topic, roleid, mode))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for topic \"%s\"", topic->name),
				 errdetail("Role \"%s\" lacks the %s privilege on topic \"%s\".",
						   GetUserNameFromId(roleid, false), privilege_name(mode),
						   topic->name),
				 errhint(mode == PRIV_OWNER ?
						 "Only the topic's owner or a superuser may do this." :
						 "The topic's owner, a superuser or a role with admin on it can "
						 "grant it with courier.grant().")));
}

/*
 * CourierMaySeeTopic
 *		May the outer user see the topic in the views (counts, no bodies)?
 *		Any privilege on it, or membership in pg_monitor.
 */
bool
CourierMaySeeTopic(CourierTopic *topic)
{
	Oid			roleid = CourierOuterUser();

	return CourierTopicPrivilegeOk(topic, roleid, PRIV_ANY) ||
		has_privs_of_role(roleid, ROLE_PG_MONITOR);
}

/*
 * pinned_path
 *		The search path every statement of ours is parsed under, as an
 *		override: what the setting "pg_catalog, pg_temp" gives -- pg_catalog
 *		(the creation schema), then this backend's temporary schema if it
 *		has one.  palloc'd in the current context; free with free_path.
 */
static OverrideSearchPath *
pinned_path(void)
{
	OverrideSearchPath *path = palloc0(sizeof(OverrideSearchPath));
	Oid			temp_ns;
	Oid			temp_toast_ns;

	GetTempNamespaceState(&temp_ns, &temp_toast_ns);
	path->schemas = list_make1_oid(PG_CATALOG_NAMESPACE);
	if (OidIsValid(temp_ns))
		path->schemas = lappend_oid(path->schemas, temp_ns);
	return path;
}

static void
free_path(OverrideSearchPath *path)
{
	list_free(path->schemas);
	pfree(path);
}

/*
 * CourierPathIsPinned
 *		Is the active search path exactly the pinned one (SECURITY DEFINER
 *		... SET search_path, CourierRunAsOwner, the worker's session)?
 *		Looks, creates nothing (not even a temporary schema).
 */
bool
CourierPathIsPinned(void)
{
	OverrideSearchPath *path = pinned_path();
	bool		match = OverrideSearchPathMatchesCurrent(path);

	free_path(path);
	return match;
}

/*
 * CourierPushPinnedPath
 *		Make the pinned path the active one until PopOverrideSearchPath (or
 *		the end of the (sub)transaction).
 */
void
CourierPushPinnedPath(void)
{
	OverrideSearchPath *path = pinned_path();

	PushOverrideSearchPath(path);
	free_path(path);
}

/*
 * CourierOuterUser
 *		The role whose privileges pg_courier checks: GetOuterUserId() (see
 *		the file header).  Refused inside a security-restricted operation
 *		(an index expression evaluated by ANALYZE, VACUUM or CREATE INDEX, a
 *		REFRESH MATERIALIZED VIEW, ...): there PostgreSQL runs the code as
 *		the relation's owner but leaves the outer user alone, so the check
 *		would be made as whoever started the operation -- a superuser, or
 *		autovacuum -- and a role could have its index expression read or
 *		grant itself any topic.  Nothing of pg_courier has a use there.
 */
Oid
CourierOuterUser(void)
{
	if (InSecurityRestrictedOperation())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("pg_courier cannot be used inside a security-restricted operation"),
				 errdetail("Index expressions, materialized view refreshes, VACUUM, ANALYZE "
						   "and the like run as the relation's owner, while pg_courier "
						   "checks the session's role."),
				 errhint("Call pg_courier's functions from ordinary statements.")));
	return GetOuterUserId();
}

/*
 * CourierRunAsOwner
 *		Run body as SECURITY DEFINER SET search_path = pg_catalog, pg_temp
 *		would: as the function's owner (the extension owner), with the
 *		search path pinned, both undone when body returns.
 *
 *		The message functions (send, send_batch, receive, peek, ack, nack,
 *		set_visibility) are declared SECURITY INVOKER and call this instead.
 *		fmgr's SECURITY DEFINER wrapper does its set-up at every execution
 *		of the calling statement: a pg_proc lookup, the proconfig array
 *		applied through the GUC machinery (a nest level, search_path set and
 *		restored, each assignment making the next name lookup recompute the
 *		path), a measurable part of a one-message send (BENCHMARKS.md,
 *		fourteenth run).  Here the owner comes from the
 *		syscache and the path is an override (PushOverrideSearchPath), which
 *		changes no GUC: the same user, the same path, the same protection
 *		against objects a database owner plants in public or in a schema
 *		named after a role (DESIGN.md section 5).
 *
 *		The path is what the GUC setting "pg_catalog, pg_temp" gives: pg_catalog,
 *		then this backend's temporary schema if it has one (never searched
 *		for functions or operators), pg_catalog the creation schema.  Being
 *		the same list, plans kept by the SECURITY DEFINER functions stay
 *		valid here and vice versa (plancache compares the path).
 *
 *		An error inside body needs no cleanup from us: (sub)transaction
 *		abort restores the user and pops override paths pushed at its level,
 *		as it does for fmgr's wrapper.  body must return at the nesting
 *		level it was called at (SPI already insists on that).
 *
 *		One difference: parallel workers take the search_path *setting*
 *		from the leader, not an override.  So no statement of ours may run
 *		in a parallel plan: kept plans never do (CourierPrepare), and the
 *		one-off statements go through CourierExecuteOnce (lease.c), which
 *		plans without CURSOR_OPT_PARALLEL_OK.
 */
Datum
CourierRunAsOwner(FunctionCallInfo fcinfo, PGFunction body)
{
	Oid			fn_oid = fcinfo->flinfo ? fcinfo->flinfo->fn_oid : InvalidOid;
	HeapTuple	tup;
	Oid			owner;
	Oid			save_userid;
	int			save_sec;
	Datum		result;

	(void) CourierOuterUser();	/* refuses security-restricted operations */
	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn_oid));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for function %u", fn_oid);
	owner = ((Form_pg_proc) GETSTRUCT(tup))->proowner;
	ReleaseSysCache(tup);

	GetUserIdAndSecContext(&save_userid, &save_sec);
	SetUserIdAndSecContext(owner, save_sec | SECURITY_LOCAL_USERID_CHANGE);
	CourierPushPinnedPath();

	result = body(fcinfo);

	PopOverrideSearchPath();
	SetUserIdAndSecContext(save_userid, save_sec);
	return result;
}

/*
 * courier_check_privilege
 *		_check_privilege(topic_id, privilege): the check for the PL/pgSQL
 *		functions, right after they looked the topic up.  privilege is
 *		send, receive, admin or owner.
 */
Datum
courier_check_privilege(PG_FUNCTION_ARGS)
{
	int32		topic_id = PG_GETARG_INT32(0);
	AclMode		mode = privilege_mode(text_to_cstring(PG_GETARG_TEXT_PP(1)), true, false);
	CourierTopic *topic;

	/* the caller just read the id: a miss may be our cache lagging */
	if (!CourierExistsNow(false, topic_id))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("topic with id %d does not exist", topic_id)));
	topic = CourierFindTopicById(topic_id);
	CourierCheckTopicPrivilege(topic, mode);
	PG_RETURN_VOID();
}

/*
 * courier_may_see
 *		_may_see(topic_id) -> may the caller see the topic in the views
 *		(with_bodies: does it hold receive)?  False for unknown topics.
 */
Datum
courier_may_see(PG_FUNCTION_ARGS)
{
	int32		topic_id = PG_GETARG_INT32(0);
	bool		with_bodies = PG_GETARG_BOOL(1);
	CourierTopic *topic = CourierFindTopicById(topic_id);

	if (topic == NULL)
		PG_RETURN_BOOL(false);
	if (with_bodies)
		PG_RETURN_BOOL(CourierTopicPrivilegeOk(topic, CourierOuterUser(), COURIER_PRIV_RECEIVE));
	PG_RETURN_BOOL(CourierMaySeeTopic(topic));
}

/*
 * courier_outer_user
 *		_outer_user() -> the role whose privileges pg_courier checks (see the
 *		file header); create_topic records it as the owner.
 */
Datum
courier_outer_user(PG_FUNCTION_ARGS)
{
	PG_RETURN_OID(CourierOuterUser());
}

/*
 * courier_has_topic_privilege
 *		has_topic_privilege(topic, privilege, role) -> boolean
 *		(role NULL: the current outer user).  Unknown topics are an error.
 */
Datum
courier_has_topic_privilege(PG_FUNCTION_ARGS)
{
	char	   *topic_name = CourierTextArg(fcinfo, 0, "topic");
	AclMode		mode = privilege_mode(CourierTextArg(fcinfo, 1, "privilege"), false, false);
	Oid			roleid = PG_ARGISNULL(2) ? CourierOuterUser() : PG_GETARG_OID(2);
	CourierTopic *topic = CourierGetTopic(topic_name);

	PG_RETURN_BOOL(CourierTopicPrivilegeOk(topic, roleid, mode));
}
