#!/usr/bin/python3
"""Traffic on topic fz while sqlsmith runs (test/sqlfuzz/run.sh): send, receive,
ack, nack and run_maintenance, so that the random queries meet rows that
change.  Bounded: stops after SECONDS or when the file STOP exists.

    traffic.py DSN SECONDS STOPFILE
"""
import os
import random
import sys
import time

import psycopg

dsn, seconds, stop = sys.argv[1], float(sys.argv[2]), sys.argv[3]
rnd = random.Random(7)
end = time.time() + seconds
n = 0
with psycopg.connect(dsn, autocommit=True, application_name="sqlfuzz-traffic") as c:
    c.execute("SET statement_timeout = '10s'")
    while time.time() < end and not os.path.exists(stop):
        try:
            c.execute("""SELECT count(courier.send('fz', jsonb_build_object('t', i), tag => (ARRAY['created', 'paid', NULL])[1 + i % 3],
                                keys => ARRAY['k' || (i % 5)], headers => jsonb_build_object('region', 'eu', 'amount', i)))
                           FROM generate_series(1, 5) i""")
            for g in ("default", "tags", "sql", "ord", "dlq"):
                rows = c.execute("SELECT id, receipt FROM courier.receive('fz', %s, 5, '2 seconds')", (g,)).fetchall()
                for mid, rc in rows:
                    if rnd.random() < 0.7:
                        c.execute("SELECT courier.ack('fz', %s, %s::bigint, receipt => %s)", (g, mid, rc))
                    elif rnd.random() < 0.5:
                        c.execute("SELECT courier.nack('fz', %s, %s, delay => '0', receipt => %s)", (g, mid, rc))
            if rnd.random() < 0.2:
                c.execute("SELECT courier.run_maintenance()")
            n += 1
        except psycopg.Error as e:
            print(f"traffic: {e.sqlstate} {str(e).strip()[:200]}", flush=True)
            if c.broken:
                break
        time.sleep(0.05)
print(f"traffic: {n} rounds", flush=True)
