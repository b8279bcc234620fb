-- Issue 7 section 6: limits and sizes.
--  (b) one ack costs the same whatever the size of the batch it came from:
--      2,000 single acks of messages of one 10,000-message receive write
--      little WAL (0.1.0 rewrote the whole TOASTed pending array of the
--      batch's claim at every ack: tens of MB);
--  (c) courier.scan_limit can only be set by superusers, and not to a
--      10-million-row walk;
--  (d) retry_backoff arrays whose lower bound is not 1 are read from their
--      first element, in validation messages and in nack's ladder.
-- (courier.max_topics / max_groups are PGC_POSTMASTER: test/t/026_limits.pl.)
\set VERBOSITY terse
SET client_min_messages = warning;

-- runs a statement and reports its SQLSTATE (or ok), message and detail
CREATE FUNCTION pg_temp.try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	detail text;
BEGIN
	EXECUTE stmt;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL;
	RETURN SQLSTATE || ': ' || SQLERRM || coalesce(' (' || nullif(detail, '') || ')', '');
END;
$$;

------------------------------------------------------------------------------
-- (b) WAL per ack
------------------------------------------------------------------------------
SELECT courier.create_topic('walk10k');
SELECT count(*) AS sent FROM courier.send_batch('walk10k',
	(SELECT array_agg(jsonb_build_object('n', n)) FROM generate_series(1, 10000) n));
SELECT count(*) AS received FROM courier.receive('walk10k', 'default', 10000, '1 hour');
CHECKPOINT;
SELECT pg_current_wal_insert_lsn() AS before_acks \gset
-- 2,000 single acks, each in its own transaction, spread over the batch
DO $$
BEGIN
	FOR i IN 0 .. 1999 LOOP
		IF NOT courier.ack('walk10k', 'default', i * 5 + 1) THEN
			RAISE EXCEPTION 'ack of % failed', i * 5 + 1;
		END IF;
		COMMIT;
	END LOOP;
END;
$$;
SELECT pg_current_wal_insert_lsn() AS after_acks \gset
SELECT count(*) FILTER (WHERE state = 'acked') AS acked, count(*) FILTER (WHERE state = 'in_flight') AS in_flight
  FROM generate_series(1, 10000, 499) id, LATERAL courier.find('walk10k', id => id) f;
-- 0.1.0 wrote about 60 MB here; about 1 kB per ack is what a row of at
-- most a few hundred ids costs
SELECT pg_wal_lsn_diff(:'after_acks', :'before_acks') < 8 * 1024 * 1024 AS little_wal;
SELECT CASE WHEN pg_wal_lsn_diff(:'after_acks', :'before_acks') < 8 * 1024 * 1024 THEN 'ok'
			ELSE pg_size_pretty(pg_wal_lsn_diff(:'after_acks', :'before_acks')) END AS wal_for_2000_acks;
SELECT courier.drop_topic('walk10k');

------------------------------------------------------------------------------
-- (c) courier.scan_limit is for superusers
------------------------------------------------------------------------------
SELECT context FROM pg_settings WHERE name = 'courier.scan_limit';
CREATE ROLE regress_courier_scanner;
SET ROLE regress_courier_scanner;
SELECT pg_temp.try('SET courier.scan_limit = 1000000');
SELECT pg_temp.try('SET courier.scan_limit = 100');
SELECT pg_temp.try($$ SELECT set_config('courier.scan_limit', '5000000', false) $$);
SELECT pg_temp.try('SET LOCAL courier.scan_limit = 200');
SHOW courier.scan_limit;
RESET ROLE;
-- a superuser may, within bounds
SELECT pg_temp.try('SET courier.scan_limit = 100');
SHOW courier.scan_limit;
SELECT pg_temp.try('SET courier.scan_limit = 10000000');
RESET courier.scan_limit;
DROP ROLE regress_courier_scanner;

------------------------------------------------------------------------------
-- (d) retry_backoff with another lower bound
------------------------------------------------------------------------------
SELECT courier.create_topic('ladder');
-- valid ladders, whatever their lower bound
SELECT pg_temp.try($$ SELECT courier.create_group('ladder', 'zero', retry_backoff => '[0:1]={1s,2s}') $$);
SELECT pg_temp.try($$ SELECT courier.create_group('ladder', 'five', retry_backoff => '[5:7]={1s,1min,1h}') $$);
SELECT grp, retry_backoff FROM courier.groups WHERE topic = 'ladder' AND grp <> 'default' ORDER BY grp;
-- invalid ones: steps are numbered from 1 in the messages
SELECT pg_temp.try($$ SELECT courier.create_group('ladder', 'bad1', retry_backoff => '[0:2]={1s,-1s,3s}') $$);
SELECT pg_temp.try($$ SELECT courier.create_group('ladder', 'bad2', retry_backoff => '[-3:-1]={1s,5s,2s}') $$);
SELECT pg_temp.try($$ SELECT courier.create_group('ladder', 'bad3', retry_backoff => '[2:3]={1s,NULL}') $$);
SELECT pg_temp.try($$ SELECT courier.create_group('ladder', 'bad4', retry_backoff => '[0:0]={2 years}') $$);
SELECT pg_temp.try($$ SELECT courier.alter_group('ladder', 'zero', retry_backoff => '[10:11]={5s,1s}') $$);
SELECT count(*) AS groups FROM courier.groups WHERE topic = 'ladder';
-- nack without a delay follows the ladder from its first element
SELECT courier.send('ladder', '{"n": 1}') AS id;
SELECT id, attempt FROM courier.receive('ladder', 'zero', 1, '1 hour');
SELECT courier.nack('ladder', 'zero', 1);
SELECT l.visible_at - l.last_delivered_at >= interval '1 second'
   AND l.visible_at - clock_timestamp() < interval '1.5 seconds' AS first_step_1s
  FROM courier.lease l JOIN courier.group_meta g USING (group_id) WHERE g.name = 'zero';
SELECT pg_sleep(1.1);
SELECT id, attempt FROM courier.receive('ladder', 'zero', 1, '1 hour');
SELECT courier.nack('ladder', 'zero', 1);
SELECT l.visible_at - clock_timestamp() BETWEEN interval '1.5 seconds' AND interval '2 seconds' AS second_step_2s
  FROM courier.lease l JOIN courier.group_meta g USING (group_id) WHERE g.name = 'zero';
-- alter_group with another lower bound
SELECT courier.alter_group('ladder', 'zero', retry_backoff => '[0:0]={1h}');
SELECT retry_backoff FROM courier.groups WHERE topic = 'ladder' AND grp = 'zero';
SELECT courier.drop_topic('ladder');

------------------------------------------------------------------------------
-- (e) courier.test_pauses (isolation specs only): superuser, and only by SET
------------------------------------------------------------------------------
CREATE ROLE regress_courier_pauser;
SET ROLE regress_courier_pauser;
SET courier.test_pauses = on;
RESET ROLE;
ALTER ROLE regress_courier_pauser SET courier.test_pauses = on;
SELECT set_config('courier.test_pauses', 'on', false) AS by_set_config;
SET courier.test_pauses = off;
DROP ROLE regress_courier_pauser;
