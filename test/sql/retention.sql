-- Segments: rotation, reclaiming whole segments after retention once every
-- group is past them, and the max_retention hard cap.
\set VERBOSITY terse
SET client_min_messages = warning;

SELECT courier.create_topic('short', retention => '1 second');
SELECT courier.create_group('short', 'slow');
SELECT count(*) FROM courier.send_batch('short', ARRAY['{"n": 1}', '{"n": 2}', '{"n": 3}']::jsonb[]);
SELECT courier.ack('short', 'default', array_agg(id)) FROM courier.receive('short', 'default', 10);

-- a segment older than a quarter of the retention (at least 1 s) is sealed
SELECT pg_sleep(1.1);
SELECT courier.run_maintenance()->'segments_created' AS created;
SELECT segments, messages FROM courier.topics WHERE topic = 'short';
SELECT courier.send('short', '{"n": 4}') AS id4;

-- retention has passed, but group 'slow' has not acked: the segment stays
SELECT pg_sleep(1.1);
SELECT courier.run_maintenance()->'segments_dropped' AS dropped;
SELECT segments, messages FROM courier.topics WHERE topic = 'short';
SELECT string_agg(id::text, ',' ORDER BY id) AS slow_gets FROM courier.receive('short', 'slow', 10);
-- once every group is past it, it goes, whole
SELECT courier.ack('short', 'slow', ARRAY[1, 2, 3, 4]) AS acked;
SELECT courier.ack('short', 'default', array_agg(id)) FROM courier.receive('short', 'default', 10);
SELECT courier.run_maintenance()->'segments_dropped' AS dropped;
SELECT segments, messages FROM courier.topics WHERE topic = 'short';
-- new groups start after what is gone; everything still works
SELECT courier.create_group('short', 'newcomer');
SELECT string_agg(id::text, ',' ORDER BY id) FROM courier.receive('short', 'newcomer', 10);
SELECT courier.send('short', '{"n": 5}') AS id5;
SELECT string_agg(id::text, ',' ORDER BY id) FROM courier.receive('short', 'slow', 10);
SELECT courier.drop_topic('short');

-- max_retention drops a segment whatever the groups say, and counts the loss
SELECT courier.create_topic('capped', retention => '1 second', max_retention => '2 seconds');
SELECT courier.create_group('capped', 'behind');
SELECT count(*) FROM courier.send_batch('capped', ARRAY['{"c": 1}', '{"c": 2}', '{"c": 3}']::jsonb[]);
SELECT count(*) FROM courier.receive('capped', 'behind', 1, '1 hour');
SELECT pg_sleep(1.1);
SELECT courier.run_maintenance()->'segments_created' AS created;
SELECT courier.send('capped', '{"c": 4}') AS c4;
SELECT pg_sleep(2.1);
SELECT courier.run_maintenance()->'messages_dropped' AS messages_dropped;
SELECT grp, dropped, backlog, in_flight FROM courier.groups WHERE topic = 'capped' ORDER BY grp;
SELECT string_agg(id::text, ',' ORDER BY id) AS behind_gets FROM courier.receive('capped', 'behind', 10);
SELECT segments FROM courier.topics WHERE topic = 'capped';

-- the log tables were only ever inserted into
SELECT pg_stat_force_next_flush();
SELECT coalesce(sum(n_tup_upd + n_tup_del), 0) AS log_updated_or_deleted,
       coalesce(sum(n_dead_tup), 0) AS log_dead_tuples
  FROM pg_stat_user_tables WHERE schemaname = 'courier' AND relname LIKE 'log\_%';

SELECT courier.drop_topic('capped');
