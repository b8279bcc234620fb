#!/usr/bin/env python3
"""A pg_courier worker: waits for messages, handles each one, acks it on
success and nacks it with the reason on failure; SIGTERM (or Ctrl-C) stops
it cleanly after the batch in hand.

    COURIER_DSN="host=... dbname=..." python3 worker.py

Needs psycopg 3 (Debian: python3-psycopg).  Environment: COURIER_DSN (libpq
connection string; empty = the PG* variables), COURIER_TOPIC (orders),
COURIER_GROUP (shipping), COURIER_BATCH (10), COURIER_WAIT (seconds a
receive waits when there is nothing, 2: also the longest a stop takes).

Delivery is at least once: a message whose ack does not commit (the worker
dies, the connection drops) comes back after its visibility timeout with
attempt + 1.  Here the handler's writes and the ack commit in one
transaction, so the work is done exactly once when it is in this database.
Each ack and nack carries the delivery's receipt: if the lease ran out and
another worker got the message meanwhile, ours changes nothing -- the ack
returns false, and the worker rolls its work back (the other worker does it).
"""
import json
import os
import signal
import sys

import psycopg

DSN = os.environ.get("COURIER_DSN", "")
TOPIC = os.environ.get("COURIER_TOPIC", "orders")
GROUP = os.environ.get("COURIER_GROUP", "shipping")
BATCH = int(os.environ.get("COURIER_BATCH", "10"))
WAIT = float(os.environ.get("COURIER_WAIT", "2"))
VISIBILITY = "60 seconds"      # how long a received message is ours

stopping = False


def stop(signum, frame):
    global stopping
    stopping = True


def handle(conn, msg):
    """The work.  Runs in the transaction that acks the message."""
    body = msg["body"]
    if body.get("fail_first_attempt") and msg["attempt"] == 1:
        raise RuntimeError("carrier API timed out")     # nacked, retried
    conn.execute(
        "INSERT INTO shipments (order_id, worker, attempt, message_id)"
        " VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
        (body["order"], "python", msg["attempt"], msg["id"]))


def main():
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    done = failed = lost = 0
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute("SET application_name = 'courier-worker-python'")
        while not stopping:
            # Sleeps in the server until something is receivable (woken by
            # the committing sender, no polling) or WAIT seconds pass.
            rows = conn.execute(
                "SELECT id, attempt, body, receipt FROM courier.receive("
                " %s, %s, max_messages => %s, visibility_timeout => %s,"
                " wait => make_interval(secs => %s))",
                (TOPIC, GROUP, BATCH, VISIBILITY, WAIT)).fetchall()
            for id_, attempt, body, receipt in rows:
                msg = {"id": id_, "attempt": attempt, "body": body}
                try:
                    with conn.transaction() as tx:
                        handle(conn, msg)
                        acked = conn.execute("SELECT courier.ack(%s, %s, %s, receipt => %s)",
                                             (TOPIC, GROUP, id_, receipt)).fetchone()[0]
                        if not acked:
                            # our lease ran out and another worker has the
                            # message now: undo our work, it does it again
                            raise psycopg.Rollback(tx)
                    if acked:
                        done += 1
                    else:
                        lost += 1
                except Exception as exc:  # the work rolled back: say why
                    conn.execute(
                        "SELECT courier.nack(%s, %s, %s, reason => %s, receipt => %s)",
                        (TOPIC, GROUP, id_, f"{type(exc).__name__}: {exc}", receipt))
                    failed += 1
                    print(f"message {id_} attempt {attempt} failed: {exc}", file=sys.stderr)
    print(json.dumps({"worker": "python", "acked": done, "nacked": failed, "lease_lost": lost}), flush=True)


if __name__ == "__main__":
    main()
