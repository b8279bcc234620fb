-- Topics and groups: creation, listing, dropping, and every way to get them wrong.
\set VERBOSITY terse
SET client_min_messages = warning;

SELECT courier.create_topic('orders');
SELECT courier.create_group('orders', 'billing');
SELECT courier.create_group('orders', 'audit', start_from => 'latest');
SELECT courier.create_topic('events.v1-eu_2', retention => '1 hour', max_retention => '2 hours');

SELECT topic, messages, segments, retention, max_retention FROM courier.topics ORDER BY topic;
SELECT name, messages FROM courier.topics ORDER BY name;
SELECT topic, grp, backlog, in_flight, delayed, retrying, dead_letters, filter, ordered, max_attempts
  FROM courier.groups ORDER BY topic, grp;

-- duplicates (SQLSTATE 42710 duplicate_object)
SELECT courier.create_topic('orders');
\echo :LAST_ERROR_SQLSTATE
SELECT courier.create_group('orders', 'billing');
\echo :LAST_ERROR_SQLSTATE
SELECT courier.create_group('orders', 'default');

-- unknown objects (SQLSTATE 42704 undefined_object)
SELECT courier.create_group('nope', 'billing');
\echo :LAST_ERROR_SQLSTATE
SELECT courier.drop_topic('nope');
SELECT courier.drop_group('orders', 'nope');
SELECT courier.drop_group('nope', 'billing');
SELECT courier.send('nope', '{}');
SELECT * FROM courier.receive('nope');
SELECT * FROM courier.receive('orders', 'nope');
\echo :LAST_ERROR_SQLSTATE
SELECT courier.ack('orders', 'nope', 1);
SELECT courier.ack('nope', 'billing', ARRAY[1]);

-- bad names: empty, too long, outside [a-z0-9_.-], NULL (22023 invalid_parameter_value)
SELECT courier.create_topic('');
\echo :LAST_ERROR_SQLSTATE
SELECT courier.create_topic(repeat('a', 49));
SELECT courier.create_topic(repeat('a', 48)) IS NULL AS created_48;
SELECT courier.drop_topic(repeat('a', 48));
SELECT courier.create_topic('Orders');
SELECT courier.create_topic('with space');
SELECT courier.create_topic('ümlaut');
SELECT courier.create_topic(NULL);
SELECT courier.create_group('orders', '');
SELECT courier.create_group('orders', 'a/b');
SELECT courier.send('', '{}');

-- SQL injection through names is refused before any SQL is built
CREATE TABLE t (x int);
SELECT courier.create_topic('x''; DROP TABLE t; --');
SELECT courier.create_group('orders', 'x''; DROP TABLE t; --');
SELECT courier.send('x''; DROP TABLE t; --', '{}');
SELECT * FROM courier.receive('orders', 'x"; DROP TABLE t; --');
SELECT count(*) AS t_still_there FROM t;
DROP TABLE t;

-- bad settings
SELECT courier.create_topic('r1', retention => '-1 day');
SELECT courier.create_topic('r1', retention => '0');
SELECT courier.create_topic('r1', retention => NULL);
SELECT courier.create_topic('r1', retention => '100 years');
SELECT courier.create_topic('r1', retention => '2 days', max_retention => '1 day');
SELECT courier.create_topic('r1', retention => '2 days', max_retention => '100000 years');
SELECT courier.alter_topic('orders', max_retention => '11 years');
SELECT courier.create_group('orders', 'g1', start_from => 'middle');
SELECT courier.create_group('orders', 'g1', start_from => NULL);
SELECT courier.create_group('orders', 'g1', max_attempts => 0);
SELECT courier.create_group('orders', 'g1', max_attempts => -5);
SELECT courier.create_group('orders', 'g1', retry_backoff => '{}');
SELECT courier.create_group('orders', 'g1', retry_backoff => '{10s,5s}');
SELECT courier.create_group('orders', 'g1', retry_backoff => '{10s,NULL}');
SELECT courier.create_group('orders', 'g1', retry_backoff => '{-1s}');
SELECT courier.create_group('orders', 'g1', retry_backoff => pg_catalog.array_fill('1s'::interval, ARRAY[1001]));
-- nothing of the above was created
SELECT count(*) AS topics FROM courier.topics;
SELECT count(*) AS groups FROM courier.groups;

-- drop a group, then a topic with its groups and messages
SELECT courier.send('orders', '{"n": 1}') AS id;
SELECT courier.drop_group('orders', 'audit');
SELECT grp FROM courier.groups WHERE topic = 'orders' ORDER BY grp;
SELECT courier.drop_topic('orders');
SELECT courier.drop_topic('events.v1-eu_2');
SELECT count(*) AS topics FROM courier.topics;
SELECT count(*) AS groups FROM courier.groups;
SELECT count(*) AS segment_tables FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'courier' AND c.relname LIKE 'log\_%';

-- a dropped topic can be created again, empty
SELECT courier.create_topic('orders');
SELECT topic, messages FROM courier.topics;
SELECT count(*) FROM courier.receive('orders', 'default', 10);
SELECT courier.drop_topic('orders');

-- DDL inside a transaction that rolls back leaves nothing behind
BEGIN;
SELECT courier.create_topic('ghost');
SELECT courier.send('ghost', '{}') AS id;
ROLLBACK;
SELECT count(*) AS topics FROM courier.topics;
SELECT courier.create_topic('ghost');
SELECT courier.send('ghost', '{}') AS id;
SELECT courier.drop_topic('ghost');
