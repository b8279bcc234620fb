"""The load and the faults of the chaos test.

Owns: producer threads (every isolation level, savepoints rolled back,
two-phase commit, transactions held open, send_batch, delays), consumer threads
(plain, filtered and ordered groups, waiting and non-waiting receives, batches
of 1..500, ack / nack / set_visibility, leases left to expire, receives rolled
back, REPEATABLE READ), the fault thread (rotations via run_maintenance, group
DDL, pause and resume of checked groups, seek of the extra group,
pg_terminate_backend of sessions and of the worker, immediate stop and
restart) and the drain that runs with the faults off (every group resumed).

Every committed effect is written to a side table in the same transaction
(model.SCHEMA), so commit, rollback, savepoint and 2PC outcomes are exact; what
only the client knows goes to the record file (model.Records).
"""

import datetime
import random
import subprocess
import threading
import time

import psycopg
from psycopg.types.json import Jsonb

from model import TOPIC, GROUPS, EXTRA_FILTERS, TAGS, REGIONS, NKEYS, BACKOFF, now

# SQLSTATEs a client may legitimately see under this load and these faults.
EXPECTED_ERRORS = {
    "40001": "serialization failure (REPEATABLE READ / SERIALIZABLE)",
    "57P01": "terminated by pg_terminate_backend or shutdown",
    "57P02": "crash shutdown of another backend",
    "57P03": "server starting up",
    "55000": "nack of a message that is not in flight",
    "25P02": "statement in an aborted transaction",
    "conn": "connection lost (crash, restart, failover)",
    "25006": "read-only transaction (session on a standby)",
    "42704:extra": "the extra group was dropped by the DDL fault",
}

UTC = datetime.timezone.utc


def sqlstate(e):
    """The SQLSTATE of an exception, or 'conn' for a lost connection."""
    st = getattr(e, "sqlstate", None)
    if st is None or isinstance(e, (psycopg.OperationalError, psycopg.InterfaceError)) and st in (None, "08006", "08003", "08000", "08001"):
        return "conn"
    return st


class Shared:
    """State the threads share: the stop flags, serials, the extra group name."""

    def __init__(self, args, records, api):
        self.args = args
        self.rec = records
        self.api = api
        self.stop = threading.Event()        # end of the load phase
        self.lock = threading.Lock()
        self.serial = 0
        self.extra = None                    # current extra group (x1, x2, ...), or None
        self.extra_n = 0
        self.paused = set()                  # groups the pause fault paused
        self.faults = {}
        self.errors = {}
        self.down = threading.Event()        # set while the server is being restarted

    def next_tx(self):
        with self.lock:
            self.serial += 1
            return self.serial

    def count_fault(self, kind, **kw):
        with self.lock:
            self.faults[kind] = self.faults.get(kind, 0) + 1
        self.rec.write("fault", kind=kind, t=now(), **kw)

    def count_error(self, who, e, context=""):
        st = sqlstate(e)
        if st == "42704" and "x" in context:
            st = "42704:extra"
        with self.lock:
            self.errors[st] = self.errors.get(st, 0) + 1
        if st not in EXPECTED_ERRORS:
            self.rec.write("err", who=who, sqlstate=st, msg=str(e).strip()[:300], ctx=context, t=now())
        return st


class Session:
    """One connection with reconnect.  Autocommit mode: transactions are
    explicit BEGIN ... COMMIT, so the outcome of each is known exactly."""

    def __init__(self, shared, dsn, name):
        self.sh = shared
        self.dsn = dsn
        self.name = name
        self.c = None

    def conn(self, patience=120.0):
        if self.c is not None and not self.c.closed and not self.c.broken:
            return self.c
        self.close()
        deadline = time.time() + patience
        while True:
            try:
                self.c = psycopg.connect(self.dsn, autocommit=True, application_name=self.name,
                                         connect_timeout=5)
                self.c.execute("SET statement_timeout = '60s'")
                return self.c
            except psycopg.Error:
                if time.time() > deadline:
                    raise
                time.sleep(0.2)

    def close(self):
        if self.c is not None:
            try:
                self.c.close()
            except Exception:
                pass
        self.c = None

    def reset(self):
        """After an error: roll back whatever is open, or drop a broken connection."""
        if self.c is None:
            return
        if self.c.closed or self.c.broken:
            self.close()
            return
        try:
            self.c.execute("ROLLBACK")
        except psycopg.Error:
            self.close()


def guarded(shared, who, fn):
    """Run one step of a thread; a bug in the driver is recorded (and fails the
    check as a client error) instead of silently ending the thread."""
    try:
        fn()
    except Exception as e:      # noqa: BLE001 - anything else is a driver bug
        import traceback
        shared.rec.write("err", who=who, sqlstate="python", ctx="driver",
                         msg=traceback.format_exc()[-600:], t=now())
        time.sleep(0.2)


def ts(x):
    return x.timestamp() if x is not None else None


# ---------------------------------------------------------------- producers

class Producer(threading.Thread):
    """Sends in transactions of every kind and records exactly what committed."""

    def __init__(self, shared, dsn, idx):
        super().__init__(name=f"chaos-p{idx}", daemon=True)
        self.sh = shared
        self.idx = idx
        self.rnd = random.Random(shared.args.seed * 1000 + idx)
        self.s = Session(shared, dsn, f"chaos-p{idx}")
        self.sent = 0

    def message(self):
        """Random tag, headers, keys and delay for one send (or one batch)."""
        r = self.rnd
        tag = r.choice(TAGS)
        headers = {"region": r.choice(REGIONS), "amount": r.randrange(0, 200), "p": self.idx}
        keys = None
        delay_ms = None
        deliver_at = None
        u = r.random()
        if u < 0.55:
            keys = [f"k{r.randrange(NKEYS)}", f"u{self.idx}-{r.randrange(10**9)}"]
        elif u < 0.65:
            delay_ms = r.randrange(50, 2500)
        elif u < 0.70:
            deliver_at = datetime.datetime.now(UTC) + datetime.timedelta(milliseconds=r.randrange(50, 2500))
        return tag, headers, keys, delay_ms, deliver_at

    def send(self, c, tx):
        """One send or send_batch with its side-table rows; returns the ids."""
        r = self.rnd
        tag, headers, keys, delay_ms, deliver_at = self.message()
        okey = keys[0] if keys else None
        delay = datetime.timedelta(milliseconds=delay_ms) if delay_ms is not None else None
        if r.random() < 0.2:
            n = r.choice([1, 2, 5, 20, 50])
            bodies = [Jsonb({"p": self.idx, "tx": tx, "i": i}) for i in range(n)]
            sql = """WITH s AS (SELECT id FROM courier.send_batch(%(t)s, %(b)s::jsonb[], tag => %(tag)s,
                         headers => %(h)s, delay => %(d)s, deliver_at => %(da)s, keys => %(k)s) id)
                     INSERT INTO chaos.sent SELECT id, %(tx)s, %(tag)s, %(ok)s, %(h)s, %(dms)s, %(da)s,
                         statement_timestamp() FROM s RETURNING id"""
            params = dict(t=TOPIC, b=bodies, tag=tag, h=Jsonb(headers), d=delay, da=deliver_at,
                          k=keys, tx=tx, ok=okey, dms=delay_ms)
        else:
            sql = """WITH s AS (SELECT courier.send(%(t)s, %(b)s, tag => %(tag)s, keys => %(k)s,
                         headers => %(h)s, delay => %(d)s, deliver_at => %(da)s) AS id)
                     INSERT INTO chaos.sent SELECT id, %(tx)s, %(tag)s, %(ok)s, %(h)s, %(dms)s, %(da)s,
                         statement_timestamp() FROM s RETURNING id"""
            params = dict(t=TOPIC, b=Jsonb({"p": self.idx, "tx": tx}), tag=tag, h=Jsonb(headers),
                          d=delay, da=deliver_at, k=keys, tx=tx, ok=okey, dms=delay_ms)
        ids = [row[0] for row in c.execute(sql, params).fetchall()]
        return ids

    def one_tx(self):
        r = self.rnd
        tx = self.sh.next_tx()
        iso = r.choices(["READ COMMITTED", "REPEATABLE READ", "SERIALIZABLE"], [6, 2, 2])[0]
        ids, rb = [], []
        phase = "body"
        outcome = r.choices(["commit", "rollback", "2pc-commit", "2pc-rollback"], [80, 8, 9, 3])[0]
        gid = f"chaos-{tx}-{'c' if outcome == '2pc-commit' else 'r'}"
        try:
            c = self.s.conn()
            c.execute(f"BEGIN ISOLATION LEVEL {iso}")
            for _ in range(r.choice([1, 1, 1, 2, 3, 5])):
                if r.random() < 0.12:
                    c.execute("SAVEPOINT sp")
                    got = self.send(c, tx)
                    if r.random() < 0.6:
                        c.execute("ROLLBACK TO SAVEPOINT sp")
                        rb += got
                    else:
                        c.execute("RELEASE SAVEPOINT sp")
                        ids += got
                else:
                    ids += self.send(c, tx)
            if r.random() < 0.04:
                time.sleep(r.uniform(0.5, 4.0))     # a producer transaction held open
            c.execute("INSERT INTO chaos.ptx VALUES (%s)", (tx,))
            if outcome == "rollback":
                c.execute("ROLLBACK")
                self.sh.rec.write("ptx", tx=tx, out="rollback", ids=[], rb=ids + rb, done=now())
                return
            if outcome.startswith("2pc"):
                phase = "prepare"
                c.execute(f"PREPARE TRANSACTION '{gid}'")
                phase = "prepared"
                time.sleep(r.uniform(0, 1.0))
                c.execute(f"{'COMMIT' if outcome == '2pc-commit' else 'ROLLBACK'} PREPARED '{gid}'")
            else:
                phase = "commit"
                c.execute("COMMIT")
            if outcome == "2pc-rollback":
                self.sh.rec.write("ptx", tx=tx, out="rollback", ids=[], rb=ids + rb, done=now())
            else:
                self.sh.rec.write("ptx", tx=tx, out="commit", ids=ids, rb=rb, done=now())
                self.sent += len(ids)
        except psycopg.Error as e:
            self.sh.count_error(self.name, e, phase)
            self.s.reset()
            if phase == "body":
                self.sh.rec.write("ptx", tx=tx, out="rollback", ids=[], rb=ids + rb, done=now())
            else:
                # the COMMIT (or PREPARE, or COMMIT PREPARED) was cut off: the
                # outcome is read from chaos.ptx afterwards; a transaction left
                # prepared is resolved by the drain from its gid
                self.sh.rec.write("ptx", tx=tx, out="unknown", ids=ids, rb=rb, gid=gid, phase=phase,
                                  done=None)

    def run(self):
        while not self.sh.stop.is_set():
            guarded(self.sh, self.name, self.one_tx)
            time.sleep(self.rnd.uniform(0, 0.02))
        self.s.close()


# ---------------------------------------------------------------- consumers

def receive_sql(api):
    """The receive statement: leases messages and, in the same statement,
    records each delivery in chaos.delivery (committed with the receive)."""
    receipt = "m.receipt" if api.receipt_col else "NULL::text"
    return f"""
        WITH r AS (SELECT m.*, {receipt} AS rcpt, clock_timestamp() AS at
                   FROM courier.receive(%(t)s, %(g)s, %(n)s, %(vt)s, wait => %(w)s) m),
             i AS (INSERT INTO chaos.delivery
                   SELECT %(tx)s, %(g)s, id, attempt, rcpt, pg_backend_pid(), statement_timestamp(),
                          at, lease_until FROM r)
        SELECT id, attempt, rcpt, keys, at, lease_until, pg_backend_pid(), statement_timestamp() FROM r
    """


class Consumer(threading.Thread):
    """Receives from one group and does what real consumers do with the messages."""

    def __init__(self, shared, dsn, idx, grp, drain=False):
        super().__init__(name=f"chaos-c{idx}-{grp}", daemon=True)
        self.sh = shared
        self.api = shared.api
        self.idx = idx
        self.grp = grp
        self.drain = drain
        self.rnd = random.Random(shared.args.seed * 1000 + 500 + idx)
        self.s = Session(shared, dsn, f"chaos-c{idx}")
        self.rsql = receive_sql(self.api)
        self.deliveries = 0
        self.idle = 0            # drain: consecutive empty receives

    # -- actions: each is one statement that also writes its chaos.action row

    def act(self, c, tx, kind, grp, d, arg_ms=None):
        """ack / nack / setvis of one delivery d = (id, dtx, receipt); returns the result."""
        mid, dtx, rcpt = d
        use_r = self.api.receipts
        rarg = ", receipt => %(r)s" if use_r else ""
        if kind == "ack":
            call = f"courier.ack(%(t)s, %(g)s, %(id)s::bigint{rarg})"
        elif kind == "nack":
            call = f"courier.nack(%(t)s, %(g)s, %(id)s, delay => %(a)s{rarg})"
        else:
            call = f"courier.set_visibility(%(t)s, %(g)s, %(id)s, %(a)s{rarg})"
        sql = f"""WITH a AS (SELECT {call} AS ok)
                  INSERT INTO chaos.action SELECT %(tx)s, %(dtx)s, %(k)s, %(g)s, %(id)s, %(r)s, %(ms)s,
                         CASE WHEN ok THEN 't' ELSE 'f' END, statement_timestamp() FROM a RETURNING result"""
        a = datetime.timedelta(milliseconds=arg_ms) if arg_ms is not None else None
        params = dict(t=TOPIC, g=grp, id=mid, r=rcpt, a=a, tx=tx, dtx=dtx, k=kind, ms=arg_ms)
        if kind == "ack":
            return c.execute(sql, params).fetchone()[0]
        # nack raises 55000 when the message is not in flight: keep the
        # transaction alive with a savepoint
        c.execute("SAVEPOINT act")
        try:
            res = c.execute(sql, params).fetchone()[0]
            c.execute("RELEASE SAVEPOINT act")
            return res
        except psycopg.Error as e:
            if c.broken or c.closed:
                raise
            st = self.sh.count_error(self.name, e, kind)
            c.execute("ROLLBACK TO SAVEPOINT act")
            return st

    def ack_many(self, c, tx, grp, ds):
        """ack(topic, grp, ids[]) for deliveries of one receive; records the count."""
        ids = [d[0] for d in ds]
        n = c.execute("SELECT courier.ack(%s, %s, %s::bigint[])", (TOPIC, grp, ids)).fetchone()[0]
        res = f"{n}/{len(ids)}"
        c.execute("""INSERT INTO chaos.action SELECT %s, %s, 'ack_many', %s, u, NULL, NULL, %s,
                     statement_timestamp() FROM unnest(%s::bigint[]) u""", (tx, ds[0][1], grp, res, ids))
        return n

    def receive(self, c, tx, grp, n, vt_ms, wait_ms):
        rows = c.execute(self.rsql, dict(t=TOPIC, g=grp, n=n, vt=datetime.timedelta(milliseconds=vt_ms),
                                         w=datetime.timedelta(milliseconds=wait_ms) if wait_ms else None,
                                         tx=tx)).fetchall()
        for (mid, att, rcpt, keys, at, lu, pid, start) in rows:
            self.sh.rec.write("dlv", tx=tx, grp=grp, id=mid, att=att, rcpt=rcpt, pid=pid,
                              at=ts(at), lu=ts(lu), start=ts(start))
        self.deliveries += len(rows)
        return [(r[0], tx, r[2]) for r in rows]

    def pick_group(self):
        if self.grp == "extra":
            return self.sh.extra
        return self.grp

    def one_round(self):
        """One receive transaction and what follows it."""
        r = self.rnd
        grp = self.pick_group()
        if grp is None:
            time.sleep(0.2)
            return
        tx = self.sh.next_tx()
        iso = "REPEATABLE READ" if r.random() < 0.2 else "READ COMMITTED"
        n = r.choices([1, r.randint(2, 10), r.randint(11, 100), r.randint(101, 500)], [30, 40, 20, 10])[0]
        vt_ms = r.choice([700, 1500, 3000, 5000])
        wait_ms = r.choice([None, None, 200, 1000, 2000])
        later = []
        phase = "body"
        try:
            c = self.s.conn()
            c.execute(f"BEGIN ISOLATION LEVEL {iso}")
            ds = self.receive(c, tx, grp, n, vt_ms, wait_ms)
            rollback = r.random() < 0.07
            if ds and r.random() < 0.05:
                time.sleep(r.uniform(0, vt_ms * 1.3 / 1000))   # slow processing: the lease may run out
            if ds and r.random() < 0.1 and not rollback:
                self.ack_many(c, tx, grp, ds)
                ds = []
            dlq = grp == "dlq"
            for d in ds:
                u = r.random()
                if dlq:
                    fate = "nack" if u < 0.5 else "ack" if u < 0.8 else "expire"
                elif u < 0.55:
                    fate = "ack"
                elif u < 0.75:
                    fate = "later"
                elif u < 0.82:
                    fate = "nack"
                elif u < 0.86:
                    fate = "release"
                elif u < 0.90:
                    fate = "extend"
                else:
                    fate = "expire"
                if fate == "ack":
                    self.act(c, tx, "ack", grp, d)
                elif fate == "nack":
                    self.act(c, tx, "nack", grp, d, r.choice([None, 0, 100]))
                elif fate == "release":
                    self.act(c, tx, "setvis", grp, d, 0)
                elif fate == "extend":
                    self.act(c, tx, "setvis", grp, d, r.choice([2000, 4000]))
                    later.append(d)
                elif fate == "later":
                    later.append(d)
            if rollback:
                phase = "rollback"
                c.execute("ROLLBACK")
                self.sh.rec.write("ctx", tx=tx, out="rollback", done=now())
                return
            c.execute("INSERT INTO chaos.ctx VALUES (%s)", (tx,))
            phase = "commit"
            c.execute("COMMIT")
            self.sh.rec.write("ctx", tx=tx, out="commit", done=now())
        except psycopg.Error as e:
            self.sh.count_error(self.name, e, grp if phase == "body" else phase)
            self.s.reset()
            self.sh.rec.write("ctx", tx=tx, out="unknown" if phase == "commit" else "rollback", done=None)
            return
        if later:
            time.sleep(r.uniform(0, 0.3))
            self.ack_later(grp, later)

    def ack_later(self, grp, ds):
        """Ack in a transaction of its own, after the receive committed."""
        tx = self.sh.next_tx()
        phase = "body"
        try:
            c = self.s.conn()
            c.execute("BEGIN")
            for d in ds:
                self.act(c, tx, "ack", grp, d)
            c.execute("INSERT INTO chaos.ctx VALUES (%s)", (tx,))
            phase = "commit"
            c.execute("COMMIT")
            self.sh.rec.write("ctx", tx=tx, out="commit", done=now())
        except psycopg.Error as e:
            self.sh.count_error(self.name, e, grp if phase == "body" else phase)
            self.s.reset()
            self.sh.rec.write("ctx", tx=tx, out="unknown" if phase == "commit" else "rollback", done=None)

    def drain_round(self):
        """Drain: receive a lot with a long lease and ack each message."""
        tx = self.sh.next_tx()
        phase = "body"
        try:
            c = self.s.conn()
            c.execute("BEGIN")
            ds = self.receive(c, tx, self.grp, 500, 60000, 500)
            for d in ds:
                self.act(c, tx, "ack", self.grp, d)
            c.execute("INSERT INTO chaos.ctx VALUES (%s)", (tx,))
            phase = "commit"
            c.execute("COMMIT")
            self.sh.rec.write("ctx", tx=tx, out="commit", done=now())
            return len(ds)
        except psycopg.Error as e:
            self.sh.count_error(self.name, e, self.grp if phase == "body" else phase)
            self.s.reset()
            self.sh.rec.write("ctx", tx=tx, out="unknown" if phase == "commit" else "rollback", done=None)
            return 1

    def run(self):
        if self.drain:
            self.run_drain()
            return
        while not self.sh.stop.is_set():
            guarded(self.sh, self.name, self.one_round)
        self.s.close()

    def run_drain(self):
        """Until the group has nothing left (receive empty, view says nothing in
        flight, delayed or retrying), or nothing was received for the drain's
        time (drain_seconds), or ten times that in all.  An ordered group
        drains one message per key and round, so a large backlog takes long:
        the drain goes on as long as it makes progress."""
        start = time.time()
        deadline = start + self.sh.args.drain_seconds
        empty = 0
        while time.time() < deadline and time.time() < start + 10 * self.sh.args.drain_seconds:
            got = 1
            guarded(self.sh, self.name, lambda: setattr(self, "_got", self.drain_round()))
            got = getattr(self, "_got", 1)
            if got:
                empty = 0
                deadline = time.time() + self.sh.args.drain_seconds
                continue
            empty += 1
            if empty >= 3:
                try:
                    left = self.s.conn().execute(
                        "SELECT backlog + in_flight + delayed + retrying FROM courier.groups"
                        " WHERE topic = %s AND grp = %s", (TOPIC, self.grp)).fetchone()
                except psycopg.Error as e:
                    self.sh.count_error(self.name, e, "drain")
                    self.s.reset()
                    continue
                if left is None or left[0] == 0:
                    break
        self.s.close()


# ---------------------------------------------------------------- faults

class Faults(threading.Thread):
    """Injects faults at random until the load stops."""

    def __init__(self, shared, dsn, server):
        super().__init__(name="chaos-faults", daemon=True)
        self.sh = shared
        self.args = shared.args
        self.rnd = random.Random(shared.args.seed * 1000 + 999)
        self.s = Session(shared, dsn, "chaos-faults")
        self.server = server          # chaos.Server, or None when the server is not ours
        self.last_crash = time.time()

    def sql(self, q, *p):
        return self.s.conn().execute(q, p).fetchall()

    def ddl(self):
        r = self.rnd
        sh = self.sh
        if sh.extra is None:
            sh.extra_n += 1
            name = f"x{sh.extra_n}"
            self.sql("SELECT courier.create_group(%s, %s, start_from => %s, filter => %s, "
                     "retry_backoff => %s::interval[])", TOPIC, name,
                     r.choice(["earliest", "latest"]), r.choice(EXTRA_FILTERS), BACKOFF)
            sh.extra = name
            sh.count_fault("ddl_create", grp=name)
        elif r.random() < 0.6:
            self.sql("SELECT courier.alter_group(%s, %s, filter => %s, max_attempts => %s)", TOPIC,
                     sh.extra, r.choice(EXTRA_FILTERS), r.choice([2, 5, 16]))
            sh.count_fault("ddl_alter", grp=sh.extra)
        else:
            name = sh.extra
            sh.extra = None
            self.sql("SELECT courier.drop_group(%s, %s)", TOPIC, name)
            sh.count_fault("ddl_drop", grp=name)

    def pause(self):
        """Pause or resume a checked group while traffic flows (issue 9): a
        paused group only waits, so every rule still holds once the drain
        has resumed it."""
        g = self.rnd.choice(list(GROUPS))
        if g in self.sh.paused:
            self.sh.paused.discard(g)
            self.sql("SELECT courier.resume_group(%s, %s)", TOPIC, g)
            self.sh.count_fault("resume", grp=g)
        else:
            self.sh.paused.add(g)
            self.sql("SELECT courier.pause_group(%s, %s)", TOPIC, g)
            self.sh.count_fault("pause", grp=g)

    def seek(self):
        """Seek the extra group (unchecked: a seek replays or skips by design)
        while traffic flows on its topic: back to everything, past
        everything, or to a moment ago."""
        name = self.sh.extra
        if name is None:
            return
        since = self.rnd.choice(["-infinity", "infinity", "recent"])
        start = now()
        try:
            if since == "recent":
                self.sql("SELECT courier.seek(%s, %s, now() - interval '2 seconds')", TOPIC, name)
            else:
                self.sql("SELECT courier.seek(%s, %s, %s::timestamptz)", TOPIC, name, since)
            self.sh.count_fault("seek", grp=name, since=since, start=start)
        except psycopg.Error as e:
            self.sh.count_error(self.name, e, f"seek {name}")
            self.s.reset()

    def terminate(self, what):
        if what == "worker":
            rows = self.sql("SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_courier worker'")
        else:
            rows = self.sql("SELECT pid FROM pg_stat_activity WHERE application_name LIKE %s",
                            "chaos-c%" if what == "consumer" else "chaos-p%")
        if rows:
            pid = self.rnd.choice(rows)[0]
            self.sql("SELECT pg_terminate_backend(%s::integer)", pid)
            self.sh.count_fault(f"kill_{what}", pid=pid)

    def crash(self):
        self.sh.count_fault("crash")
        self.s.close()
        self.server.crash_and_restart()
        self.last_crash = time.time()

    def resolve_stale(self):
        """A transaction manager's recovery: producers killed (or crashed)
        between PREPARE and COMMIT PREPARED leave prepared transactions
        behind; finish those older than a few seconds, as their gid says."""
        for (gid,) in self.sql("SELECT gid FROM pg_prepared_xacts WHERE gid LIKE 'chaos-%%' "
                               "AND prepared < now() - interval '5 seconds'"):
            commit = gid.endswith("-c")
            try:
                self.sql(f"{'COMMIT' if commit else 'ROLLBACK'} PREPARED '{gid}'")
            except psycopg.errors.UndefinedObject:
                continue        # its producer finished it meanwhile
            self.sh.rec.write("resolved", gid=gid, tx=int(gid.split("-")[1]), commit=commit,
                              done=now())

    def one(self):
        r = self.rnd
        kinds = {"maintenance": 30, "ddl": 10, "kill_consumer": 8, "kill_producer": 4,
                 "kill_worker": 4, "resolve": 4, "pause": 4, "seek": 6}
        if self.server is not None and self.args.crashes and time.time() - self.last_crash > self.args.crash_every:
            kinds["crash"] = 1000
        kind = r.choices(list(kinds), list(kinds.values()))[0]
        try:
            if kind == "maintenance":
                self.sql("SELECT courier.run_maintenance()")
                self.sh.count_fault("maintenance")
            elif kind == "ddl":
                self.ddl()
            elif kind == "kill_consumer":
                self.terminate("consumer")
            elif kind == "kill_producer":
                self.terminate("producer")
            elif kind == "kill_worker":
                self.terminate("worker")
            elif kind == "crash":
                self.crash()
            elif kind == "resolve":
                self.resolve_stale()
            elif kind == "pause":
                self.pause()
            elif kind == "seek":
                self.seek()
        except psycopg.Error as e:
            self.sh.count_error(self.name, e, kind)
            self.s.reset()

    def run(self):
        while not self.sh.stop.wait(self.rnd.uniform(0.1, 0.8)):
            guarded(self.sh, self.name, self.one)
        self.s.close()


def resume_all(shared, dsn):
    """Before the drain: resume every checked group the pause fault may have
    left paused (whatever the client saw of its last call)."""
    s = Session(shared, dsn, "chaos-resume")
    c = s.conn()
    for g in GROUPS:
        c.execute("SELECT courier.resume_group(%s, %s)", (TOPIC, g))
    shared.paused.clear()
    s.close()


def resolve_prepared(shared, dsn):
    """Finish transactions left prepared by a cut-off producer, as their gid says."""
    s = Session(shared, dsn, "chaos-resolve")
    c = s.conn()
    for (gid,) in c.execute("SELECT gid FROM pg_prepared_xacts WHERE gid LIKE 'chaos-%%'").fetchall():
        commit = gid.endswith("-c")
        c.execute(f"{'COMMIT' if commit else 'ROLLBACK'} PREPARED '{gid}'")
        shared.rec.write("resolved", gid=gid, tx=int(gid.split("-")[1]), commit=commit, done=now())
    s.close()
