#!/usr/bin/python3
"""pg_courier benchmark driver (run by bench/run.sh, which sets up the cluster).

Measures pg_courier beside a bare-table baseline, PgQ and pg-boss on one
private cluster, back to back in each repetition, and prints ratios to the
baseline of the same repetition (median over the repetitions).  Every
measurement checks its books: sent - left - received = 0, where "left" is
what the peer itself says is left, and pg_courier's receive log never shows
one id held by two receivers at once.

Environment (set by run.sh): PGHOST PGPORT PGUSER PGDATABASE, BENCH_DIR,
BENCH_SRC (the bench/ directory), PG_BIN, NODE, PGBOSS_DIR, PGQD,
PEERS ("bare courier pgq pgboss"), MODE (full | smoke), and the knobs below.
"""
import array
import gc
import json
import multiprocessing as mp
import os
import re
import statistics
import subprocess
import sys
import time

import psycopg

MODE = os.environ.get("MODE", "full")
SMOKE = MODE == "smoke"
E = os.environ.get


def knob(name, full, smoke):
    v = E(name)
    if v is not None:
        return type(full)(v)
    return smoke if SMOKE else full


REPS = knob("REPS", 3, 1)
DURATION = knob("DURATION", 10, 1)            # seconds per W1 / W2 measurement
W3_BACKLOG = knob("W3_BACKLOG", 200000, 2000)
# a pg_courier consumer's cycle: "one" acks each batch with the next receive
# (courier.ack_and_receive, one commit per batch), "two" calls receive, then ack
COURIER_CYCLE = E("COURIER_CYCLE", "one")
# a pg_courier W4 consumer's wait: "1 second" (a waiting receive, as shipped),
# or "none": no wait, the consumer polls in a loop as the bare table's do (A/B)
COURIER_W4_WAIT = E("COURIER_W4_WAIT", "1 second")
W4_PRODUCERS = knob("W4_PRODUCERS", 4, 1)     # W4's producers (the workload says 4; fewer for an A/B)
W4_SECONDS = knob("W4_SECONDS", 60, 1)
W5_MSGS = knob("W5_MSGS", 200000, 2000)
W6_MSGS = knob("W6_MSGS", 1000000, 10000)     # 1% of them match the filter
W7_MSGS = knob("W7_MSGS", 100000, 2000)
W7_SECONDS = knob("W7_SECONDS", 30, 2)
W7_GIVE_UP = knob("W7_GIVE_UP", 120, 20)      # seconds after the due time the burst consumers wait at most
W4_TAIL = knob("W4_TAIL", 0.0, 0.0)           # consumers go on this long after the producers stop (0: the
                                              # books are then checked with the queue not yet drained)
EXTRA_REPS = knob("EXTRA_REPS", 1, 1)         # repetitions that also run W5-W7
LINGER_MS = knob("LINGER_MS", 20, 20)
W4C_LINGER_MS = knob("W4C_LINGER_MS", 1.0, 0.0)   # W4c once more with this linger (0: not; see BENCHMARKS.md)
WORKLOADS = E("WORKLOADS", "W1 W2 W3 W3c W4 W4c W4x W4xc W5 W6 W7").split()
PEERS = E("PEERS", "bare courier pgq pgboss").split()
LOAD_MAX = knob("LOAD_MAX", 1.2, 0.0)         # 0: do not wait for a quiet machine
LOAD_WAIT = knob("LOAD_WAIT", 900, 0)
WALDUMP = E("WALDUMP") == "1"
PROFILE = E("PROFILE") == "1"                 # pg_stat_statements (track = all) around each W4, into BENCH_DIR/profile
PERF = E("PERF") == "1"                       # and perf record -a -g during pg_courier's W4
SRC = E("BENCH_SRC")
DIR = E("BENCH_DIR")
PG_BIN = E("PG_BIN", "")
NODE = E("NODE")
PGBOSS_DIR = E("PGBOSS_DIR")
PGQD = E("PGQD")

BODY = '{"order": 42, "customer": "c-17", "amount": 30}'
PAD = "'pad', 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'"
LABEL = {"bare": "bare table", "courier": "pg_courier", "pgq": "PgQ", "pgboss": "pg-boss"}

problems = []          # books that did not balance, lease overlaps
notes = []


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def conn(autocommit=True):
    return psycopg.connect(autocommit=autocommit)


def q(sql, params=None):
    with conn() as c:
        cur = c.execute(sql, params)
        return cur.fetchall() if cur.description else None


def q1(sql, params=None):
    r = q(sql, params)
    return r[0][0] if r else None


def lsn():
    return q1("SELECT pg_current_wal_lsn()::text")


def wal_bytes(a, b):
    return q1("SELECT pg_wal_lsn_diff(%s::pg_lsn, %s::pg_lsn)::bigint", (b, a))


def settle():
    """vacuum and checkpoint so every measurement starts alike"""
    if SMOKE:
        return
    q("VACUUM")
    q("CHECKPOINT")


def waldump(tag, a, b):
    """WALDUMP=1: pg_waldump --stats=record of the WAL between A and B"""
    if not WALDUMP:
        return
    d = os.path.join(DIR, "waldump")
    os.makedirs(d, exist_ok=True)
    r = subprocess.run([os.path.join(PG_BIN, "pg_waldump"), "--stats=record", "-p", os.path.join(DIR, "data", "pg_wal"),
                        "-s", a, "-e", b], capture_output=True, text=True)
    with open(os.path.join(d, tag.replace("/", "_").replace(" ", "_") + ".txt"), "a") as f:
        f.write(f"# {tag} {a} .. {b}\n{r.stdout}{r.stderr}\n")


def profile_start(tag):
    if not PROFILE:
        return None
    os.makedirs(os.path.join(DIR, "profile"), exist_ok=True)
    q("SELECT pg_stat_statements_reset()")
    if PERF and "courier" in tag:
        return subprocess.Popen(["perf", "record", "-a", "-g", "-q", "-o",
                                 os.path.join(DIR, "profile", tag + ".perf.data")],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return None


def profile_stop(tag, perf):
    if not PROFILE:
        return
    d = os.path.join(DIR, "profile")
    if perf:
        perf.send_signal(2)
        perf.wait()
        r = subprocess.run(["perf", "report", "--stdio", "--no-children", "--sort", "dso,sym", "-g", "none",
                            "-i", os.path.join(d, tag + ".perf.data")], capture_output=True, text=True)
        with open(os.path.join(d, tag + ".perf.txt"), "w") as f:
            f.write(r.stdout[:200000])
    rows = q("SELECT calls, round(total_exec_time::numeric, 1), round(mean_exec_time::numeric, 3), rows, "
             "shared_blks_hit + shared_blks_read, wal_records, wal_bytes, toplevel, left(regexp_replace(query, '\\s+', ' ', 'g'), 160) "
             "FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 25")
    with open(os.path.join(d, tag + ".statements.txt"), "w") as f:
        f.write("calls | total ms | mean ms | rows | blocks | wal records | wal bytes | toplevel | query\n")
        for r in rows:
            f.write(" | ".join(str(x) for x in r) + "\n")


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


# ---------------------------------------------------------------- peers: setup


def has_linger():
    return bool(q1("SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
                   "WHERE n.nspname = 'courier' AND p.proname = 'receive' AND 'linger' = ANY(p.proargnames)"))


def reset(peer, name="bench", groups=None, filter_groups=None, queues=1, consumers=("c",)):
    """a fresh, empty queue called NAME for PEER"""
    if peer == "bare":
        q(f"DROP TABLE IF EXISTS {name}; CREATE TABLE {name} (id bigserial PRIMARY KEY, body jsonb NOT NULL, "
          f"sent_at timestamptz NOT NULL DEFAULT clock_timestamp())")
    elif peer == "courier":
        q("SELECT courier.drop_topic(topic) FROM courier.topics WHERE topic = %s", (name,))
        q("SELECT courier.create_topic(%s)", (name,))
        for g in groups or []:
            q("SELECT courier.create_group(%s, %s)", (name, g))
        for g, f in (filter_groups or {}).items():
            q("SELECT courier.create_group(%s, %s, filter => %s)", (name, g, f))
    elif peer == "pgq":
        q("SELECT pgq.drop_queue(queue_name, true) FROM pgq.queue")
        for i in range(queues):
            qn = name if queues == 1 else f"{name}{i}"
            q("SELECT pgq.create_queue(%s)", (qn,))
            for co in consumers:
                q("SELECT pgq.register_consumer(%s, %s)", (qn, co))
    elif peer == "pgboss":
        node("setup", name)
    settle()


def node(*args, timeout=900):
    env = dict(os.environ)
    r = subprocess.run([NODE, os.path.join(SRC, "pgboss.mjs"), *map(str, args)], env=env,
                       capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"pg-boss driver {args}: {r.stderr.strip()[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def pgq_tick(qn):
    """a tick now if any event came since the last one, so that everything
    committed is in a batch (pgq.force_tick would bump the event sequence,
    which get_consumer_info counts pending events with)"""
    q("UPDATE pgq.queue SET queue_ticker_max_count = 1 WHERE queue_name = %s", (qn,))
    q("SELECT pgq.ticker(%s)", (qn,))


def left(peer, name="bench", grp="default", queues=1, consumer="c"):
    """what the peer itself says is still to be received"""
    if peer == "bare":
        return q1(f"SELECT count(*) FROM {name}")
    if peer == "courier":
        r = q("SELECT backlog, in_flight, delayed, retrying FROM courier.groups WHERE topic = %s AND grp = %s",
              (name, grp))[0]
        return sum(r)
    if peer == "pgq":
        # PgQ's own count (get_consumer_info.pending_events) is a difference of
        # event-sequence values: an estimate (one too many on a fresh queue,
        # more after rollbacks); count exactly by reading the remaining batches
        n = 0
        with conn(autocommit=False) as c:
            for i in range(queues):
                qn = name if queues == 1 else f"{name}{i}"
                pgq_tick(qn)
                while True:
                    b = c.execute("SELECT pgq.next_batch(%s, %s)", (qn, consumer)).fetchone()[0]
                    if b is None:
                        break
                    n += c.execute("SELECT count(*) FROM pgq.get_batch_events(%s)", (b,)).fetchone()[0]
                    c.execute("SELECT pgq.finish_batch(%s)", (b,))
                    c.commit()
                c.commit()
        return n
    if peer == "pgboss":
        return q1("SELECT count(*) FROM pgboss.job WHERE name = %s AND state IN ('created', 'retry', 'active')",
                  (name,))


def books(wl, peer, sent, received, lft, extra=""):
    diff = sent - lft - received
    ok = diff == 0
    if not ok:
        problems.append(f"{wl} {LABEL[peer]}: sent {sent} - left {lft} - received {received} = {diff} {extra}".rstrip())
    return {"sent": sent, "left": lft, "received": received, "books": diff}


def dead_tuples(peer, name="bench"):
    time.sleep(0.3 if SMOKE else 1.2)     # backends flush their table statistics at most once a second
    sch = {"bare": "public", "courier": "courier", "pgq": "pgq", "pgboss": "pgboss"}[peer]
    r = q("SELECT coalesce(sum(n_dead_tup), 0), coalesce(sum(n_tup_upd), 0), coalesce(sum(n_tup_hot_upd), 0) "
          "FROM pg_stat_user_tables WHERE schemaname = %s", (sch,))[0]
    return {"dead": int(r[0]), "upd": int(r[1]), "hot": int(r[2])}


def stats_reset():
    q("SELECT pg_stat_reset()")


# ---------------------------------------------------------------- W1 / W2: pgbench


PGQ_ONE = "SELECT pgq.insert_event('bench', 'msg', '%s');\n" % BODY
PGQ_BATCH = "SELECT count(pgq.insert_event('bench', 'msg', '%s')) FROM generate_series(1, 100);\n" % BODY
BARE_ONE = "INSERT INTO bench (body) VALUES ('%s');\n" % BODY
BARE_BATCH = "INSERT INTO bench (body) SELECT '%s'::jsonb FROM generate_series(1, 100);\n" % BODY
COURIER_ONE = "SELECT courier.send('bench', '%s');\n" % BODY
COURIER_BATCH = ("SELECT count(*) FROM courier.send_batch('bench', (SELECT array_agg('%s'::jsonb) "
                 "FROM generate_series(1, 100)));\n" % BODY)
SCRIPTS = {("bare", 1): BARE_ONE, ("bare", 100): BARE_BATCH, ("courier", 1): COURIER_ONE,
           ("courier", 100): COURIER_BATCH, ("pgq", 1): PGQ_ONE, ("pgq", 100): PGQ_BATCH}


def pgbench(script, clients, seconds):
    path = os.path.join(DIR, "script.sql")
    with open(path, "w") as f:
        f.write(script)
    r = subprocess.run([os.path.join(PG_BIN, "pgbench"), "-n", "-M", "prepared", "-c", str(clients),
                        "-j", str(min(clients, 2)), "-T", str(seconds), "-f", path],
                       capture_output=True, text=True)
    out = r.stdout + r.stderr
    m = re.search(r"number of transactions actually processed: (\d+)", out)
    t = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", out)
    if r.returncode != 0 or not m or not t:
        raise RuntimeError(f"pgbench failed: {out[-2000:]}")
    return int(m.group(1)), float(t.group(1))


def w_send(wl, peer, clients, per):
    reset(peer)
    perf = profile_start(f"{wl}-{clients}-{peer}")
    a = lsn()
    if peer == "pgboss":
        r = node("send", "bench", clients, DURATION, per)
        sent, rate = r["sent"], r["sent"] / r["secs"]
    else:
        n, tps = pgbench(SCRIPTS[(peer, per)], clients, DURATION)
        sent, rate = n * per, tps * per
    w = wal_bytes(a, lsn())
    profile_stop(f"{wl}-{clients}-{peer}", perf)
    res = {"rate": rate, "wal": w / max(sent, 1)}
    res.update(books(wl, peer, sent, 0, left(peer)))
    return res


# ---------------------------------------------------------------- consumers (processes)


def fill(peer, name, n, pgq_batch=100, queues=1):
    """a backlog of N messages of ~90 bytes"""
    if peer == "bare":
        q(f"INSERT INTO {name} (body) SELECT jsonb_build_object('n', g, {PAD}) FROM generate_series(1, %s) g", (n,))
    elif peer == "courier":
        for lo in range(0, n, 100000):
            k = min(100000, n - lo)
            q(f"SELECT count(*) FROM courier.send_batch(%s, (SELECT array_agg(jsonb_build_object('n', g, {PAD})) "
              f"FROM generate_series(1, %s) g))", (name, k))
    elif peer == "pgq":
        # PgQ hands out what committed between two ticks: one tick per
        # PGQ_BATCH events gives batches of that size
        for i in range(queues):
            qn = name if queues == 1 else f"{name}{i}"
            q("UPDATE pgq.queue SET queue_ticker_max_count = %s WHERE queue_name = %s", (pgq_batch, qn))
            q(f"""DO $$ BEGIN
                  FOR i IN 1..{-(-(n // queues) // pgq_batch)} LOOP
                      PERFORM pgq.insert_event('{qn}', 'msg', jsonb_build_object('n', g, {PAD})::text)
                      FROM generate_series(1, {pgq_batch}) g;
                      COMMIT;
                      PERFORM pgq.ticker('{qn}');
                      COMMIT;
                  END LOOP; END $$""")
    elif peer == "pgboss":
        node("fill", name, n)
    settle()


def consumer_loop(peer, name, grp, batch, stop_at, stop_when_empty, wait, linger, res_q, idx, started=None,
                  log_ids=True, window_end=None, tend=None, tail=0.0):
    """receive + ack (or the peer's equivalent) in batches until empty / stop_at;
    puts ("done", received, [([ids], [attempts], t_recv, t_ack, idx)], [latency ms], idx,
    received before window_end, [calls with rows, empty calls], own CPU seconds) on res_q"""
    # No cyclic garbage collection in the measuring processes: a pg_courier
    # consumer keeps a tuple per delivery (the double-delivery check), and a
    # full collection over them paused it for tens of ms (run 26), a cost of
    # the bench and not of the peer.  Nothing here makes reference cycles.
    gc.disable()
    c = conn()
    recs, lat, n, nwin = [], [], 0, 0
    calls = [0, 0]          # receives (or polls / batches) that returned something, and empty ones
    wend = window_end or float("inf")
    if started is not None:
        started.wait()
    if tend is not None:
        stop_at, wend = tend.value + tail, tend.value
    qn = name
    try:
        if peer == "courier":
            opts = ""
            if wait:
                opts += f", wait => '{wait}'"
            if linger:
                opts += f", linger => '{linger}'"
            cols = ("SELECT id, attempt, body::text, (extract(epoch FROM clock_timestamp() - sent_at) * 1000)::float8 ")
            if COURIER_CYCLE == "one":
                # the ack of the previous batch rides on the next receive:
                # one call, one commit per batch (courier.ack_and_receive)
                rsql = cols + f"FROM courier.ack_and_receive(%s, %s, %s::bigint[], NULL, %s, '30 seconds'{opts})"
            else:
                rsql = cols + f"FROM courier.receive(%s, %s, %s, '30 seconds'{opts})"
            # Received, not yet acked: the ids, their attempts and when they
            # came.  The delivery log gets one entry per batch, expanded by
            # gather() after the measurement: per-message bookkeeping in the
            # consumer cost it twice the bare table consumer's CPU per message
            # on a box the clients share with the server (run 27).
            held_ids, held_att, held_t = [], [], 0.0

            def ack_now(ids, atts, t_recv):
                """ack IDS with courier.ack, log the deliveries"""
                acked = c.execute("SELECT courier.ack(%s, %s, %s::bigint[])", (qn, grp, ids)).fetchone()[0]
                t_ack = time.time()
                if acked != len(ids):
                    res_q.put(("problem", f"{grp}: ack of {len(ids)} ids acked {acked}"))
                if log_ids:
                    recs.append((ids, atts, t_recv, t_ack, idx))
            try:
                while True:
                    if COURIER_CYCLE == "one":
                        carried = bool(held_ids)
                        rows = c.execute(rsql, (qn, grp, held_ids, batch)).fetchall()
                        t_recv = time.time()
                        if log_ids and held_ids:
                            recs.append((held_ids, held_att, held_t, t_recv, idx))
                        held_ids = []
                    else:
                        carried = False
                        rows = c.execute(rsql, (qn, grp, batch)).fetchall()
                        t_recv = time.time()
                    calls[0 if rows else 1] += 1
                    if rows:
                        ids, atts = [r[0] for r in rows], [r[1] for r in rows]
                        if COURIER_CYCLE == "one":
                            held_ids, held_att, held_t = ids, atts, t_recv
                        else:
                            ack_now(ids, atts, t_recv)
                        n += len(rows)
                        nwin += len(rows) if t_recv < wend else 0
                        lat.extend(r[3] for r in rows)
                    elif carried:
                        continue        # a call that acked waited at most 1 s: the next one waits
                    elif stop_when_empty and not wait:
                        break
                    if stop_at and time.time() >= stop_at and (not stop_when_empty or not rows):
                        break
                    if stop_when_empty and wait and not rows:
                        break
            finally:
                if held_ids:
                    ack_now(held_ids, held_att, held_t)
        elif peer == "bare":
            sql = (f"DELETE FROM {qn} WHERE id IN (SELECT id FROM {qn} ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED) "
                   f"RETURNING id, body::text, (extract(epoch FROM clock_timestamp() - sent_at) * 1000)::float8")
            while True:
                rows = c.execute(sql, (batch,)).fetchall()
                calls[0 if rows else 1] += 1
                n += len(rows)
                nwin += len(rows) if time.time() < wend else 0
                lat.extend(r[2] for r in rows)
                if not rows:
                    if stop_when_empty and not stop_at:
                        break
                    if stop_at and time.time() >= stop_at:
                        break
                    time.sleep(0.001)
                elif stop_at and time.time() >= stop_at and not stop_when_empty:
                    break
        elif peer == "pgq":
            c.autocommit = False
            while True:
                b = c.execute("SELECT pgq.next_batch(%s, %s)", (qn, grp)).fetchone()[0]
                calls[0 if b is not None else 1] += 1
                if b is None:
                    c.commit()
                    if stop_when_empty and not stop_at:
                        break
                    if stop_at and time.time() >= stop_at:
                        break
                    time.sleep(0.05)
                    continue
                rows = c.execute("SELECT ev_id, ev_data, (extract(epoch FROM clock_timestamp() - ev_time) * 1000)::float8 "
                                 "FROM pgq.get_batch_events(%s)", (b,)).fetchall()
                c.execute("SELECT pgq.finish_batch(%s)", (b,))
                c.commit()
                n += len(rows)
                nwin += len(rows) if time.time() < wend else 0
                lat.extend(r[2] for r in rows)
    except Exception as e:          # reported, counted as a problem
        res_q.put(("problem", f"{peer} consumer {idx}: {e}"))
    finally:
        c.close()
    res_q.put(("done", n, recs, lat, idx, nwin, calls, time.process_time()))


def producer_loop(peer, name, tend, res_q, started):
    gc.disable()            # as in consumer_loop
    c = conn()
    n = 0
    started.wait()
    stop_at = tend.value
    try:
        if peer == "courier":
            sql, args = "SELECT courier.send(%s, %s::jsonb)", (name, BODY)
        elif peer == "bare":
            sql, args = f"INSERT INTO {name} (body) VALUES (%s::jsonb)", (BODY,)
        else:
            sql, args = "SELECT pgq.insert_event(%s, 'msg', %s)", (name, BODY)
        while time.time() < stop_at:
            c.execute(sql, args, prepare=True)
            n += 1
    except Exception as e:
        res_q.put(("problem", f"{peer} producer: {e}"))
    finally:
        c.close()
    res_q.put(("sent", n, time.process_time()))


def gather(procs, res_q):
    """collect what the processes put on res_q, then join them"""
    received, sent, recs, lat = 0, 0, [], []
    per, win, calls = {}, 0, [0, 0]
    cpu = {"sent": 0.0, "done": 0.0}    # the client processes' own CPU seconds, producers / consumers
    expect = len(procs)
    got = 0
    while got < expect:
        m = res_q.get(timeout=3600)
        if m[0] == "problem":
            problems.append(m[1])
            continue
        got += 1
        cpu[m[0]] += m[-1]
        if m[0] == "sent":
            sent += m[1]
        else:
            received += m[1]
            for ids, atts, t_recv, t_ack, who in m[2]:     # one entry per batch
                recs.extend((i, a, t_recv, t_ack, who) for i, a in zip(ids, atts))
            lat.extend(m[3])
            per[m[4]] = m[1]
            win += m[5]
            calls = [calls[0] + m[6][0], calls[1] + m[6][1]]
    for p in procs:
        p.join()
    gather.per, gather.win, gather.calls, gather.cpu = per, win, calls, cpu
    return sent, received, recs, lat


def check_leases(wl, recs, per_receiver=False):
    """no id held by two receivers at once: intervals [received, acked] of one
    id never overlap (per_receiver: each receiver is its own group, W5)"""
    by = {}
    for (mid, attempt, t0, t1, who) in recs:
        by.setdefault((who, mid) if per_receiver else mid, []).append((t0, t1, who, attempt))
    bad = 0
    for mid, ivs in by.items():
        if len(ivs) < 2:
            continue
        ivs.sort()
        for a, b in zip(ivs, ivs[1:]):
            if b[0] < a[1]:
                bad += 1
    dup = sum(1 for v in by.values() if len(v) > 1)
    if bad:
        problems.append(f"{wl} pg_courier: {bad} ids held by two receivers at once")
    return {"redelivered": dup, "overlaps": bad}


def pct(lat, p):
    if not lat:
        return None
    s = sorted(lat)
    return s[min(len(s) - 1, int(p * len(s)))]


def drain(peer, name, consumers, batch=100, groups=None, queues=1):
    """CONSUMERS processes drain NAME (courier: one per group in GROUPS, or all in 'default')"""
    res_q = mp.Queue()
    started = mp.Event()
    procs = []
    for i in range(consumers):
        grp = (groups[i] if groups else "default") if peer == "courier" else "c"
        qn = name if (peer != "pgq" or queues == 1) else f"{name}{i}"
        if peer == "pgq" and groups:
            grp = groups[i]
        p = mp.Process(target=consumer_loop,
                       args=(peer, qn, grp, batch, None, True, None, None, res_q, i, started, peer == "courier"))
        p.start()
        procs.append(p)
    time.sleep(0.3)             # connections made
    a = lsn()
    t0 = time.time()
    started.set()
    _, received, recs, _ = gather(procs, res_q)
    secs = time.time() - t0
    drain.per = gather.per
    return received, secs, recs, wal_bytes(a, lsn())


def w3(peer, consumers):
    n = W3_BACKLOG
    if peer == "pgq":
        # without pgq-coop, PgQ consumers of one queue each read everything:
        # CONSUMERS consumers drain CONSUMERS queues holding a share each
        reset(peer, queues=consumers)
        fill(peer, "bench", n, queues=consumers)
    else:
        reset(peer)
        fill(peer, "bench", n)
    a0 = lsn()
    perf = profile_start(f"W3-{consumers}-{peer}")
    if peer == "pgboss":
        a = lsn()
        r = node("drain", "bench", consumers, 100)
        w = wal_bytes(a, lsn())
        received, secs, recs = r["received"], r["secs"], []
    else:
        received, secs, recs, w = drain(peer, "bench", consumers, queues=consumers)
    profile_stop(f"W3-{consumers}-{peer}", perf)
    waldump(f"W3-{consumers}-{peer}", a0, lsn())
    sent = n if peer != "pgq" else consumers * (-(-(n // consumers) // 100) * 100)
    res = {"rate": received / secs, "wal": w / max(received, 1)}
    res.update(books("W3", peer, sent, received, left(peer, queues=consumers if peer == "pgq" else 1)))
    if peer == "courier":
        res.update(check_leases("W3", recs))
    return res


# W3c: W3 with a C client (pgbench), to tell the server's cost from the
# Python client's.  Both peers read the body on the server and send one row
# back per batch (pgbench's \gset takes one row), so neither pays for
# shipping rows; pg_courier still makes two calls (receive, then ack).
W3C_BARE = ("WITH d AS (DELETE FROM bench WHERE id IN (SELECT id FROM bench ORDER BY id LIMIT 100 "
            "FOR UPDATE SKIP LOCKED) RETURNING id, body) SELECT count(*) AS n, sum(length(body::text)) AS b FROM d;\n")
W3C_COURIER = ("SELECT array_agg(id) AS ids, sum(length(body::text)) AS b "
               "FROM courier.receive('bench', 'default', 100, '30 seconds') \\gset\n"
               "SELECT courier.ack('bench', 'default', :ids::bigint[]);\n")


def w3c(peer, consumers):
    n = W3_BACKLOG
    reset(peer)
    fill(peer, "bench", n)
    path = os.path.join(DIR, "w3c.sql")
    with open(path, "w") as f:
        f.write(W3C_BARE if peer == "bare" else W3C_COURIER)
    a = lsn()
    t0 = time.time()
    r = subprocess.run([os.path.join(PG_BIN, "pgbench"), "-n", "-M", "prepared", "-c", str(consumers),
                        "-j", str(min(consumers, 2)), "-t", str(n // 100 // consumers), "-f", path],
                       capture_output=True, text=True)
    secs = time.time() - t0
    w = wal_bytes(a, lsn())
    if r.returncode != 0:
        raise RuntimeError(f"pgbench failed: {(r.stdout + r.stderr)[-2000:]}")
    lft = left(peer)
    res = {"rate": (n - lft) / secs, "wal": w / max(n - lft, 1)}
    res.update(books("W3c", peer, n, n - lft, lft))
    return res


# ---------------------------------------------------------------- W4 / W4x


# W4c: W4 with C clients (bench/w4c.c, libpq), to tell the server's cost from
# the Python clients' (run 27: a pg_courier consumer spent twice the bare
# table's Python CPU per message).  Same producers, consumers, statements and
# waits as w4(); the consumers drain the queue after the producers stop.
W4C = os.path.join(DIR or ".", "w4c")


def w4c(peer, seconds, linger=None, name="bench", old_snapshot=False):
    """W4 (W4x with old_snapshot) through bench/w4c.c"""
    reset(peer, name=name)
    stats_reset()
    holder = hold_snapshot() if old_snapshot else None
    out = os.path.join(DIR, "w4c-out")
    os.makedirs(out, exist_ok=True)
    for f in os.listdir(out):
        os.unlink(os.path.join(out, f))
    a = lsn()
    wait = (COURIER_W4_WAIT if COURIER_W4_WAIT != "none" else "-") if peer == "courier" else "-"
    try:
        r = subprocess.run([W4C, peer, name, str(W4_PRODUCERS), "2", str(seconds), wait, linger or "-", out],
                           capture_output=True, text=True, timeout=seconds + 600)
    finally:
        if holder:
            holder.rollback()
            holder.close()
    if r.returncode != 0:
        raise RuntimeError(f"w4c failed: {(r.stdout + r.stderr)[-2000:]}")
    w = wal_bytes(a, lsn())
    o = json.loads(r.stdout.strip().splitlines()[-1])
    res = {"rate": o["in_window"] / seconds, "p50": o["p50"], "p99": o["p99"], "wal": w / max(o["sent"], 1),
           "batch": o["received"] / max(o["calls"] - o["empty"], 1), "empty_calls": o["empty"]}
    res.update(dead_tuples(peer, name=name))
    res.update(books("W4c", peer, o["sent"], o["received"], left(peer, name=name)))
    if peer == "courier":
        recs = []
        for i in range(2):
            with open(os.path.join(out, f"w4c-recs-{i}.bin"), "rb") as f:
                v = array.array("d", f.read())
            recs.extend((int(v[j]), 1, v[j + 1], v[j + 2], i) for j in range(0, len(v), 3))
        res.update(check_leases("W4c", recs))
    return res


def start_pgqd():
    conf = os.path.join(DIR, "pgqd.ini")
    with open(conf, "w") as f:
        f.write(f"[pgqd]\nlogfile = {DIR}/pgqd.log\npidfile = {DIR}/pgqd.pid\n"
                f"base_connstr = host={E('PGHOST')} port={E('PGPORT')} user={E('PGUSER', 'postgres')}\n"
                f"initial_database = {E('PGDATABASE', 'postgres')}\ndatabase_list = {E('PGDATABASE', 'postgres')}\n"
                f"ticker_period = 1\n")
    return subprocess.Popen([PGQD, conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop_pgqd(p):
    p.terminate()
    try:
        p.wait(10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def hold_snapshot():
    """a session with an old snapshot (and an xid) open, as a long report would hold"""
    c = conn(autocommit=False)
    c.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    c.execute("SELECT count(*) FROM pg_class")
    c.execute("SELECT txid_current()")
    return c


def w4(peer, seconds, old_snapshot=False, linger=None, name="bench", quiet=False):
    """4 producers at 1 message per transaction + 2 consumers through a waiting
    receive (bare table / PgQ: their own polling), for SECONDS"""
    producers, consumers = W4_PRODUCERS, 2
    queues = 2 if peer == "pgq" else 1
    reset(peer, name=name, queues=queues)
    stats_reset()
    holder = hold_snapshot() if old_snapshot else None
    pgqd = start_pgqd() if peer == "pgq" else None
    ptag = f"{'W4x' if old_snapshot else 'W4'}{'-linger' if linger else ''}-{peer}"
    perf = profile_start(ptag)
    try:
        a = lsn()
        if peer == "pgboss":
            r = node("w4", name, producers, consumers, seconds)
            sent, received, secs = r["sent"], r["received"], r["secs"]
            p50, p99, recs = r["p50"], r["p99"], []
            calls = [None, None]
            client_cpu = {}
            time.sleep(0.5)
        else:
            res_q = mp.Queue()
            started = mp.Event()
            tend = mp.Value("d", 0.0)
            procs = []
            for i in range(consumers):
                qn = f"{name}{i}" if queues > 1 else name
                grp = "c" if peer == "pgq" else "default"
                p = mp.Process(target=consumer_loop,
                               args=(peer, qn, grp, 100, None, False,
                                     (None if COURIER_W4_WAIT == "none" else COURIER_W4_WAIT) if peer == "courier" else None,
                                     linger, res_q, i, started, True, None, tend, W4_TAIL))
                p.start()
                procs.append(p)
            for i in range(producers):
                qn = f"{name}{i % queues}" if queues > 1 else name
                p = mp.Process(target=producer_loop, args=(peer, qn, tend, res_q, started))
                p.start()
                procs.append(p)
            time.sleep(0.3)
            tend.value = time.time() + seconds
            started.set()
            sent, received, recs, lat = gather(procs, res_q)
            in_window = gather.win
            p50, p99 = pct(lat, 0.5), pct(lat, 0.99)
            calls = gather.calls
            # the bench's own client CPU per message (Python: the consumers'
            # bookkeeping differs by peer), to tell the peers' cost from ours
            client_cpu = {"client_us_prod": round(1e6 * gather.cpu["sent"] / max(sent, 1), 1),
                          "client_us_cons": round(1e6 * gather.cpu["done"] / max(received, 1), 1)}
        b = lsn()
        profile_stop(ptag, perf)
        w = wal_bytes(a, b)
        lft = left(peer, name=name, queues=queues)
        res = {"rate": in_window / seconds if peer != "pgboss" else received / r["send_secs"],
               "p50": p50, "p99": p99, "wal": w / max(sent, 1),
               "batch": received / calls[0] if calls[0] else None, "empty_calls": calls[1]}
        res.update(client_cpu)
        res.update(dead_tuples(peer))
        waldump(f"{'W4x' if old_snapshot else 'W4'}{'-linger' if linger else ''}-{peer}", a, b)
        res.update(books("W4x" if old_snapshot else "W4", peer, sent, received, lft))
        if peer == "courier":
            res.update(check_leases("W4x" if old_snapshot else "W4", recs))
        return res
    finally:
        if pgqd:
            stop_pgqd(pgqd)
        if holder:
            holder.rollback()
            holder.close()


# ---------------------------------------------------------------- W5 fan-out


def w5(peer):
    groups = ["g0", "g1", "g2", "g3", "g4"]
    if peer == "courier":
        reset(peer, name="fan", groups=groups)
    else:
        reset(peer, name="fan", consumers=groups)
    fill(peer, "fan", W5_MSGS)
    r1, s1, recs1, w1 = drain(peer, "fan", 1, groups=["g0"])
    r4, s4, recs4, w4_ = drain(peer, "fan", 4, groups=groups[1:])
    per4 = drain.per
    res = {"one": r1 / s1, "four": r4 / s4, "ratio": (r4 / s4) / (r1 / s1), "wal1": w1 / max(r1, 1),
           "wal4": w4_ / max(r4, 1)}
    for g in groups:
        lft = left(peer, name="fan", grp=g, consumer=g)
        got = r1 if g == "g0" else per4.get(groups.index(g) - 1, 0)
        books("W5", peer, W5_MSGS, got, lft, f"(group {g})")
    if peer == "courier":
        check_leases("W5", recs1)
        check_leases("W5", recs4, per_receiver=True)
    return res


# ---------------------------------------------------------------- W6 selective filter


def w6():
    """1 message in 100 matches group 'needles'; it drains its matches, an
    unfiltered group drains the same number from the head of the log"""
    reset("courier", name="flt", groups=["plain"], filter_groups={"needles": "kind = 'needle'"})
    with conn() as c:
        for _ in range(W6_MSGS // 100):
            c.execute("SELECT count(*) FROM courier.send_batch('flt', (SELECT array_agg(jsonb_build_object('n', g)) "
                      "FROM generate_series(1, 99) g), headers => '{\"kind\": \"hay\"}')", prepare=True)
            c.execute("SELECT courier.send('flt', '{\"n\": 0}', headers => '{\"kind\": \"needle\"}')", prepare=True)
    settle()
    want = W6_MSGS // 100
    rn, sn, _, _ = drain("courier", "flt", 1, groups=["needles"])
    # the unfiltered group takes only WANT messages
    c = conn()
    t0 = time.time()
    rp = 0
    while rp < want:
        ids = [r[0] for r in c.execute("SELECT id FROM courier.receive('flt', 'plain', %s, '1 hour')",
                                       (min(100, want - rp),)).fetchall()]
        if not ids:
            break
        c.execute("SELECT courier.ack('flt', 'plain', %s::bigint[])", (ids,))
        rp += len(ids)
    sp = time.time() - t0
    c.close()
    books("W6", "courier", want, rn, left("courier", name="flt", grp="needles"), "(filtered group)")
    return {"filtered": rn / sn, "plain": rp / sp, "ratio": (rn / sn) / (rp / sp), "matches": rn, "log": W6_MSGS}


# ---------------------------------------------------------------- W7 delayed burst


def w7(w4_rate):
    """W7_MSGS messages due in the same second, sent beforehand; 2 consumers
    wait for them while a W4 runs on another topic"""
    reset("courier", name="burst")
    lead = max(1.0 if SMOKE else 2.0, W7_SECONDS / 3)
    due = q1("SELECT extract(epoch FROM clock_timestamp())::float8") + lead + (1.0 if SMOKE else 2.5)
    due_ts = q1("SELECT to_timestamp(%s)", (float(due),))
    for lo in range(0, W7_MSGS, 100000):
        k = min(100000, W7_MSGS - lo)
        q("SELECT count(*) FROM courier.send_batch('burst', (SELECT array_agg(jsonb_build_object('n', g, 'pad', 'x')) "
          "FROM generate_series(1, %s) g), deliver_at => %s)", (k, due_ts))
    # burst consumers: wait (no polling) until everything due arrived
    res_q = mp.Queue()
    total = mp.Value("q", 0)
    procs = []
    for i in range(2):
        p = mp.Process(target=burst_consumer, args=(W7_MSGS, due + W7_GIVE_UP, res_q, i, total))
        p.start()
        procs.append(p)
    r = w4("courier", W7_SECONDS, name="bench")
    got, last, recs = 0, 0.0, []
    for _ in procs:
        m = res_q.get(timeout=600)
        while m[0] == "problem":
            problems.append(m[1])
            m = res_q.get(timeout=600)
        got += m[1]
        last = max(last, m[2])
        recs.extend(m[3])
    for p in procs:
        p.join()
    check_leases("W7", recs)
    books("W7", "courier", W7_MSGS, got, left("courier", name="burst"), "(burst)")
    early = sum(1 for x in recs if x[2] < due - 0.001)
    if early:
        problems.append(f"W7 pg_courier: {early} delayed messages received before their due time")
    within2 = sum(1 for x in recs if x[2] <= due + 2.0)
    time.sleep(0.5)
    lease = q("SELECT n_tup_ins, n_tup_upd, n_tup_hot_upd, n_tup_del FROM pg_stat_user_tables "
              "WHERE schemaname = 'courier' AND relname = 'lease'")[0]
    return {"all_in": last - due if got == W7_MSGS else None, "got": got, "within2": within2, "w4_rate": r["rate"],
            "w4_loss": 1 - r["rate"] / w4_rate if w4_rate else None, "p99": r["p99"],
            "lease_ins": lease[0], "lease_upd": lease[1], "lease_hot": lease[2], "lease_del": lease[3]}


def burst_consumer(want, give_up, res_q, idx, total):
    c = conn()
    got, last, recs = 0, 0.0, []
    try:
        while time.time() < give_up:
            rows = c.execute("SELECT id, attempt FROM courier.receive('burst', 'default', 100, '30 seconds', "
                             "wait => '1 second')").fetchall()
            t = time.time()
            if rows:
                c.execute("SELECT courier.ack('burst', 'default', %s::bigint[])", ([r[0] for r in rows],))
                got += len(rows)
                last = t
                recs.extend((r[0], r[1], t, time.time(), idx) for r in rows)
                with total.get_lock():
                    total.value += len(rows)
            if total.value >= want:
                break
    except Exception as e:
        res_q.put(("problem", f"W7 burst consumer: {e}"))
    finally:
        c.close()
    res_q.put(("done", got, last, recs))


# ---------------------------------------------------------------- the run


def fmt(x, nd=2):
    if x is None:
        return "–"
    if isinstance(x, float) and abs(x) >= 100:
        return f"{x:,.0f}"
    if isinstance(x, (int,)):
        return f"{x:,}"
    return f"{x:.{nd}f}"


def main():
    peers = [p for p in PEERS]
    linger_ok = has_linger()
    log(f"bench: mode {MODE}, peers {' '.join(peers)}, {REPS} repetitions, workloads {' '.join(WORKLOADS)}"
        f"{', linger available' if linger_ok else ''}")
    R = {}   # (workload, peer) -> [result per rep]

    def rec(key, peer, fn, *a, **kw):
        t = time.time()
        try:
            r = fn(*a, **kw)
        except Exception as e:
            problems.append(f"{key} {LABEL.get(peer, peer)}: {type(e).__name__}: {e}")
            r = None
        R.setdefault((key, peer), []).append(r)
        log(f"  {key:<14} {LABEL.get(peer, peer):<11} {time.time() - t:6.1f}s  {json.dumps(r, default=str)[:300]}")
        return r

    loads = []
    for rep in range(1, REPS + 1):
        t = time.time()
        while LOAD_MAX and os.getloadavg()[0] > LOAD_MAX and time.time() - t < LOAD_WAIT:
            time.sleep(10)
        loads.append(os.getloadavg())
        log(f"-- repetition {rep}/{REPS} (load {loads[-1][0]:.2f}, waited {time.time() - t:.0f} s for it)")
        for clients in ((8,) if SMOKE else (1, 8)):
            if "W1" in WORKLOADS:
                for p in peers:
                    rec(f"W1/{clients}", p, w_send, "W1", p, clients, 1)
        for clients in ((8,) if SMOKE else (1, 8)):
            if "W2" in WORKLOADS:
                for p in peers:
                    rec(f"W2/{clients}", p, w_send, "W2", p, clients, 100)
        for consumers in ((4,) if SMOKE else (1, 4)):
            if "W3" in WORKLOADS:
                for p in peers:
                    rec(f"W3/{consumers}", p, w3, p, consumers)
            if "W3c" in WORKLOADS:
                for p in [p for p in peers if p in ("bare", "courier")]:
                    rec(f"W3c/{consumers}", p, w3c, p, consumers)
        if "W4" in WORKLOADS:
            for p in peers:
                rec("W4", p, w4, p, W4_SECONDS)
            if linger_ok:
                rec("W4 linger", "courier", w4, "courier", W4_SECONDS, linger=f"{LINGER_MS} milliseconds")
        if "W4c" in WORKLOADS and os.path.exists(W4C):
            for p in [p for p in peers if p in ("bare", "courier")]:
                rec("W4c", p, w4c, p, W4_SECONDS)
            if "courier" in peers and linger_ok and W4C_LINGER_MS > 0:
                rec("W4c linger", "courier", w4c, "courier", W4_SECONDS, linger=f"{W4C_LINGER_MS:g} milliseconds")
        if "W4xc" in WORKLOADS and os.path.exists(W4C):
            for p in [p for p in peers if p in ("bare", "courier")]:
                rec("W4xc", p, w4c, p, W4_SECONDS, old_snapshot=True)
        if "W4x" in WORKLOADS:
            for p in [p for p in peers if p not in (("pgboss", "pgq") if SMOKE else ("pgboss",))]:
                rec("W4x", p, w4, p, W4_SECONDS, old_snapshot=True)
        if rep <= EXTRA_REPS:
            if "W5" in WORKLOADS:
                for p in [p for p in peers if p in ("courier", "pgq")]:
                    rec("W5", p, w5, p)
            if "W6" in WORKLOADS and "courier" in peers:
                rec("W6", "courier", w6)
            if "W7" in WORKLOADS and "courier" in peers:
                base = (R.get(("W4", "courier")) or [None])[-1]
                rec("W7", "courier", w7, base["rate"] if base else None)
        log(f"   load after repetition {rep}: {os.getloadavg()[0]:.2f}")

    crashes = [l.strip() for l in open(os.path.join(DIR, "server.log"), errors="replace")
               if "terminated by signal" in l or "was terminated by" in l or " PANIC: " in l]
    for c in crashes:
        problems.append(f"server log: {c}")
    report(R, peers, linger_ok, loads)
    with open(os.path.join(DIR, "results.json"), "w") as f:
        json.dump({f"{k[0]}|{k[1]}": v for k, v in R.items()}, f, default=str)
    return 0 if not problems else 1


def ratios(R, key, peer, field="rate", base=None, spread=False):
    """median over repetitions of peer / bare in the same repetition"""
    xs, bs = R.get((key, peer)) or [], R.get((base or key, "bare")) or []
    rs = [x[field] / b[field] for x, b in zip(xs, bs) if x and b and b.get(field)]
    if spread:
        return f"{fmt(median(rs))} ({fmt(min(rs))}–{fmt(max(rs))})" if len(rs) > 1 else fmt(median(rs))
    return median(rs)


def med(R, key, peer, field):
    return median([r.get(field) for r in R.get((key, peer)) or [] if r])


def report(R, peers, linger_ok, loads):
    out = []
    P = print
    others = [p for p in peers if p != "bare"]
    try:
        ver = q1("SHOW server_version")
    except Exception:
        ver = "15"
    P(f"\npg_courier bench ({MODE}), {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores, "
      f"PostgreSQL {ver}, {REPS} repetition(s), median reported; "
      f"load average (1/5/15 min) before each repetition: "
      + "; ".join("/".join(f"{x:.2f}" for x in l) for l in loads) + f"; at the end {os.getloadavg()[0]:.2f}")
    P("\nThroughput, ratio to the bare table in the same repetition: median (lowest–highest); bare msg/s "
      "(median) for scale:\n")
    P("| workload | bare msg/s | " + " | ".join(LABEL[p] for p in others) + " |")
    P("| --- | --- | " + " | ".join("---" for _ in others) + " |")
    rows = [("W1 send 1/tx, 1 client", "W1/1"), ("W1 send 1/tx, 8 clients", "W1/8"),
            ("W2 batch of 100, 1 client", "W2/1"), ("W2 batch of 100, 8 clients", "W2/8"),
            ("W3 receive+ack 100, 1 consumer", "W3/1"), ("W3 receive+ack 100, 4 consumers", "W3/4"),
            ("W3c the same through pgbench, 1 consumer", "W3c/1"),
            ("W3c the same through pgbench, 4 consumers", "W3c/4")]
    rows = [r for r in rows if R.get((r[1], "bare"))]
    for label, key in rows:
        if key.split("/")[0] not in WORKLOADS:
            continue
        P(f"| {label} | {fmt(med(R, key, 'bare', 'rate'))} | "
          + " | ".join(ratios(R, key, p, spread=True) for p in others) + " |")
    P("\nWAL bytes per message (send; receive + ack for W3):\n")
    P("| workload | " + " | ".join(LABEL[p] for p in peers) + " |")
    P("| --- | " + " | ".join("---" for _ in peers) + " |")
    for label, key in rows:
        P(f"| {label} | " + " | ".join(fmt(med(R, key, p, 'wal'), 0) for p in peers) + " |")
    if any(k[0].startswith("W4") for k in R):
        P(f"\nW4: 4 producers at 1 message per transaction + 2 consumers, {W4_SECONDS} s; W4x: the same with an old "
          "snapshot held open (median of the repetitions):\n")
        P("| | msg/s | ratio to bare | p50 ms | p99 ms | dead tuples | WAL B/msg (send+receive+ack) | note |")
        P("| --- | --- | --- | --- | --- | --- | --- | --- |")
        for key in ("W4", "W4 linger", "W4c", "W4c linger", "W4x", "W4xc"):
            for p in peers:
                if not R.get((key, p)):
                    continue
                note = ""
                if p == "courier":
                    upd, hot = med(R, key, p, "upd"), med(R, key, p, "hot")
                    note = (f"{fmt(hot, 0)} HOT of {fmt(upd, 0)} updates in courier.*; "
                            f"{fmt(med(R, key, p, 'batch'), 1)} msgs per receive")
                    for xk, ok in (("W4x", "W4"), ("W4xc", "W4c")):
                        if key == xk and R.get((ok, p)):
                            own = median([x["rate"] / y["rate"] for x, y in zip(R[(xk, p)], R[(ok, p)]) if x and y])
                            note += f"; {fmt(own)}× its own {ok}"
                    if key == "W4 linger":
                        note += f"; linger {LINGER_MS} ms"
                    if key == "W4c linger":
                        note += f"; linger {W4C_LINGER_MS:g} ms"
                if p == "pgq":
                    note = "2 queues (no pgq-coop), pgqd ticker 1 s"
                if p == "pgboss":
                    note = "work(), batchSize 100, polling 0.5 s"
                name = {"W4": "", "W4 linger": " (linger)", "W4c": " (C clients, W4c)",
                        "W4c linger": " (C clients, W4c, linger)", "W4x": "",
                        "W4xc": " (C clients, W4xc)"}[key]
                label = (f"W4x {LABEL[p]}{name}" if key in ("W4x", "W4xc") else f"{LABEL[p]}{name}")
                base = {"W4 linger": "W4", "W4c linger": "W4c"}.get(key, key)
                rr = ratios(R, key, p, base=base, spread=True) if p != "bare" else "–"
                P(f"| {label} | {fmt(med(R, key, p, 'rate'))} | {rr} | "
                  f"{fmt(med(R, key, p, 'p50'), 1)} | {fmt(med(R, key, p, 'p99'), 1)} | "
                  f"{fmt(med(R, key, p, 'dead'), 0)} | {fmt(med(R, key, p, 'wal'), 0)} | {note} |")
    if R.get(("W5", "courier")) or R.get(("W5", "pgq")):
        P("\nW5 fan-out: one topic, 4 groups each draining the same backlog of "
          f"{W5_MSGS:,} messages, one consumer per group:\n")
        P("| | one group msg/s | 4 groups deliveries/s | ratio | WAL B/delivery (1 / 4 groups) |")
        P("| --- | --- | --- | --- | --- |")
        for p in ("courier", "pgq"):
            if R.get(("W5", p)):
                P(f"| {LABEL[p]} | {fmt(med(R, 'W5', p, 'one'))} | {fmt(med(R, 'W5', p, 'four'))} | "
                  f"{fmt(med(R, 'W5', p, 'ratio'))} | {fmt(med(R, 'W5', p, 'wal1'), 0)} / "
                  f"{fmt(med(R, 'W5', p, 'wal4'), 0)} |")
    if R.get(("W6", "courier")):
        P(f"\nW6 selective filter: a 1% filter draining its {W6_MSGS // 100:,} matches out of {W6_MSGS:,} messages, "
          "against an unfiltered group draining as many:\n")
        P(f"| filtered msg/s | unfiltered msg/s | ratio |\n| --- | --- | --- |\n"
          f"| {fmt(med(R, 'W6', 'courier', 'filtered'))} | {fmt(med(R, 'W6', 'courier', 'plain'))} | "
          f"{fmt(med(R, 'W6', 'courier', 'ratio'))} |")
    if R.get(("W7", "courier")):
        P(f"\nW7 delayed burst: {W7_MSGS:,} messages due in the same second, 2 waiting consumers, "
          f"during a {W7_SECONDS} s W4 on another topic:\n")
        P("| received within 2 s of due | all received, s after due | W4 msg/s during the burst | W4 throughput lost | W4 p99 ms |")
        P("| --- | --- | --- | --- | --- |")
        allin = med(R, "W7", "courier", "all_in")
        got = med(R, "W7", "courier", "got")
        allin = fmt(allin) if allin is not None else f"not within {W7_GIVE_UP} s ({fmt(got)} received)"
        P(f"| {fmt(med(R, 'W7', 'courier', 'within2'))} of {W7_MSGS:,} | {allin} | "
          f"{fmt(med(R, 'W7', 'courier', 'w4_rate'))} | "
          f"{fmt((med(R, 'W7', 'courier', 'w4_loss') or 0) * 100, 0)}% | {fmt(med(R, 'W7', 'courier', 'p99'), 1)} |")
    P("\nBooks (sent - left - received, left as each peer counts it):")
    n = sum(1 for v in R.values() for r in v if r and "books" in r)
    if problems:
        for x in problems:
            P(f"  NOT BALANCED / PROBLEM: {x}")
    else:
        P(f"  all balanced ({n} measurements with books); no id held by two receivers at once")
    for x in notes:
        P(f"  note: {x}")


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--report":
        # re-render the tables of an earlier run from its results.json (the
        # cluster must be up only for the server version)
        with open(sys.argv[2]) as f:
            R = {tuple(k.split("|")): v for k, v in json.load(f).items()}
        report(R, [p for p in PEERS if any(k[1] == p for k in R)], False,
               [tuple(map(float, x.split("/"))) for x in E("LOADS", "0/0/0").split(";")])
        sys.exit(0)
    mp.set_start_method("fork")
    sys.exit(main())
