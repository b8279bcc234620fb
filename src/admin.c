/*-------------------------------------------------------------------------
 *
 * admin.c
 *	  Small C helpers behind the PL/pgSQL administration functions of the
 *	  install script (create_topic, drop_topic, create_group, ...).
 *
 * Those functions do their work in SQL; these helpers give them what SQL
 * cannot: name validation shared with the C entry points, pg_courier's own
 * heavyweight locks, and end-of-transaction work (cache invalidation and
 * removal of shared entries, see xact.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/inval.h"

#include "pg_courier.h"

PG_FUNCTION_INFO_V1(courier_validate_name);
PG_FUNCTION_INFO_V1(courier_ddl_changed);
PG_FUNCTION_INFO_V1(courier_forget);
PG_FUNCTION_INFO_V1(courier_lock);
PG_FUNCTION_INFO_V1(courier_created);
PG_FUNCTION_INFO_V1(courier_wake);
PG_FUNCTION_INFO_V1(courier_promote_keys);
PG_FUNCTION_INFO_V1(courier_ordering_key);

/*
 * courier_validate_name
 *		_validate_name(what, name): raise an error for a bad name, or for
 *		a topic that another Citus node owns (citus.c).
 */
Datum
courier_validate_name(PG_FUNCTION_ARGS)
{
	char	   *what = PG_ARGISNULL(0) ? "object" : text_to_cstring(PG_GETARG_TEXT_PP(0));

	char	   *name = PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1));

	CourierValidateName(what, name);
	/* every PL/pgSQL function naming a topic comes here first */
	if (strcmp(what, "topic") == 0)
		CourierCitusCheckTopic(name);
	PG_RETURN_VOID();
}

/*
 * courier_ddl_changed
 *		_ddl_changed(topic_id, group_id): this transaction changed the topic
 *		(its row, segments or groups), or else the group: every backend
 *		reloads its catalog cache once this transaction commits, ours sees
 *		the change at its next lookup (catalog.c).
 */
Datum
courier_ddl_changed(PG_FUNCTION_ARGS)
{
	/*
	 * 0.1.0's SQL declares _ddl_changed() without arguments, and runs until
	 * ALTER EXTENSION UPDATE: no argument means "anything changed".
	 */
	if (PG_NARGS() < 2)
		CourierCatalogChanged(0, 0);
	else
		CourierCatalogChanged(PG_ARGISNULL(0) ? 0 : PG_GETARG_INT32(0),
							  PG_ARGISNULL(1) ? 0 : PG_GETARG_INT32(1));
	CourierRequireWorker();
	PG_RETURN_VOID();
}

/*
 * courier_forget
 *		_forget(topic_id, group_id): drop shared state of a dropped topic or
 *		group at commit.
 */
Datum
courier_forget(PG_FUNCTION_ARGS)
{
	CourierForgetAtCommit(PG_ARGISNULL(0) ? 0 : PG_GETARG_INT32(0),
						  PG_ARGISNULL(1) ? 0 : PG_GETARG_INT32(1));
	PG_RETURN_VOID();
}

/*
 * courier_created
 *		_created(topic_id, group_id): the topic or group was created by this
 *		transaction; forget its shared entry if the transaction rolls back.
 */
Datum
courier_created(PG_FUNCTION_ARGS)
{
	CourierUndoAtAbort(PG_ARGISNULL(0) ? 0 : PG_GETARG_INT32(0),
					   PG_ARGISNULL(1) ? 0 : PG_GETARG_INT32(1));
	PG_RETURN_VOID();
}

/*
 * courier_lock
 *		_lock(kind, id): take pg_courier's lock exclusively until commit.
 *		kind 1 = group existence, 2 = group claim, 3 = topic existence,
 *		4 = group existence in share mode (keeps the group from being dropped),
 *		5 = topic existence in share mode (keeps the topic from being dropped).
 *		Returns whether the group or topic still exists once the lock is
 *		held (true for the claim lock).
 */
Datum
courier_lock(PG_FUNCTION_ARGS)
{
	int32		kind = PG_GETARG_INT32(0);
	int32		id = PG_GETARG_INT32(1);

	switch (kind)
	{
		case 1:
			CourierLockGroup(id, AccessExclusiveLock);
			break;
		case 2:
			CourierClaimLock(id);
			break;
		case 3:
			CourierLockTopic(id, AccessExclusiveLock);
			break;
		case 4:
			CourierLockGroup(id, AccessShareLock);
			break;
		case 5:
			CourierLockTopic(id, AccessShareLock);
			break;
		default:
			elog(ERROR, "unknown pg_courier lock kind %d", kind);
	}

	/*
	 * Whatever held the lock may have changed the catalog meanwhile.  The
	 * cache reloads under a fresh snapshot (catalog.c), so it sees a drop
	 * that committed while we waited even where the caller's REPEATABLE
	 * READ snapshot still shows the row.
	 */
	AcceptInvalidationMessages();
	if (kind == 1 || kind == 4)
		PG_RETURN_BOOL(CourierExistsNow(true, id));
	if (kind == 3 || kind == 5)
		PG_RETURN_BOOL(CourierExistsNow(false, id));
	PG_RETURN_BOOL(true);
}

/*
 * courier_wake
 *		_wake(topic_id): wake the topic's waiting receivers at commit.
 */
Datum
courier_wake(PG_FUNCTION_ARGS)
{
	CourierWakeAtCommit(PG_GETARG_INT32(0));
	PG_RETURN_VOID();
}

/*
 * courier_promote_keys
 *		_promote_keys(topic_id, group_id, okeys): the next message of each
 *		key becomes its head if the key has none (CourierPromoteNext).
 *		Called by redrive, which queues the messages it gives back.
 */
Datum
courier_promote_keys(PG_FUNCTION_ARGS)
{
	CourierTopic *topic = CourierGetTopicById(PG_GETARG_INT32(0));
	CourierGroup *group = CourierGetGroupById(PG_GETARG_INT32(1));
	ArrayType  *arr = PG_GETARG_ARRAYTYPE_P(2);
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	int			i;

	if (topic == NULL || group == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("%s with id %d does not exist", topic == NULL ? "topic" : "group",
						topic == NULL ? PG_GETARG_INT32(0) : PG_GETARG_INT32(1))));
	if (group->topic_id != topic->topic_id)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("group %d does not belong to topic %d", group->group_id, topic->topic_id)));
	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	for (i = 0; i < n; i++)
		if (!nulls[i])
			CourierPromoteNext(topic, group, TextDatumGetCString(elems[i]));
	PG_RETURN_VOID();
}

/*
 * courier_ordering_key
 *		_ordering_key(keys) -> the ordering key of a message: the first
 *		element of keys, whatever the array's lower bound (the one
 *		definition SQL and C share).
 */
Datum
courier_ordering_key(PG_FUNCTION_ARGS)
{
	char	   *okey;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	okey = CourierOrderingKey(PG_GETARG_DATUM(0), false);
	if (okey == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(okey));
}
