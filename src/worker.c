/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  The background workers: a launcher and a bounded pool of database
 *	  workers that visit every database in turn (the way autovacuum's
 *	  launcher does), the maintenance status of each database, and the lock
 *	  that keeps maintenance rounds of one topic apart.
 *
 * Design
 * ------
 * The launcher is a static background worker with no database connection,
 * started after recovery (so never on a standby; a promoted standby starts
 * it).  At most every courier.worker_naptime (and at least every 5 s) it
 * reads pg_database and keeps, in its own memory, one entry per database
 * that accepts connections and is allowed by courier.databases: when its
 * next round is due and whether its last worker found no pg_courier there.
 * Whenever a pool slot is free it starts a dynamic worker for the database
 * that has been due the longest.  At most courier.max_workers (and never
 * more than max_worker_processes) run at a time, however many databases
 * there are; an entry and its slot go away with the database.
 *
 * A database worker connects to one database and runs a maintenance round
 * (maint.c's jobs for every topic and group, each step in its own short
 * transaction) every courier.worker_naptime.  It stays for as long as no
 * other database is waiting for a slot: when one is, the launcher asks the
 * longest-serving worker to leave after the round in progress ("yield"); a
 * worker still there YIELD_GRACE_MS later (stuck in a long round, a lock
 * wait) no longer counts as leaving, and the next one is asked.
 * So with no more databases than slots every database keeps its worker, and
 * with more of them each gets one round per turn, oldest-due first: no
 * database waits for more than ceil(databases / slots) rounds of others.
 * A database whose last rounds had nothing to do (nothing expired, moved,
 * compacted, rotated or dropped; no step skipped or failed) is due again
 * after 2, 4, then 8 naptimes instead of one: with more databases than
 * slots each visit is a process start, and idle databases would otherwise
 * keep the pool turning over for nothing.  The worker reports its count of
 * idle rounds in a row in its slot; one round with work resets it.
 *
 * A database without pg_courier costs one short visit (the worker looks the
 * extension up and leaves); it is visited again only once a backend there
 * uses pg_courier (CourierRequireWorker).  A worker that dies is replaced
 * at the database's next turn (after RETRY_DELAY_MS if it died before
 * finishing a round).  A worker leaves at once when someone waits for its
 * database to themselves (DROP DATABASE, CREATE DATABASE ... TEMPLATE, ALTER
 * DATABASE ... RENAME), which would otherwise fail after five seconds.
 *
 * Security: workers connect as the bootstrap superuser, so every session
 * pins search_path to "pg_catalog, pg_temp" (and a few settings a database
 * owner could otherwise choose for it through ALTER DATABASE ... SET) at
 * PGC_S_OVERRIDE, which neither the configuration file, nor per-database or
 * per-role settings, nor a reload can override, and checks it every round.
 * A database owner's objects in public or in a schema named like the
 * worker's role are never visible to the statements the worker runs.
 *
 * Shared state and locking
 * ------------------------
 * CourierPool lives in shared memory; CourierWorkerLock() protects all of it.
 *	- slots[]: one per running worker.  The launcher takes a free slot,
 *	  stamps it with a new serial number and registers the worker
 *	  (LAUNCHED); the worker attaches only if the serial passed to it still
 *	  matches (RUNNING), and marks the slot DONE with its result when it
 *	  exits; the launcher then frees it.  So a slot is never shared, even by
 *	  a worker that outlived a restarted launcher.
 *	- status[]: courier.max_databases entries, one per database where a
 *	  worker found pg_courier: when its last round started and finished and
 *	  how it ended, shown by courier._maintenance_status().  Workers write
 *	  them; the launcher frees the entries of dropped databases.
 *	- requests[]: databases whose backends found no status entry and ask
 *	  the launcher to look there again.
 *	- errors[]: worker errors logged recently, so that an error repeated
 *	  every round is logged once a minute with a count.
 * CourierRequireWorker reads status[].dbid without the lock: a stale answer
 * only delays or repeats a request.  Nobody errors while holding the lock.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_database.h"
#include "commands/extension.h"
#include "common/hashfn.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/varlena.h"

#include "pg_courier.h"

PGDLLEXPORT void CourierLauncherMain(Datum main_arg);
PGDLLEXPORT void CourierWorkerMain(Datum main_arg);

PG_FUNCTION_INFO_V1(courier_maintenance_status);

#define WORKER_SEARCH_PATH	"pg_catalog, pg_temp"
#define SCAN_MAX_MS			5000	/* pg_database is read at least this often */
#define SCAN_MIN_MS			100		/* ... and at most this often */
#define RETRY_DELAY_MS		5000	/* after a worker that failed before finishing a round */
#define RECLAIM_INTERVAL_MS	10000	/* the longest between two reclaim steps (reclaim_if_due) */
#define LAUNCH_TIMEOUT_MS	60000	/* a LAUNCHED slot the launcher has no handle for */
#define WORKER_CHECK_MS		1000	/* a sleeping worker looks around at least this often */
#define YIELD_GRACE_MS		10000	/* a worker asked to leave counts as leaving this long */
#define IDLE_BACKOFF_STEPS	3		/* an idle database is due after up to 2^3 naptimes */
#define ERROR_LOG_INTERVAL_MS 60000	/* an identical worker error is logged once per interval */
#define WARN_INTERVAL_MS	60000	/* launcher warnings */
#define MAX_REQUESTS		32
#define MAX_ERRORS_SEEN		32
#define STATUS_ERRLEN		200
#define ERROR_MSGLEN		120

typedef enum SlotState
{
	SLOT_FREE = 0,
	SLOT_LAUNCHED,				/* registered, the worker has not attached yet */
	SLOT_RUNNING,				/* the worker attached */
	SLOT_DONE					/* the worker exited; result says how */
} SlotState;

typedef enum WorkerResult
{
	WR_NONE = 0,				/* no round finished (failed start, crash, kill mid-round) */
	WR_ROUND_DONE,				/* finished at least one round */
	WR_NO_EXTENSION,			/* pg_courier is not installed there */
	WR_DB_BUSY					/* left because someone needs the database alone */
} WorkerResult;

typedef struct PoolSlot
{
	SlotState	state;
	uint32		serial;			/* changes at every launch */
	Oid			dbid;
	pid_t		pid;
	Latch	   *latch;			/* the worker's, once RUNNING */
	bool		yield;			/* launcher: leave after the round in progress */
	TimestampTz yield_at;		/* when yield was set */
	WorkerResult result;
	TimestampTz launched_at;
	TimestampTz round_finished; /* end of the worker's last round, or 0 */
	int			idle_rounds;	/* rounds in a row, up to round_finished, with nothing to do */
	bool		worked;			/* some round of this worker had work */
} PoolSlot;

typedef struct DbStatus
{
	Oid			dbid;			/* InvalidOid: free entry */
	TimestampTz last_started;	/* 0: never */
	TimestampTz last_finished;	/* 0: never */
	bool		failed;			/* the last finished round had errors */
	char		last_error[STATUS_ERRLEN];
	CourierVacuumState vacuum[COURIER_VACUUM_TABLES];	/* maint.c */
} DbStatus;

typedef struct ErrorSeen
{
	Oid			dbid;			/* InvalidOid: free entry */
	uint32		hash;			/* of SQLSTATE and message */
	TimestampTz last_logged;
	int64		suppressed;		/* occurrences not logged since last_logged */
	char		message[ERROR_MSGLEN];
} ErrorSeen;

typedef struct CourierPool
{
	Latch	   *launcher_latch;
	pid_t		launcher_pid;
	uint32		next_serial;
	PoolSlot	slots[COURIER_MAX_DB_WORKERS];
	Oid			requests[MAX_REQUESTS];
	ErrorSeen	errors[MAX_ERRORS_SEEN];
	TimestampTz status_full_warned;
	int			nstatus;
	DbStatus	status[FLEXIBLE_ARRAY_MEMBER];
} CourierPool;

static CourierPool *Pool = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* ---- launcher-local state ---- */

/* What the launcher knows of one database (key: oid) */
typedef struct DbSched
{
	Oid			oid;
	char		name[NAMEDATALEN];
	bool		seen;			/* found by the latest pg_database scan */
	bool		running;		/* a slot serves it */
	bool		no_extension;	/* its last worker found no pg_courier */
	int			idle_rounds;	/* its last rounds in a row with nothing to do */
	TimestampTz due;			/* its next round */
} DbSched;

static HTAB *db_sched = NULL;
static MemoryContext launcher_cxt = NULL;	/* db_sched and the handles */
static BackgroundWorkerHandle *handles[COURIER_MAX_DB_WORKERS];
static uint64 launcher_scans = 0;
static TimestampTz last_scan_at = 0;	/* when launcher_scan last read pg_database */
static TimestampTz launch_warned = 0;

/* ---- worker-local state ---- */

static int	my_slot = -1;
static uint32 my_serial = 0;
static bool round_open = false;
static bool round_worked = false;	/* this round did or skipped something (run_step) */
static int	idle_rounds = 0;	/* rounds in a row with nothing to do */
static bool stay_worked = false;	/* some round of this worker had work */

/* Errors of one round, for the status entry */
typedef struct RoundLog
{
	int			nerrors;
	char		first[STATUS_ERRLEN];
} RoundLog;

typedef enum StepKind
{
	STEP_TOPICS,				/* is the extension there; list the topics */
	STEP_RECLAIM,				/* give back the shared state of objects gone
								 * without our callbacks (shmem.c) */
	STEP_GROUPS,				/* list the groups of a topic */
	STEP_GROUP,					/* the jobs of one group */
	STEP_TOPIC,					/* the jobs of one topic */
	STEP_VACUUM					/* vacuum claim and lease if due (maint.c) */
} StepKind;

/* What a maintenance step is working on, for error context */
typedef struct StepInfo
{
	StepKind	kind;
	int32		topic_id;
	int32		group_id;
} StepInfo;

static Size pool_size(void);
static void pool_shmem_request(void);
static void pool_shmem_startup(void);
static int	status_find(Oid dbid);
static void launcher_detach(int code, Datum arg);
static void launcher_scan(TimestampTz now);
static void launcher_reap(TimestampTz now);
static int64 idle_pause(int idle_rounds);
static void launcher_shorten_dues(TimestampTz now);
static void launcher_take_requests(TimestampTz now, TimestampTz *next_scan);
static long launcher_schedule(TimestampTz now);
static bool launch(DbSched *db, TimestampTz now);
static void yield_workers(int count, bool all);
static void ask_to_leave(PoolSlot *s);
static void refresh_running(void);
static void yield_unlisted(void);
static int	due_cmp(const void *a, const void *b);
static void worker_detach(int code, Datum arg);
static void pin_session(void);
static bool database_busy(void);
static bool asked_to_leave(void);
static void set_result(WorkerResult result, bool round_done);
static bool worker_sleep(WorkerResult *result);
static WorkerResult maintain_database(MemoryContext cxt);
/* the database's CourierVacuumState, copied from and back to its status entry */
static CourierVacuumState vacuum_state[COURIER_VACUUM_TABLES];

/* the last STEP_GROUP compacted a full batch (see the maintenance round) */
static bool last_group_full = false;

#define MAX_GROUP_ROUNDS	8

static void reclaim_if_due(MemoryContext cxt, RoundLog *rl);
static bool run_step(StepKind kind, int32 topic_id, int32 group_id, MemoryContext cxt,
					 List **list, bool *present, RoundLog *rl);
static void step_error_context(void *arg);
static void handle_step_error(RoundLog *rl);
static bool error_should_log(ErrorData *edata, int64 *suppressed, TimestampTz *since);
static void flush_suppressed_errors(void);
static void status_begin(void);
static void vacuum_state_io(bool save);
static void worker_interrupts(void);
static void status_end(const RoundLog *rl, const char *cut_short);
static void status_forget(void);

/* ======================================================================
 * Shared memory
 * ====================================================================== */

/*
 * pool_size
 *		The pool: fixed part plus one status entry per courier.max_databases.
 */
static Size
pool_size(void)
{
	return add_size(offsetof(CourierPool, status),
					mul_size(courier_max_databases, sizeof(DbStatus)));
}

static void
pool_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(pool_size());
}

/*
 * pool_shmem_startup
 *		Create or attach to the pool (at start and after a crash restart,
 *		which starts it over empty).
 */
static void
pool_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	Pool = ShmemInitStruct("pg_courier worker pool", pool_size(), &found);
	if (!found)
	{
		memset(Pool, 0, pool_size());
		Pool->nstatus = courier_max_databases;
	}
	LWLockRelease(AddinShmemInitLock);
}

/*
 * status_find
 *		Index of the status entry of a database, or -1.  Caller holds the
 *		pool lock.
 */
static int
status_find(Oid dbid)
{
	int			i;

	for (i = 0; i < Pool->nstatus; i++)
		if (Pool->status[i].dbid == dbid)
			return i;
	return -1;
}

/*
 * CourierWorkerInit
 *		Reserve the pool's shared memory and register the launcher (from
 *		_PG_init, after the GUCs are defined).
 */
void
CourierWorkerInit(void)
{
	BackgroundWorker worker;

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = pool_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = pool_shmem_startup;

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
 *		A backend of this database uses pg_courier: if no worker has found
 *		the extension here yet, ask the launcher to look (promptly).  Cheap
 *		enough for the hot path: an unlocked look at the status entries, at
 *		most once a second.
 */
void
CourierRequireWorker(void)
{
	static TimestampTz last_check = 0;
	TimestampTz now;
	int			i;
	int			free_req = -1;
	bool		wake = false;

	if (Pool == NULL || !courier_worker_enabled)
		return;
	now = GetCurrentTransactionStartTimestamp();
	if (last_check != 0 && now - last_check < USECS_PER_SEC && now >= last_check)
		return;
	last_check = now;

	for (i = 0; i < Pool->nstatus; i++)
		if (Pool->status[i].dbid == MyDatabaseId)
			return;				/* a worker found the extension: known */

	LWLockAcquire(CourierWorkerLock(), LW_EXCLUSIVE);
	for (i = 0; i < MAX_REQUESTS; i++)
	{
		if (Pool->requests[i] == MyDatabaseId)
		{
			free_req = -2;		/* already asked */
			break;
		}
		if (Pool->requests[i] == InvalidOid && free_req == -1)
			free_req = i;
	}
	if (free_req >= 0)
	{
		Pool->requests[free_req] = MyDatabaseId;
		wake = true;
	}
	LWLockRelease(CourierWorkerLock());
	if (wake && Pool->launcher_latch != NULL)
		SetLatch(Pool->launcher_latch);
}

/*
 * CourierLockMaintenance
 *		Take the topic's maintenance lock until commit: rotation and reclaim
 *		of a topic must never run twice at once (two rounds would both
 *		create the next segment).  Take it before reading the topic, so that
 *		what the previous holder committed is seen.  Without wait, returns
 *		false when someone else holds it.
 */
bool
CourierLockMaintenance(int32 topic_id, bool wait)
{
	LOCKTAG		tag;

	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, (uint32) topic_id, 0, COURIER_LOCK_MAINT);
	if (LockAcquire(&tag, ExclusiveLock, false, !wait) == LOCKACQUIRE_NOT_AVAIL)
		return false;
	AcceptInvalidationMessages();
	return true;
}

/*
 * courier_maintenance_status
 *		_maintenance_status() -> (last_started, last_finished, last_error):
 *		when the worker last maintained the current database.  last_error
 *		is NULL when the last finished round had no error; all NULL when no
 *		worker has found the extension here since the server started.
 */
Datum
courier_maintenance_status(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[3];
	bool		nulls[3] = {true, true, true};
	DbStatus	st;
	int			idx = -1;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	tupdesc = BlessTupleDesc(tupdesc);

	if (Pool != NULL)
	{
		LWLockAcquire(CourierWorkerLock(), LW_SHARED);
		idx = status_find(MyDatabaseId);
		if (idx >= 0)
			st = Pool->status[idx];
		LWLockRelease(CourierWorkerLock());
	}
	if (idx >= 0)
	{
		if (st.last_started != 0)
		{
			values[0] = TimestampTzGetDatum(st.last_started);
			nulls[0] = false;
		}
		if (st.last_finished != 0)
		{
			values[1] = TimestampTzGetDatum(st.last_finished);
			nulls[1] = false;
			if (st.failed)
			{
				values[2] = CStringGetTextDatum(st.last_error);
				nulls[2] = false;
			}
		}
	}
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/* ======================================================================
 * The launcher
 * ====================================================================== */

/*
 * CourierLauncherMain
 *		Entry point of the launcher: reap finished workers, read
 *		pg_database now and then, start workers for the databases due, and
 *		sleep until the next one is due or a worker exits.  Everything a
 *		loop allocates lives in round_cxt, reset every loop.
 */
void
CourierLauncherMain(Datum main_arg)
{
	MemoryContext round_cxt;
	HASHCTL		ctl;
	TimestampTz next_scan = 0;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pgstat_report_appname("pg_courier launcher");

	LWLockAcquire(CourierWorkerLock(), LW_EXCLUSIVE);
	Pool->launcher_latch = MyLatch;
	Pool->launcher_pid = MyProcPid;
	LWLockRelease(CourierWorkerLock());
	before_shmem_exit(launcher_detach, 0);

	launcher_cxt = AllocSetContextCreate(TopMemoryContext, "pg_courier launcher",
										 ALLOCSET_DEFAULT_SIZES);
	round_cxt = AllocSetContextCreate(TopMemoryContext, "pg_courier launcher round",
									  ALLOCSET_DEFAULT_SIZES);
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(Oid);
	ctl.entrysize = sizeof(DbSched);
	ctl.hcxt = launcher_cxt;
	db_sched = hash_create("pg_courier databases", 64, &ctl,
						   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);

	for (;;)
	{
		TimestampTz now;
		long		timeout;
		char		activity[128];

		worker_interrupts();
		if (ConfigReloadPending)
		{
			int			old_naptime = courier_worker_naptime;

			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			next_scan = 0;		/* courier.databases may have changed */
			if (courier_worker_naptime < old_naptime)
				launcher_shorten_dues(GetCurrentTimestamp());
		}

		MemoryContextReset(round_cxt);
		MemoryContextSwitchTo(round_cxt);
		now = GetCurrentTimestamp();

		launcher_reap(now);
		if (now >= next_scan)
		{
			int			interval = Max(Min(courier_worker_naptime, SCAN_MAX_MS), SCAN_MIN_MS);

			launcher_scan(now);
			MemoryContextSwitchTo(round_cxt);	/* the scan's commit left it */
			next_scan = now + (int64) interval * 1000;
		}
		launcher_take_requests(now, &next_scan);
		timeout = launcher_schedule(now);
		if (next_scan <= now)
			timeout = 1;
		else
			timeout = Min(timeout, (long) ((next_scan - now + 999) / 1000));

		snprintf(activity, sizeof(activity),
				 "pg_courier launcher: %llu scans, %ld databases",
				 (unsigned long long) launcher_scans, hash_get_num_entries(db_sched));
		pgstat_report_activity(STATE_RUNNING, activity);

		MemoryContextSwitchTo(TopMemoryContext);
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 timeout, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

/*
 * launcher_detach
 *		The launcher exits: nobody is there to wake any more.
 */
static void
launcher_detach(int code, Datum arg)
{
	LWLockAcquire(CourierWorkerLock(), LW_EXCLUSIVE);
	if (Pool->launcher_pid == MyProcPid)
	{
		Pool->launcher_latch = NULL;
		Pool->launcher_pid = 0;
	}
	LWLockRelease(CourierWorkerLock());
}

/*
 * launcher_scan
 *		Read pg_database: add the databases allowed by courier.databases,
 *		forget those dropped or no longer allowed (and their status
 *		entries).  Allocates in the caller's (per-round) context.
 */
static void
launcher_scan(TimestampTz now)
{
	MemoryContext outer = CurrentMemoryContext;
	List	   *allowed = NIL;
	bool		all = true;
	Relation	rel;
	SysScanDesc scan;
	HeapTuple	tup;
	HASH_SEQ_STATUS hs;
	DbSched    *db;
	int			i;

	if (courier_databases != NULL && courier_databases[0] != '\0' &&
		strcmp(courier_databases, "*") != 0)
	{
		char	   *raw = pstrdup(courier_databases);

		all = false;
		if (!SplitIdentifierString(raw, ',', &allowed))
			allowed = NIL;		/* cannot happen: the GUC's check hook refuses it */
	}

	hash_seq_init(&hs, db_sched);
	while ((db = hash_seq_search(&hs)) != NULL)
		db->seen = false;

	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = systable_beginscan(rel, InvalidOid, false, NULL, 0, NULL);
	while (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Form_pg_database form = (Form_pg_database) GETSTRUCT(tup);
		bool		found;
		ListCell   *lc;
		bool		ok = all;

		if (!form->datallowconn || form->datconnlimit == -2)
			continue;			/* template0, or a half-dropped database */
		foreach(lc, allowed)
			if (strcmp((char *) lfirst(lc), NameStr(form->datname)) == 0)
				ok = true;
		if (!ok)
			continue;
		db = hash_search(db_sched, &form->oid, HASH_ENTER, &found);
		if (!found)
		{
			db->running = false;
			db->no_extension = false;
			db->idle_rounds = 0;
			db->due = now;		/* a first look */
		}
		strlcpy(db->name, NameStr(form->datname), NAMEDATALEN);
		db->seen = true;
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	PopActiveSnapshot();
	CommitTransactionCommand();
	MemoryContextSwitchTo(outer);

	/*
	 * Dropped or no longer allowed: its workers (ours, or a predecessor's
	 * that outlived a restart of the launcher) are asked to leave after
	 * their round, so a reload that takes a database out of
	 * courier.databases stops its maintenance.  The entry is forgotten once
	 * no slot serves the database; until then it stays, unseen, so that it
	 * is not launched again.
	 */
	yield_unlisted();
	refresh_running();
	hash_seq_init(&hs, db_sched);
	while ((db = hash_seq_search(&hs)) != NULL)
		if (!db->seen && !db->running)
			(void) hash_search(db_sched, &db->oid, HASH_REMOVE, NULL);

	LWLockAcquire(CourierWorkerLock(), LW_EXCLUSIVE);
	for (i = 0; i < Pool->nstatus; i++)
	{
		DbStatus   *st = &Pool->status[i];

		if (st->dbid != InvalidOid && hash_search(db_sched, &st->dbid, HASH_FIND, NULL) == NULL)
			memset(st, 0, sizeof(*st));
	}
	LWLockRelease(CourierWorkerLock());
	launcher_scans++;
	last_scan_at = now;
}

/*
 * idle_pause
 *		The pause, in microseconds, before the next round of a database
 *		whose last idle_rounds rounds had nothing to do: one naptime, then
 *		2, 4 and at most 8.  With more databases than slots every round
 *		there costs a process start (about 50 ms of CPU on a 2-core machine;
 *		twelve idle databases with two slots took half a core at the
 *		default naptime).
 */
static int64
idle_pause(int idle_rounds)
{
	return (int64) courier_worker_naptime * 1000 * (1 << Min(idle_rounds, IDLE_BACKOFF_STEPS));
}

/*
 * launcher_shorten_dues
 *		courier.worker_naptime was lowered: no database waits longer than the
 *		new naptime (times its idle back-off) from now.
 */
static void
launcher_shorten_dues(TimestampTz now)
{
	HASH_SEQ_STATUS hs;
	DbSched    *db;

	hash_seq_init(&hs, db_sched);
	while ((db = hash_seq_search(&hs)) != NULL)
	{
		TimestampTz bound = now + idle_pause(db->idle_rounds);

		if (db->due > bound)
			db->due = bound;
	}
}

/*
 * launcher_reap
 *		Free the slots of workers that have exited and note, for their
 *		database, when the next round is due.
 */
static void
launcher_reap(TimestampTz now)
{
	int			i;

	for (i = 0; i < COURIER_MAX_DB_WORKERS; i++)
	{
		PoolSlot   *slot = &Pool->slots[i];
		bool		stopped = false;
		Oid			dbid;
		WorkerResult result;
		TimestampTz finished;
		int			idle;
		bool		worked;
		DbSched    *db;

		LWLockAcquire(CourierWorkerLock(), LW_EXCLUSIVE);
		if (slot->state == SLOT_FREE)
		{
			LWLockRelease(CourierWorkerLock());
			continue;
		}
		if (handles[i] != NULL)
		{
			pid_t		pid;
			BgwHandleStatus hst = GetBackgroundWorkerPid(handles[i], &pid);

			if (hst == BGWH_POSTMASTER_DIED)
			{
				LWLockRelease(CourierWorkerLock());
				proc_exit(1);
			}
			stopped = (hst == BGWH_STOPPED);
		}
		else
		{
			/* a slot from before this launcher started: no handle */
			stopped = (slot->state == SLOT_DONE) ||
				(slot->state == SLOT_LAUNCHED &&
				 now - slot->launched_at > (int64) LAUNCH_TIMEOUT_MS * 1000);
		}
		if (!stopped)
		{
			LWLockRelease(CourierWorkerLock());
			continue;
		}
		dbid = slot->dbid;
		result = slot->result;
		finished = slot->round_finished;
		idle = slot->idle_rounds;
		worked = slot->worked;
		slot->state = SLOT_FREE;
		slot->serial = 0;
		slot->pid = 0;
		slot->latch = NULL;
		LWLockRelease(CourierWorkerLock());

		if (handles[i] != NULL)
		{
			pfree(handles[i]);
			handles[i] = NULL;
		}

		db = hash_search(db_sched, &dbid, HASH_FIND, NULL);
		if (db == NULL)
			continue;
		switch (result)
		{
			case WR_ROUND_DONE:

				/* only the idle rounds since the last one with work count */
				db->idle_rounds = worked ? idle : Min(db->idle_rounds + idle, 1000);
				db->due = finished + idle_pause(db->idle_rounds);
				break;
			case WR_NO_EXTENSION:
				db->no_extension = true;
				break;
			case WR_DB_BUSY:
				db->due = now + (int64) courier_worker_naptime * 1000;
				break;
			case WR_NONE:
				db->due = now + (int64) Max(courier_worker_naptime, RETRY_DELAY_MS) * 1000;
				break;
		}
	}
}

/*
 * launcher_take_requests
 *		Databases whose backends use pg_courier although their last worker
 *		found none: look again now.  A request for a database we do not
 *		know yet (just created) makes the next scan happen now.
 */
static void
launcher_take_requests(TimestampTz now, TimestampTz *next_scan)
{
	int			i;
	bool		unknown = false;

	LWLockAcquire(CourierWorkerLock(), LW_EXCLUSIVE);
	for (i = 0; i < MAX_REQUESTS; i++)
	{
		Oid			dbid = Pool->requests[i];
		DbSched    *db;

		if (dbid == InvalidOid)
			continue;
		Pool->requests[i] = InvalidOid;
		db = hash_search(db_sched, &dbid, HASH_FIND, NULL);
		if (db == NULL)
			unknown = true;
		else if (db->no_extension)
		{
			db->no_extension = false;
			db->due = now;
		}
	}
	LWLockRelease(CourierWorkerLock());
	/*
	 * Scan soon, but not more often than SCAN_MIN_MS: backends of a database
	 * that courier.databases leaves out ask again and again.
	 */
	if (unknown)
		*next_scan = Min(*next_scan, last_scan_at + (int64) SCAN_MIN_MS * 1000);
}

/*
 * due_cmp
 *		Oldest due first (then by oid, so the order is stable).
 */
static int
due_cmp(const void *a, const void *b)
{
	const DbSched *x = *(DbSched *const *) a;
	const DbSched *y = *(DbSched *const *) b;

	if (x->due != y->due)
		return x->due < y->due ? -1 : 1;
	if (x->oid != y->oid)
		return x->oid < y->oid ? -1 : 1;
	return 0;
}

/*
 * launcher_schedule
 *		Start workers for the databases that are due, oldest first, while
 *		slots are free; ask running workers to make room for the others.
 *		Returns how long to sleep (ms).
 */
static long
launcher_schedule(TimestampTz now)
{
	int			limit = Min(Min(courier_max_workers, COURIER_MAX_DB_WORKERS), max_worker_processes);
	int			nbusy = 0;
	int			nyielding = 0;
	int			ncand = 0;
	int			waiting;
	int			want;
	int			i;
	bool		launch_failed = false;
	TimestampTz next_due = 0;
	long		timeout = courier_worker_naptime;
	DbSched   **cand;
	DbSched    *db;
	HASH_SEQ_STATUS hs;

	refresh_running();

	/*
	 * A worker asked to leave frees its slot after its round; one that has
	 * not left after YIELD_GRACE_MS (and naptimes) is stuck in a long round
	 * -- a lock wait, say -- and no longer counts as leaving, so the next
	 * one is asked and the databases waiting are not held up by it.
	 */
	LWLockAcquire(CourierWorkerLock(), LW_SHARED);
	for (i = 0; i < COURIER_MAX_DB_WORKERS; i++)
	{
		if (Pool->slots[i].state == SLOT_FREE)
			continue;
		nbusy++;
		if (Pool->slots[i].yield &&
			now - Pool->slots[i].yield_at <
			(int64) Max(YIELD_GRACE_MS, 2 * courier_worker_naptime) * 1000)
			nyielding++;
	}
	LWLockRelease(CourierWorkerLock());

	cand = palloc(sizeof(DbSched *) * (hash_get_num_entries(db_sched) + 1));
	hash_seq_init(&hs, db_sched);
	while ((db = hash_seq_search(&hs)) != NULL)
	{
		if (db->running || db->no_extension || !db->seen || !courier_worker_enabled)
			continue;
		if (db->due <= now)
			cand[ncand++] = db;
		else if (next_due == 0 || db->due < next_due)
			next_due = db->due;
	}
	qsort(cand, ncand, sizeof(DbSched *), due_cmp);

	for (i = 0; i < ncand && nbusy < limit; i++)
	{
		if (!launch(cand[i], now))
		{
			launch_failed = true;
			break;
		}
		nbusy++;
	}
	waiting = ncand - i;

	/*
	 * Make room: as many workers as databases wait (and as many as exceed a
	 * lowered courier.max_workers) leave after their round.
	 */
	if (!courier_worker_enabled)
		yield_workers(0, true);
	else
	{
		want = waiting + Max(nbusy - limit, 0) - nyielding;
		if (want > 0)
			yield_workers(want, false);
	}

	if (next_due != 0)
	{
		long		ms = (long) ((next_due - now + 999) / 1000);

		timeout = Min(timeout, ms);
	}
	if (launch_failed)
		timeout = Min(timeout, 1000L);
	return Max(timeout, 1L);
}

/*
 * launch
 *		Start a worker for one database in a free slot.  False if the slot
 *		table or the server's background worker slots are full.
 */
static bool
launch(DbSched *db, TimestampTz now)
{
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;
	MemoryContext old;
	int			slotno = -1;
	uint32		serial;
	int			i;
	bool		ok;

	LWLockAcquire(CourierWorkerLock(), LW_EXCLUSIVE);
	for (i = 0; i < COURIER_MAX_DB_WORKERS; i++)
		if (Pool->slots[i].state == SLOT_FREE)
		{
			slotno = i;
			break;
		}
	if (slotno < 0)
	{
		LWLockRelease(CourierWorkerLock());
		return false;
	}
	if (++Pool->next_serial == 0)
		Pool->next_serial = 1;
	serial = Pool->next_serial;
	memset(&Pool->slots[slotno], 0, sizeof(PoolSlot));
	Pool->slots[slotno].state = SLOT_LAUNCHED;
	Pool->slots[slotno].serial = serial;
	Pool->slots[slotno].dbid = db->oid;
	Pool->slots[slotno].launched_at = now;
	LWLockRelease(CourierWorkerLock());

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "pg_courier");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "CourierWorkerMain");
	snprintf(worker.bgw_name, BGW_MAXLEN, "pg_courier worker for database \"%s\"", db->name);
	snprintf(worker.bgw_type, BGW_MAXLEN, "pg_courier worker");
	worker.bgw_main_arg = Int32GetDatum(slotno);
	memcpy(worker.bgw_extra, &serial, sizeof(serial));
	worker.bgw_notify_pid = MyProcPid;

	old = MemoryContextSwitchTo(launcher_cxt);
	ok = RegisterDynamicBackgroundWorker(&worker, &handle);
	MemoryContextSwitchTo(old);
	if (!ok)
	{
		LWLockAcquire(CourierWorkerLock(), LW_EXCLUSIVE);
		Pool->slots[slotno].state = SLOT_FREE;
		Pool->slots[slotno].serial = 0;
		LWLockRelease(CourierWorkerLock());
		if (now - launch_warned >= (int64) WARN_INTERVAL_MS * 1000)
		{
			launch_warned = now;
			ereport(WARNING,
					(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
					 errmsg("pg_courier could not start a maintenance worker"),
					 errdetail("All background worker slots are in use."),
					 errhint("Increase max_worker_processes, or lower courier.max_workers.")));
		}
		return false;
	}
	handles[slotno] = handle;
	db->running = true;
	return true;
}

/*
 * yield_workers
 *		Ask count running workers (all of them if all), longest-serving
 *		first, to leave after their round, and wake those that sleep.
 */
static void
yield_workers(int count, bool all)
{
	LWLockAcquire(CourierWorkerLock(), LW_EXCLUSIVE);
	while (all || count-- > 0)
	{
		PoolSlot   *oldest = NULL;
		int			i;

		for (i = 0; i < COURIER_MAX_DB_WORKERS; i++)
		{
			PoolSlot   *s = &Pool->slots[i];

			if ((s->state == SLOT_LAUNCHED || s->state == SLOT_RUNNING) && !s->yield &&
				(oldest == NULL || s->launched_at < oldest->launched_at))
				oldest = s;
		}
		if (oldest == NULL)
			break;
		ask_to_leave(oldest);
	}
	LWLockRelease(CourierWorkerLock());
}

/*
 * ask_to_leave
 *		Ask the worker of a slot to leave after its round (and when), and
 *		wake it if it sleeps.  The caller holds CourierWorkerLock()
 *		exclusively.
 */
static void
ask_to_leave(PoolSlot *s)
{
	s->yield = true;
	s->yield_at = GetCurrentTimestamp();
	if (s->latch != NULL)
		SetLatch(s->latch);
}

/*
 * refresh_running
 *		Mark the databases some slot serves as running, and only those.
 *		The slots, not this launcher's memory, are the truth: a launcher
 *		that restarted finds its predecessor's workers still running.  A
 *		slot counts until it is reaped, so no database gets a second worker
 *		while its last one is on its way out.
 */
static void
refresh_running(void)
{
	HASH_SEQ_STATUS hs;
	DbSched    *db;
	int			i;

	hash_seq_init(&hs, db_sched);
	while ((db = hash_seq_search(&hs)) != NULL)
		db->running = false;
	LWLockAcquire(CourierWorkerLock(), LW_SHARED);
	for (i = 0; i < COURIER_MAX_DB_WORKERS; i++)
	{
		PoolSlot   *s = &Pool->slots[i];

		if (s->state == SLOT_FREE)
			continue;
		db = hash_search(db_sched, &s->dbid, HASH_FIND, NULL);
		if (db != NULL)
			db->running = true;
	}
	LWLockRelease(CourierWorkerLock());
}

/*
 * yield_unlisted
 *		Ask every worker whose database the latest scan did not find allowed
 *		(dropped, no longer in courier.databases, no longer accepting
 *		connections) to leave after its round, and wake it if it sleeps.
 */
static void
yield_unlisted(void)
{
	int			i;

	LWLockAcquire(CourierWorkerLock(), LW_EXCLUSIVE);
	for (i = 0; i < COURIER_MAX_DB_WORKERS; i++)
	{
		PoolSlot   *s = &Pool->slots[i];
		DbSched    *db;

		if ((s->state != SLOT_LAUNCHED && s->state != SLOT_RUNNING) || s->yield)
			continue;
		db = hash_search(db_sched, &s->dbid, HASH_FIND, NULL);
		if (db != NULL && db->seen)
			continue;
		ask_to_leave(s);
	}
	LWLockRelease(CourierWorkerLock());
}

/* ======================================================================
 * A database worker
 * ====================================================================== */

/*
 * CourierWorkerMain
 *		Entry point of a database worker: attach to the slot the launcher
 *		prepared, connect, pin the session's settings, and run rounds until
 *		asked to leave, the database has no pg_courier, or someone needs the
 *		database to themselves.
 */
void
CourierWorkerMain(Datum main_arg)
{
	int			slotno = DatumGetInt32(main_arg);
	uint32		serial;
	Oid			dbid = InvalidOid;
	MemoryContext round_cxt;
	WorkerResult result = WR_NONE;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	memcpy(&serial, MyBgworkerEntry->bgw_extra, sizeof(serial));
	if (slotno < 0 || slotno >= COURIER_MAX_DB_WORKERS)
		proc_exit(0);
	LWLockAcquire(CourierWorkerLock(), LW_EXCLUSIVE);
	if (Pool->slots[slotno].state == SLOT_LAUNCHED && Pool->slots[slotno].serial == serial)
	{
		Pool->slots[slotno].state = SLOT_RUNNING;
		Pool->slots[slotno].pid = MyProcPid;
		Pool->slots[slotno].latch = MyLatch;
		dbid = Pool->slots[slotno].dbid;
		my_slot = slotno;
		my_serial = serial;
	}
	LWLockRelease(CourierWorkerLock());
	if (my_slot < 0)
		proc_exit(0);			/* the launcher gave up on this slot */
	before_shmem_exit(worker_detach, 0);

	BackgroundWorkerInitializeConnectionByOid(dbid, InvalidOid, 0);
	pin_session();
	pgstat_report_appname("pg_courier worker");
	ereport(DEBUG1, (errmsg_internal("pg_courier worker started for database %u", dbid)));

	round_cxt = AllocSetContextCreate(TopMemoryContext, "pg_courier worker round",
									  ALLOCSET_DEFAULT_SIZES);
	for (;;)
	{
		worker_interrupts();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		/* the first round always runs: the launcher may ask us to yield before it */
		if (!courier_worker_enabled)
			break;
		if (database_busy())
		{
			set_result(WR_DB_BUSY, false);
			break;
		}

		MemoryContextSwitchTo(round_cxt);
		round_worked = false;
		result = maintain_database(round_cxt);
		MemoryContextSwitchTo(TopMemoryContext);
		MemoryContextReset(round_cxt);
		if (result == WR_ROUND_DONE)
		{
			if (round_worked)
				stay_worked = true;
			idle_rounds = round_worked ? 0 : Min(idle_rounds + 1, 1000);
		}

		set_result(result, result == WR_ROUND_DONE);
		if (result != WR_ROUND_DONE || !worker_sleep(&result))
			break;
	}
	proc_exit(0);
}

/*
 * worker_detach
 *		The worker exits (normally, on SIGTERM or on FATAL): close a round
 *		it was in, give the slot back and wake the launcher.  Registered
 *		before the connection, so it runs after the transaction was aborted.
 */
static void
worker_detach(int code, Datum arg)
{
	if (round_open)
	{
		RoundLog	rl;

		rl.nerrors = 1;
		strlcpy(rl.first, "maintenance round interrupted: the worker exited", STATUS_ERRLEN);
		status_end(&rl, NULL);
	}
	LWLockAcquire(CourierWorkerLock(), LW_EXCLUSIVE);
	if (Pool->slots[my_slot].serial == my_serial && Pool->slots[my_slot].state == SLOT_RUNNING)
	{
		Pool->slots[my_slot].state = SLOT_DONE;
		Pool->slots[my_slot].pid = 0;
		Pool->slots[my_slot].latch = NULL;
	}
	LWLockRelease(CourierWorkerLock());
	if (Pool->launcher_latch != NULL)
		SetLatch(Pool->launcher_latch);
}

/*
 * pin_session
 *		Settings of every worker session, at PGC_S_OVERRIDE so that no
 *		configuration file, ALTER DATABASE/ROLE ... SET or reload changes
 *		them: the search_path (see the header comment), the role, and what a
 *		database owner could otherwise choose to make maintenance fail.
 */
static void
pin_session(void)
{
	SetConfigOption("search_path", WORKER_SEARCH_PATH, PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("role", "none", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("default_transaction_isolation", "read committed", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("default_transaction_read_only", "off", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("statement_timeout", "0", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("lock_timeout", "0", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("idle_in_transaction_session_timeout", "0", PGC_SUSET, PGC_S_OVERRIDE);
	/* the VACUUM of claim and lease must not be slowed down (maint.c) */
	SetConfigOption("vacuum_cost_delay", "0", PGC_SUSET, PGC_S_OVERRIDE);
}

/*
 * database_busy
 *		Whether someone holds or waits for a lock on this database that
 *		conflicts with connecting to it (DROP DATABASE, CREATE DATABASE ...
 *		TEMPLATE, ALTER DATABASE ... RENAME / SET TABLESPACE): those give
 *		other sessions five seconds to leave, and we should.
 */
static bool
database_busy(void)
{
	LOCKTAG		tag;

	SET_LOCKTAG_OBJECT(tag, InvalidOid, DatabaseRelationId, MyDatabaseId, 0);
	if (LockAcquire(&tag, RowExclusiveLock, true, true) == LOCKACQUIRE_NOT_AVAIL)
		return true;
	LockRelease(&tag, RowExclusiveLock, true);
	return false;
}

/*
 * asked_to_leave
 *		Whether the launcher wants this worker's slot for another database.
 */
static bool
asked_to_leave(void)
{
	bool		yield;

	LWLockAcquire(CourierWorkerLock(), LW_SHARED);
	yield = Pool->slots[my_slot].yield;
	LWLockRelease(CourierWorkerLock());
	return yield;
}

/*
 * set_result
 *		Tell the launcher how this worker ends if it ends now.
 */
static void
set_result(WorkerResult result, bool round_done)
{
	LWLockAcquire(CourierWorkerLock(), LW_EXCLUSIVE);
	if (Pool->slots[my_slot].serial == my_serial)
	{
		Pool->slots[my_slot].result = result;
		if (round_done)
		{
			Pool->slots[my_slot].round_finished = GetCurrentTimestamp();
			Pool->slots[my_slot].idle_rounds = idle_rounds;
			Pool->slots[my_slot].worked = stay_worked;
		}
	}
	LWLockRelease(CourierWorkerLock());
}

/*
 * worker_sleep
 *		Sleep courier.worker_naptime between rounds, waking at least every
 *		WORKER_CHECK_MS to see whether it should leave.  Returns false if it
 *		should (with *result updated when the database is busy).
 */
static bool
worker_sleep(WorkerResult *result)
{
	TimestampTz start = GetCurrentTimestamp();
	TimestampTz end = start + (int64) courier_worker_naptime * 1000;

	for (;;)
	{
		TimestampTz now = GetCurrentTimestamp();
		long		ms;

		if (now >= end)
			return true;
		ms = Min((long) ((end - now + 999) / 1000), (long) WORKER_CHECK_MS);
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 ms, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		worker_interrupts();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			/* a new naptime applies to the sleep in progress */
			end = start + (int64) courier_worker_naptime * 1000;
		}
		if (!courier_worker_enabled || asked_to_leave())
			return false;
		if (database_busy())
		{
			*result = WR_DB_BUSY;
			set_result(WR_DB_BUSY, false);
			return false;
		}
	}
}

/*
 * maintain_database
 *		One round of every maintenance job, each step in its own
 *		transaction; a failed step is logged (rate-limited) and skipped.
 */
static WorkerResult
maintain_database(MemoryContext cxt)
{
	List	   *topics = NIL;
	bool		present = true;
	ListCell   *lc;
	RoundLog	rl;
	WorkerResult result = WR_ROUND_DONE;

	memset(&rl, 0, sizeof(rl));
	if (strcmp(namespace_search_path, WORKER_SEARCH_PATH) != 0)
	{
		/* cannot happen: nothing of ours sets it; pin it again and say so */
		elog(WARNING, "pg_courier worker found search_path \"%s\", resetting it",
			 namespace_search_path);
		pin_session();
	}

	status_begin();
	if (run_step(STEP_TOPICS, 0, 0, cxt, &topics, &present, &rl) && !present)
	{
		status_forget();
		return WR_NO_EXTENSION;
	}
	reclaim_if_due(cxt, &rl);
	foreach(lc, topics)
	{
		int32		topic_id = lfirst_int(lc);
		List	   *groups = NIL;
		ListCell   *lc2;

		worker_interrupts();
		if (database_busy())
		{
			result = WR_DB_BUSY;
			break;
		}
		if (run_step(STEP_GROUPS, topic_id, 0, cxt, &groups, NULL, &rl))
			foreach(lc2, groups)
			{
				/*
				 * A group whose compaction deleted a full batch may have
				 * more to fold: a consumer can insert more than a batch of
				 * claims per naptime.  Repeat, each time in a transaction of
				 * its own (compaction holds the group's claim lock until
				 * commit, and walkers wait for it), a bounded number of times.
				 */
				int			rounds = 0;

				while (run_step(STEP_GROUP, topic_id, lfirst_int(lc2), cxt, NULL, NULL, &rl) &&
					   last_group_full && ++rounds < MAX_GROUP_ROUNDS)
					worker_interrupts();
			}
		(void) run_step(STEP_TOPIC, topic_id, 0, cxt, NULL, NULL, &rl);
	}
	if (result == WR_ROUND_DONE)
	{
		/* this round's compaction deletes count before the VACUUM reports */
		pgstat_report_stat(true);
		vacuum_state_io(false);
		(void) run_step(STEP_VACUUM, 0, 0, cxt, NULL, NULL, &rl);
		vacuum_state_io(true);
	}
	flush_suppressed_errors();
	status_end(&rl, result == WR_DB_BUSY ?
			   "maintenance round cut short: another session needs the database alone" : NULL);
	return result;
}

/*
 * reclaim_if_due
 *		Run the step that gives back the shared state of topics and groups
 *		gone without our callbacks (CourierForgetStaleEntries): in the first
 *		round after a prepared transaction was finished anywhere
 *		(CourierState->twophase_ends moved; before, nothing it did can be
 *		given back), and at least every
 *		RECLAIM_INTERVAL_MS (drops replayed before a promotion, prepared
 *		claims of a dropped group: nothing bumps the counter for those).
 */
static void
reclaim_if_due(MemoryContext cxt, RoundLog *rl)
{
	static uint32 seen = 0;
	static TimestampTz last = 0;
	uint32		gen = pg_atomic_read_u32(&CourierState->twophase_ends);
	TimestampTz now = GetCurrentTimestamp();

	if (gen == seen && last != 0 && !TimestampDifferenceExceeds(last, now, RECLAIM_INTERVAL_MS))
		return;
	seen = gen;
	last = now;
	(void) run_step(STEP_RECLAIM, 0, 0, cxt, NULL, NULL, rl);
}

/*
 * run_step
 *		One step of a round in its own transaction.  Lists it returns are
 *		copied into cxt.  Returns false if the step failed.
 */
static bool
run_step(StepKind kind, int32 topic_id, int32 group_id, MemoryContext cxt,
		 List **list, bool *present, RoundLog *rl)
{
	ErrorContextCallback errcb;
	StepInfo	info;
	volatile bool ok = true;

	info.topic_id = topic_id;
	info.group_id = group_id;
	info.kind = kind;
	errcb.callback = step_error_context;
	errcb.arg = &info;
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;

	PG_TRY();
	{
		CourierMaintStats st;
		CourierTopic *topic;
		CourierGroup *group;
		MemoryContext old;

		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		/* VACUUM runs its own transactions, without our snapshot */
		if (kind != STEP_VACUUM)
			PushActiveSnapshot(GetTransactionSnapshot());
		pgstat_report_activity(STATE_RUNNING, "pg_courier maintenance");
		memset(&st, 0, sizeof(st));
		switch (kind)
		{
			case STEP_TOPICS:
				*present = OidIsValid(get_extension_oid("pg_courier", true));
				if (*present)
				{
					List	   *ids = CourierAllTopics();

					old = MemoryContextSwitchTo(cxt);
					*list = list_copy(ids);
					MemoryContextSwitchTo(old);
				}
				break;
			case STEP_RECLAIM:
				/* a transaction of its own: no lock of ours on any object */
				CourierForgetStaleEntries();
				break;
			case STEP_GROUPS:
				/* busy topics and groups wait for the next round */
				if (!CourierTryLockForWorker(topic_id, 0))
					round_worked = true;	/* skipped: not idle */
				else if (CourierGetTopicById(topic_id) != NULL)
				{
					List	   *ids = CourierTopicGroups(topic_id);

					old = MemoryContextSwitchTo(cxt);
					*list = list_copy(ids);
					MemoryContextSwitchTo(old);
				}
				break;
			case STEP_GROUP:
				topic = NULL;
				if (!CourierTryLockForWorker(topic_id, group_id))
					round_worked = true;	/* skipped: not idle */
				else
					topic = CourierGetTopicById(topic_id);
				group = topic ? CourierGetGroupById(group_id) : NULL;
				last_group_full = false;
				if (group != NULL)
				{
					CourierMaintainGroup(topic, group, GetCurrentTimestamp(), &st);
					last_group_full = st.compacted >= courier_maintenance_batch;
				}
				break;
			case STEP_TOPIC:
				/* skip the topic if a run_maintenance() call is at it */
				if (!CourierLockMaintenance(topic_id, false) ||
					!CourierTryLockForWorker(topic_id, 0))
					round_worked = true;	/* skipped: not idle */
				else if ((topic = CourierGetTopicById(topic_id)) != NULL)
					CourierMaintainTopic(topic, GetCurrentTimestamp(), &st);
				break;
			case STEP_VACUUM:
				CourierVacuumBookkeeping(cxt, vacuum_state);
				break;
		}
		if (kind != STEP_VACUUM)
			PopActiveSnapshot();
		CommitTransactionCommand();
		if (st.expired != 0 || st.dead_lettered != 0 || st.compacted != 0 || st.rotated != 0 ||
			st.dropped_segments != 0 || st.dropped_messages != 0 || st.skipped != 0)
			round_worked = true;
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		round_worked = true;	/* a failed step is no idle round */
		handle_step_error(rl);
		AbortCurrentTransaction();
		ok = false;
	}
	PG_END_TRY();
	error_context_stack = errcb.previous;
	MemoryContextSwitchTo(cxt);
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
	return ok;
}

/*
 * step_error_context
 *		Error context: which topic or group the failed step was maintaining.
 */
static void
step_error_context(void *arg)
{
	StepInfo   *info = arg;

	if (info->kind == STEP_VACUUM)
		errcontext("pg_courier vacuum of courier.claim and courier.lease (courier.vacuum_threshold; "
				   "after a timeout, not again for a minute)");
	else if (info->group_id != 0)
		errcontext("pg_courier maintenance of group %d of topic %d", info->group_id, info->topic_id);
	else if (info->topic_id != 0)
		errcontext("pg_courier maintenance of topic %d", info->topic_id);
	else
		errcontext("pg_courier maintenance");
}

/*
 * handle_step_error
 *		In PG_CATCH: remember the first error of the round for the status,
 *		and log it unless the same error was logged less than a minute ago
 *		(then count it; the count is logged with the next occurrence after
 *		the minute, or at the end of a round).
 */
static void
handle_step_error(RoundLog *rl)
{
	ErrorData  *edata = CopyErrorData();
	int64		suppressed = 0;
	TimestampTz since = 0;
	bool		emit;

	if (rl->nerrors++ == 0)
		strlcpy(rl->first, edata->message ? edata->message : "unknown error", STATUS_ERRLEN);
	emit = error_should_log(edata, &suppressed, &since);
	if (emit)
		EmitErrorReport();
	FlushErrorState();
	if (emit && suppressed > 0)
		ereport(LOG,
				(errmsg("pg_courier: the error above occurred " INT64_FORMAT " more times since %s",
						suppressed, timestamptz_to_str(since)),
				 errdetail("Repeated worker errors are logged at most once a minute.")));
	FreeErrorData(edata);
}

/*
 * error_should_log
 *		Rate limiting of worker errors, per database and per error (SQLSTATE
 *		and message).  Returns true if this occurrence should be logged;
 *		then *suppressed tells how many were not since *since.
 */
static bool
error_should_log(ErrorData *edata, int64 *suppressed, TimestampTz *since)
{
	const char *msg = edata->message ? edata->message : "";
	uint32		hash = hash_bytes((const unsigned char *) msg, strlen(msg)) ^ (uint32) edata->sqlerrcode;
	TimestampTz now = GetCurrentTimestamp();
	ErrorSeen  *e = NULL;
	ErrorSeen  *victim = NULL;
	bool		emit = true;
	int			i;

	LWLockAcquire(CourierWorkerLock(), LW_EXCLUSIVE);
	for (i = 0; i < MAX_ERRORS_SEEN; i++)
	{
		ErrorSeen  *s = &Pool->errors[i];

		if (s->dbid == MyDatabaseId && s->hash == hash)
		{
			e = s;
			break;
		}
		/* a free entry, or else the one logged longest ago */
		if (victim == NULL ||
			(victim->dbid != InvalidOid &&
			 (s->dbid == InvalidOid || s->last_logged < victim->last_logged)))
			victim = s;
	}
	if (e == NULL)
	{
		/* the oldest entry goes; its count is lost (it was over a minute ago, mostly) */
		e = victim;
		memset(e, 0, sizeof(*e));
		e->dbid = MyDatabaseId;
		e->hash = hash;
		strlcpy(e->message, msg, ERROR_MSGLEN);
		e->last_logged = now;
	}
	else if (now - e->last_logged >= (int64) ERROR_LOG_INTERVAL_MS * 1000)
	{
		*suppressed = e->suppressed;
		*since = e->last_logged;
		e->suppressed = 0;
		e->last_logged = now;
	}
	else
	{
		e->suppressed++;
		emit = false;
	}
	LWLockRelease(CourierWorkerLock());
	return emit;
}

/*
 * flush_suppressed_errors
 *		At the end of a round: for errors of this database that were not
 *		logged and whose minute is over, log how many there were.
 */
static void
flush_suppressed_errors(void)
{
	TimestampTz now = GetCurrentTimestamp();
	int			i;

	for (i = 0; i < MAX_ERRORS_SEEN; i++)
	{
		ErrorSeen	copy;
		bool		report = false;

		LWLockAcquire(CourierWorkerLock(), LW_EXCLUSIVE);
		if (Pool->errors[i].dbid == MyDatabaseId && Pool->errors[i].suppressed > 0 &&
			now - Pool->errors[i].last_logged >= (int64) ERROR_LOG_INTERVAL_MS * 1000)
		{
			copy = Pool->errors[i];
			Pool->errors[i].suppressed = 0;
			Pool->errors[i].last_logged = now;
			report = true;
		}
		LWLockRelease(CourierWorkerLock());
		if (report)
			ereport(LOG,
					(errmsg("pg_courier: maintenance error \"%s\" occurred " INT64_FORMAT " more times since %s",
							copy.message, copy.suppressed, timestamptz_to_str(copy.last_logged)),
					 errdetail("Repeated worker errors are logged at most once a minute.")));
	}
}

/*
 * vacuum_state_io
 *		Copy the database's CourierVacuumState from its status entry into
 *		vacuum_state, or (save) back.  Without an entry (courier.max_databases
 *		is full) vacuum_state is all this worker process remembers.
 */
static void
vacuum_state_io(bool save)
{
	int			idx;

	LWLockAcquire(CourierWorkerLock(), save ? LW_EXCLUSIVE : LW_SHARED);
	idx = status_find(MyDatabaseId);
	if (idx >= 0 && save)
		memcpy(Pool->status[idx].vacuum, vacuum_state, sizeof(vacuum_state));
	else if (idx >= 0)
		memcpy(vacuum_state, Pool->status[idx].vacuum, sizeof(vacuum_state));
	LWLockRelease(CourierWorkerLock());
}

/*
 * worker_interrupts
 *		CHECK_FOR_INTERRUPTS outside a step.  A cancel request
 *		(pg_cancel_backend) cancels the step it lands in; between steps and
 *		while sleeping there is nothing to cancel, so it is dropped, as an
 *		idle backend drops one, instead of ending the process with an ERROR
 *		outside any transaction.
 */
static void
worker_interrupts(void)
{
	QueryCancelPending = false;
	CHECK_FOR_INTERRUPTS();
}

/*
 * status_begin
 *		A round starts: find (or take) this database's status entry.  When
 *		courier.max_databases entries are all taken, the round still runs;
 *		only its status is not kept (and that is said once a minute).
 */
static void
status_begin(void)
{
	TimestampTz now = GetCurrentTimestamp();
	bool		full = false;
	int			idx;

	LWLockAcquire(CourierWorkerLock(), LW_EXCLUSIVE);
	idx = status_find(MyDatabaseId);
	if (idx < 0)
	{
		idx = status_find(InvalidOid);
		if (idx >= 0)
		{
			memset(&Pool->status[idx], 0, sizeof(DbStatus));
			Pool->status[idx].dbid = MyDatabaseId;
		}
	}
	if (idx >= 0)
		Pool->status[idx].last_started = now;
	else if (now - Pool->status_full_warned >= (int64) WARN_INTERVAL_MS * 1000)
	{
		Pool->status_full_warned = now;
		full = true;
	}
	LWLockRelease(CourierWorkerLock());
	round_open = true;
	if (full)
		ereport(WARNING,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("pg_courier keeps the maintenance status of at most %d databases",
						courier_max_databases),
				 errdetail("Maintenance still runs; courier._maintenance_status() shows nothing for this database."),
				 errhint("Increase courier.max_databases and restart the server.")));
}

/*
 * status_end
 *		A round ends (or is cut short, saying why): record when and how.
 */
static void
status_end(const RoundLog *rl, const char *cut_short)
{
	int			idx;

	round_open = false;
	LWLockAcquire(CourierWorkerLock(), LW_EXCLUSIVE);
	idx = status_find(MyDatabaseId);
	if (idx >= 0)
	{
		DbStatus   *st = &Pool->status[idx];

		st->last_finished = GetCurrentTimestamp();
		st->failed = (rl->nerrors > 0 || cut_short != NULL);
		if (cut_short != NULL)
			strlcpy(st->last_error, cut_short, STATUS_ERRLEN);
		else if (rl->nerrors > 1)
			snprintf(st->last_error, STATUS_ERRLEN, "%s (and %d more errors)",
					 rl->first, rl->nerrors - 1);
		else
			strlcpy(st->last_error, rl->first, STATUS_ERRLEN);
	}
	LWLockRelease(CourierWorkerLock());
}

/*
 * status_forget
 *		No pg_courier here (any more): free this database's status entry.
 */
static void
status_forget(void)
{
	int			idx;

	round_open = false;
	LWLockAcquire(CourierWorkerLock(), LW_EXCLUSIVE);
	idx = status_find(MyDatabaseId);
	if (idx >= 0)
		memset(&Pool->status[idx], 0, sizeof(DbStatus));
	LWLockRelease(CourierWorkerLock());
}
