-- Operator functions: seek, pause_group / resume_group, alter_topic, purge;
-- each returns how many messages it affected.  And the views' new columns.
\set VERBOSITY terse
SET client_min_messages = warning;

SELECT courier.create_topic('ops');
SELECT courier.create_group('ops', 'ord', ordered => true);
SELECT count(*) FROM (SELECT courier.send('ops', jsonb_build_object('n', g), keys => ARRAY['k' || (g % 2)])
					  FROM generate_series(1, 10) g) s;
-- messages 1..10, sent_at ascending; remember when 6 was sent
SELECT sent_at AS t6 FROM courier.find('ops', id => 6) WHERE grp = 'default' \gset

-- default: 1..5 acked, 6..7 in flight, 8 nacked
SELECT courier.ack('ops', 'default', ARRAY(SELECT id FROM courier.receive('ops', 'default', 5)));
SELECT count(*) FROM courier.receive('ops', 'default', 2, '1 hour');
SELECT count(*) FROM courier.receive('ops', 'default', 1, '1 hour');
SELECT courier.nack('ops', 'default', 8, delay => '1 hour');
SELECT backlog, in_flight, retrying, backlog_exact, paused FROM courier.groups WHERE grp = 'default';

-- seek back to message 6: 6..10 again, claims and retries gone; it affected
-- 6, 7 (in flight) and 8 (retrying), which the group gets again
SELECT courier.seek('ops', 'default', :'t6');
SELECT backlog, in_flight, retrying FROM courier.groups WHERE grp = 'default';
SELECT string_agg(id::text, ',' ORDER BY id) FROM courier.receive('ops', 'default', 10);
-- everything retained again, then nothing
SELECT courier.seek('ops', 'default', '-infinity');
SELECT count(*) FROM courier.receive('ops', 'default', 100);
SELECT courier.seek('ops', 'default', 'infinity');
SELECT count(*) FROM courier.receive('ops', 'default', 100);
SELECT courier.send('ops', '{"n": 11}');
SELECT string_agg(id::text, ',') FROM courier.receive('ops', 'default', 100);
-- a future time skips everything sent so far, like infinity
SELECT courier.seek('ops', 'default', now() + interval '1 day');
SELECT count(*) FROM courier.receive('ops', 'default', 100);
SELECT courier.seek('ops', 'default', NULL);

-- an ordered group: its queued messages go too, and come back in key order
SELECT string_agg(id::text, ',' ORDER BY id) FROM courier.receive('ops', 'ord', 10);
SELECT courier.seek('ops', 'ord', '-infinity');
SELECT string_agg(id::text, ',' ORDER BY id) FROM courier.receive('ops', 'ord', 10);
SELECT count(*) FROM courier.lease l JOIN courier.group_meta g USING (group_id) WHERE g.name = 'ord';

-- pause: nothing is delivered, the backlog stays; resume: it flows again
SELECT courier.seek('ops', 'default', '-infinity');
SELECT courier.pause_group('ops', 'default');
SELECT courier.pause_group('ops', 'default');	-- already paused: 0
SELECT count(*) FROM courier.receive('ops', 'default', 100);
SELECT count(*) FROM courier.receive('ops', 'default', 100, wait => '0.2 seconds');
SELECT backlog, paused FROM courier.groups WHERE grp = 'default';
SELECT courier.resume_group('ops', 'default');
SELECT count(*) FROM courier.receive('ops', 'default', 100);
SELECT courier.resume_group('ops', 'default');	-- not paused: 0

-- alter_topic: retention and max_retention ('0' removes it)
SELECT courier.alter_topic('ops', retention => '1 hour', max_retention => '2 hours');
SELECT retention, max_retention FROM courier.topics WHERE topic = 'ops';
SELECT courier.alter_topic('ops', max_retention => '0');
SELECT retention, max_retention FROM courier.topics WHERE topic = 'ops';
SELECT courier.alter_topic('ops', retention => '0');
SELECT courier.alter_topic('ops', retention => '3 hours', max_retention => '1 hour');
SELECT courier.alter_topic('nope', retention => '1 hour');
-- messages older than the new retention are counted
SELECT pg_sleep(0.3);
SELECT courier.alter_topic('ops', retention => '0.1 seconds');
SELECT courier.alter_topic('ops', retention => '3 days');

-- purge: every message goes, segments are replaced, groups move past them
SELECT segments, messages FROM courier.topics WHERE topic = 'ops';
SELECT courier.seek('ops', 'default', '-infinity');
SELECT courier.purge('ops');
SELECT segments, messages, counts_exact FROM courier.topics WHERE topic = 'ops';
SELECT grp, backlog, in_flight, retrying FROM courier.groups WHERE topic = 'ops' ORDER BY grp;
SELECT count(*) FROM courier.receive('ops', 'default', 100);
SELECT courier.send('ops', '{"n": 12}');
SELECT id, body FROM courier.receive('ops', 'default', 100);
SELECT courier.purge('ops');	-- 12 was delivered, not acked: purged too
SELECT count(*) FROM courier.find('ops', id => 12);
SELECT courier.run_maintenance() IS NOT NULL;

-- views: estimates above courier.stats_exact_limit, labelled as such
SELECT count(*) FROM (SELECT courier.send('ops', jsonb_build_object('n', g)) FROM generate_series(1, 50) g) s;
SET courier.stats_exact_limit = 10;
SELECT grp, backlog, backlog_exact FROM courier.groups WHERE topic = 'ops' ORDER BY grp;
SELECT messages, counts_exact, sent_last_minute FROM courier.topics WHERE topic = 'ops';
RESET courier.stats_exact_limit;
SELECT grp, backlog, backlog_exact FROM courier.groups WHERE topic = 'ops' ORDER BY grp;
SELECT messages, counts_exact, sent_last_minute, bytes > 0 AS has_bytes,
	   oldest_message <= newest_message AS ordered FROM courier.topics WHERE topic = 'ops';
-- lag: the oldest undelivered and unacked messages, as ages
SELECT count(*) FROM courier.receive('ops', 'default', 1, '1 hour');
SELECT undelivered_age > '0' AS lagging, unacked_age >= undelivered_age AS unacked_older,
	   last_receive IS NOT NULL AS received, last_ack IS NOT NULL AS acked_before
FROM courier.groups WHERE topic = 'ops' AND grp = 'default';
SELECT metric, value FROM courier.metrics()
 WHERE topic = 'ops' AND (grp = 'default' OR grp IS NULL)
   AND metric IN ('backlog', 'in_flight', 'messages', 'paused', 'segments')
 ORDER BY metric;

SELECT courier.drop_topic('ops');

-- The views' cost is bounded by courier.stats_exact_limit, not by the
-- backlog: with 100000 undelivered messages they read at most about that
-- many log rows per group (work counters of this transaction, no timings).
SELECT courier.create_topic('wide');
SELECT courier.create_group('wide', 'odd', filter => 'x = 1');
SELECT count(*) FROM (SELECT courier.send_batch('wide',
	(SELECT array_agg(jsonb_build_object('n', g)) FROM generate_series(1, 10000) g),
	headers => jsonb_build_object('x', b % 2)) FROM generate_series(1, 10) b) s;
-- (pending counters of this backend: only differences inside one
-- transaction block mean something)
CREATE TEMP VIEW log_reads AS
	SELECT coalesce(sum(seq_tup_read + idx_tup_fetch), 0) AS n
	FROM pg_stat_xact_user_tables WHERE schemaname = 'courier' AND relname LIKE 'log%';
BEGIN;
SELECT n AS before FROM log_reads \gset
SELECT grp, backlog, backlog_exact FROM courier.groups WHERE topic = 'wide' ORDER BY grp;
SELECT n - :before < 2 * 10000 + 500 AS bounded_by_the_limit FROM log_reads;
SELECT n AS before FROM log_reads \gset
SET LOCAL courier.stats_exact_limit = 1000;
SELECT grp, backlog, backlog_exact FROM courier.groups WHERE topic = 'wide' ORDER BY grp;
SELECT n - :before < 2 * 1000 + 500 AS bounded_by_the_limit FROM log_reads;
SELECT n AS before FROM log_reads \gset
SELECT messages, counts_exact, sent_last_minute FROM courier.topics WHERE topic = 'wide';
SELECT n - :before < 500 AS topics_read_little FROM log_reads;
COMMIT;
SELECT courier.drop_topic('wide');
