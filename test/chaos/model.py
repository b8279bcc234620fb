"""What the chaos test and its checker agree on: the topic, the consumer groups
and their filters (as pg_courier filter text *and* as a Python predicate), the
side tables that record what producers and consumers committed, the shape of
the client-side record file, and the detection of the API (receipts or not).

One definition of every rule input lives here, so the load driver
(workload.py), the checker (checker.py) and the failover TAP test (which calls
chaos.py) cannot disagree about them.
"""

import json
import threading
import time

TOPIC = "chaos"
# Retry ladder for every group: short, so nacked messages come back within a
# drain phase (the default RocketMQ ladder starts at 10 s).
BACKOFF = "{50ms,100ms,200ms,400ms}"

# The permanent groups.  'pred' decides from (tag, headers) whether a message
# must reach the group; the checker also compares it with courier.match_filter
# over every committed message, so a mistake here cannot hide a defect.
GROUPS = {
    "default": dict(filter="*", ordered=False, max_attempts=16,
                    pred=lambda tag, h: True),
    "tags": dict(filter="created || paid", ordered=False, max_attempts=16,
                 pred=lambda tag, h: tag in ("created", "paid")),
    "sql": dict(filter="region = 'eu' OR amount >= 150", ordered=False, max_attempts=16,
                pred=lambda tag, h: h.get("region") == "eu" or h.get("amount", -1) >= 150),
    "ordered": dict(filter="*", ordered=True, max_attempts=16,
                    pred=lambda tag, h: True),
    # nacked often, dead-letters after 3 deliveries
    "dlq": dict(filter="*", ordered=False, max_attempts=3,
                pred=lambda tag, h: True),
}

# Filters the DDL fault gives the short-lived extra groups x1, x2, ...
EXTRA_FILTERS = ["*", "created || cancelled", "amount < 50", "region IN ('us', 'ap')"]

TAGS = ["created", "paid", "cancelled", "shipped", None]
REGIONS = ["eu", "us", "ap"]
NKEYS = 24   # ordering keys k0..k23: few enough that keys collide and order is tested

SCHEMA = """
CREATE SCHEMA IF NOT EXISTS chaos;
-- one row per committed message, written in the sending transaction (or savepoint)
CREATE TABLE chaos.sent (
    id          bigint PRIMARY KEY,
    tx          bigint NOT NULL,        -- client transaction serial
    tag         text,
    okey        text,                   -- first key: the ordering key
    headers     jsonb NOT NULL,
    delay_ms    integer,                -- send(delay => ...)
    deliver_at  timestamptz,            -- send(deliver_at => ...)
    send_start  timestamptz NOT NULL    -- statement_timestamp() of the send
);
-- one row per committed producer transaction
CREATE TABLE chaos.ptx (tx bigint PRIMARY KEY);
-- one row per message handed out by a receive whose transaction committed
CREATE TABLE chaos.delivery (
    tx          bigint NOT NULL,        -- the receiving transaction
    grp         text NOT NULL,
    id          bigint NOT NULL,
    attempt     integer NOT NULL,
    receipt     text,
    pid         integer NOT NULL,
    call_start  timestamptz NOT NULL,   -- statement_timestamp() of the receive
    at          timestamptz NOT NULL,   -- clock_timestamp() after the row was leased
    lease_until timestamptz
);
CREATE INDEX ON chaos.delivery (grp, id);
-- one row per ack / nack / set_visibility whose transaction committed
CREATE TABLE chaos.action (
    tx          bigint NOT NULL,        -- the transaction of the action
    dtx         bigint NOT NULL,        -- the receiving transaction it acts for
    kind        text NOT NULL,          -- ack, ack_many, nack, setvis
    grp         text NOT NULL,
    id          bigint NOT NULL,
    receipt     text,
    arg_ms      integer,                -- set_visibility timeout / nack delay
    result      text NOT NULL,          -- t, f, or an error's SQLSTATE
    start       timestamptz NOT NULL    -- statement_timestamp() of the call
);
CREATE INDEX ON chaos.action (grp, id);
-- one row per committed consumer transaction
CREATE TABLE chaos.ctx (tx bigint PRIMARY KEY);
"""


class Api:
    """What this build of pg_courier offers: receipts (issue 7 section 7) or not.

    Read from the catalog, so the same test runs against the old API and the
    new one: receive's row type may have a 'receipt' column and ack, nack and
    set_visibility a 'receipt' argument."""

    def __init__(self, conn):
        cols = [r[0] for r in conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = 'courier.message'::regclass"
            " AND attnum > 0 AND NOT attisdropped ORDER BY attnum")]
        self.columns = cols
        self.receipt_col = "receipt" in cols
        args = {}
        for name, argnames, nargs in conn.execute(
                "SELECT proname, coalesce(proargnames, '{}'), pronargs FROM pg_proc"
                " WHERE pronamespace = 'courier'::regnamespace"
                " AND proname IN ('ack', 'nack', 'set_visibility')"):
            args.setdefault(name, set()).update(argnames)
        self.receipt_arg = {k: ("receipt" in v) for k, v in args.items()}
        # use receipts only when receive hands them out and every call takes them
        self.receipts = self.receipt_col and all(self.receipt_arg.get(k) for k in
                                                 ("ack", "nack", "set_visibility"))

    def describe(self):
        return "receipts" if self.receipts else "no receipts"


class Records:
    """The client-side record file: one JSON object per line, appended by every
    thread of the driver.  It holds what only the client can know: outcomes of
    transactions that rolled back or whose COMMIT was cut off, deliveries made
    inside rolled-back receives, injected faults and client-side errors."""

    def __init__(self, path):
        self.lock = threading.Lock()
        self.f = open(path, "a", buffering=1)

    def write(self, record_kind, **kw):
        kw["k"] = record_kind
        line = json.dumps(kw, default=str)
        with self.lock:
            self.f.write(line + "\n")

    def close(self):
        self.f.close()


def read_records(path):
    out = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                out.append(json.loads(line))
    return out


def now():
    """Client wall clock, in seconds (the same clock as the server's on this host)."""
    return time.time()
