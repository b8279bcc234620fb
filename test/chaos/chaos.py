#!/usr/bin/python3
"""The chaos test's command line: set up a database, run the load with faults,
drain with the faults off, and run the checker.

    chaos.py setup --dsn DSN
    chaos.py run   --dsn DSN --records FILE [--seconds N] [--seed S] [--pgdata DIR --bindir DIR
                   --log FILE --crashes] [--standby-dsn DSN] [--stop-file FILE] ...
    chaos.py check --dsn DSN --records FILE --log FILE... [--async-failover]

'run' does setup unless --no-setup, then load, drain and check, and prints the
checker's summary line; its exit status is 0 only when the checker found
nothing.  test/chaos/run.sh wraps it for `make test`; test/t/013_failover.pl
drives it across failovers (--stop-file, --standby-dsn, no server faults).

Owns: the command line, the server control for crash faults (Server), the
sessions opened on a standby that live through its promotion (StandbySession),
and the order of the phases.
"""

import argparse
import os
import random
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import psycopg  # noqa: E402

import checker  # noqa: E402
import model  # noqa: E402
import workload  # noqa: E402
from model import TOPIC, GROUPS, BACKOFF  # noqa: E402


def setup(dsn):
    """The extension, the topic with a tiny retention (a segment is sealed after
    a quarter of it: rotations every second), the groups, the side tables."""
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("CREATE EXTENSION IF NOT EXISTS pg_courier CASCADE")
        c.execute("SELECT courier.create_topic(%s, retention => '4 seconds')", (TOPIC,))
        for name, g in GROUPS.items():
            if name == "default":
                c.execute("SELECT courier.alter_group(%s, 'default', retry_backoff => %s::interval[])",
                          (TOPIC, BACKOFF))
                continue
            c.execute("SELECT courier.create_group(%s, %s, filter => %s, ordered => %s, "
                      "max_attempts => %s, retry_backoff => %s::interval[])",
                      (TOPIC, name, g["filter"], g["ordered"], g["max_attempts"], BACKOFF))
        c.execute(model.SCHEMA)


def wait_ready(dsn, seconds=300):
    """Wait until the server accepts connections (after crash recovery)."""
    deadline = time.time() + seconds
    while True:
        try:
            with psycopg.connect(dsn, autocommit=True) as c:
                c.execute("SELECT 1")
            return
        except psycopg.OperationalError:
            if time.time() > deadline:
                raise
            time.sleep(0.5)


class Server:
    """The cluster under test when it is ours to crash: pg_ctl stop -m immediate, start."""

    def __init__(self, bindir, pgdata, log):
        self.pg_ctl = os.path.join(bindir, "pg_ctl")
        self.pgdata = pgdata
        self.log = log

    def crash_and_restart(self):
        subprocess.run([self.pg_ctl, "-D", self.pgdata, "-m", "immediate", "stop"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(random.uniform(0.1, 1.0))
        subprocess.run([self.pg_ctl, "-D", self.pgdata, "-l", self.log, "-w", "-t", "120", "start"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class StandbySession(threading.Thread):
    """A session opened on a standby: it reads what a standby can (the views,
    find, peek) while the node is in recovery and, once the node is promoted,
    produces and consumes on the same connection.  Counts what it did in each role."""

    def __init__(self, shared, dsn, idx):
        super().__init__(name=f"chaos-s{idx}", daemon=True)
        self.sh = shared
        self.s = workload.Session(shared, dsn, f"chaos-s{idx}")
        self.prod = workload.Producer(shared, dsn, 100 + idx)
        self.cons = workload.Consumer(shared, dsn, 100 + idx, list(GROUPS)[idx % len(GROUPS)])
        self.prod.s = self.s
        self.cons.s = self.s
        self.reads = 0
        self.promoted_rounds = 0
        self.pids = set()          # backends this session used as a primary session
        self.first_pid = None

    def run(self):
        while not self.sh.stop.is_set():
            try:
                c = self.s.conn()
                pid, rec = c.execute("SELECT pg_backend_pid(), pg_is_in_recovery()").fetchone()
                if self.first_pid is None:
                    self.first_pid = pid
            except psycopg.Error as e:
                self.sh.count_error(self.name, e, "standby")
                self.s.reset()
                time.sleep(0.2)
                continue
            if rec:
                try:
                    c.execute("SELECT * FROM courier.groups").fetchall()
                    c.execute("SELECT * FROM courier.topics").fetchall()
                    c.execute("SELECT * FROM courier.find(%s, key => 'k1')", (TOPIC,)).fetchall()
                    c.execute("SELECT * FROM courier.peek(%s, 'default', 20)", (TOPIC,)).fetchall()
                    self.reads += 1
                except psycopg.Error as e:
                    self.sh.count_error(self.name, e, "standby")
                    self.s.reset()
                time.sleep(0.05)
            else:
                self.pids.add(pid)
                self.prod.one_tx()
                self.cons.one_round()
                self.promoted_rounds += 1
        self.s.close()


def run(args):
    if not args.no_setup:
        setup(args.dsn)
    rec = model.Records(args.records)
    with psycopg.connect(args.dsn, autocommit=True) as c:
        api = model.Api(c)
    sh = workload.Shared(args, rec, api)
    rec.write("start", seed=args.seed, t=model.now(), api=api.describe(), scenario=args.scenario)
    print(f"chaos: scenario={args.scenario} seed={args.seed} api={api.describe()} seconds={args.seconds}",
          flush=True)
    server = Server(args.bindir, args.pgdata, args.log[0]) if args.pgdata else None
    threads = [workload.Producer(sh, args.dsn, i) for i in range(args.producers)]
    consumers = []
    groups = ["default", "default", "tags", "sql", "ordered", "ordered", "dlq", "extra"]
    for i in range(args.consumers):
        consumers.append(workload.Consumer(sh, args.dsn, i, groups[i % len(groups)]))
    threads += consumers
    standby = [StandbySession(sh, args.standby_dsn, i) for i in range(args.standby_sessions)] \
        if args.standby_dsn else []
    threads += standby
    if args.faults:
        threads.append(workload.Faults(sh, args.dsn, server))
    t0 = time.time()
    for t in threads:
        t.start()
    while True:
        time.sleep(0.2)
        if args.stop_file and (os.path.exists(args.stop_file) or time.time() - t0 >= args.max_seconds):
            break
        if not args.stop_file and time.time() - t0 >= args.seconds:
            break
    sh.stop.set()
    for t in threads:
        t.join(timeout=120)
    load_seconds = time.time() - t0
    rec.write("load_end", t=model.now(), faults=sh.faults, errors=sh.errors)
    print(f"chaos: load done after {load_seconds:.0f}s; faults {sh.faults}; client errors {sh.errors}",
          flush=True)
    for s in standby:
        print(f"chaos: standby session {s.name}: first backend {s.first_pid}, {s.reads} read rounds "
              f"in recovery, {s.promoted_rounds} produce+consume rounds after promotion on backends "
              f"{sorted(s.pids)}", flush=True)
        rec.write("standby", name=s.name, first_pid=s.first_pid, reads=s.reads,
                  promoted_rounds=s.promoted_rounds, pids=sorted(s.pids))

    # drain, faults off (a crash injected at the very end may still be recovering)
    wait_ready(args.dsn)
    workload.resolve_prepared(sh, args.dsn)
    workload.resume_all(sh, args.dsn)
    drains = [workload.Consumer(sh, args.dsn, 900 + i, g, drain=True) for i, g in enumerate(GROUPS)]
    for d in drains:
        d.start()
    for d in drains:
        d.join()
    rec.write("drain_end", t=model.now())
    rec.close()
    wait_ready(args.dsn)
    ok, summary = checker.check(args.dsn, args.records, args.log, async_failover=args.async_failover,
                                seconds=load_seconds, scenario=args.scenario, seed=args.seed,
                                report=args.report)
    print(summary, flush=True)
    return 0 if ok else 1


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("cmd", choices=["setup", "run", "check"])
    p.add_argument("--dsn", required=True)
    p.add_argument("--records", default="chaos-records.jsonl")
    p.add_argument("--log", action="append", default=[], help="server log file (repeatable)")
    p.add_argument("--report", help="write the checker's findings (every violation) here")
    p.add_argument("--scenario", default="chaos")
    p.add_argument("--seconds", type=float, default=float(os.environ.get("CHAOS_SECONDS", 20)))
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--producers", type=int, default=4)
    p.add_argument("--consumers", type=int, default=8)
    p.add_argument("--no-faults", dest="faults", action="store_false")
    p.add_argument("--crashes", action="store_true", help="inject pg_ctl stop -m immediate + start")
    p.add_argument("--crash-every", type=float, default=8.0)
    p.add_argument("--bindir")
    p.add_argument("--pgdata")
    p.add_argument("--drain-seconds", type=float, default=float(os.environ.get("CHAOS_DRAIN_SECONDS", 30)),
                   help="longest drain; a group still holding messages after it has lost them")
    p.add_argument("--standby-dsn")
    p.add_argument("--standby-sessions", type=int, default=2)
    p.add_argument("--stop-file", help="load until this file appears (or --max-seconds)")
    p.add_argument("--max-seconds", type=float, default=900.0)
    p.add_argument("--no-setup", action="store_true")
    p.add_argument("--async-failover", action="store_true",
                   help="commits the client saw may be missing (asynchronous standby promoted)")
    args = p.parse_args()
    if args.seed is None:
        args.seed = int(os.environ.get("CHAOS_SEED") or random.SystemRandom().randrange(1, 10**6))
    if args.cmd == "setup":
        setup(args.dsn)
        return 0
    if args.cmd == "check":
        ok, summary = checker.check(args.dsn, args.records, args.log, async_failover=args.async_failover,
                                    seconds=None, scenario=args.scenario, seed=args.seed,
                                    report=args.report)
        print(summary)
        return 0 if ok else 1
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
