/*-------------------------------------------------------------------------
 *
 * w4c.c
 *	  W4 through a C client (libpq): producers sending one message per
 *	  transaction and consumers draining them, for the bare table or
 *	  pg_courier, so that the comparison is of the servers and not of the
 *	  bench's Python clients (run 27 found a pg_courier consumer spending
 *	  twice the bare table's Python CPU per message).  Run by bench.py
 *	  (workload W4c), built by bench/run.sh.
 *
 *	  w4c PEER QUEUE PRODUCERS CONSUMERS SECONDS WAIT LINGER OUTDIR
 *
 * PEER is "bare" or "courier"; WAIT and LINGER are intervals for
 * courier.ack_and_receive ("-" for none).  The connection comes from the
 * PG* environment.  Every client is a process of its own, as in bench.py.
 * A consumer does what bench.py's consumer does: a bare-table consumer
 * deletes up to 100 rows with SKIP LOCKED and sleeps 1 ms when it found
 * none; a pg_courier consumer acks its previous batch with the next
 * receive (one commit per batch).  Both read the body as text and the
 * message's latency (receive time - sent_at, computed by the server).
 * Consumers stop when the producers have stopped and they came back empty
 * once (pg_courier: a receive that did not wait), so the books can be
 * checked with the queue drained.
 *
 * Writes OUTDIR/w4c-recs-<i>.bin (pg_courier: id, received, acked as
 * three doubles per message, for bench.py's lease-overlap check) and prints
 * one JSON line: sent, received, in_window (received before the producers
 * stopped), p50, p99 (ms, of the messages received in the window), calls,
 * empty (calls that returned nothing).
 *
 *-------------------------------------------------------------------------
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "libpq-fe.h"

#define BODY "{\"order\": 42, \"customer\": \"c-17\", \"amount\": 30}"
#define BATCH 100

/* shared between the parent and its children (an anonymous shared map) */
typedef struct Shared
{
	volatile int ready;			/* children connected */
	volatile int go;
	volatile double tend;		/* when producers stop */
	volatile int producers_done;
} Shared;

/* what a child reports, through a file */
typedef struct Report
{
	long		sent;
	long		received;
	long		in_window;
	long		calls;
	long		empty;
	long		nlat;
} Report;

static Shared *shared;
static const char *peer;
static const char *queue;
static const char *wait_iv;
static const char *linger_iv;
static const char *outdir;

static double
now(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return tv.tv_sec + tv.tv_usec / 1e6;
}

static void
die(PGconn *c, const char *what)
{
	fprintf(stderr, "w4c %s: %s: %s", peer, what, c ? PQerrorMessage(c) : strerror(errno));
	exit(2);
}

/* connect, say we are ready, wait for the start */
static PGconn *
start(void)
{
	PGconn	   *c = PQconnectdb("");

	if (PQstatus(c) != CONNECTION_OK)
		die(c, "connect");
	__sync_fetch_and_add(&shared->ready, 1);
	while (!shared->go)
		usleep(200);
	return c;
}

static void
write_report(const char *kind, int idx, Report *r, double *lat, double *recs, long nrecs)
{
	char		path[4096];
	FILE	   *f;

	snprintf(path, sizeof(path), "%s/w4c-%s-%d.bin", outdir, kind, idx);
	if ((f = fopen(path, "wb")) == NULL)
		die(NULL, path);
	fwrite(r, sizeof(Report), 1, f);
	if (r->nlat > 0)
		fwrite(lat, sizeof(double), r->nlat, f);
	fclose(f);
	if (recs != NULL)
	{
		snprintf(path, sizeof(path), "%s/w4c-recs-%d.bin", outdir, idx);
		if ((f = fopen(path, "wb")) == NULL)
			die(NULL, path);
		if (nrecs > 0)
			fwrite(recs, sizeof(double) * 3, nrecs, f);
		fclose(f);
	}
}

/* one transaction per message until tend */
static void
producer(int idx)
{
	PGconn	   *c = start();
	char		sql[512];
	const char *args[2];
	Report		r = {0};

	if (strcmp(peer, "courier") == 0)
	{
		snprintf(sql, sizeof(sql), "SELECT courier.send($1, $2::jsonb)");
		args[0] = queue;
		args[1] = BODY;
	}
	else
	{
		snprintf(sql, sizeof(sql), "INSERT INTO %s (body) VALUES ($1::jsonb)", queue);
		args[0] = BODY;
	}
	if (PQresultStatus(PQprepare(c, "p", sql, 0, NULL)) != PGRES_COMMAND_OK)
		die(c, "prepare");
	while (now() < shared->tend)
	{
		PGresult   *res = PQexecPrepared(c, "p", strcmp(peer, "courier") == 0 ? 2 : 1, args,
										 NULL, NULL, 0);

		if (PQresultStatus(res) != PGRES_TUPLES_OK && PQresultStatus(res) != PGRES_COMMAND_OK)
			die(c, "send");
		PQclear(res);
		r.sent++;
	}
	PQfinish(c);
	__sync_fetch_and_add(&shared->producers_done, 1);
	write_report("p", idx, &r, NULL, NULL, 0);
}

static long
Max2(long a, long b)
{
	return a > b ? a : b;
}

/* grow *buf to hold at least n elements of size sz */
static void *
grow(void *buf, long *cap, long n, size_t sz)
{
	if (n <= *cap)
		return buf;
	*cap = Max2(n, *cap * 2);
	buf = realloc(buf, *cap * sz);
	if (buf == NULL)
		die(NULL, "realloc");
	return buf;
}

/* receive (and ack) until the producers stopped and a call came back empty */
static void
consumer(int idx, int nproducers)
{
	PGconn	   *c = start();
	int			courier = strcmp(peer, "courier") == 0;
	char		sql[1024];
	char	   *held = malloc(BATCH * 24 + 3);	/* "{id,id,...}" */
	int			nheld = 0;
	int64_t		held_ids[BATCH];
	double		held_t = 0;
	double	   *lat = NULL,
			   *recs = NULL;
	long		latcap = 0,
				reccap = 0,
				nrecs = 0;
	Report		r = {0};

	if (courier)
	{
		char		opts[256] = "";

		if (strcmp(wait_iv, "-") != 0)
			snprintf(opts + strlen(opts), sizeof(opts) - strlen(opts), ", wait => '%s'", wait_iv);
		if (strcmp(linger_iv, "-") != 0)
			snprintf(opts + strlen(opts), sizeof(opts) - strlen(opts), ", linger => '%s'", linger_iv);
		snprintf(sql, sizeof(sql),
				 "SELECT id, body::text, (extract(epoch FROM clock_timestamp() - sent_at) * 1000)::float8 "
				 "FROM courier.ack_and_receive($1, 'default', $2::bigint[], NULL, %d, '30 seconds'%s)",
				 BATCH, opts);
	}
	else
		snprintf(sql, sizeof(sql),
				 "DELETE FROM %s WHERE id IN (SELECT id FROM %s ORDER BY id LIMIT %d FOR UPDATE SKIP LOCKED) "
				 "RETURNING id, body::text, (extract(epoch FROM clock_timestamp() - sent_at) * 1000)::float8",
				 queue, queue, BATCH);
	if (PQresultStatus(PQprepare(c, "c", sql, courier ? 2 : 0, NULL)) != PGRES_COMMAND_OK)
		die(c, "prepare");
	strcpy(held, "{}");
	for (;;)
	{
		const char *args[2] = {queue, held};
		int			stopped = shared->producers_done == nproducers;
		PGresult   *res = PQexecPrepared(c, "c", courier ? 2 : 0, args, NULL, NULL, 0);
		double		t = now();
		int			n,
					i;
		char	   *p;

		if (PQresultStatus(res) != PGRES_TUPLES_OK)
			die(c, "receive");
		n = PQntuples(res);
		r.calls++;
		if (n == 0)
			r.empty++;
		/* the acked batch's deliveries: received at held_t, acked now */
		if (courier && nheld > 0)
		{
			recs = grow(recs, &reccap, nrecs + nheld, sizeof(double) * 3);
			for (i = 0; i < nheld; i++, nrecs++)
			{
				recs[nrecs * 3] = (double) held_ids[i];
				recs[nrecs * 3 + 1] = held_t;
				recs[nrecs * 3 + 2] = t;
			}
		}
		nheld = 0;
		p = held;
		*p++ = '{';
		lat = grow(lat, &latcap, r.nlat + n, sizeof(double));
		for (i = 0; i < n; i++)
		{
			const char *id = PQgetvalue(res, i, 0);

			if (courier)
			{
				held_ids[nheld++] = strtoll(id, NULL, 10);
				p += sprintf(p, "%s%s", i ? "," : "", id);
			}
			if (t < shared->tend)
			{
				lat[r.nlat++] = strtod(PQgetvalue(res, i, 2), NULL);
				r.in_window++;
			}
		}
		*p++ = '}';
		*p = '\0';
		held_t = t;
		r.received += n;
		PQclear(res);
		if (n == 0)
		{
			if (stopped)
				break;
			if (!courier)
				usleep(1000);
		}
	}
	/* a receive that came back empty acked what it carried: nothing is held */
	PQfinish(c);
	write_report("c", idx, &r, lat, courier ? recs : NULL, nrecs);
}

static Report
read_report(const char *kind, int idx, double **lat, long *nlat, long *latcap)
{
	char		path[4096];
	FILE	   *f;
	Report		r;

	snprintf(path, sizeof(path), "%s/w4c-%s-%d.bin", outdir, kind, idx);
	if ((f = fopen(path, "rb")) == NULL || fread(&r, sizeof(Report), 1, f) != 1)
		die(NULL, path);
	if (r.nlat > 0)
	{
		*lat = grow(*lat, latcap, *nlat + r.nlat, sizeof(double));
		if (fread(*lat + *nlat, sizeof(double), r.nlat, f) != (size_t) r.nlat)
			die(NULL, path);
		*nlat += r.nlat;
	}
	fclose(f);
	return r;
}

static int
cmp_double(const void *a, const void *b)
{
	double		x = *(const double *) a,
				y = *(const double *) b;

	return x < y ? -1 : x > y;
}

int
main(int argc, char **argv)
{
	int			producers,
				consumers,
				i,
				failed = 0;
	double		seconds;
	double	   *lat = NULL;
	long		nlat = 0,
				latcap = 0;
	Report		tot = {0};

	if (argc != 9)
	{
		fprintf(stderr, "usage: w4c PEER QUEUE PRODUCERS CONSUMERS SECONDS WAIT LINGER OUTDIR\n");
		return 2;
	}
	peer = argv[1];
	queue = argv[2];
	producers = atoi(argv[3]);
	consumers = atoi(argv[4]);
	seconds = atof(argv[5]);
	wait_iv = argv[6];
	linger_iv = argv[7];
	outdir = argv[8];
	shared = mmap(NULL, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (shared == MAP_FAILED)
		die(NULL, "mmap");
	memset((void *) shared, 0, sizeof(Shared));
	shared->tend = 1e300;

	for (i = 0; i < producers + consumers; i++)
	{
		pid_t		pid = fork();

		if (pid < 0)
			die(NULL, "fork");
		if (pid == 0)
		{
			if (i < consumers)
				consumer(i, producers);
			else
				producer(i - consumers);
			_exit(0);
		}
	}
	while (shared->ready < producers + consumers)
		usleep(1000);
	shared->tend = now() + seconds;
	__sync_synchronize();
	shared->go = 1;
	for (i = 0; i < producers + consumers; i++)
	{
		int			status;

		if (wait(&status) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
			failed = 1;
	}
	if (failed)
	{
		fprintf(stderr, "w4c %s: a client failed\n", peer);
		return 1;
	}
	for (i = 0; i < producers; i++)
		tot.sent += read_report("p", i, &lat, &nlat, &latcap).sent;
	for (i = 0; i < consumers; i++)
	{
		Report		r = read_report("c", i, &lat, &nlat, &latcap);

		tot.received += r.received;
		tot.in_window += r.in_window;
		tot.calls += r.calls;
		tot.empty += r.empty;
	}
	qsort(lat, nlat, sizeof(double), cmp_double);
	printf("{\"sent\": %ld, \"received\": %ld, \"in_window\": %ld, \"calls\": %ld, \"empty\": %ld, "
		   "\"p50\": %.3f, \"p99\": %.3f}\n",
		   tot.sent, tot.received, tot.in_window, tot.calls, tot.empty,
		   nlat ? lat[(long) (nlat * 0.5)] : -1.0, nlat ? lat[Max2(0, (long) (nlat * 0.99))] : -1.0);
	return 0;
}
