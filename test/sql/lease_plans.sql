-- The lease path reads its rows through indexes whatever courier.lease's
-- statistics say (src/lease.c, CourierExecuteShaped): after a burst far
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

-- The ack's claim swap goes by the TID of the claim it just read
-- (src/ack.c, plan_claim_swap).  A plan by key ties the primary key with
-- claim_expiry when the statistics know nothing of the group (they were
-- taken while only other groups had claims: both indexes then promise one
-- row) and may read every claim of the group (about 84 buffers per ack in
-- a profile with 24,000 claims).  2,000 claims here; the ack of one message
-- of the last claim fetches a handful of rows, not the group's 2,000.
SELECT courier.create_topic('lx');
SELECT courier.create_topic('lc');
SELECT count(*) AS sent FROM courier.send_batch('lx',
  (SELECT array_agg(jsonb_build_object('n', g)) FROM generate_series(1, 2000) g));
SELECT count(*) AS sent FROM courier.send_batch('lc',
  (SELECT array_agg(jsonb_build_object('n', g)) FROM generate_series(1, 2001) g));
DO $$ BEGIN FOR i IN 1..2000 LOOP PERFORM courier.receive('lx', 'default', 1, '1 hour'); END LOOP; END $$;
ANALYZE courier.claim;			-- statistics of another group's claims
DO $$ BEGIN FOR i IN 1..2000 LOOP PERFORM courier.receive('lc', 'default', 1, '1 hour'); END LOOP; END $$;
BEGIN;
CREATE TEMP TABLE last ON COMMIT DROP AS
  SELECT id FROM courier.receive('lc', 'default', 1, '1 hour');
SELECT count(*) AS claims FROM courier.claim c JOIN courier.group_meta g USING (group_id)
  JOIN courier.topic_meta t USING (topic_id) WHERE t.name = 'lc';
-- (the ack's own counts: the count above may scan courier.claim
-- sequentially, as autovacuum's statistics of it say)
SELECT idx_tup_fetch AS before_ack, seq_scan AS seq_before
  FROM pg_stat_xact_user_tables WHERE relid = 'courier.claim'::regclass \gset
SELECT courier.ack('lc', 'default', id) AS acked FROM last;
SELECT idx_tup_fetch - :before_ack < 20 AS ack_fetched_a_few, seq_scan - :seq_before AS seq_scans
  FROM pg_stat_xact_user_tables WHERE relid = 'courier.claim'::regclass;
COMMIT;
SELECT courier.drop_topic('lc');
SELECT courier.drop_topic('lx');
