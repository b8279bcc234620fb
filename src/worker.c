/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  The background workers: one launcher for the cluster and one worker
 *	  per database that has the extension.
 *
 * The launcher is a static background worker (started after recovery, so
 * never on a standby; a promoted standby starts it).  It connects to no
 * database, reads pg_database, and starts a dynamic worker for each
 * database allowed by courier.databases.  A worker that finds no
 * pg_courier extension in its database exits and is not started again
 * until a backend of that database uses pg_courier (CourierRequireWorker)
 * -- so databases without the extension cost nothing.  A worker that dies
 * is started again by the launcher at its next round.
 *
 * A database worker is a thin loop around the maintenance jobs (maint.c):
 * every courier.worker_naptime it runs one round for every topic and group,
 * each job in its own short transaction, with errors logged and the loop
 * going on.  Its loop memory is reset every round.  It waits on its latch
 * with WL_EXIT_ON_PM_DEATH and reloads the configuration on SIGHUP.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "commands/extension.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/varlena.h"

#include "pg_courier.h"

PGDLLEXPORT void CourierLauncherMain(Datum main_arg);
PGDLLEXPORT void CourierWorkerMain(Datum main_arg);

#define LAUNCHER_NAPTIME_MS	5000
#define RESTART_DELAY_USEC	(INT64CONST(5) * USECS_PER_SEC)

typedef struct DbEntry
{
	Oid			oid;
	char		name[NAMEDATALEN];
} DbEntry;

static BackgroundWorkerHandle *handles[COURIER_MAX_DB_WORKERS];

static List *list_databases(void);
static bool database_wanted(const char *name);
static void launch(int slotno, Oid dbid);
static void maintain_database(MemoryContext loop_cxt);
static bool extension_present(void);

/*
 * CourierWorkerInit
 *		Register the launcher (from _PG_init).
 */
void
CourierWorkerInit(void)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 5;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "pg_courier");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "CourierLauncherMain");
	snprintf(worker.bgw_name, BGW_MAXLEN, "pg_courier launcher");
	snprintf(worker.bgw_type, BGW_MAXLEN, "pg_courier launcher");
	RegisterBackgroundWorker(&worker);
}

/*
 * CourierRequireWorker
 *		A backend of this database uses pg_courier: make sure the launcher
 *		knows it should run a worker here.  Cheap enough for the hot path:
 *		a lock-free look at the slots, at most once a second.
 */
void
CourierRequireWorker(void)
{
	static TimestampTz last_check = 0;
	TimestampTz now;
	int			i;
	int			free_slot = -1;
	bool		wake = false;

	if (CourierState == NULL || !courier_worker_enabled)
		return;
	now = GetCurrentTransactionStartTimestamp();
	if (last_check != 0 && now - last_check < USECS_PER_SEC && now >= last_check)
		return;
	last_check = now;

	/* unlocked read: a running worker is all we want to see */
	for (i = 0; i < COURIER_MAX_DB_WORKERS; i++)
	{
		CourierWorkerSlot *s = &CourierState->workers[i];

		if (s->dbid == MyDatabaseId && s->pid > 0)
			return;
	}

	LWLockAcquire(CourierWorkerLock(), LW_EXCLUSIVE);
	for (i = 0; i < COURIER_MAX_DB_WORKERS; i++)
	{
		CourierWorkerSlot *s = &CourierState->workers[i];

		if (s->dbid == MyDatabaseId)
		{
			if (s->pid == 0 && !s->wanted)
			{
				s->wanted = true;
				wake = true;
			}
			free_slot = -2;
			break;
		}
		if (s->dbid == InvalidOid && free_slot == -1)
			free_slot = i;
	}
	if (free_slot >= 0)
	{
		CourierWorkerSlot *s = &CourierState->workers[free_slot];

		memset(s, 0, sizeof(*s));
		s->dbid = MyDatabaseId;
		s->wanted = true;
		wake = true;
	}
	LWLockRelease(CourierWorkerLock());
	if (wake && CourierState->launcher_latch != NULL)
		SetLatch(CourierState->launcher_latch);
}

/*
 * database_wanted
 *		Whether courier.databases lets us serve this database.
 */
static bool
database_wanted(const char *name)
{
	char	   *raw;
	List	   *names;
	ListCell   *lc;
	bool		result = false;

	if (courier_databases == NULL || courier_databases[0] == '\0' ||
		strcmp(courier_databases, "*") == 0)
		return true;
	raw = pstrdup(courier_databases);
	if (!SplitIdentifierString(raw, ',', &names))
		return false;
	foreach(lc, names)
		if (strcmp((char *) lfirst(lc), name) == 0)
			result = true;
	return result;
}

/*
 * list_databases
 *		Databases that accept connections (read from the shared catalog).
 */
static List *
list_databases(void)
{
	List	   *result = NIL;
	Relation	rel;
	SysScanDesc scan;
	HeapTuple	tup;
	MemoryContext outer = CurrentMemoryContext;

	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = systable_beginscan(rel, InvalidOid, false, NULL, 0, NULL);
	while (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);
		MemoryContext old;
		DbEntry    *e;

		if (!db->datallowconn || db->datconnlimit == -2)
			continue;
		old = MemoryContextSwitchTo(outer);
		e = palloc(sizeof(DbEntry));
		e->oid = db->oid;
		strlcpy(e->name, NameStr(db->datname), NAMEDATALEN);
		result = lappend(result, e);
		MemoryContextSwitchTo(old);
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	PopActiveSnapshot();
	CommitTransactionCommand();
	return result;
}

/*
 * launch
 *		Start the worker of one database.
 */
static void
launch(int slotno, Oid dbid)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "pg_courier");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "CourierWorkerMain");
	snprintf(worker.bgw_name, BGW_MAXLEN, "pg_courier worker for database %u", dbid);
	snprintf(worker.bgw_type, BGW_MAXLEN, "pg_courier worker");
	worker.bgw_main_arg = ObjectIdGetDatum(dbid);
	worker.bgw_notify_pid = MyProcPid;

	if (!RegisterDynamicBackgroundWorker(&worker, &handles[slotno]))
	{
		ereport(WARNING,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("pg_courier could not start a worker for database %u", dbid),
				 errhint("You might need to increase max_worker_processes.")));
		handles[slotno] = NULL;
		return;
	}
	CourierState->workers[slotno].last_start = GetCurrentTimestamp();
	CourierState->workers[slotno].pid = -1;	/* starting */
}

/*
 * CourierLauncherMain
 *		Entry point of the launcher.
 */
void
CourierLauncherMain(Datum main_arg)
{
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	CourierState->launcher_latch = MyLatch;
	CourierState->launcher_pid = MyProcPid;
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pgstat_report_appname("pg_courier launcher");

	for (;;)
	{
		List	   *dbs;
		ListCell   *lc;
		int			i;
		TimestampTz now = GetCurrentTimestamp();

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		/* notice workers that have stopped */
		LWLockAcquire(CourierWorkerLock(), LW_EXCLUSIVE);
		for (i = 0; i < COURIER_MAX_DB_WORKERS; i++)
		{
			pid_t		pid;

			if (handles[i] == NULL)
				continue;
			if (GetBackgroundWorkerPid(handles[i], &pid) == BGWH_STOPPED)
			{
				pfree(handles[i]);
				handles[i] = NULL;
				CourierState->workers[i].pid = 0;
			}
		}
		LWLockRelease(CourierWorkerLock());

		if (courier_worker_enabled)
		{
			dbs = list_databases();
			LWLockAcquire(CourierWorkerLock(), LW_EXCLUSIVE);
			foreach(lc, dbs)
			{
				DbEntry    *db = lfirst(lc);
				int			slotno = -1;
				CourierWorkerSlot *s;

				if (!database_wanted(db->name))
					continue;
				for (i = 0; i < COURIER_MAX_DB_WORKERS; i++)
					if (CourierState->workers[i].dbid == db->oid)
						slotno = i;
				if (slotno < 0)
				{
					for (i = 0; i < COURIER_MAX_DB_WORKERS; i++)
						if (CourierState->workers[i].dbid == InvalidOid)
						{
							slotno = i;
							memset(&CourierState->workers[i], 0, sizeof(CourierWorkerSlot));
							CourierState->workers[i].dbid = db->oid;
							break;
						}
				}
				if (slotno < 0)
					continue;	/* more databases than slots */
				s = &CourierState->workers[slotno];
				if (s->pid != 0 || handles[slotno] != NULL)
					continue;	/* running */
				if (s->no_extension && !s->wanted)
					continue;	/* nothing to do there */
				if (s->last_start != 0 && now - s->last_start < RESTART_DELAY_USEC && !s->wanted)
					continue;	/* died recently: give it a moment */
				s->wanted = false;
				launch(slotno, db->oid);
			}
			LWLockRelease(CourierWorkerLock());
			list_free_deep(dbs);
		}

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 LAUNCHER_NAPTIME_MS, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

/*
 * extension_present
 *		Whether pg_courier is installed (and committed) in this database.
 *		Called inside a transaction.
 */
static bool
extension_present(void)
{
	return OidIsValid(get_extension_oid("pg_courier", true));
}

/*
 * maintain_database
 *		One round of every maintenance job, each in its own transaction.
 */
static void
maintain_database(MemoryContext loop_cxt)
{
	List	   *topics;
	ListCell   *lc;
	CourierMaintStats st;
	bool		present;

	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	present = extension_present();
	topics = NIL;
	if (present)
	{
		MemoryContext old;
		List	   *ids = CourierAllTopics();

		old = MemoryContextSwitchTo(loop_cxt);
		topics = list_copy(ids);
		MemoryContextSwitchTo(old);
	}
	PopActiveSnapshot();
	CommitTransactionCommand();

	if (!present)
	{
		LWLockAcquire(CourierWorkerLock(), LW_EXCLUSIVE);
		{
			int			i;

			for (i = 0; i < COURIER_MAX_DB_WORKERS; i++)
				if (CourierState->workers[i].dbid == MyDatabaseId)
				{
					CourierState->workers[i].no_extension = true;
					CourierState->workers[i].pid = 0;
				}
		}
		LWLockRelease(CourierWorkerLock());
		proc_exit(0);
	}

	foreach(lc, topics)
	{
		int32		topic_id = lfirst_int(lc);
		List	   *groups = NIL;
		ListCell   *lc2;
		int			step;

		/* step 0: list the groups; step 1..n: one group each; last: the topic */
		for (step = 0;; step++)
		{
			bool		done = false;

			MemoryContextSwitchTo(loop_cxt);
			PG_TRY();
			{
				CourierTopic *topic;

				SetCurrentStatementStartTimestamp();
				StartTransactionCommand();
				PushActiveSnapshot(GetTransactionSnapshot());
				pgstat_report_activity(STATE_RUNNING, "pg_courier maintenance");
				memset(&st, 0, sizeof(st));
				topic = CourierGetTopicById(topic_id);
				if (topic == NULL)
					done = true;
				else if (step == 0)
				{
					MemoryContext old = MemoryContextSwitchTo(loop_cxt);

					groups = list_copy(CourierTopicGroups(topic_id));
					MemoryContextSwitchTo(old);
				}
				else if (step <= list_length(groups))
				{
					CourierGroup *group = CourierGetGroupById(list_nth_int(groups, step - 1));

					if (group != NULL)
						CourierMaintainGroup(topic, group, GetCurrentTimestamp(), &st);
				}
				else
				{
					CourierMaintainTopic(topic, GetCurrentTimestamp(), &st);
					done = true;
				}
				PopActiveSnapshot();
				CommitTransactionCommand();
				pgstat_report_stat(false);
				pgstat_report_activity(STATE_IDLE, NULL);
			}
			PG_CATCH();
			{
				MemoryContextSwitchTo(loop_cxt);
				EmitErrorReport();
				FlushErrorState();
				AbortCurrentTransaction();
				pgstat_report_activity(STATE_IDLE, NULL);
				done = (step > list_length(groups));
			}
			PG_END_TRY();
			if (done)
				break;
		}
		(void) lc2;
	}
}

/*
 * CourierWorkerMain
 *		Entry point of a database worker.
 */
void
CourierWorkerMain(Datum main_arg)
{
	Oid			dbid = DatumGetObjectId(main_arg);
	MemoryContext loop_cxt;
	int			i;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(dbid, InvalidOid, 0);
	pgstat_report_appname("pg_courier worker");

	LWLockAcquire(CourierWorkerLock(), LW_EXCLUSIVE);
	for (i = 0; i < COURIER_MAX_DB_WORKERS; i++)
		if (CourierState->workers[i].dbid == dbid)
		{
			CourierState->workers[i].pid = MyProcPid;
			CourierState->workers[i].no_extension = false;
		}
	LWLockRelease(CourierWorkerLock());

	ereport(LOG, (errmsg("pg_courier worker started for database %u", dbid)));

	loop_cxt = AllocSetContextCreate(TopMemoryContext, "pg_courier worker loop",
									 ALLOCSET_DEFAULT_SIZES);
	for (;;)
	{
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		if (!courier_worker_enabled)
			proc_exit(0);

		MemoryContextSwitchTo(loop_cxt);
		maintain_database(loop_cxt);
		MemoryContextSwitchTo(TopMemoryContext);
		MemoryContextReset(loop_cxt);

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 courier_worker_naptime, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
