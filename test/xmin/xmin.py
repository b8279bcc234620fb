#!/usr/bin/python3
"""The W4 load while the xmin horizon is held (issue 8 section 3).

W4: 4 producers sending one message per transaction, 2 consumers receiving
with waiting receives (batches of up to 100) and acking each batch with its
receipts.  One run per mode, each in a fresh database of the same cluster:

  none   nothing holds the horizon (the baseline)
  rr     a REPEATABLE READ transaction opened (and its snapshot taken) before
         the load, held until the load and the drain are over
  slot   a logical replication slot (test_decoding) created before the load:
         it holds catalog_xmin (the catalog, which segment rotation writes)
         and the WAL

Each run loads for SECONDS, drains, and measures with pgstattuple: sizes of
every relation of schema courier (tables and indexes), live and dead tuples,
and the catalog tables rotation writes.  While it runs it samples the
claim and lease tables against the messages in flight.

Asserted (behaviour, never timings):
  - nothing lost: every message sent was received and acked;
  - the horizon really was held for the whole run (the holder's xmin, the
    slot's catalog_xmin, did not move);
  - the message tables do not bloat: no dead tuple in any log segment;
  - the claim and lease tables stay bounded by the work in flight: at every
    sample, live claim rows <= 2 * in_flight + CLAIM_SLACK and live lease rows
    <= in_flight + LEASE_SLACK, and after the drain and one maintenance round
    both are at most the slack.  The slack is generous and constant: finished
    claims wait for the worker to fold them into the group's low water, and
    how many accumulate meanwhile depends on the receive rate (some hundreds
    here), never on how many messages went through or how long the horizon
    is held;
  - what bloat the held horizon caused is reclaimable: once it is released,
    VACUUM leaves no dead tuple in claim and lease.

Throughput (messages acked per second), latency percentiles (send to
receive) and the sizes are reported, not asserted, with each run's ratio to
the baseline of the same invocation.

    xmin.py --dsn "host=... user=postgres" [--seconds N] [--modes none,rr,slot] [--json FILE]

Prints one 'xmin summary:' line per mode, 'ok - ...' / 'not ok - ...' per
assertion group, and ends with "xmin tests: N passed, N failed".
"""

import argparse
import json
import os
import statistics
import sys
import threading
import time

import psycopg

TOPIC = "w4"
CLAIM_SLACK = 2000
LEASE_SLACK = 300


def dsn_db(base, db):
    return f"{base} dbname={db}"


class Load:
    def __init__(self, dsn, seconds):
        self.dsn = dsn
        self.seconds = seconds
        self.stop_send = threading.Event()
        self.stop_recv = threading.Event()
        self.lock = threading.Lock()
        self.sent = 0
        self.acked = 0
        self.received_ids = set()
        self.dups = 0
        self.lat = []
        self.errors = []

    def producer(self):
        with psycopg.connect(self.dsn, autocommit=True, application_name="w4-producer") as c:
            n = 0
            while not self.stop_send.is_set():
                try:
                    c.execute("SELECT courier.send(%s, %s::jsonb)", (TOPIC, '{"w": 4}'))
                    n += 1
                except psycopg.Error as e:
                    self.errors.append(f"send: {e.sqlstate} {e}")
                    if c.broken:
                        break
            with self.lock:
                self.sent += n

    def consumer(self):
        with psycopg.connect(self.dsn, autocommit=True, application_name="w4-consumer") as c:
            idle = 0
            while True:
                if self.stop_recv.is_set():
                    break
                try:
                    rows = c.execute(
                        "SELECT id, receipt, extract(epoch FROM clock_timestamp() - sent_at)"
                        " FROM courier.receive(%s, 'default', 100, '30 seconds', wait => '1 second')",
                        (TOPIC,)).fetchall()
                    if not rows:
                        idle += 1
                        if self.stop_send.is_set() and idle >= 2:
                            break
                        continue
                    idle = 0
                    n = c.execute("SELECT courier.ack(%s, 'default', %s::bigint[], %s::text[])",
                                  (TOPIC, [r[0] for r in rows], [r[1] for r in rows])).fetchone()[0]
                    with self.lock:
                        self.acked += n
                        for r in rows:
                            if r[0] in self.received_ids:
                                self.dups += 1
                            self.received_ids.add(r[0])
                        self.lat.extend(float(r[2]) for r in rows)
                except psycopg.Error as e:
                    self.errors.append(f"receive/ack: {e.sqlstate} {e}")
                    if c.broken:
                        break


def rel_stats(c):
    """pgstattuple of every table of schema courier (with its indexes' size)."""
    out = {}
    for (name, kind) in c.execute(
            "SELECT c.relname, CASE WHEN c.relname LIKE 'log\\_%%' THEN 'segments' ELSE c.relname END"
            " FROM pg_class c WHERE c.relnamespace = 'courier'::regnamespace AND c.relkind = 'r'").fetchall():
        try:
            t, live, dead, dead_len = c.execute(
                "SELECT table_len, tuple_count, dead_tuple_count, dead_tuple_len"
                " FROM pgstattuple(%s::regclass)", (f"courier.{name}",)).fetchone()
            idx = c.execute("SELECT pg_indexes_size(%s::regclass)", (f"courier.{name}",)).fetchone()[0]
        except psycopg.errors.UndefinedTable:
            continue            # a segment dropped meanwhile
        o = out.setdefault(kind, dict(n=0, table=0, index=0, live=0, dead=0, dead_bytes=0))
        o["n"] += 1
        o["table"] += t
        o["index"] += idx
        o["live"] += live
        o["dead"] += dead
        o["dead_bytes"] += dead_len
    return out


def catalog_stats(c):
    out = {}
    for rel in ("pg_class", "pg_attribute", "pg_type", "pg_depend", "pg_index"):
        t, live, dead = c.execute("SELECT table_len, tuple_count, dead_tuple_count FROM pgstattuple(%s::regclass)",
                                  (rel,)).fetchone()
        out[rel] = dict(table=t, live=live, dead=dead)
    return out


def mb(x):
    return f"{x / 1048576:.1f}MB"


def one_run(base, mode, seconds, results, checks):
    db = f"xmin_{mode}"
    with psycopg.connect(dsn_db(base, "postgres"), autocommit=True) as c:
        c.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        c.execute(f"CREATE DATABASE {db}")
    dsn = dsn_db(base, db)
    admin = psycopg.connect(dsn, autocommit=True, application_name="w4-admin")
    admin.execute("CREATE EXTENSION pg_courier CASCADE")
    admin.execute("CREATE EXTENSION pgstattuple")
    # rotations during the run: a segment is sealed after a quarter of the
    # retention (5 s) or courier.segment_size ids, and dropped once every
    # group is past it and its retention is over
    admin.execute("SELECT courier.create_topic(%s, retention => '20 seconds')", (TOPIC,))
    holder = None
    horizon = None
    if mode == "rr":
        holder = psycopg.connect(dsn, autocommit=True, application_name="w4-holder")
        holder.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        holder.execute("SELECT count(*) FROM pg_class").fetchone()
        hpid = holder.execute("SELECT pg_backend_pid()").fetchone()[0]
        horizon = admin.execute("SELECT backend_xmin::text FROM pg_stat_activity WHERE pid = %s",
                                (hpid,)).fetchone()[0]
    elif mode == "slot":
        admin.execute("SELECT pg_create_logical_replication_slot('xmin_slot', 'test_decoding')")
        horizon = admin.execute("SELECT catalog_xmin::text FROM pg_replication_slots"
                                " WHERE slot_name = 'xmin_slot'").fetchone()[0]

    load = Load(dsn, seconds)
    threads = [threading.Thread(target=load.producer, daemon=True) for _ in range(4)]
    threads += [threading.Thread(target=load.consumer, daemon=True) for _ in range(2)]
    t0 = time.time()
    for t in threads:
        t.start()
    samples = []        # (t, in_flight, claim rows, lease rows)
    while time.time() - t0 < seconds:
        time.sleep(1.0)
        try:
            inf = admin.execute("SELECT in_flight + retrying + delayed FROM courier.groups WHERE topic = %s",
                                (TOPIC,)).fetchone()[0]
            cl = admin.execute("SELECT count(*) FROM courier.claim").fetchone()[0]
            le = admin.execute("SELECT count(*) FROM courier.lease").fetchone()[0]
            samples.append((round(time.time() - t0, 1), inf, cl, le))
        except psycopg.Error as e:
            load.errors.append(f"sample: {e.sqlstate} {e}")
    load_seconds = time.time() - t0
    load.stop_send.set()
    for t in threads[:4]:
        t.join()
    # drain: the consumers stop after two empty waits in a row
    deadline = time.time() + 60
    for t in threads[4:]:
        t.join(max(0.1, deadline - time.time()))
    load.stop_recv.set()
    for t in threads[4:]:
        t.join()

    # the horizon was held all along
    held = True
    if mode == "rr":
        now = admin.execute("SELECT backend_xmin::text FROM pg_stat_activity WHERE pid = %s", (hpid,)).fetchone()[0]
        oldest = admin.execute("SELECT min(backend_xmin::text::bigint) FROM pg_stat_activity"
                               " WHERE backend_xmin IS NOT NULL").fetchone()[0]
        held = now == horizon and int(oldest) <= int(horizon)
    elif mode == "slot":
        now = admin.execute("SELECT catalog_xmin::text FROM pg_replication_slots WHERE slot_name = 'xmin_slot'"
                            ).fetchone()[0]
        held = now == horizon
    admin.execute("SELECT courier.run_maintenance()")
    rels = rel_stats(admin)
    cats = catalog_stats(admin)
    wal = None
    if mode == "slot":
        wal = admin.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint FROM pg_replication_slots"
                            " WHERE slot_name = 'xmin_slot'").fetchone()[0]
    left = admin.execute("SELECT backlog, in_flight, delayed, retrying FROM courier.groups WHERE topic = %s",
                         (TOPIC,)).fetchone()

    # release the horizon; what it held back must be reclaimable
    if holder is not None:
        holder.execute("COMMIT")
        holder.close()
    if mode == "slot":
        admin.execute("SELECT pg_drop_replication_slot('xmin_slot')")
    admin.execute("SELECT courier.run_maintenance()")
    admin.execute("VACUUM courier.claim, courier.lease")
    after = rel_stats(admin)
    admin.close()
    with psycopg.connect(dsn_db(base, "postgres"), autocommit=True) as c:
        c.execute(f"DROP DATABASE {db} WITH (FORCE)")

    lat = sorted(load.lat)
    p = (lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000 if lat else float("nan"))
    r = dict(mode=mode, seconds=round(load_seconds, 1), sent=load.sent, acked=load.acked,
             received=len(load.received_ids), redelivered=load.dups,
             ack_rate=round(load.acked / load_seconds, 1), send_rate=round(load.sent / load_seconds, 1),
             p50_ms=round(p(0.50), 1), p99_ms=round(p(0.99), 1), horizon=horizon, held=held,
             rels=rels, after=after, catalog=cats, wal_retained=wal, samples=samples,
             left=left, errors=load.errors[:10])
    results.append(r)

    # ---- assertions
    name = f"xmin {mode}"
    problems = []
    if load.errors:
        problems.append(f"{len(load.errors)} client errors, e.g. {load.errors[0][:200]}")
    if len(load.received_ids) < load.sent:
        problems.append(f"lost: sent {load.sent}, received {len(load.received_ids)} distinct")
    if load.acked < load.sent:
        problems.append(f"lost: sent {load.sent}, acked {load.acked}")
    if left is None or any(x != 0 for x in left):
        problems.append(f"courier.groups after the drain: backlog, in_flight, delayed, retrying = {left}")
    checks.append((f"{name}: nothing lost ({load.sent} sent, {load.acked} acked)", problems))
    if mode != "none":
        checks.append((f"{name}: the horizon ({horizon}) was held for the whole run",
                       [] if held else ["the horizon moved"]))
    seg = rels.get("segments", dict(dead=0, n=0))
    checks.append((f"{name}: no dead tuple in the log segments ({seg['n']} segments)",
                   [] if seg["dead"] == 0 else [f"{seg['dead']} dead tuples in log segments"]))
    bad = [s for s in samples if s[2] > 2 * s[1] + CLAIM_SLACK or s[3] > s[1] + LEASE_SLACK]
    claim_end = rels.get("claim", {}).get("live", 0)
    lease_end = rels.get("lease", {}).get("live", 0)
    pb = [f"sample (t, in flight, claim rows, lease rows) = {s}" for s in bad[:5]]
    if claim_end > CLAIM_SLACK or lease_end > LEASE_SLACK:
        pb.append(f"after the drain: {claim_end} claim rows, {lease_end} lease rows")
    checks.append((f"{name}: claim and lease rows bounded by the messages in flight "
                   f"(max claim rows {max((s[2] for s in samples), default=0)}, "
                   f"max lease rows {max((s[3] for s in samples), default=0)}, "
                   f"max in flight {max((s[1] for s in samples), default=0)})", pb))
    dead_after = after.get("claim", {}).get("dead", 0) + after.get("lease", {}).get("dead", 0)
    checks.append((f"{name}: after the horizon is released, VACUUM leaves no dead tuple in claim and lease",
                   [] if dead_after == 0 else [f"{dead_after} dead tuples left"]))
    return r


def summary_line(r, base):
    rels = r["rels"]

    def rel(k):
        x = rels.get(k, dict(table=0, index=0, live=0, dead=0, n=0))
        return f"{mb(x['table'])}+{mb(x['index'])} idx, {x['live']} live, {x['dead']} dead"
    ratio = f"{r['ack_rate'] / base['ack_rate']:.2f}x" if base and base["ack_rate"] else "-"
    cat = r["catalog"]
    line = (f"xmin summary: mode={r['mode']} seconds={r['seconds']} sent={r['sent']} acked={r['acked']} "
            f"acked/s={r['ack_rate']} ({ratio} of none) latency p50={r['p50_ms']}ms p99={r['p99_ms']}ms "
            f"redelivered={r['redelivered']}\n"
            f"  segments ({rels.get('segments', {}).get('n', 0)}): {rel('segments')}\n"
            f"  claim: {rel('claim')}\n"
            f"  lease: {rel('lease')}\n"
            f"  catalog dead tuples: " + ", ".join(f"{k} {v['dead']}" for k, v in cat.items()))
    if r["wal_retained"] is not None:
        line += f"\n  WAL retained by the slot: {mb(r['wal_retained'])}"
    after = r["after"]
    line += (f"\n  after release + VACUUM: claim {after.get('claim', {}).get('dead', 0)} dead "
             f"({mb(after.get('claim', {}).get('table', 0))}), lease {after.get('lease', {}).get('dead', 0)} dead "
             f"({mb(after.get('lease', {}).get('table', 0))})")
    return line


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dsn", required=True, help="connection string without dbname (a superuser)")
    p.add_argument("--seconds", type=float, default=float(os.environ.get("XMIN_SECONDS", 12)))
    p.add_argument("--modes", default="none,rr,slot")
    p.add_argument("--rounds", type=int, default=int(os.environ.get("XMIN_ROUNDS", 1)),
                   help="repeat the modes this many times (pairs each run with the baseline before it)")
    p.add_argument("--json")
    a = p.parse_args()
    results, checks = [], []
    base = None
    for mode in a.modes.split(",") * a.rounds:
        print(f"== xmin: mode {mode}, {a.seconds:.0f}s of W4", flush=True)
        r = one_run(a.dsn, mode, a.seconds, results, checks)
        if mode == "none":
            base = r
        print(summary_line(r, base), flush=True)
    # each run against the baseline run just before it (the machine may be
    # shared: pairs of neighbouring runs are what compares)
    ratios = {}
    last = None
    for r in results:
        if r["mode"] == "none":
            last = r
        elif last and last["ack_rate"]:
            ratios.setdefault(r["mode"], []).append(r["ack_rate"] / last["ack_rate"])
    for mode, rs in ratios.items():
        p99s = [r["p99_ms"] for r in results if r["mode"] == mode]
        base99 = [r["p99_ms"] for r in results if r["mode"] == "none"]
        print(f"xmin ratio: mode={mode} runs={len(rs)} acked/s against the baseline run before it: "
              f"median {statistics.median(rs):.2f}x (each: {', '.join(f'{x:.2f}' for x in rs)}); "
              f"p99 latency median {statistics.median(p99s):.1f}ms against {statistics.median(base99):.1f}ms",
              flush=True)
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(results, fh, indent=1, default=str)
    passed = failed = 0
    for name, problems in checks:
        if problems:
            failed += 1
            print(f"not ok - {name}")
            for pr in problems:
                print(f"  {pr}")
        else:
            passed += 1
            print(f"ok - {name}")
    print(f"xmin tests: {passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
