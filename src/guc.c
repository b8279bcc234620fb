/*-------------------------------------------------------------------------
 *
 * guc.c
 *	  The courier.* configuration parameters.
 *
 * Sizes of shared structures are PGC_POSTMASTER; the worker's timing and the
 * per-call limits can be changed at any time.  The "courier" prefix is
 * reserved, so a misspelt parameter is reported instead of silently ignored.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/lock.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/varlena.h"

#include "pg_courier.h"

int			courier_max_topics = 1024;
int			courier_max_groups = 4096;
int			courier_max_body_size = 1024 * 1024;
int			courier_scan_limit = 10000;
int			courier_delay_spans = COURIER_MAX_DEFERRED;
int			courier_segment_size = 1000000;
int			courier_worker_naptime = 1000;
int			courier_maintenance_batch = 1000;
int			courier_vacuum_threshold = 1000;
char	   *courier_databases = NULL;
bool		courier_worker_enabled = true;
int			courier_max_workers = 3;
int			courier_max_databases = 1024;
bool		courier_test_pauses = false;

/*
 * check_databases
 *		courier.databases must be '', '*' or a list of names.
 */
static bool
check_databases(char **newval, void **extra, GucSource source)
{
	char	   *raw;
	List	   *names;
	bool		ok;

	if (*newval == NULL || (*newval)[0] == '\0' || strcmp(*newval, "*") == 0)
		return true;
	raw = pstrdup(*newval);
	ok = SplitIdentifierString(raw, ',', &names);
	if (!ok)
		GUC_check_errdetail("List syntax is invalid.");
	list_free(names);
	pfree(raw);
	return ok;
}

/*
 * check_test_pauses
 *		courier.test_pauses is turned on only by SET in the session that is
 *		to pause: not in the configuration file, a role's or database's
 *		settings or connection options, where it would make every call of
 *		every session pause while anyone holds the advisory lock.
 */
static bool
check_test_pauses(bool *newval, void **extra, GucSource source)
{
	if (*newval && source != PGC_S_SESSION)
	{
		GUC_check_errdetail("courier.test_pauses can only be turned on with SET.");
		return false;
	}
	return true;
}

/*
 * CourierTestPause
 *		With courier.test_pauses on (superuser only, for the isolation
 *		specs), wait at pause point `point` while another session holds
 *		pg_advisory_lock(COURIER_TEST_PAUSE_KEY, point): a lock wait, which
 *		isolationtester sees, to stop a call between two of its steps.
 */
void
CourierTestPause(int point)
{
	LOCKTAG		tag;

	if (!courier_test_pauses)
		return;
	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, COURIER_TEST_PAUSE_KEY, point, 2);
	(void) LockAcquire(&tag, ShareLock, false, false);
	LockRelease(&tag, ShareLock, false);
}

/*
 * CourierDefineGucs
 *		Define every courier.* parameter and reserve the prefix.
 */
void
CourierDefineGucs(void)
{
	DefineCustomIntVariable("courier.max_topics",
							"Maximum number of topics, over all databases.",
							"Sizes a shared-memory table; takes effect at server start.",
							&courier_max_topics,
							1024, 16, 1000000,
							PGC_POSTMASTER, 0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("courier.max_groups",
							"Maximum number of consumer groups, over all databases.",
							"Sizes a shared-memory table; takes effect at server start.",
							&courier_max_groups,
							4096, 16, 1000000,
							PGC_POSTMASTER, 0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("courier.max_body_size",
							"Largest message accepted by send, in bytes (body and headers together).",
							NULL,
							&courier_max_body_size,
							1024 * 1024, 1024, MaxAllocSize / 2,
							PGC_SUSET, GUC_UNIT_BYTE,
							NULL, NULL, NULL);

	DefineCustomIntVariable("courier.delay_spans",
							"Most deferred spans of delayed messages a group keeps in shared memory.",
							"Delayed messages a receive meets before their time wait in these spans "
							"and are handed out in batches when due; beyond them, and with 0, each "
							"waits in a row of the lease table.",
							&courier_delay_spans,
							COURIER_MAX_DEFERRED, 0, COURIER_MAX_DEFERRED,
							PGC_SUSET, 0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("courier.scan_limit",
							"Most log entries one receive examines before it returns.",
							"Bounds the work of a receive on a group whose filter matches few messages.",
							&courier_scan_limit,
							10000, 100, 1000000,
							PGC_SUSET, 0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("courier.stats_exact_limit",
							"Most log ids the views count exactly for one topic or group.",
							"Above it, courier.topics and courier.groups show estimates "
							"(counts_exact / backlog_exact false).",
							&courier_stats_exact_limit,
							10000, 0, 100000000,
							PGC_USERSET, 0,
							NULL, NULL, NULL);

	DefineCustomBoolVariable("courier.citus_guard",
							 "On Citus, refuse calls for topics another node owns, and shard moves "
							 "that would leave topics behind.",
							 "Turn off only to clean up stray topics or to move shards of topics "
							 "that were emptied first (docs/citus.md).",
							 &courier_citus_guard,
							 true,
							 PGC_SUSET, 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("courier.segment_size",
							"Number of message ids per log segment before the worker starts a new one.",
							NULL,
							&courier_segment_size,
							1000000, 10, INT_MAX,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("courier.worker_naptime",
							"Time the background worker sleeps between maintenance rounds.",
							NULL,
							&courier_worker_naptime,
							1000, 10, 3600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("courier.maintenance_batch",
							"Most rows one maintenance step handles per group before it commits.",
							NULL,
							&courier_maintenance_batch,
							1000, 1, 1000000,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("courier.vacuum_threshold",
							"Dead rows in courier.claim or courier.lease after which the background worker vacuums the table.",
							"0 leaves them to autovacuum.",
							&courier_vacuum_threshold,
							1000, 0, INT_MAX,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);

	DefineCustomStringVariable("courier.databases",
							   "Databases served by the background worker ('' or '*' means every database with the extension).",
							   NULL,
							   &courier_databases,
							   "",
							   PGC_SIGHUP, 0,
							   check_databases, NULL, NULL);

	DefineCustomIntVariable("courier.max_workers",
							"Most database workers running at the same time.",
							"The launcher visits every database in turn with at most this many "
							"workers; they count against max_worker_processes.",
							&courier_max_workers,
							3, 1, COURIER_MAX_DB_WORKERS,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("courier.max_databases",
							"Most databases with pg_courier whose maintenance status is kept.",
							"Sizes a shared-memory table; takes effect at server start.  Databases "
							"beyond it are still maintained, but courier._maintenance_status() "
							"knows nothing about them.",
							&courier_max_databases,
							1024, 1, 100000,
							PGC_POSTMASTER, 0,
							NULL, NULL, NULL);

	DefineCustomBoolVariable("courier.worker",
							 "Runs the background worker (delays, retries, dead letters, retention).",
							 NULL,
							 &courier_worker_enabled,
							 true,
							 PGC_SIGHUP, 0,
							 NULL, NULL, NULL);

	DefineCustomBoolVariable("courier.test_pauses",
							 "Test only: pauses at fixed points of some calls (CourierTestPause).",
							 NULL,
							 &courier_test_pauses,
							 false,
							 PGC_SUSET, GUC_NOT_IN_SAMPLE | GUC_NO_SHOW_ALL,
							 check_test_pauses, NULL, NULL);

	MarkGUCPrefixReserved("courier");
}
