-- The lease path reads its rows through indexes whatever courier.lease's
-- statistics say (src/lease.c, CourierExecuteIndexed): after a burst far
-- beyond what the last ANALYZE saw, a receive of 100 due rows fetches about
-- 100 rows, not every due row of the group (which a plan that sorts them
-- all, made from the old statistics, did).
\set VERBOSITY terse
SET client_min_messages = warning;
SET courier.delay_spans = 0;	-- delayed messages wait in lease rows
SELECT courier.create_topic('lp');
ANALYZE courier.lease;			-- statistics of an empty table
SELECT clock_timestamp() + interval '3 seconds' AS due \gset
SELECT count(*) AS sent FROM courier.send_batch('lp',
  (SELECT array_agg(jsonb_build_object('n', g)) FROM generate_series(1, 20000) g),
  deliver_at => :'due');
SELECT count(*) AS received FROM courier.receive('lp', 'default', 100, '1 hour');
SELECT count(*) AS received FROM courier.receive('lp', 'default', 100, '1 hour');
SELECT count(*) AS lease_rows FROM courier.lease;
SELECT true AS waited FROM pg_sleep_until(:'due');
BEGIN;
CREATE TEMP TABLE got ON COMMIT DROP AS
  SELECT id FROM courier.receive('lp', 'default', 100, '1 hour');
SELECT count(*) AS received FROM got;
SELECT idx_tup_fetch < 1000 AS fetched_about_100, seq_scan AS seq_scans
  FROM pg_stat_xact_user_tables WHERE relid = 'courier.lease'::regclass;
SELECT courier.ack('lp', 'default', array_agg(id)) AS acked FROM got;
SELECT idx_tup_fetch < 2000 AS ack_fetched_about_100, seq_scan AS seq_scans
  FROM pg_stat_xact_user_tables WHERE relid = 'courier.lease'::regclass;
COMMIT;
SELECT courier.drop_topic('lp');
