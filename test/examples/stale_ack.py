#!/usr/bin/env python3
"""examples/python/worker.py when its lease runs out mid-work (review 10): its
ack, with the receipt, finds the delivery superseded (another receiver got the
message) and returns false; the worker must roll its work back, not commit it
and count the message as acked (the first version did).

The worker's docstring says: "the handler's writes and the ack commit in one
transaction, so the work is done exactly once ... if the lease ran out and
another worker got the message meanwhile, ours changes nothing."

    COURIER_DSN=... python3 test/review10/example_stale_ack.py

Needs a database with pg_courier.  Runs the example's own main() with a
1-second visibility timeout and a handler that is slow on its first message;
a second receiver takes the message over when the lease runs out and acks it.
Expected: the first worker's work rolls back (or is never done).  Exits 1
when the example commits work of a superseded delivery.
"""
import os
import sys
import threading
import time

import psycopg

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', '..', 'examples', 'python'))
sys.path.insert(0, os.environ.get('COURIER_EXAMPLES', ''))
import worker  # noqa: E402  the example, unchanged

DSN = os.environ.get('COURIER_DSN', '')
with psycopg.connect(DSN, autocommit=True) as c:
    c.execute("CREATE EXTENSION IF NOT EXISTS pg_courier CASCADE")
    c.execute("SELECT courier.drop_topic('r10_orders') FROM courier.topics WHERE topic = 'r10_orders'")
    c.execute("SELECT courier.create_topic('r10_orders')")
    c.execute("SELECT courier.create_group('r10_orders', 'shipping')")
    c.execute("DROP TABLE IF EXISTS shipments")
    c.execute("""CREATE TABLE shipments (order_id bigint, worker text, attempt int, message_id bigint,
                 shipped_at timestamptz DEFAULT now())""")   # no unique key: count what the handler did
    c.execute("""SELECT courier.send('r10_orders', '{"order": 1}')""")

worker.TOPIC, worker.GROUP, worker.BATCH, worker.WAIT = 'r10_orders', 'shipping', 1, 0.5
worker.VISIBILITY = '1 second'
orig = worker.handle


def slow_handle(conn, msg):
    orig(conn, msg)
    if msg['attempt'] == 1:
        time.sleep(4)            # the work outlives the lease


worker.handle = slow_handle


def other_receiver():
    time.sleep(1.2)              # the lease of attempt 1 runs out at 1 s
    with psycopg.connect(DSN, autocommit=True) as c:
        with c.transaction():
            rows = c.execute("SELECT id, attempt, receipt FROM courier.receive('r10_orders', 'shipping', 1, '1 minute', wait => '2 seconds')").fetchall()
            for id_, attempt, receipt in rows:
                c.execute("INSERT INTO shipments (order_id, worker, attempt, message_id) VALUES (1, 'other', %s, %s)",
                          (attempt, id_))
                c.execute("SELECT courier.ack('r10_orders', 'shipping', %s, receipt => %s)", (id_, receipt))
    time.sleep(4)
    worker.stopping = True


threading.Thread(target=other_receiver).start()
worker.main()                    # prints {"worker": "python", "acked": ..., "nacked": ...}
with psycopg.connect(DSN, autocommit=True) as c:
    rows = c.execute("SELECT worker, attempt FROM shipments ORDER BY shipped_at").fetchall()
print('shipments:', rows)
if len(rows) > 1:
    print('not ok - order 1 was shipped %d times: the example committed the work of a superseded delivery '
          '(its ack returned false and was ignored)' % len(rows))
    sys.exit(1)
print('ok - order 1 shipped once')
