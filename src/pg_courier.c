/*-------------------------------------------------------------------------
 *
 * pg_courier.c
 *	  Module entry point: the module magic and _PG_init, which only checks
 *	  how the library was loaded and hands off to each subsystem.
 *
 * pg_courier needs shared memory and a background worker, so it must be
 * loaded through shared_preload_libraries.  Loading it any other way (for
 * example by CREATE EXTENSION on a server that was not configured for it)
 * raises an error with a hint, so the extension cannot be half-installed.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"

#include "pg_courier.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

PG_FUNCTION_INFO_V1(courier_check_preloaded);

/*
 * _PG_init
 *		Refuse to load outside shared_preload_libraries, then let each
 *		subsystem register its GUCs, shared memory, hooks and worker.
 */
void
_PG_init(void)
{
	if (!process_shared_preload_libraries_in_progress)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pg_courier must be loaded via shared_preload_libraries"),
				 errhint("Add pg_courier to the shared_preload_libraries configuration "
						 "variable in postgresql.conf and restart the server.")));

	/* pg_upgrade runs the server in binary-upgrade mode: stay out of its way */
	if (IsBinaryUpgrade)
		return;

	CourierDefineGucs();
	CourierShmemInit();
	CourierCatalogInit();
	CourierGuardInit();			/* before CourierXactInit: see guard.c */
	CourierXactInit();
	CourierWalkInit();
	CourierWorkerInit();
	CourierCitusInit();
}

/*
 * courier_check_preloaded
 *		Called by the install script.  Reaching it means _PG_init accepted
 *		the way the library was loaded.
 */
Datum
courier_check_preloaded(PG_FUNCTION_ARGS)
{
	if (CourierState == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pg_courier must be loaded via shared_preload_libraries"),
				 errhint("Add pg_courier to the shared_preload_libraries configuration "
						 "variable in postgresql.conf and restart the server.")));
	PG_RETURN_VOID();
}
