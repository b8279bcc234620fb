-- The database the SQL fuzzers (test/sqlfuzz) work on: topics, groups with
-- every kind of filter, ordered and dead-lettering groups, and traffic in
-- every state (backlog, in flight, delayed, retrying, dead, acked), so that
-- random calls meet real rows.  Run as a superuser, once, on a fresh database.
\set ON_ERROR_STOP 1
CREATE EXTENSION IF NOT EXISTS pg_courier CASCADE;
CREATE EXTENSION IF NOT EXISTS amcheck;

SELECT courier.create_topic('fz', retention => '1 hour');
SELECT courier.create_group('fz', 'tags', filter => 'created || paid');
SELECT courier.create_group('fz', 'sql', filter => $$region = 'eu' AND amount >= 100$$);
SELECT courier.create_group('fz', 'ord', ordered => true);
SELECT courier.create_group('fz', 'dlq', max_attempts => 2, retry_backoff => '{10ms}');
SELECT courier.create_topic('fz.two', retention => '10 minutes', max_retention => '20 minutes');
SELECT courier.create_group('fz.two', 'late', start_from => 'latest', filter => $$TAGS IN ('a', 'b') OR x IS NULL$$);
SELECT courier.create_topic('victim');

-- traffic: 600 messages with tags, headers and keys; some delayed
SELECT count(courier.send('fz', jsonb_build_object('i', i),
		tag => (ARRAY['created', 'paid', 'cancelled', NULL])[1 + i % 4],
		keys => CASE WHEN i % 3 = 0 THEN ARRAY['k' || (i % 7), 'u' || i] END,
		headers => jsonb_build_object('region', (ARRAY['eu', 'us'])[1 + i % 2], 'amount', i % 200),
		delay => CASE WHEN i % 50 = 0 THEN interval '1 hour' END))
  FROM generate_series(1, 600) i;
SELECT count(*) FROM courier.send_batch('fz.two', ARRAY['{"a": 1}', '{"b": 2}', '[]']::jsonb[], tag => 'a');
SELECT count(*) FROM courier.send_batch('victim', ARRAY['{}', '{}']::jsonb[]);

-- in flight, acked, nacked (retrying), dead letters
SELECT count(*) FROM courier.receive('fz', 'default', 100, '1 hour');
SELECT courier.ack('fz', 'default', id) FROM courier.receive('fz', 'default', 50, '1 hour');
SELECT count(courier.nack('fz', 'default', id, delay => '1 hour')) FROM courier.receive('fz', 'default', 20, '1 hour');
SELECT count(*) FROM courier.receive('fz', 'ord', 30, '1 hour');
SELECT count(*) FROM courier.receive('fz', 'tags', 10, '0');
SELECT count(courier.nack('fz', 'dlq', id, delay => '0')) FROM courier.receive('fz', 'dlq', 30, '1 hour');
SELECT count(courier.nack('fz', 'dlq', id, delay => '0')) FROM courier.receive('fz', 'dlq', 30, '1 hour');
SELECT courier.run_maintenance() IS NOT NULL AS maintained;
SELECT grp, backlog, in_flight, delayed, retrying, dead_letters FROM courier.groups ORDER BY topic, grp;
