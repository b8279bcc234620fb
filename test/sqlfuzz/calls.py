#!/usr/bin/python3
"""Generated calls of every public function of schema courier (issue 8 section 4b).

The functions are read from pg_proc (every function of schema courier whose
name does not start with '_'), so a function added later is fuzzed without
touching this file.  Each argument gets values from a pool chosen by its type
and its name: NULL, extremes (0, -1, the ends of int4 and int8, intervals of
+-178000000 years, timestamps '-infinity' / 'infinity' and the ends of the
timestamptz range), empty and 10000-character strings, names one byte too
long, quotes and injection attempts, empty, NULL-holding, multi-dimensional
and non-1-based arrays, JSON of every kind (scalars, arrays, deep nesting,
2 MB), bad filters, roles (real, predefined, 'public', unknown, truncated,
OIDs) for grantees and new owners, privileges, tables (regclass), and receipts that are malformed, forged, or belong to
another message or group.

Phase 1 varies one argument at a time over its whole pool, the others holding
sane values; phase 2 draws every argument at random (seeded).  Calls run in
transactions of 1..4 calls, each call in a savepoint, at every isolation level,
committed or rolled back.  A call passes when it succeeds or raises an error
with a proper SQLSTATE; it fails on XX*** (internal error), 58*** (system
error), a lost connection (a crash), or an error that means this harness
built a wrong call (42883, 42725, 42804).

Afterwards the topics must still work: every group of topic 'fz' drains (each
message received and acked with its receipt), a new group gets exactly the
messages sent after it, courier.groups shows non-negative numbers and nothing
left in flight after the drain, run_maintenance() succeeds, amcheck finds every
btree index of schema courier intact, and the server log holds no XX000,
PANIC, assertion failure or crash.

    calls.py --dsn DSN --log SERVERLOG [--seed N] [--random N]

Prints 'sqlfuzz calls: N calls, ... ' and ends with "ok" lines or the
failures; exit status 0 only when everything held.
"""

import argparse
import collections
import os
import random
import re
import sys
import time

import psycopg

BAD_STATES = ("XX", "58")
HARNESS_STATES = {"42883", "42725", "42804"}

TOPICS = ["'fz'", "'fz.two'", "'victim'", "'nosuch'", "'FZ'", "''", "repeat('t', 48)",
          "repeat('t', 49)", "'a b'", "'fz; DROP TABLE courier.claim; --'", "'\"fz\"'",
          "E'fz\\\\'", "'fz''--'", "'é'", "'log_1_1'", "'..'", "'-'", "'pg_catalog.pg_class'"]
GROUPS = ["'default'", "'tags'", "'sql'", "'ord'", "'dlq'", "'late'", "'nosuch'", "'DEFAULT'",
          "''", "repeat('g', 48)", "repeat('g', 49)", "'g; SELECT 1'", "'x\"y'", "'a''b'"]
FILTERS = ["'*'", "''", "' '", "'created || paid'", "'a||'", "'||'", "'|| a'",
           "$$region = 'eu' AND amount >= 100$$", "'region ='", "'(((('", "'))'",
           "'a BETWEEN 1 AND'", "$$a IN ()$$", "$$a IN ('x', 1)$$", "'a IS NOT NULL'",
           "'TAGS IS NULL'", "'amount > 9223372036854775807'", "'amount > 1e400'",
           "'amount / 0 > 1'", "$$x = 'unterminated$$", "'x = y'", "'NOT NOT NOT a'",
           "'a = 1 AND (b = 2 OR c = 3) AND NOT (d <> 4)'",
           "repeat('(', 5000) || 'a = 1' || repeat(')', 5000)",
           "repeat('a = 1 AND ', 2000) || 'b = 2'", "repeat('t', 10000)",
           "repeat('t||', 3000) || 't'", "$$a LIKE '%x\\_'$$", "E'\\\\u0000'", "'TRUE'",
           "'a = TRUE'", "'1 = 1'", "'-a > 0'", "'a > -9223372036854775808'"]
TAGS = ["'created'", "'paid'", "''", "'a|b'", "'||'", "repeat('t', 255)", "repeat('t', 256)",
        "repeat('t', 10000)", "'*'", "'é'", "' '"]
TEXT = ["''", "' '", "repeat('x', 10000)", "'*'", "'earliest'", "'latest'", "'LATEST'",
        "'from the beginning'", "'%s%n%x'", "'\\'", "'é🙂'", "E'\\t\\n'", "'NaN'"]
START_FROM = ["'earliest'", "'latest'", "'Earliest'", "''", "'3'", "'-1'", "repeat('e', 10000)"]
REASONS = ["'smtp down'", "''", "repeat('r', 10000)", "repeat('r', 100000)", "E'\\n'"]
INTS = ["0", "-1", "1", "2", "3", "10", "128", "129", "10000", "10001", "2147483647", "-2147483648"]
BIGINTS = ["0", "-1", "1", "2", "100", "174", "601", "9223372036854775807", "-9223372036854775808",
           "2147483648", "(SELECT max(id) FROM courier.find('fz', key => 'k1'))"]
INTERVALS = ["'0'", "'-1 second'", "'1 microsecond'", "'-1 microsecond'", "'10 ms'", "'1 second'",
             "'30 seconds'", "'1 hour'", "'12 hours'", "'12 hours 1 second'", "'1 hour 1 second'",
             "'3 days'", "'1 mon'", "'100 years'", "'178000000 years'", "'-178000000 years'",
             "'1 day -86400 seconds'", "'2147483647 days'", "'-2147483648 days'",
             "'1 mon -30 days'", "'2147483647 hours'", "'-2562047788 hours'"]
WAITS = ["'0'", "'-1 second'", "'1 microsecond'", "'10 ms'", "'100 ms'", "'1 hour 1 second'",
         "'178000000 years'", "'-178000000 years'", "'2147483647 days'", "'1 mon'"]
TIMESTAMPS = ["'-infinity'", "'infinity'", "'epoch'", "'4714-11-24 00:00:00+00 BC'",
              "'294276-12-31 23:59:59+00'", "now()", "now() + interval '50 ms'",
              "now() - interval '1 day'", "now() + interval '59 minutes'",
              "now() + interval '1 year'", "'2000-02-29 12:00+14'"]
JSONS = ["'{}'", "'[]'", "'null'", "'1'", "'\"x\"'", "'true'", "'{\"a\": 1}'",
         "'{\"region\": \"eu\", \"amount\": 150}'", "'{\"amount\": 1e400}'",
         "'{\"\": null, \"a\\\\u0000b\": 1}'", "repeat('[', 1000)::text || repeat(']', 1000)",
         "jsonb_build_object('x', repeat('x', 10000))", "jsonb_build_object('x', repeat('x', 2000000))",
         "(SELECT jsonb_object_agg('k' || i, i) FROM generate_series(1, 5000) i)",
         "'{\"TAGS\": \"created\", \"tag\": null}'", "'[1, {\"a\": [null]}]'", "'-0'",
         "'123456789012345678901234567890'"]
JSON_ARRAYS = ["'{}'", "ARRAY[NULL]::jsonb[]", "ARRAY['{}']::jsonb[]", "ARRAY['{}', NULL]::jsonb[]",
               "'{{1,2},{3,4}}'", "'[5:6]={1,2}'", "'[-3:-2]={1,2}'",
               "(SELECT array_agg(jsonb_build_object('i', i)) FROM generate_series(1, 1000) i)",
               "(SELECT array_agg('1'::jsonb) FROM generate_series(1, 20000) i)",
               "ARRAY[jsonb_build_object('x', repeat('x', 10000))]",
               "ARRAY[jsonb_build_object('x', repeat('x', 600000)), jsonb_build_object('x', repeat('x', 600000))]",
               "ARRAY['null', '1', '\"s\"', '[]']::jsonb[]"]
TEXT_ARRAYS = ["'{}'", "'{NULL}'", "'{\"\"}'", "'{a}'", "'{k1,u1}'", "'{{a,b},{c,d}}'", "'[0:1]={a,b}'",
               "ARRAY[repeat('k', 10000)]", "(SELECT array_agg('k' || i) FROM generate_series(1, 1000) i)",
               "ARRAY[NULL, 'k1']", "'{{{a}}}'", "ARRAY['k1', '']"]
BIGINT_ARRAYS = ["'{}'", "'{NULL}'", "'{1,NULL}'", "'{{1,2},{3,4}}'", "'[0:1]={1,2}'",
                 "'{-1,0,9223372036854775807,-9223372036854775808}'", "'{1,1,1,1}'",
                 "(SELECT array_agg(i) FROM generate_series(1, 100000) i)",
                 "(SELECT array_agg(i) FROM generate_series(1, 700) i)",
                 "(SELECT array_agg(msg_id) FROM courier.dead_letter)"]
INTERVAL_ARRAYS = ["'{}'", "'{NULL}'", "'{0}'", "'{-1s}'", "'{10ms,1s}'", "'{{1s,2s},{3s,4s}}'",
                   "'[0:1]={1s,2s}'", "'{178000000 years}'", "'{-178000000 years}'",
                   "(SELECT array_agg(i * interval '1 ms') FROM generate_series(1, 1000) i)",
                   "'{1s,NULL,2s}'", "'{1 mon}'"]
BOOLS = ["true", "false"]
# roles for grant/revoke (name) and has_topic_privilege (regrole): real ones
# (smith is made by smith.sql), the predefined ones, 'public' in both cases,
# unknown, empty, one byte past NAMEDATALEN (a name truncates it), quotes and
# injection attempts; as regrole also OIDs, known and unknown, and '-' (0)
ROLES = ["'postgres'", "'smith'", "'courier_admin'", "'courier_producer'", "'courier_consumer'",
         "'public'", "'PUBLIC'", "'Public'", "'nosuch'", "''", "' '", "repeat('r', 63)", "repeat('r', 64)",
         "'pg_monitor'", "'smith; DROP ROLE smith --'", "'\"smith\"'", "'a''b'", "'é'", "'-'"]
REGROLES = ROLES + ["'0'", "'10'", "'4294967295'", "'-1'", "'1e3'"]
# tables for citus_distribute(colocate_with regclass): none (the default),
# a catalog, pg_courier's own tables, a view, a sequence, unknown and
# malformed names, OIDs known and unknown, '-' (0), injection attempts
REGCLASSES = ["'pg_class'", "'courier.topic_meta'", "'courier.topics'", "'courier.log_1_1'", "'nosuch'",
              "'courier_citus.topics'", "''", "'-'", "'0'", "'1259'", "'4294967295'", "'-1'",
              "repeat('t', 64)", "'pg_class; DROP TABLE courier.topic_meta --'", "'\"pg_class\"'"]
PRIVILEGES = ["'send'", "'receive'", "'admin'", "'all'", "'any'", "'owner'", "'SEND'", "'Receive'",
              "'send,receive'", "'send, receive'", "'select'", "'usage'", "''", "' send'",
              "repeat('send', 10000)", "E'send\\u0000'"]
RECEIPTS_BAD = ["''", "'x'", "'zz'", "repeat('0', 40)", "repeat('f', 40)", "repeat('f', 39)",
                "repeat('0', 41)", "repeat('g', 40)", "repeat('a', 10000)", "'00000000000000ae0000000100'",
                "'-0000000000000ae00000001000304428efbae27'", "' 00000000000000ae00000001000304428efbae2'"]


# the groups of topic fz (test/sqlfuzz/setup.sql), restored when a call dropped one
FZ_GROUPS = {"tags": ", filter => 'created || paid'",
             "sql": ", filter => $$region = 'eu' AND amount >= 100$$",
             "ord": ", ordered => true",
             "dlq": ", max_attempts => 2, retry_backoff => '{10ms}'"}


class Receipts:
    """Real receipts from live deliveries, and forgeries made from them.  The
    pools hold tokens ('@real', '@bump', ...) resolved when the call runs, so
    the receipts are fresh."""

    TOKENS = ["@real", "@real", "@bump", "@otherid", "@flip", "@upper", "@stale"]

    def __init__(self):
        self.real = []      # (topic, grp, id, receipt), newest last

    def pool(self, rnd):
        return list(RECEIPTS_BAD) + self.TOKENS

    def resolve(self, token, rnd):
        """(receipt literal, id it belongs to or None)"""
        if not self.real:
            return "NULL", None
        _, _, mid, r = self.real[-1] if token != "@stale" else self.real[0]
        if token in ("@real", "@stale"):
            return f"'{r}'", mid
        if token == "@bump":
            return f"'{r[:16]}{(int(r[16:24], 16) + 1) % (1 << 32):08x}{r[24:]}'", mid
        if token == "@otherid":
            return f"'{(mid + 1):016x}{r[16:]}'", mid
        if token == "@flip":
            return f"'{r[:-1]}{'0' if r[-1] != '0' else '1'}'", mid
        return f"'{r.upper()}'", mid


def pool_for(name, typ, receipts, rnd):
    """Literal SQL expressions for one argument."""
    n = (name or "").lower()
    if typ == "text":
        if n == "topic":
            return TOPICS
        if n == "grp":
            return GROUPS
        if n == "filter":
            return FILTERS + TEXT
        if n == "tag":
            return TAGS
        if n == "start_from":
            return START_FROM
        if n == "reason":
            return REASONS
        if n == "receipt":
            return receipts.pool(rnd)
        if n == "privilege":
            return PRIVILEGES + TEXT
        if n == "key":
            return ["'k1'", "'u3'", "''", "'%'", "repeat('k', 10000)", "'k1'' OR true --'"]
        return TEXT
    if typ == "integer":
        return INTS
    if typ == "bigint":
        return BIGINTS
    if typ == "interval":
        return WAITS if n == "wait" else INTERVALS
    if typ == "timestamp with time zone":
        return TIMESTAMPS
    if typ == "jsonb":
        return JSONS
    if typ == "jsonb[]":
        return JSON_ARRAYS
    if typ == "text[]":
        if n == "receipts":
            pool = ["'{}'", "'{NULL}'", "'{{a,b},{c,d}}'"]
            pool += ["ARRAY[" + ",".join(rnd.sample(RECEIPTS_BAD, 3)) + "]" for _ in range(4)]
            pool += ["@real[]", "@stale[]"]
            return pool
        return TEXT_ARRAYS
    if typ == "bigint[]":
        return BIGINT_ARRAYS
    if typ == "interval[]":
        return INTERVAL_ARRAYS
    if typ == "boolean":
        return BOOLS
    if typ == "name" and n in ("role", "new_owner"):
        return ROLES
    if typ == "regclass":
        return REGCLASSES
    if typ == "regrole":
        return REGROLES
    raise SystemExit(f"calls.py: no value pool for argument {name} of type {typ}: add one")


def sane_value(fn, name, typ):
    """A value that makes the call plausible, for the arguments not being varied."""
    n = (name or "").lower()
    victim = fn in ("drop_topic", "drop_group")
    table = {
        "topic": "'victim'" if victim else "'fz'",
        "grp": "'vg'" if fn == "drop_group" else "'default'",
        "filter": "'*'", "tag": "'created'", "start_from": "'earliest'", "reason": "'fuzz'",
        "key": "'k1'", "body": "'{\"a\": 1}'", "bodies": "ARRAY['{\"a\": 1}', '{\"b\": 2}']::jsonb[]",
        "headers": "'{\"region\": \"eu\", \"amount\": 150}'", "id": "174", "ids": "'{174,175}'",
        "max_messages": "5", "max_attempts": "16", "visibility_timeout": "'1 second'",
        "retention": "'1 hour'", "ordered": "false",
        "role": "'smith'", "privilege": "'send'", "new_owner": "'smith'",
    }
    if n in table:
        return table[n]
    return "NULL"


class Fuzzer:
    def __init__(self, dsn, seed, nrandom):
        self.dsn = dsn
        self.rnd = random.Random(seed)
        self.nrandom = nrandom
        self.receipts = Receipts()
        self.outcomes = collections.Counter()       # (function, sqlstate or ok) -> count
        self.failures = []
        self.samples = {}                           # (function, sqlstate) -> first error and call
        self.calls = 0
        self.c = None

    def conn(self):
        if self.c is None or self.c.closed or self.c.broken:
            self.c = psycopg.connect(self.dsn, autocommit=True, application_name="sqlfuzz-calls")
            self.c.execute("SET statement_timeout = '5s'")
            self.c.execute("SET lock_timeout = '2s'")
        return self.c

    def functions(self):
        rows = self.conn().execute("""
            SELECT p.oid, p.proname, coalesce(p.proargnames, '{}'),
                   array(SELECT format_type(t, NULL) FROM unnest(p.proargtypes) t),
                   p.proretset
              FROM pg_proc p
             WHERE p.pronamespace = 'courier'::regnamespace AND p.proname !~ '^_'
               AND p.prokind = 'f'
             ORDER BY p.proname, p.oid""").fetchall()
        return [dict(oid=o, name=n, argnames=list(an), types=list(ty), srf=srf) for (o, n, an, ty, srf) in rows]

    def sql_of(self, f, values):
        values = list(values)
        names = [n.lower() for n in f["argnames"]]
        for i, v in enumerate(values):
            if v.startswith("@"):
                tok = v.rstrip("[]")
                lit, mid = self.receipts.resolve(tok, self.rnd)
                if v.endswith("[]"):
                    # ack(ids[], receipts[]): the receipts of the ids given
                    recs = self.receipts.real[-3:] if tok == "@real" else self.receipts.real[:3]
                    values[i] = "ARRAY[" + ",".join(f"'{r}'" for (_, _, _, r) in recs) + "]::text[]" \
                        if recs else "NULL"
                    if "ids" in names and values[names.index("ids")] == "'{174,175}'":
                        values[names.index("ids")] = "'{" + ",".join(str(m) for (_, _, m, _) in recs) + "}'"
                else:
                    values[i] = lit
                    if mid is not None and "id" in names and values[names.index("id")] == "174":
                        values[names.index("id")] = str(mid)
                # the receipts are of group tags of topic fz
                if "topic" in names and values[names.index("topic")] == "'fz'" and "grp" in names \
                        and values[names.index("grp")] == "'default'":
                    values[names.index("grp")] = "'tags'"
        args = ", ".join(f"({v})::{t}" for v, t in zip(values, f["types"]))
        if f["srf"]:
            return f"SELECT count(*) FROM courier.{f['name']}({args})"
        return f"SELECT courier.{f['name']}({args}) IS NULL"

    def harvest(self):
        """Fresh real receipts (deliveries of topic fz), to forge from and to use."""
        try:
            c = self.conn()
            # topic fz and its groups stay (a random call may drop them), and
            # it keeps getting traffic; the victims are there to be dropped
            c.execute("""SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM courier.topics WHERE topic = 'fz')
                                     THEN courier.create_topic('fz', retention => '1 hour') END""")
            for g, extra in FZ_GROUPS.items():
                c.execute(f"""SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM courier.groups WHERE topic = 'fz'
                                          AND grp = '{g}') THEN courier.create_group('fz', '{g}'{extra}) END""")
            c.execute("""SELECT count(courier.send('fz', jsonb_build_object('h', i), tag => 'created',
                                keys => ARRAY['k' || (i % 7)], headers => '{"region": "eu", "amount": 120}'))
                           FROM generate_series(1, 10) i""")
            rows = c.execute("SELECT id, receipt FROM courier.receive('fz', 'tags', 3, '2 seconds')").fetchall()
            self.receipts.real = (self.receipts.real + [("fz", "tags", i, r) for i, r in rows])[-30:]
            c.execute("""SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM courier.topics WHERE topic = 'victim')
                                     THEN courier.create_topic('victim') END""")
            c.execute("""SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM courier.groups WHERE topic = 'victim'
                                     AND grp = 'vg') THEN courier.create_group('victim', 'vg') END""")
        except psycopg.Error as e:
            self.record("harvest", e, "harvest")

    def record(self, fname, err, sql):
        if err is None:
            self.outcomes[(fname, "ok")] += 1
            return
        st = getattr(err, "sqlstate", None)
        broken = self.c is None or self.c.closed or self.c.broken
        if st is None or broken:
            self.failures.append(f"{fname}: connection lost ({str(err).strip()[:200]}): {sql[:600]}")
            self.outcomes[(fname, "lost")] += 1
            time.sleep(1)
            self.c = None
            return
        self.outcomes[(fname, st)] += 1
        if (fname, st) not in self.samples:
            self.samples[(fname, st)] = f"{str(err).strip().splitlines()[0][:160]} <- {sql[:200]}"
        if st.startswith(BAD_STATES):
            self.failures.append(f"{fname}: {st} {str(err).strip()[:300]}: {sql[:600]}")
        elif st in HARNESS_STATES:
            self.failures.append(f"{fname}: harness built a wrong call ({st} {str(err).strip()[:200]}): {sql[:300]}")

    def run_tx(self, calls):
        """calls: [(function, sql)] in one transaction, each in a savepoint."""
        c = self.conn()
        iso = self.rnd.choices(["READ COMMITTED", "REPEATABLE READ", "SERIALIZABLE"], [6, 2, 2])[0]
        try:
            c.execute(f"BEGIN ISOLATION LEVEL {iso}")
        except psycopg.Error as e:
            self.record("begin", e, "BEGIN")
            return
        for fname, sql in calls:
            self.calls += 1
            try:
                c.execute("SAVEPOINT call")
            except psycopg.Error as e:
                self.record(fname, e, "SAVEPOINT")
                return
            try:
                c.execute(sql).fetchall()
                self.record(fname, None, sql)
                c.execute("RELEASE SAVEPOINT call")
            except psycopg.Error as e:
                self.record(fname, e, sql)
                if self.c is None:
                    return
                try:
                    c.execute("ROLLBACK TO SAVEPOINT call")
                except psycopg.Error as e2:
                    self.record(fname + ":rollback-to", e2, "ROLLBACK TO SAVEPOINT")
                    return
        try:
            c.execute("COMMIT" if self.rnd.random() < 0.7 else "ROLLBACK")
        except psycopg.Error as e:
            # a serialization failure at commit is a proper outcome
            self.record("commit", e, "COMMIT")

    def run(self):
        funcs = self.functions()
        jobs = []
        # phase 1: every value of every argument's pool, the others sane
        for f in funcs:
            sane = [sane_value(f["name"], n, t) for n, t in zip(f["argnames"], f["types"])]
            jobs.append((f, sane))
            for i, (n, t) in enumerate(zip(f["argnames"], f["types"])):
                for v in pool_for(n, t, self.receipts, self.rnd) + ["NULL"]:
                    vals = list(sane)
                    vals[i] = v
                    jobs.append((f, vals))
        # phase 2: random combinations
        for _ in range(self.nrandom):
            f = self.rnd.choice(funcs)
            vals = []
            for n, t in zip(f["argnames"], f["types"]):
                u = self.rnd.random()
                if u < 0.1:
                    vals.append("NULL")
                elif u < 0.45:
                    vals.append(sane_value(f["name"], n, t))
                else:
                    vals.append(self.rnd.choice(pool_for(n, t, self.receipts, self.rnd)))
            jobs.append((f, vals))
        self.rnd.shuffle(jobs)
        i = 0
        while i < len(jobs):
            if i % 25 == 0:
                self.harvest()
            k = self.rnd.choice([1, 1, 2, 3, 4])
            batch = jobs[i:i + k]
            i += k
            # receipts were drawn when the job was built; refresh real ones for some
            self.run_tx([(f["name"], self.sql_of(f, vals)) for f, vals in batch])
        return len(funcs)


def consistent(dsn):
    """The topics still work after the fuzzing.  Returns a list of problems."""
    bad = []
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("SET statement_timeout = '60s'")
        c.execute("SELECT courier.run_maintenance()")
        for row in c.execute("SELECT topic, grp, backlog, in_flight, delayed, retrying, dead_letters, dropped"
                             " FROM courier.groups").fetchall():
            if any(x is None or x < 0 for x in row[2:]):
                bad.append(f"courier.groups has a negative or NULL count: {row}")
        for row in c.execute("SELECT topic, messages, segments FROM courier.topics").fetchall():
            if row[1] is None or row[1] < 0 or row[2] is None or row[2] < 1:
                bad.append(f"courier.topics: {row}")
        # the topic fz exists (nothing in the fuzzer may drop it: drop_topic's sane
        # topic is 'victim', and a random 'fz' may be drawn: then recreate)
        if not c.execute("SELECT 1 FROM courier.topics WHERE topic = 'fz'").fetchone():
            c.execute("SELECT courier.create_topic('fz')")
        # a group the fuzzing paused (pause_group) hands out nothing: resume it
        c.execute("SELECT courier.resume_group('fz', g.grp) FROM courier.groups g WHERE topic = 'fz' AND paused")
        c.execute("SELECT courier.drop_group('fz', g.grp) FROM courier.groups g WHERE topic = 'fz' AND grp = 'post'")
        c.execute("SELECT courier.create_group('fz', 'post', start_from => 'latest')")
        sent = [r[0] for r in c.execute("SELECT courier.send('fz', jsonb_build_object('post', i), tag => 'created')"
                                        " FROM generate_series(1, 3) i").fetchall()]
        got = c.execute("SELECT id, attempt, receipt FROM courier.receive('fz', 'post', 10, '1 minute')").fetchall()
        if sorted(r[0] for r in got) != sorted(sent) or any(r[1] != 1 for r in got):
            bad.append(f"new group 'post': sent {sent}, received {got}")
        for mid, _, rc in got:
            if not c.execute("SELECT courier.ack('fz', 'post', %s::bigint, receipt => %s)", (mid, rc)).fetchone()[0]:
                bad.append(f"ack of {mid} with its receipt returned false")
        # drain every group of fz: what is receivable now goes and is acked
        groups = [r[0] for r in c.execute("SELECT grp FROM courier.groups WHERE topic = 'fz' ORDER BY grp")]
        for g in groups:
            total = 0
            # an ordered group hands out one message per key per round (the
            # traffic uses 5 keys): 200 rounds drained at most ~1,000, and a
            # busy run left more than that queued behind healthy heads
            rounds = 0
            for rounds in range(1, 20001):
                # with a wait: a receive without one returns after
                # courier.scan_limit log entries even if it found nothing
                # (20000 delayed messages in a row, say), and an empty
                # result would not mean drained
                rows = c.execute("SELECT id, receipt FROM courier.receive('fz', %s, 1000, '1 hour', "
                                 "wait => '0.3 seconds')", (g,)).fetchall()
                if not rows:
                    break
                total += len(rows)
                n = c.execute("SELECT courier.ack('fz', %s, %s::bigint[], %s::text[])",
                              (g, [r[0] for r in rows], [r[1] for r in rows])).fetchone()[0]
                if n != len(rows):
                    bad.append(f"group {g}: acked {n} of {len(rows)} messages just received")
                    break
            if rounds == 20000:
                bad.append(f"group {g}: still delivering after {rounds} rounds ({total} drained)")
            row = c.execute("SELECT backlog, in_flight + retrying + delayed, ordered FROM courier.groups"
                            " WHERE topic = 'fz' AND grp = %s", (g,)).fetchone()
            # an ordered group's backlog also counts messages queued behind a
            # head that is in flight, retrying or delayed (not receivable now)
            if row is not None and row[0] != 0 and not (row[2] and row[1] > 0):
                bad.append(f"group {g}: backlog {row[0]} after the drain ({total} drained)")
        c.execute("SELECT courier.run_maintenance()")
        # every btree index of the extension's relations is intact
        for (idx,) in c.execute("""SELECT i.indexrelid::regclass::text FROM pg_index i
                                     JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam
                                    WHERE c.relnamespace = 'courier'::regnamespace AND a.amname = 'btree'
                                      AND i.indisvalid AND i.indisready""").fetchall():
            try:
                c.execute("SELECT bt_index_check(%s::regclass, true)", (idx,))
            except psycopg.Error as e:
                bad.append(f"amcheck {idx}: {e.sqlstate} {str(e).strip()[:200]}")
    return bad


# Internal errors of PostgreSQL itself that sqlsmith's random SQL reaches with
# no pg_courier object in the query path; each was reproduced on a cluster
# without the extension before it was listed here.  sqlsmith no longer
# reaches them (smith.sql revokes the functions, smith_filter.py drops the
# unknown-typed COALESCE/CASE shapes), so the server log holds no XX000; the
# list stays for runs of calls.py against other clusters.
CORE_XX000 = [
    # select unknownout(cast(cast(coalesce(case when true then cast(null as unknown)
    #   else cast(null as unknown) end, cast(coalesce(cast(null as unknown),
    #   cast(null as unknown)) as unknown)) as unknown) as unknown))
    # -> XX000 in coerce_type, parse_coerce.c
    r"failed to find conversion function from unknown to ",
    # select pg_catalog.interval(interval '3 days', 13)
    # -> XX000 in AdjustIntervalForTypmod, timestamp.c (message "unrecognized"
    #    or "invalid INTERVAL typmod" depending on the caller)
    r"(?i)(unrecognized|invalid) interval typmod",
    # select pg_catalog.interval_avg(array[interval '1 day'])
    # -> XX000 in interval_avg, timestamp.c
    r"expected 2-element interval array",
    # select pg_catalog.int4_avg_combine(array[1,2]::int8[], array[1,2]::int8[])
    # -> XX000 in int4_avg_combine, numeric.c (an aggregate's support
    #    function called directly; the other transition and combine functions
    #    of numeric.c and float.c raise the same; pg_courier has no aggregate)
    r"aggregate function called in non-aggregate context",
    # select pg_catalog.amvalidate(0)
    # -> XX000 in amvalidate, amapi.c (cache lookup of the operator class)
    r"cache lookup failed for operator class ",
]


def scan_log(path, start_offset=0, core_allowed=False):
    """XX*** errors, PANIC, assertion failures and crashes in the server log
    (from a byte offset on).  With core_allowed, the known internal errors of
    PostgreSQL's own parser (CORE_XX000) are counted apart, not reported."""
    bad = []
    with open(path, errors="replace") as fh:
        fh.seek(start_offset)
        for line in fh:
            m = re.match(r"^\S+ \S+ \S+ \[\d+\] XX\d{3} (ERROR|FATAL|PANIC):\s+(.*)", line)
            if m:
                if core_allowed and any(re.search(p, m.group(2)) for p in CORE_XX000):
                    print(f"  (PostgreSQL's own internal error, not pg_courier's: {m.group(2)[:120]})")
                    continue
                bad.append(line.rstrip()[:500])
            elif "PANIC:" in line or "TRAP:" in line or re.search(r"terminated by signal|terminated by exception", line):
                bad.append(line.rstrip()[:500])
    return bad


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dsn", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--seed", type=int, default=int(os.environ.get("SQLFUZZ_SEED") or 0) or None)
    p.add_argument("--random", type=int, default=int(os.environ.get("SQLFUZZ_RANDOM_CALLS", 2500)))
    p.add_argument("--log-offset", type=int, default=0, help="scan the server log from this byte on")
    p.add_argument("--check-only", action="store_true",
                   help="no calls: only check that the topics work and the log is clean")
    a = p.parse_args()
    if a.check_only:
        problems = [f"topics: {b}" for b in consistent(a.dsn)]
        problems += [f"server log: {b}" for b in scan_log(a.log, a.log_offset, core_allowed=True)]
        for pr in problems[:60]:
            print(f"  FAIL {pr}")
        print(f"sqlfuzz check: failures={len(problems)}")
        return 0 if not problems else 1
    if a.seed is None:
        a.seed = random.SystemRandom().randrange(1, 10**6)
    t0 = time.time()
    fz = Fuzzer(a.dsn, a.seed, a.random)
    nf = fz.run()
    ok_calls = sum(n for (fn, st), n in fz.outcomes.items() if st == "ok")
    states = collections.Counter()
    for (fn, st), n in fz.outcomes.items():
        if st != "ok":
            states[st] += n
    per_fn = collections.Counter()
    for (fn, st), n in fz.outcomes.items():
        per_fn[fn] += n
    print(f"sqlfuzz calls: seed={a.seed} functions={nf} calls={fz.calls} succeeded={ok_calls} "
          f"seconds={time.time() - t0:.0f}")
    print("  errors by SQLSTATE: " + ", ".join(f"{k}:{v}" for k, v in sorted(states.items())))
    print("  calls by function: " + ", ".join(f"{k}:{v}" for k, v in sorted(per_fn.items())))
    if os.environ.get("SQLFUZZ_VERBOSE"):
        for k, v in sorted(fz.samples.items()):
            print(f"  sample {k[0]} {k[1]}: {v}")
    problems = list(fz.failures)
    problems += [f"after the fuzzing: {b}" for b in consistent(a.dsn)]
    problems += [f"server log: {b}" for b in scan_log(a.log, a.log_offset)]
    for pr in problems[:60]:
        print(f"  FAIL {pr}")
    if len(problems) > 60:
        print(f"  ... {len(problems) - 60} more")
    print(f"sqlfuzz calls summary: seed={a.seed} calls={fz.calls} failures={len(problems)}")
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
