-- send, send_batch, receive, ack, set_visibility; transactional behaviour.
\set VERBOSITY terse
SET client_min_messages = warning;

SELECT courier.create_topic('orders');
SELECT courier.create_group('orders', 'billing');

-- the tour from the issue: a message with tag, keys and headers
SELECT courier.send('orders', '{"order": 42}', tag => 'created', keys => ARRAY['order-42'],
                    headers => '{"region": "eu", "amount": 30}') AS id;
SELECT id, attempt, tag, keys, headers, body, sent_at <= now() + interval '1 minute' AS sent_ok,
       lease_until > now() AS leased
  FROM courier.receive('orders', 'billing', max_messages => 10, visibility_timeout => '30 seconds');
SELECT courier.ack('orders', 'billing', 1);
SELECT courier.ack('orders', 'billing', 1) AS acked_twice;
-- the other group still gets it
SELECT id, attempt FROM courier.receive('orders', 'default', 10);
SELECT courier.ack('orders', 'default', ARRAY[1]) AS n;
-- nothing left anywhere
SELECT count(*) FROM courier.receive('orders', 'billing', 10);
SELECT count(*) FROM courier.receive('orders', 'default', 10);

-- ids are unique and increasing in send order; send_batch keeps array order
SELECT courier.send('orders', '{"n": 1}') AS a, courier.send('orders', '{"n": 2}') AS b;
SELECT array_agg(id ORDER BY ord) AS batch_ids
  FROM courier.send_batch('orders', ARRAY['{"n": 3}', '{"n": 4}', '{"n": 5}']::jsonb[], tag => 'bulk')
       WITH ORDINALITY AS b(id, ord);
SELECT id, tag, body FROM courier.receive('orders', 'billing', 10) ORDER BY id;
SELECT courier.ack('orders', 'billing', ARRAY[2, 3, 4, 5, 6, 999]) AS acked;
SELECT courier.send_batch('orders', '{}'::jsonb[]);

-- max_messages is respected, and receivers never get the same message twice
SELECT count(*) AS sent FROM courier.send_batch('orders',
  (SELECT array_agg(jsonb_build_object('n', g)) FROM generate_series(1, 5) g));
SELECT array_agg(id ORDER BY id) AS first FROM courier.receive('orders', 'default', 2);
SELECT array_agg(id ORDER BY id) AS second FROM courier.receive('orders', 'default', 2);
SELECT array_agg(id ORDER BY id) AS rest FROM courier.receive('orders', 'default', 10);

-- a released lease comes back with attempt + 1
SELECT courier.set_visibility('orders', 'default', 2, '0') AS released;
SELECT id, attempt FROM courier.receive('orders', 'default', 10);
-- extending a lease keeps it from everyone else
SELECT courier.set_visibility('orders', 'default', 2, '1 hour') AS extended;
SELECT count(*) FROM courier.receive('orders', 'default', 10);
SELECT courier.set_visibility('orders', 'default', 999, '1 hour') AS not_held;
SELECT courier.ack('orders', 'default', ARRAY[2,3,4,5,6,7,8,9,10,11]) AS acked;
SELECT array_agg(id ORDER BY id) AS billing_gets FROM courier.receive('orders', 'billing', 10);
SELECT courier.ack('orders', 'billing', ARRAY[7,8,9,10,11]) AS acked;

-- transactional send: invisible before commit, gone after rollback
BEGIN;
SELECT courier.send('orders', '{"tx": "rolled back"}') AS id \gset
-- not even the sending transaction receives it before commit
SELECT count(*) AS seen_by_own_receive FROM courier.receive('orders', 'billing', 10);
ROLLBACK;
SELECT count(*) AS after_rollback FROM courier.receive('orders', 'billing', 10);
BEGIN;
SELECT courier.send('orders', '{"tx": "kept"}') AS kept \gset
SAVEPOINT s;
SELECT courier.send('orders', '{"tx": "savepoint rolled back"}') IS NOT NULL AS sent;
ROLLBACK TO SAVEPOINT s;
SAVEPOINT t;
SELECT courier.send('orders', '{"tx": "savepoint released"}') IS NOT NULL AS sent;
RELEASE SAVEPOINT t;
COMMIT;
SELECT body FROM courier.receive('orders', 'billing', 10) ORDER BY id;
SELECT body FROM courier.receive('orders', 'default', 10) ORDER BY id;

-- a receive that rolls back leaves its messages receivable, attempt unchanged
SELECT courier.send('orders', '{"r": 1}') AS r \gset
BEGIN;
SELECT id = :r AS got_it, attempt FROM courier.receive('orders', 'billing', 10);
ROLLBACK;
SELECT id = :r AS got_it_again, attempt FROM courier.receive('orders', 'billing', 10);
SELECT courier.ack('orders', 'billing', :r) AS acked;
-- so does a receive in a rolled-back savepoint
SELECT courier.send('orders', '{"r": 2}') AS r2 \gset
BEGIN;
SAVEPOINT s;
SELECT id = :r2 AS got_it, attempt FROM courier.receive('orders', 'default', 10) WHERE id = :r2;
ROLLBACK TO SAVEPOINT s;
SELECT id = :r2 AS got_it_again, attempt FROM courier.receive('orders', 'default', 10) WHERE id = :r2;
COMMIT;
SELECT courier.ack('orders', 'default', :r2) AS acked;

-- start_from => 'latest' sees only messages sent afterwards
SELECT courier.create_group('orders', 'late', start_from => 'latest');
SELECT count(*) AS old_ones FROM courier.receive('orders', 'late', 100);
SELECT courier.send('orders', '{"late": true}') AS l \gset
SELECT id = :l AS only_new FROM courier.receive('orders', 'late', 100);
-- while 'earliest' (the default) sees everything retained
SELECT courier.create_group('orders', 'early');
SELECT count(*) AS all_of_them FROM courier.receive('orders', 'early', 100);

-- the views count exactly
SELECT courier.send('orders', '{"v": 1}') IS NOT NULL, courier.send('orders', '{"v": 2}') IS NOT NULL;
SELECT grp, backlog, in_flight FROM courier.groups WHERE topic = 'orders' ORDER BY grp;
SELECT messages FROM courier.topics WHERE topic = 'orders';

-- bad input changes nothing
SELECT courier.send('orders', NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT courier.send('orders', '{}', headers => '[1, 2]');
SELECT courier.send('orders', '{}', headers => '"x"');
SELECT courier.send('orders', '{}', tag => '');
SELECT courier.send('orders', '{}', tag => 'a||b');
SELECT courier.send('orders', '{}', tag => repeat('t', 256));
SELECT courier.send('orders', '{}', keys => ARRAY['a', NULL]);
SELECT courier.send('orders', '{}', keys => ARRAY[['a'], ['b']]);
SELECT courier.send(NULL, '{}');
SELECT courier.send_batch('orders', NULL);
SELECT courier.send_batch('orders', ARRAY['{}', NULL]::jsonb[]);
SELECT courier.send('orders', jsonb_build_object('big', repeat('x', 1100000)));
\echo :LAST_ERROR_SQLSTATE
-- the limit is a GUC
BEGIN;
SET LOCAL courier.max_body_size = '4MB';
SELECT courier.send('orders', jsonb_build_object('big', repeat('x', 1100000))) IS NOT NULL AS big_ok;
ROLLBACK;
SELECT * FROM courier.receive('orders', 'billing', 0);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM courier.receive('orders', 'billing', -1);
SELECT * FROM courier.receive('orders', 'billing', 10001);
SELECT * FROM courier.receive('orders', 'billing', NULL);
SELECT * FROM courier.receive('orders', 'billing', 1, '-1 second');
SELECT * FROM courier.receive('orders', 'billing', 1, NULL);
SELECT * FROM courier.receive('orders', 'billing', 1, '13 hours');
SELECT * FROM courier.receive('orders', 'billing', 1, '1 second', wait => '-1 second');
SELECT * FROM courier.receive('orders', 'billing', 1, '1 second', wait => '2 hours');
SELECT courier.ack('orders', 'billing', NULL::bigint);
SELECT courier.ack('orders', 'billing', NULL::bigint[]);
SELECT courier.set_visibility('orders', 'billing', 1, '-1 second');
SELECT courier.set_visibility('orders', 'billing', 1, NULL);
SELECT grp, backlog, in_flight FROM courier.groups WHERE topic = 'orders' ORDER BY grp;

-- storage: receive and ack never update or delete message rows
SELECT pg_stat_force_next_flush();
SELECT sum(n_tup_ins) > 0 AS log_inserted, sum(n_tup_upd + n_tup_del) AS log_updated_or_deleted
  FROM pg_stat_user_tables WHERE schemaname = 'courier' AND relname LIKE 'log\_%';
SELECT courier.drop_topic('orders');

-- linger: bounds (the behaviour is in test/t/045_linger.pl)
SELECT courier.create_topic('lingering');
SELECT count(*) FROM courier.receive('lingering', 'default', 5, linger => '-1 second');
SELECT count(*) FROM courier.receive('lingering', 'default', 5, linger => '61 seconds');
SELECT count(*) AS none FROM courier.receive('lingering', 'default', 5, linger => '1 minute');
SELECT count(*) AS none FROM courier.receive('lingering', 'default', 5, linger => NULL);
SELECT courier.drop_topic('lingering');
