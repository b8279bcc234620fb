#!/usr/bin/env python3
"""Transactional outbox with pg_courier: the order row and its message are
written in one transaction, so a message exists exactly when its order does.

    COURIER_DSN="host=... dbname=..." python3 outbox.py [COUNT]

Needs psycopg 3 (Debian: python3-psycopg) and the objects of
examples/schema.sql.  Prints the ids of the orders it created.
"""
import json
import os
import sys

import psycopg

DSN = os.environ.get("COURIER_DSN", "")      # "" = libpq defaults (PGHOST, ...)
TOPIC = os.environ.get("COURIER_TOPIC", "orders")


def place_order(conn, customer, amount, fail_first_attempt=False):
    """Insert the order and send its message in one transaction."""
    with conn.transaction():
        order_id = conn.execute(
            "INSERT INTO orders (customer, amount) VALUES (%s, %s) RETURNING id",
            (customer, amount)).fetchone()[0]
        body = {"order": order_id, "customer": customer, "amount": float(amount)}
        if fail_first_attempt:
            body["fail_first_attempt"] = True   # lets the workers show a nack
        conn.execute(
            "SELECT courier.send(%s, %s, tag => 'created', keys => ARRAY[%s],"
            " headers => %s)",
            (TOPIC, json.dumps(body), f"order-{order_id}",
             json.dumps({"customer": customer, "amount": float(amount)})))
    return order_id


def main():
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    created = []
    with psycopg.connect(DSN, autocommit=True) as conn:
        for n in range(count):
            created.append(place_order(conn, f"customer-{n % 7}", 10 + n,
                                       fail_first_attempt=(n % 5 == 0)))
        # A transaction that rolls back leaves neither an order nor a message.
        try:
            with conn.transaction():
                conn.execute("INSERT INTO orders (customer, amount) VALUES ('nobody', 1)")
                conn.execute("SELECT courier.send(%s, '{\"order\": null}')", (TOPIC,))
                raise RuntimeError("payment refused")
        except RuntimeError:
            pass
    print(" ".join(str(i) for i in created))


if __name__ == "__main__":
    main()
