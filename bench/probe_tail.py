#!/usr/bin/env python3
"""bench/probe_tail.py [SECONDS]: where does W4's p99 tail come from?

A probe, not a measurement of record (BENCHMARKS.md run 26): 4 producers
(courier.send, one message per transaction) and 2 consumers
(courier.ack_and_receive, 100 at most, wait 1 s) on topic 't', group 'default'
of the cluster PROBE_DSN names (default: host=/tmp port=5499 user=postgres
dbname=postgres; the topic must exist).  Prints p50/p99, how many of the
messages were received after a higher id ("late": their sender committed
out of id order) and how many of those are in the p99 tail, and whether the
tail is bunched in a few 100-ms windows (a stall) or spread out.
NOGC=1 turns Python's cyclic garbage collector off in the consumers.
"""
import gc
import multiprocessing as mp
import os
import sys
import time
from collections import Counter

import psycopg

DSN = os.environ.get("PROBE_DSN", "host=/tmp port=5499 user=postgres dbname=postgres")
SECS = float(sys.argv[1]) if len(sys.argv) > 1 else 20


def prod(tend):
    c = psycopg.connect(DSN, autocommit=True)
    while time.time() < tend.value:
        c.execute("SELECT courier.send('t', '{\"a\":1}'::jsonb)", prepare=True)


def cons(tend, q):
    if os.environ.get("NOGC"):
        gc.disable()
    c = psycopg.connect(DSN, autocommit=True)
    held, out = [], []
    while time.time() < tend.value + 1:
        rows = c.execute("SELECT id, (extract(epoch FROM clock_timestamp() - sent_at) * 1000)::float8 "
                         "FROM courier.ack_and_receive('t', 'default', %s::bigint[], NULL, 100, '30 seconds', "
                         "wait => '1 second')", (held,)).fetchall()
        t = time.time()
        held = [r[0] for r in rows]
        out.extend((r[0], r[1], t) for r in rows)
    if held:
        c.execute("SELECT courier.ack('t', 'default', %s::bigint[])", (held,))
    q.put(out)


def main():
    tend = mp.Value('d', time.time() + 1 + SECS)
    q = mp.Queue()
    cs = [mp.Process(target=cons, args=(tend, q)) for _ in range(2)]
    ps = [mp.Process(target=prod, args=(tend,)) for _ in range(4)]
    for p in cs + ps:
        p.start()
    res = [q.get() for _ in cs]
    for p in cs + ps:
        p.join()
    allm = sorted([m for r in res for m in r], key=lambda m: (m[2], m[0]))
    mx, late = -1, set()
    for m in allm:
        if m[0] < mx:
            late.add(m[0])
        mx = max(mx, m[0])
    lats = sorted(m[1] for m in allm)
    p99 = lats[int(len(lats) * 0.99)]
    tail = [m for m in allm if m[1] >= p99]
    print(f"n={len(allm)} rate={len(allm) / SECS:.0f}/s p50={lats[len(lats) // 2]:.2f} p99={p99:.2f} ms")
    print(f"late (a higher id received earlier): {len(late)} = {100 * len(late) / len(allm):.1f}% of all; "
          f"in the p99 tail: {sum(1 for m in tail if m[0] in late)} of {len(tail)}")
    w = Counter(int(m[2] * 10) for m in tail)
    allw = Counter(int(m[2] * 10) for m in allm)
    top = w.most_common(10)
    t0 = allm[0][2]
    print(f"tail in {len(w)} of {len(allw)} 100-ms windows; the 10 fullest hold {sum(c for _, c in top)} "
          f"of {len(tail)}: {[c for _, c in top]} at s {[round(k / 10 - t0, 1) for k, _ in top]}")


if __name__ == "__main__":
    main()
