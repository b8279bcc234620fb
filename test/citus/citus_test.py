"""pg_courier on Citus: a coordinator and two workers (test/citus/run.sh starts
them and installs citus and pg_courier).  Each check prints "ok N - what" or
"not ok N - what: why"; the last line is "citus tests: N passed, N failed".

Every message is counted: the suite keeps, per topic, the ids of every send
that committed (and of none that rolled back), and at the end each topic's
messages are received and acked through the coordinator until none is left;
the delivered ids must equal the committed ids exactly, each once, and the
owner node's own tables must agree.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time

import psycopg
from psycopg import errors

ap = argparse.ArgumentParser()
ap.add_argument('--coord', required=True)
ap.add_argument('--w1', required=True)
ap.add_argument('--w2', required=True)
ap.add_argument('--logs', nargs='*', default=[])
ap.add_argument('--bench-seconds', type=int, default=0)
ap.add_argument('--bindir', default='')
ap.add_argument('--workdir', default='/tmp')
args = ap.parse_args()

DSN = {'coord': args.coord, 'w1': args.w1, 'w2': args.w2}
PORT = {n: int(re.search(r'port=(\d+)', d).group(1)) for n, d in DSN.items()}
NODE_OF_PORT = {'127.0.0.1:%d' % p: n for n, p in PORT.items()}

passed = 0
failed = 0
checks = 0

# committed[topic] = set of message ids whose send committed (the expectation)
committed = {}


def connect(node, autocommit=True):
    return psycopg.connect(DSN[node], autocommit=autocommit)


def q(conn, sql, params=None):
    cur = conn.execute(sql, params)
    return cur.fetchall() if cur.description else None


def one(conn, sql, params=None):
    rows = q(conn, sql, params)
    return rows[0][0] if rows else None


def check(what, fn):
    """Run one check; an exception or a false result fails it."""
    global passed, failed, checks
    checks += 1
    try:
        res = fn()
        if res is None or res is True:
            passed += 1
            print('ok %d - %s' % (checks, what), flush=True)
            return
        raise AssertionError(res)
    except Exception as e:  # noqa: BLE001 - every failure is reported
        if co.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            co.execute('ROLLBACK')	# leave the shared session clean for the next check
        failed += 1
        print('not ok %d - %s: %s: %s' % (checks, what, type(e).__name__,
                                          str(e).strip().replace('\n', ' | ')), flush=True)


def expect(cond, msg):
    if not cond:
        raise AssertionError(msg)


def expect_error(conn, sql, sqlstate, pattern=None, params=None):
    """sql must fail with sqlstate (and a message matching pattern)."""
    try:
        conn.execute(sql, params)
    except psycopg.Error as e:
        st = e.sqlstate
        msg = str(e)
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            conn.execute('ROLLBACK')
        expect(st == sqlstate, 'expected %s, got %s: %s' % (sqlstate, st, msg))
        if pattern:
            expect(re.search(pattern, msg), 'message %r does not match %r' % (msg, pattern))
        return msg
    raise AssertionError('no error from: %s' % sql)


def owner(conn, topic):
    return NODE_OF_PORT[one(conn, 'SELECT courier.citus_owner(%s)', (topic,))]


def local_topics(node):
    with connect(node) as c:
        return {r[0] for r in q(c, 'SELECT name FROM courier.topic_meta')}


def local_count(node, topic):
    """Messages of a topic in the node's own log (courier.topics counts)."""
    with connect(node) as c:
        return one(c, 'SELECT messages FROM courier.topics WHERE topic = %s', (topic,))


def record_sends(topic, ids):
    committed.setdefault(topic, set()).update(ids)


def dist_xacts(conn):
    return one(conn, 'SELECT count(*) FROM pg_dist_transaction')


co = connect('coord')
TOPICS = ['t%d' % i for i in range(1, 9)]
topic_owner = {}
other_worker = {'w1': 'w2', 'w2': 'w1'}


# 1. citus_distribute: registers every topic-keyed function, idempotent
def t_distribute():
    n1 = one(co, 'SELECT courier.citus_distribute()')
    n2 = one(co, 'SELECT courier.citus_distribute()')
    expect(n1 == n2 and n1 >= 20, 'registered %s then %s functions' % (n1, n2))
    want = one(co, """SELECT count(*) FROM pg_proc p WHERE p.pronamespace = 'courier'::regnamespace
                       AND p.proname !~ '^_' AND p.proname <> 'citus_owner'
                       AND (p.proargnames)[1] = 'topic'""")
    expect(n1 == want, 'registered %s of %s topic-keyed functions' % (n1, want))
    for node in DSN:
        with connect(node) as c:
            got = one(c, """SELECT count(*) FROM pg_dist_object o JOIN pg_proc p ON p.oid = o.objid
                             WHERE o.classid = 'pg_proc'::regclass
                               AND p.pronamespace = 'courier'::regnamespace
                               AND o.distribution_argument_index = 0 AND o.force_delegation""")
            expect(got == n1, '%s knows %s distributed functions, not %s' % (node, got, n1))
    # the ack overload of arrays is among them (issue 12: it was not registered in the spike)
    expect(one(co, """SELECT count(*) FROM pg_dist_object
                       WHERE objid = 'courier.ack(text,text,bigint[],text[])'::regprocedure""") == 1,
           'ack(text, text, bigint[], text[]) is not distributed')


check('citus_distribute registers every topic-keyed function on every node, twice the same', t_distribute)


# 2. routing: topics are created on their owner only
def t_create_topics():
    for t in TOPICS:
        co.execute('SELECT courier.create_topic(%s)', (t,))
        topic_owner[t] = owner(co, t)
    expect(set(topic_owner.values()) == {'w1', 'w2'}, 'owners %s: want both workers' % topic_owner)
    on = {n: local_topics(n) for n in DSN}
    expect(on['coord'] == set(), 'coordinator has topics %s' % on['coord'])
    for t in TOPICS:
        w = topic_owner[t]
        expect(t in on[w] and t not in on[other_worker[w]], '%s not only on %s: %s' % (t, w, on))


check('8 topics created through the coordinator land on their owner worker only', t_create_topics)


# 3. send, send_batch, peek, receive, ack, nack, set_visibility through the coordinator
def t_calls():
    for t in TOPICS:
        ids = [one(co, 'SELECT courier.send(%s, %s::jsonb)', (t, json.dumps({'n': i}))) for i in range(5)]
        ids += [r[0] for r in q(co, 'SELECT * FROM courier.send_batch(%s, %s::jsonb[])',
                               (t, [json.dumps({'b': i}) for i in range(5)]))]
        record_sends(t, ids)
        expect(len(set(ids)) == 10, '%s: ids %s' % (t, ids))
        expect(local_count(topic_owner[t], t) == 10, '%s: owner has %s messages'
               % (t, local_count(topic_owner[t], t)))
        peeked = q(co, 'SELECT id FROM courier.peek(%s, %s, 100)', (t, 'default'))
        expect(len(peeked) == 10, '%s: peek saw %d' % (t, len(peeked)))
    t = TOPICS[0]
    co.execute("SELECT courier.create_group(%s, 'side')", (t,))
    got = [r[0] for r in q(co, "SELECT id FROM courier.receive(%s, 'side', 3, '1 minute')", (t,))]
    expect(len(got) == 3, 'received %s' % got)
    expect(one(co, "SELECT courier.ack(%s, 'side', %s)", (t, got[0])) is True, 'ack')
    expect(one(co, "SELECT courier.set_visibility(%s, 'side', %s, '0')", (t, got[1])) is True, 'set_visibility')
    expect(one(co, "SELECT courier.nack(%s, 'side', %s, '0')", (t, got[2])) is True, 'nack')
    expect(one(co, "SELECT courier.ack(%s, 'side', %s::bigint[])", (t, got[:1])) == 0, 'ack twice')
    co.execute("SELECT courier.drop_group(%s, 'side')", (t,))


check('send, send_batch, peek, receive, ack (both overloads), nack, set_visibility, group DDL through the coordinator',
      t_calls)


# 4. create_topic inside BEGIN ... COMMIT (delegated, two workers: 2PC) and ROLLBACK
def t_create_in_xact():
    a, b = 'xa', 'xb'
    # pick names on different workers
    names = ['x%d' % i for i in range(40)]
    by = {}
    for n in names:
        by.setdefault(owner(co, n), []).append(n)
    a, b, c, d = by['w1'][0], by['w2'][0], by['w1'][1], by['w2'][1]
    before = dist_xacts(co)
    co.execute('BEGIN')
    co.execute('SELECT courier.create_topic(%s)', (a,))
    co.execute('SELECT courier.create_topic(%s)', (b,))
    ida = one(co, "SELECT courier.send(%s, '{\"k\": 1}')", (a,))
    idb = one(co, "SELECT courier.send(%s, '{\"k\": 1}')", (b,))
    co.execute('COMMIT')
    expect(a in local_topics('w1') and b in local_topics('w2'), 'topics not on their owners')
    expect(local_topics('coord') == set(), 'coordinator got a topic')
    expect(dist_xacts(co) > before, 'no two-phase commit recorded')
    record_sends(a, [ida])
    record_sends(b, [idb])
    co.execute('BEGIN')
    co.execute('SELECT courier.create_topic(%s)', (c,))
    co.execute('SELECT courier.create_topic(%s)', (d,))
    co.execute("SELECT courier.send(%s, '{\"k\": 1}')", (c,))
    co.execute('ROLLBACK')
    for node in DSN:
        expect(not ({c, d} & local_topics(node)), 'rolled-back topic exists on %s' % node)
    topic_owner[a], topic_owner[b] = 'w1', 'w2'


check('create_topic inside BEGIN/COMMIT is delegated (2PC across workers); ROLLBACK leaves no topic anywhere',
      t_create_in_xact)

# topics on each worker, for the cross-worker checks
T1 = next(t for t in TOPICS if topic_owner[t] == 'w1')
T2 = next(t for t in TOPICS if topic_owner[t] == 'w2')


# 5. the outbox on one worker: business row and message commit together, 1PC
def t_outbox_one():
    co.execute('CREATE TABLE orders (topic text NOT NULL, order_id int NOT NULL, PRIMARY KEY (topic, order_id))')
    co.execute("SELECT create_distributed_table('orders', 'topic', colocate_with => 'courier_citus.topics')")
    before = dist_xacts(co)
    co.execute('BEGIN')
    co.execute('INSERT INTO orders VALUES (%s, 1)', (T1,))
    mid = one(co, "SELECT courier.send(%s, '{\"order\": 1}')", (T1,))
    co.execute('COMMIT')
    record_sends(T1, [mid])
    expect(dist_xacts(co) == before, 'a one-worker outbox used two-phase commit')
    n_before = local_count('w1', T1)
    co.execute('BEGIN')
    co.execute('INSERT INTO orders VALUES (%s, 2)', (T1,))
    co.execute("SELECT courier.send(%s, '{\"order\": 2}')", (T1,))
    co.execute('ROLLBACK')
    expect(one(co, 'SELECT count(*) FROM orders WHERE topic = %s', (T1,)) == 1, 'order rows')
    expect(local_count('w1', T1) == n_before, 'rolled-back message is in the log')
    with connect('w1') as c:
        found = q(c, "SELECT state FROM courier.find(%s, id => %s)", (T1, mid))
        expect(found and found[0][0] == 'pending', 'committed outbox message: %s' % found)


check('outbox on one worker: row + message commit together without 2PC; ROLLBACK leaves neither', t_outbox_one)


# 6. the outbox across two workers: 2PC; rollback and a failure leave nothing
def t_outbox_two():
    before = dist_xacts(co)
    co.execute('BEGIN')
    co.execute('INSERT INTO orders VALUES (%s, 10), (%s, 10)', (T1, T2))
    m1 = one(co, "SELECT courier.send(%s, '{\"order\": 10}')", (T1,))
    m2 = one(co, "SELECT courier.send(%s, '{\"order\": 10}')", (T2,))
    co.execute('COMMIT')
    record_sends(T1, [m1])
    record_sends(T2, [m2])
    expect(dist_xacts(co) > before, 'no two-phase commit recorded')
    counts = (local_count('w1', T1), local_count('w2', T2))
    co.execute('BEGIN')
    co.execute('INSERT INTO orders VALUES (%s, 11), (%s, 11)', (T1, T2))
    co.execute("SELECT courier.send(%s, '{\"order\": 11}')", (T1,))
    co.execute("SELECT courier.send(%s, '{\"order\": 11}')", (T2,))
    co.execute('ROLLBACK')
    # a failure on the second worker after the first one sent
    co.execute('BEGIN')
    co.execute("SELECT courier.send(%s, '{\"order\": 12}')", (T1,))
    expect_error(co, "SELECT courier.send(%s, NULL)", '22004', params=(T2,))
    expect(one(co, 'SELECT count(*) FROM orders WHERE order_id IN (11, 12)') == 0, 'rolled-back orders')
    expect((local_count('w1', T1), local_count('w2', T2)) == counts, 'rolled-back messages in a log')


check('outbox across two workers: 2PC commit; ROLLBACK and a failing send leave nothing anywhere', t_outbox_two)


def drain(conn, topic, grp='default', n=1000):
    """Receive and ack everything receivable now; the ids."""
    got = []
    while True:
        rows = q(conn, "SELECT id FROM courier.receive(%s, %s, %s, '5 minutes')", (topic, grp, n))
        if not rows:
            return got
        ids = [r[0] for r in rows]
        got += ids
        expect(one(conn, 'SELECT courier.ack(%s, %s, %s::bigint[])', (topic, grp, ids)) == len(ids),
               'acks of %s' % ids)


# 7. receive-transform-send across workers (2PC with a receive in the prepared transaction)
def t_transform():
    src, dst = T1, T2
    co.execute("SELECT courier.create_group(%s, 'xform', start_from => 'latest')", (src,))
    src_ids = [one(co, "SELECT courier.send(%s, %s::jsonb)", (src, json.dumps({'v': i}))) for i in range(6)]
    record_sends(src, src_ids)
    before = dist_xacts(co)
    # rolled back: the messages come back, nothing is sent
    dst_count = local_count('w2', dst)
    co.execute('BEGIN')
    rows = q(co, "SELECT id, attempt, body FROM courier.receive(%s, 'xform', 3, '5 minutes')", (src,))
    for r in rows:
        co.execute("SELECT courier.send(%s, %s::jsonb)", (dst, json.dumps({'from': r[0], 'v2': r[2]['v'] * 2})))
    co.execute("SELECT courier.ack(%s, 'xform', %s::bigint[])", (src, [r[0] for r in rows]))
    co.execute('ROLLBACK')
    expect(len(rows) == 3, 'received %s' % rows)
    expect(local_count('w2', dst) == dst_count, 'a rolled-back transform sent')
    # committed: in batches of 3, each batch one distributed transaction
    done = []
    while True:
        co.execute('BEGIN')
        rows = q(co, "SELECT id, attempt, body FROM courier.receive(%s, 'xform', 3, '5 minutes')", (src,))
        if not rows:
            co.execute('COMMIT')
            break
        out = []
        for r in rows:
            expect(r[1] == 1, 'attempt %s after a rolled-back receive' % r[1])
            out.append(one(co, "SELECT courier.send(%s, %s::jsonb)",
                           (dst, json.dumps({'from': r[0], 'v2': r[2]['v'] * 2}))))
        co.execute("SELECT courier.ack(%s, 'xform', %s::bigint[])", (src, [r[0] for r in rows]))
        co.execute('COMMIT')
        record_sends(dst, out)
        done += [r[0] for r in rows]
    expect(sorted(done) == sorted(src_ids), 'transformed %s of %s' % (sorted(done), sorted(src_ids)))
    expect(dist_xacts(co) > before, 'no two-phase commit recorded')
    expect(local_count('w2', dst) == dst_count + len(src_ids), 'transformed messages on the destination')
    with connect('w1') as c:
        g = q(c, "SELECT in_flight, backlog FROM courier.groups WHERE topic = %s AND grp = 'xform'", (src,))
        expect(g == [(0, 0)], 'xform group after the transform: %s' % g)
        expect(one(c, 'SELECT count(*) FROM pg_prepared_xacts') == 0, 'prepared transactions left')


check('receive-transform-send across workers: commits through 2PC; a rollback gives the messages back and sends nothing',
      t_transform)


# 8. a waiting receive on one worker is woken by a 2PC commit
def t_wakeup():
    co.execute("SELECT courier.create_group(%s, 'waiter', start_from => 'latest')", (T2,))
    result = {}

    def waiter():
        with connect('coord') as c:
            t0 = time.monotonic()
            rows = q(c, "SELECT id FROM courier.receive(%s, 'waiter', 1, '1 minute', wait => '120 seconds')", (T2,))
            result['rows'] = rows
            result['elapsed'] = time.monotonic() - t0
            if rows:
                c.execute("SELECT courier.ack(%s, 'waiter', %s)", (T2, rows[0][0]))

    th = threading.Thread(target=waiter)
    th.start()
    time.sleep(2)
    co.execute('BEGIN')
    a = one(co, "SELECT courier.send(%s, '{\"wake\": 1}')", (T1,))
    b = one(co, "SELECT courier.send(%s, '{\"wake\": 1}')", (T2,))
    co.execute('COMMIT')
    record_sends(T1, [a])
    record_sends(T2, [b])
    th.join(150)
    expect(result.get('rows') == [(b,)], 'waiter got %s, want [(%s,)]' % (result.get('rows'), b))
    # woken, not timed out (the wait was 120 s)
    expect(result['elapsed'] < 60, 'waiter returned after %.1f s' % result['elapsed'])


check('a waiting receive on a worker is woken by a send committed through 2PC', t_wakeup)


# 9. the guard
def t_guard():
    t = T1
    own = '127.0.0.1:%d' % PORT['w1']
    before = local_count('w1', t)
    # call shapes Citus does not delegate run on the coordinator: refused, naming the owner
    for sql in ["SELECT courier.send(%s, '{}') WHERE random() < 2",
                "WITH x AS (SELECT courier.send(%s, '{}')) SELECT * FROM x",
                "SELECT courier.send(%s, '{}') FROM generate_series(1, 1)",
                "SELECT * FROM courier.peek(%s) p JOIN generate_series(1, 1) g ON true",
                "SELECT courier.create_group(%s, 'g9') WHERE random() < 2"]:
        expect_error(co, sql, '0A000', r'topic "%s" belongs to Citus node %s' % (t, re.escape(own)), (t,))
    expect_error(co, "DO $$ BEGIN PERFORM courier.create_topic('x-do'); END $$", '0A000',
                 r'belongs to Citus node')
    # every registered topic-keyed function and overload, in a shape Citus does
    # not delegate, on the coordinator and on the worker that does not own the
    # topic: refused by the guard (without it: "topic does not exist", or worse)
    sample = {'text': "'g'", 'jsonb': "'{}'", 'bigint': '1', 'integer': '1', 'boolean': 'false',
              'interval': "'1 second'", 'bigint[]': "'{1}'", 'text[]': "'{}'", 'jsonb[]': "ARRAY['{}'::jsonb]",
              'regrole': "'postgres'", 'name': "'postgres'", 'timestamp with time zone': 'now()'}
    funcs = q(co, """SELECT p.oid::regprocedure::text, p.proname, p.pronargs - p.pronargdefaults,
                            array(SELECT format_type(t, NULL) FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY u(t, n)
                                  ORDER BY n)
                       FROM pg_dist_object o JOIN pg_proc p ON p.oid = o.objid
                      WHERE o.classid = 'pg_proc'::regclass AND p.pronamespace = 'courier'::regnamespace
                      ORDER BY 1""")
    expect(len(funcs) >= 20, 'distributed functions: %s' % funcs)
    for node in ('coord', 'w2'):
        with connect(node) as c:
            for sig, name, nreq, types in funcs:
                vals = ['%s::text' % "'%s'" % t] + ['%s::%s' % (sample[ty], ty) for ty in types[1:nreq]]
                if name in ('grant', 'revoke'):
                    vals[2] = "'send'::text"
                if name == 'has_topic_privilege':
                    vals[1] = "'send'::text"
                sql = 'SELECT courier.%s(%s) WHERE random() < 2' % (name, ', '.join(vals))
                try:
                    expect_error(c, sql, '0A000', r'topic "%s" belongs to Citus node %s' % (t, re.escape(own)))
                except AssertionError as e:
                    raise AssertionError('%s on %s: %s' % (sig, node, e))
    print('# the guard refused all %d distributed functions on the coordinator and on the non-owner worker'
          % len(funcs))
    # a non-distributed wrapper: the inner call is refused or delegated, never acted on locally
    co.execute("""CREATE FUNCTION public.wrap_send(t text) RETURNS bigint LANGUAGE plpgsql AS
                  $$ BEGIN RETURN courier.send(t, '{"wrapped": true}'); END $$""")
    try:
        wid = one(co, 'SELECT public.wrap_send(%s)', (t,))
        record_sends(t, [wid])
        expect(local_count('w1', t) == before + 1, 'wrapped send not on the owner')
        print('# a non-distributed wrapper: its inner send was delegated to the owner')
    except psycopg.Error as e:
        expect(e.sqlstate == '0A000' and 'belongs to Citus node' in str(e), 'wrapper: %s' % e)
        print('# a non-distributed wrapper: its inner send was refused by the guard')
    # a worker that does not own the topic routes a top-level call (Citus delegates from workers too)
    with connect('w2') as c:
        mid = one(c, "SELECT courier.send(%s, '{\"via\": \"w2\"}')", (t,))
        record_sends(t, [mid])
        expect_error(c, "SELECT courier.send(%s, '{}') WHERE random() < 2", '0A000', r'belongs to Citus node', (t,))
    # the owner itself serves any shape
    with connect('w1') as c:
        mid = one(c, "SELECT courier.send(%s, '{\"direct\": 1}') WHERE random() < 2", (t,))
        record_sends(t, [mid])
    # a stray local topic of the same name on the coordinator is never acted on
    co.execute('SET courier.citus_guard = off')
    co.execute("DO $$ BEGIN PERFORM courier.create_topic('%s'); PERFORM courier.send('%s', '{\"stray\": 1}'); END $$"
               % (t, t))
    co.execute('RESET courier.citus_guard')
    expect(local_topics('coord') == {t}, 'stray topic not created')
    expect_error(co, "SELECT courier.send(%s, '{}') WHERE random() < 2", '0A000', r'belongs to Citus node', (t,))
    expect(one(co, 'SELECT messages FROM courier.topics WHERE topic = %s', (t,)) == 1, 'stray topic changed')
    peeked = q(co, 'SELECT body FROM courier.peek(%s, %s, 1000)', (t, 'default'))
    expect(all('stray' not in r[0] for r in peeked), 'peek through the coordinator saw the stray topic')
    # courier.cluster_topics shows it as a stray (node is not the owner)
    strays = q(co, """SELECT topic FROM courier.cluster_topics
                       WHERE owner_node <> nodename || ':' || nodeport""")
    expect(strays == [(t,)], 'strays %s' % strays)
    co.execute('SET courier.citus_guard = off')
    co.execute("DO $$ BEGIN PERFORM courier.drop_topic('%s'); END $$" % t)
    co.execute('RESET courier.citus_guard')
    expect(local_topics('coord') == set(), 'stray topic not dropped')
    # a session that names thousands of topics (the owner cache is bounded and
    # starts afresh when full): answers stay right, for the first name too
    expect(one(co, "SELECT count(DISTINCT courier.citus_owner('many-' || i)) FROM generate_series(1, 2500) i") == 2,
           'owners of 2500 names are not the two workers')
    expect(one(co, 'SELECT courier.citus_owner(%s)', (t,)) == own, 'owner after 2500 lookups')
    expect_error(co, "SELECT courier.send(%s, '{}') WHERE random() < 2", '0A000', r'belongs to Citus node', (t,))
    # only a superuser may turn the guard off
    co.execute('CREATE ROLE app LOGIN')
    co.execute('GRANT courier_admin TO app')
    co.execute('SET ROLE app')
    expect_error(co, 'SET courier.citus_guard = off', '42501')
    co.execute('RESET ROLE')


check('guard: undelegated shapes, DO blocks and wrappers on the coordinator or a non-owner worker are refused '
      'naming the owner; stray local topics are never acted on; only superusers turn it off', t_guard)


# 9b. the shape that crashes Citus 12.1 (a force-delegated function with a FROM
# clause that planning folds away: SIGSEGV in TryToDelegateFunctionCall, before
# EXECUTE is checked) is refused by pg_courier's planner hook on every node, for
# a role without any privilege too (42501 then), and no server restarts
def t_crash_shape():
    t = T1
    co.execute("DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'nopriv') THEN "
               "CREATE ROLE nopriv LOGIN; END IF; END $$")
    expect(not one(co, "SELECT has_function_privilege('nopriv', 'courier.peek(text,text,integer)', 'EXECUTE')"),
           'nopriv may execute courier.peek')
    shapes = ["SELECT courier.peek(%s) FROM (VALUES (1)) v",
              "SELECT courier.send(%s, '{}') FROM (SELECT 1) s",
              "SELECT courier.peek(%s) FROM (VALUES (1)) a, (VALUES (2)) b",
              "SELECT * FROM (SELECT * FROM courier.peek(%s)) s"]
    for node in ('coord', 'w1', 'w2'):
        with connect(node) as by:
            started = one(by, 'SELECT pg_postmaster_start_time()')
            pid = one(by, 'SELECT pg_backend_pid()')
            for sql in shapes:
                with connect(node) as c:
                    expect_error(c, sql, '0A000', r'cannot be called with this FROM clause on Citus', (t,))
                nodsn = re.sub(r'user=\S+', '', DSN[node]) + ' user=nopriv'
                with psycopg.connect(nodsn, autocommit=True) as c:
                    expect_error(c, sql, '42501', r'permission denied for function', (t,))
            expect(one(by, 'SELECT pg_backend_pid()') == pid, '%s: bystander session lost' % node)
            expect(one(by, 'SELECT pg_postmaster_start_time()') == started, '%s: server restarted' % node)
        # the shapes Citus delegates or leaves alone still work the same
        with connect(node) as c:
            expect(one(c, 'SELECT count(*) FROM courier.peek(%s)', (t,)) >= 0, 'FROM courier.peek alone')
            expect(one(c, 'SELECT courier.citus_owner(%s) FROM (VALUES (1)) v', (t,)) is not None,
                   'citus_owner (not distributed) with a FROM clause')
    print('# %d crash shapes refused on 3 nodes, for a superuser (0A000) and a role without privileges (42501)'
          % len(shapes))


check('the call shape that crashes Citus 12.1 (distributed function, FROM clause folded away) is refused '
      'on every node, for a role without privileges too; no server restarts', t_crash_shape)


# 10. shard moves of the anchor colocation group are refused; others are not
def t_moves():
    w1, w2 = PORT['w1'], PORT['w2']
    shard = one(co, "SELECT get_shard_id_for_distribution_column('courier_citus.topics', %s::text)", (T1,))
    src = w1
    refused = [
        ("SELECT citus_move_shard_placement(%d, '127.0.0.1', %d, '127.0.0.1', %d, 'block_writes')"
         % (shard, src, w2)),
        ("SELECT citus_move_shard_placement(%d, (SELECT nodeid FROM pg_dist_node WHERE nodeport = %d), "
         "(SELECT nodeid FROM pg_dist_node WHERE nodeport = %d), 'block_writes')" % (shard, src, w2)),
        ("SELECT citus_copy_shard_placement(%d, '127.0.0.1', %d, '127.0.0.1', %d, transfer_mode => 'block_writes')"
         % (shard, src, w2)),
        "SELECT rebalance_table_shards('courier_citus.topics')",
        "SELECT rebalance_table_shards('orders', shard_transfer_mode => 'block_writes')",
        "SELECT citus_drain_node('127.0.0.1', %d)" % w1,
        "SELECT isolate_tenant_to_new_shard('orders', %s::text, shard_transfer_mode => 'block_writes')",
        "SELECT alter_distributed_table('courier_citus.topics', shard_count := 8)",
        "SELECT undistribute_table('orders')",
        ("SELECT citus_split_shard_by_split_points(%d, ARRAY['0'], ARRAY[(SELECT nodeid FROM pg_dist_node "
         "WHERE nodeport = %d), (SELECT nodeid FROM pg_dist_node WHERE nodeport = %d)], 'block_writes')"
         % (shard, src, w2)),
    ]
    for sql in refused:
        params = (T1,) if '%s' in sql else None
        expect_error(co, sql, '0A000', r'would move pg_courier topics', params)
    # cluster-wide rebalances: refused when their plan moves anchor shards
    co.execute("SELECT citus_set_node_property('127.0.0.1', %d, 'shouldhaveshards', false)" % w2)
    try:
        for sql in ["SELECT rebalance_table_shards()",
                    "SELECT rebalance_table_shards(shard_transfer_mode => 'block_writes')",
                    "SELECT rebalance_table_shards(drain_only => true)",
                    "SELECT citus_rebalance_start()",
                    "SELECT citus_rebalance_start(drain_only => true, shard_transfer_mode => 'block_writes')"]:
            expect_error(co, sql, '0A000', r'would move pg_courier topics.*|Its plan moves', None)
        expect_error(co, "SELECT rebalance_table_shards(rebalance_strategy => (SELECT name FROM "
                         "pg_dist_rebalance_strategy WHERE default_strategy))", '0A000', r'cannot tell')
    finally:
        co.execute("SELECT citus_set_node_property('127.0.0.1', %d, 'shouldhaveshards', true)" % w2)
    # ... and allowed when it does not (here: a balanced cluster)
    expect(one(co, """SELECT count(*) FROM get_rebalance_table_shards_plan() p JOIN pg_dist_shard s USING (shardid)
                       WHERE s.logicalrelid IN ('courier_citus.topics'::regclass, 'orders'::regclass)""") == 0,
           'the anchor group is not balanced')
    co.execute("SELECT rebalance_table_shards(shard_transfer_mode => 'block_writes')")
    co.execute("SELECT citus_rebalance_start(shard_transfer_mode => 'block_writes')")
    co.execute("SELECT citus_rebalance_wait()")
    # a shard id that is not a constant: refused, since we cannot tell
    co.execute("CREATE TABLE other (k int)")
    co.execute("SELECT create_distributed_table('other', 'k', colocate_with => 'none')")
    expect_error(co, """SELECT citus_move_shard_placement(s.shardid, '127.0.0.1', p.nodeport, '127.0.0.1',
                                CASE p.nodeport WHEN %d THEN %d ELSE %d END, 'block_writes')
                          FROM pg_dist_shard s JOIN pg_dist_shard_placement p USING (shardid)
                         WHERE s.logicalrelid = 'other'::regclass LIMIT 1""" % (w1, w2, w1),
                 '0A000', r'cannot tell')
    # a shard of another colocation group moves
    sid, port = q(co, """SELECT s.shardid, p.nodeport FROM pg_dist_shard s JOIN pg_dist_shard_placement p
                          USING (shardid) WHERE s.logicalrelid = 'other'::regclass ORDER BY 1 LIMIT 1""")[0]
    to = w2 if port == w1 else w1
    co.execute("SELECT citus_move_shard_placement(%d, '127.0.0.1', %d, '127.0.0.1', %d, 'block_writes')"
               % (sid, port, to))
    expect(one(co, 'SELECT nodeport FROM pg_dist_shard_placement WHERE shardid = %s', (sid,)) == to,
           'the unrelated shard did not move')
    # everything still where it was
    for t in TOPICS:
        expect(owner(co, t) == topic_owner[t], '%s changed owner' % t)


check('shard moves, copies, splits, rebalances and drains of the anchor colocation group are refused; '
      'rebalances that do not touch it and moves of other tables run', t_moves)


# 11. prepared statements through the coordinator (custom and generic plans)
def t_prepared():
    counts = {T1: local_count('w1', T1), T2: local_count('w2', T2)}
    co.execute("PREPARE ps(text, int) AS SELECT courier.send($1, jsonb_build_object('p', $2))")
    for i in range(8):
        for t in (T1, T2):
            record_sends(t, [one(co, "EXECUTE ps('%s', %d)" % (t, i))])
    co.execute('DEALLOCATE ps')
    expect(local_count('w1', T1) == counts[T1] + 8 and local_count('w2', T2) == counts[T2] + 8,
           'prepared sends not on the owners')
    expect(local_topics('coord') == set(), 'coordinator got a topic')


check('prepared statements (custom and generic plans) through the coordinator are routed', t_prepared)


# 12. concurrent producers and consumers through the coordinator, every message counted
def t_concurrent():
    lock = threading.Lock()
    errors_seen = []
    rolled_back = {}

    def producer(k):
        try:
            with connect('coord') as c:
                for i in range(60):
                    t1, t2 = TOPICS[(k + i) % 8], TOPICS[(k + 3 * i + 1) % 8]
                    c.execute('BEGIN')
                    a = one(c, "SELECT courier.send(%s, %s::jsonb)", (t1, json.dumps({'p': k, 'i': i})))
                    b = one(c, "SELECT courier.send(%s, %s::jsonb)", (t2, json.dumps({'p': k, 'i': i})))
                    if i % 7 == 3:
                        c.execute('ROLLBACK')
                        with lock:
                            rolled_back.setdefault(t1, set()).add(a)
                            rolled_back.setdefault(t2, set()).add(b)
                    else:
                        c.execute('COMMIT')
                        with lock:
                            record_sends(t1, [a])
                            record_sends(t2, [b])
        except Exception as e:  # noqa: BLE001
            errors_seen.append(repr(e))

    ths = [threading.Thread(target=producer, args=(k,)) for k in range(4)]
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    expect(not errors_seen, 'producer errors: %s' % errors_seen)
    for t, ids in rolled_back.items():
        expect(not (ids & committed.get(t, set())), '%s: an id both rolled back and committed' % t)


check('4 producers through the coordinator, 2 topics per transaction (1 in 7 rolled back)', t_concurrent)


# 13. views on the coordinator
def t_views():
    rows = q(co, """SELECT topic, nodename || ':' || nodeport, owner_node, messages
                      FROM courier.cluster_topics ORDER BY topic""")
    got = {r[0]: r for r in rows}
    expect(set(got) == set(topic_owner), 'cluster_topics topics %s' % sorted(got))
    for t, r in got.items():
        expect(r[1] == r[2] and NODE_OF_PORT[r[1]] == topic_owner[t], '%s: %s' % (t, r))
        expect(r[3] == local_count(topic_owner[t], t), '%s: %s messages, owner says %s'
               % (t, r[3], local_count(topic_owner[t], t)))
    g = q(co, "SELECT topic, grp, backlog FROM courier.cluster_groups WHERE grp = 'default' ORDER BY 1")
    expect({r[0] for r in g} == set(topic_owner), 'cluster_groups %s' % g)
    # a dead letter through the coordinator
    co.execute("SELECT courier.create_group(%s, 'dlq', max_attempts => 1)", (T2,))
    mid = one(co, "SELECT courier.send(%s, '{\"dies\": 1}')", (T2,))
    record_sends(T2, [mid])
    rid = q(co, "SELECT id FROM courier.receive(%s, 'dlq', 1000)", (T2,))
    for (i,) in rid:
        co.execute("SELECT courier.nack(%s, 'dlq', %s, reason => 'test')", (T2, i))
    d = q(co, "SELECT topic, grp, id, last_error, nodeport FROM courier.cluster_dead_letters WHERE id = %s", (mid,))
    expect(d == [(T2, 'dlq', mid, 'test', PORT['w2'])], 'cluster_dead_letters %s' % d)
    expect(one(co, 'SELECT count(*) FROM courier.cluster_dead_letters') == len(rid), 'dead letters')
    co.execute("SELECT courier.drop_group(%s, 'dlq')", (T2,))


check('cluster_topics, cluster_groups, cluster_dead_letters on the coordinator fan out to every node', t_views)


# 13b. citus_distribute refuses anchors that would re-route topics or cannot anchor them
def t_distribute_refusals():
    co.execute('CREATE TABLE plain_local (topic text)')
    expect_error(co, "SELECT courier.citus_distribute('plain_local')", '22023', r'not hash-distributed')
    expect_error(co, "SELECT courier.citus_distribute('other')", '22023', r'cannot anchor topics')
    co.execute('CREATE TABLE anchor2 (topic text PRIMARY KEY)')
    co.execute("SELECT create_distributed_table('anchor2', 'topic', colocate_with => 'none')")
    expect_error(co, "SELECT courier.citus_distribute('anchor2')", '55000', r'already distributed')
    # the current anchor, named: idempotent
    n = one(co, "SELECT courier.citus_distribute('courier_citus.topics')")
    expect(n >= 20, 'registered %s' % n)
    for t in TOPICS:
        expect(owner(co, t) == topic_owner[t], '%s changed owner' % t)
    with connect('w1') as c:
        expect_error(c, 'SELECT courier.citus_distribute()', '55000', r'coordinator')


check('citus_distribute refuses a second anchor, a local or non-text table, and a worker; '
      'the current anchor again changes nothing', t_distribute_refusals)


# 14. every committed message is delivered exactly once; nothing else
def t_count():
    total = 0
    for t in sorted(committed):
        got = drain(co, t)
        want = committed[t]
        dup = len(got) - len(set(got))
        expect(dup == 0, '%s: %d delivered twice' % (t, dup))
        expect(set(got) == want, '%s: missing %s, extra %s' % (t, sorted(want - set(got))[:10],
                                                              sorted(set(got) - want)[:10]))
        total += len(got)
    rows = q(co, "SELECT topic, backlog, in_flight, retrying FROM courier.cluster_groups WHERE grp = 'default'")
    expect(all(r[1:] == (0, 0, 0) for r in rows), 'groups not empty: %s' % rows)
    print('# counted %d committed messages in %d topics, each delivered once' % (total, len(committed)))


check('every committed message delivered exactly once through the coordinator, nothing rolled back', t_count)


# 14b. the chaos load and its exact checker (test/chaos) on a Citus worker: on
# the owner of topic "chaos", with pg_courier distributed and the guard on,
# every shape the workload uses (CTEs, joins, waiting receives, 2PC) runs
# locally and the checker proves every message (no loss, no double lease, ...)
def t_chaos():
    chaos_dir = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'chaos')
    sys.path.insert(0, chaos_dir)
    import model  # noqa: E402 - test/chaos's model: topic, groups, side tables
    w = owner(co, model.TOPIC)
    log = [p for p in args.logs if '/%s/' % w in p]
    # chaos.py's own setup runs CREATE EXTENSION, which Citus refuses on a
    # worker; the rest of it, on the owner:
    with connect(w) as c:
        c.execute("SELECT courier.create_topic(%s, retention => '4 seconds')", (model.TOPIC,))
        for name, g in model.GROUPS.items():
            if name == 'default':
                c.execute("SELECT courier.alter_group(%s, 'default', retry_backoff => %s::interval[])",
                          (model.TOPIC, model.BACKOFF))
                continue
            c.execute("SELECT courier.create_group(%s, %s, filter => %s, ordered => %s, "
                      "max_attempts => %s, retry_backoff => %s::interval[])",
                      (model.TOPIC, name, g['filter'], g['ordered'], g['max_attempts'], model.BACKOFF))
        # the side tables are local to the worker (Citus refuses to propagate DDL from a worker)
        c.execute('SET citus.enable_ddl_propagation = off')
        c.execute(model.SCHEMA)
    for f in ('chaos-records.jsonl', 'chaos-report.txt'):	# records are appended to: start afresh
        if os.path.exists(os.path.join(args.workdir, f)):
            os.unlink(os.path.join(args.workdir, f))
    cmd = [sys.executable, os.path.join(chaos_dir, 'chaos.py'), 'run', '--no-setup', '--dsn', DSN[w],
           '--records', '%s/chaos-records.jsonl' % args.workdir,
           '--report', '%s/chaos-report.txt' % args.workdir, '--scenario', 'citus',
           '--seconds', os.environ.get('CITUS_CHAOS_SECONDS', '15')]
    for p in log:
        cmd += ['--log', p]
    out = subprocess.run(cmd, capture_output=True, text=True)
    summary = [ln for ln in out.stdout.splitlines() if ln.startswith('chaos')]
    for ln in summary:
        print('# ' + ln)
    expect(out.returncode == 0, 'chaos checker failed (%s/chaos-report.txt): %s %s'
           % (args.workdir, '\n'.join(summary[-5:]), out.stderr[-2000:]))
    expect(local_topics('coord') == set() and model.TOPIC not in local_topics(other_worker[w]),
           'topic chaos not only on its owner')


check('the chaos load and exact checker on the owner worker of its topic, guard on', t_chaos)


# 15. the server logs: no XX000, no crash
def t_logs():
    bad = []
    for path in args.logs:
        with open(path, errors='replace') as f:
            for line in f:
                if re.search(r' XX\d\d\d | PANIC|terminated by signal|TRAP:', line):
                    bad.append('%s: %s' % (path, line.strip()))
    expect(not bad, '\n'.join(bad[:10]))


check('no XX000, PANIC or crash in the three server logs', t_logs)


# optional: the benchmark of docs/citus.md.  pgbench with 2 clients, one
# statement per transaction.  The box is shared with other work (its load
# drifts by 2x within minutes), so the configurations run in short slots,
# round after round, and each ratio is taken within one round (neighbouring
# slots); the median over rounds is reported, with its range.
def bench():
    secs = args.bench_seconds
    rounds = 6
    co.execute("""CREATE FUNCTION public.bench_noop(t text) RETURNS bigint LANGUAGE plpgsql
                  AS $$ BEGIN RETURN 1; END $$""")
    co.execute("""SELECT create_distributed_function('public.bench_noop(text)', '$1',
                  colocate_with => 'courier_citus.topics', force_delegation => true)""")
    scripts = {}
    for name, sql in (('send', "SELECT courier.send('%s', '{\"bench\": 1}');" % T1),
                      ('noop', "SELECT public.bench_noop('%s');" % T1)):
        scripts[name] = '%s/%s.sql' % (args.workdir, name)
        with open(scripts[name], 'w') as f:
            f.write(sql + '\n')
    configs = [
        ('send_direct', 'send, direct on the owner worker', 'w1', 'send'),
        ('send_coord', 'send through the coordinator', 'coord', 'send'),
        ('noop_direct', 'no-op function, direct on the worker', 'w1', 'noop'),
        ('noop_coord', 'no-op function through the coordinator', 'coord', 'noop'),
    ]
    res = {c[0]: [] for c in configs}
    guard = {'on': [], 'off': []}
    for rnd in range(rounds):
        for key, _, node, script in configs:
            cmd = ['%s/pgbench' % args.bindir, '-n', '-f', scripts[script], '-c', '2', '-j', '2',
                   '-T', str(secs), '-h', '127.0.0.1', '-p', str(PORT[node]), '-U', 'postgres', 'postgres']
            out = subprocess.run(cmd, capture_output=True, text=True).stdout
            m = re.search(r'tps = ([\d.]+) \(without initial', out)
            res[key].append(float(m.group(1)) if m else 0.0)
        # the guard's own cost: 5000 sends in one statement on the owner, guard on and off
        with connect('w1') as c:
            for mode in (('on', 'off') if rnd % 2 == 0 else ('off', 'on')):
                c.execute("SET courier.citus_guard = %s" % mode)
                t0 = time.monotonic()
                c.execute("SELECT count(courier.send('%s', '{}')) FROM generate_series(1, 5000)" % T1)
                guard[mode].append(time.monotonic() - t0)

    def med(xs):
        xs = sorted(xs)
        return xs[len(xs) // 2] if len(xs) % 2 else (xs[len(xs) // 2 - 1] + xs[len(xs) // 2]) / 2

    for key, label, _, _ in configs:
        print('# bench %-40s median %6.0f calls/s (rounds: %s)'
              % (label, med(res[key]), ', '.join('%.0f' % x for x in res[key])))
    for num, den, label in (('send_coord', 'send_direct', 'send coordinator/direct'),
                            ('noop_coord', 'noop_direct', 'no-op coordinator/direct'),
                            ('send_coord', 'noop_coord', 'through the coordinator, send/no-op')):
        r = [a / b for a, b in zip(res[num], res[den]) if b]
        print('# bench ratio %-36s median %.2f (range %.2f-%.2f)' % (label, med(r), min(r), max(r)))
    r = [on / off for on, off in zip(guard['on'], guard['off'])]
    print('# bench guard: 5000 sends in one statement on the owner, guard on %.3f s, off %.3f s (medians); '
          'on/off time median %.2f (range %.2f-%.2f)'
          % (med(guard['on']), med(guard['off']), med(r), min(r), max(r)))


if args.bench_seconds > 0:
    bench()

print('citus tests: %d passed, %d failed' % (passed, failed))
sys.exit(1 if failed else 0)
