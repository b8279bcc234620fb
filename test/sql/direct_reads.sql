-- Issue 11: the receive path's reads without SPI (docs/design.md, "Reads
-- without SPI on the hot path").  The probes of claim_expiry, lease_due and
-- the claim primary key must see exactly what the SPI statements they stand
-- in for would: this transaction's own writes, even those of the same
-- statement, and no acked claim as an expired one.
\set VERBOSITY terse
SET client_min_messages = warning;

SELECT courier.create_topic('dr');
SELECT courier.send('dr', '{"n": 1}') AS m1 \gset

-- a lease of 0 s has ended at once: a second receive in the same statement
-- finds the claim the first one wrote (the expiry probe sees its own
-- statement's writes) and redelivers
BEGIN;
SELECT r.id = :m1 AS same, r.attempt
  FROM (SELECT * FROM courier.receive('dr', 'default', 1, '0 s')
        UNION ALL
        SELECT * FROM courier.receive('dr', 'default', 1, '1 hour')) r
 ORDER BY r.attempt;
-- the ack finds the claim (emptied into a lease row) and the lease row
SELECT courier.ack('dr', 'default', ARRAY[:m1]::bigint[]) AS acked;
SELECT count(*) AS lease_rows FROM courier.lease
 WHERE group_id = (SELECT g.group_id FROM courier.group_meta g JOIN courier.topic_meta t USING (topic_id)
                    WHERE t.name = 'dr');
ROLLBACK;

-- after the rollback the message is new again
BEGIN;
SELECT id = :m1 AS same, attempt FROM courier.receive('dr', 'default', 1, '1 hour');
-- set_visibility to 0 s in this transaction: the due probe sees the lease
-- row it wrote
SELECT courier.set_visibility('dr', 'default', :m1, '0 s') AS moved;
SELECT id = :m1 AS same, attempt FROM courier.receive('dr', 'default', 1, '1 hour');
-- a nack under a savepoint, rolled back: the row is leased again, not due
SAVEPOINT s;
SELECT courier.nack('dr', 'default', :m1, delay => '0 s') AS nacked;
SELECT id = :m1 AS same, attempt FROM courier.receive('dr', 'default', 1, '1 hour');
ROLLBACK TO s;
SELECT count(*) AS due FROM courier.receive('dr', 'default', 1, '1 hour');
COMMIT;

-- acked claims keep their lease_until: once it has passed they are not
-- expired claims (nothing pending), and a receive finds nothing
SELECT courier.send('dr', '{"n": 2}') AS m2 \gset
SELECT count(*) AS got FROM (SELECT courier.ack('dr', 'default', id)
  FROM courier.receive('dr', 'default', 10, '0 s')) a;
SELECT count(*) AS got FROM courier.receive('dr', 'default', 10, '1 hour');
SELECT count(*) AS lease_rows FROM courier.lease
 WHERE group_id = (SELECT g.group_id FROM courier.group_meta g JOIN courier.topic_meta t USING (topic_id)
                    WHERE t.name = 'dr');

-- the same under REPEATABLE READ
SELECT courier.send('dr', '{"n": 3}') AS m3 \gset
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT r.id = :m3 AS same, r.attempt
  FROM (SELECT * FROM courier.receive('dr', 'default', 1, '0 s')
        UNION ALL
        SELECT * FROM courier.receive('dr', 'default', 1, '1 hour')) r
 ORDER BY r.attempt;
SELECT courier.ack('dr', 'default', :m3) AS acked;
COMMIT;
SELECT backlog, in_flight, retrying FROM courier.groups WHERE topic = 'dr';

-- the ack's claim update without the executor (CourierUpdateTuple): claims
-- of 128 pending ids fill a heap page with 7, so taking one id out cannot
-- stay on the page (not a HOT update): the new version needs index entries
-- of its own, and both indexes of courier.claim must list every row
CREATE EXTENSION IF NOT EXISTS amcheck;
SELECT count(*) AS sent FROM courier.send_batch('dr',
  (SELECT array_agg(jsonb_build_object('n', g)) FROM generate_series(1, 14 * 128) g));
CREATE TEMP TABLE held (id bigint, claim int);
DO $$ BEGIN FOR r IN 1..14 LOOP
  INSERT INTO held SELECT id, r FROM courier.receive('dr', 'default', 128, '1 hour');
END LOOP; END $$;
SELECT count(*) AS held, count(DISTINCT id) AS distinct_ids FROM held;
BEGIN;
SELECT sum(courier.ack('dr', 'default', id)::int) AS acked
  FROM (SELECT min(id) AS id FROM held GROUP BY claim) firsts;
SELECT n_tup_upd > 0 AS updated, n_tup_hot_upd < n_tup_upd AS not_all_hot
  FROM pg_stat_xact_user_tables WHERE relid = 'courier.claim'::regclass;
COMMIT;
SELECT i.indexrelid::regclass AS index, bt_index_check(i.indexrelid, true)::text = '' AS ok
  FROM pg_index i WHERE i.indrelid = 'courier.claim'::regclass ORDER BY 1;
-- and every message not acked is still held exactly once
SELECT courier.ack('dr', 'default', (SELECT array_agg(id) FROM held)) AS acked_rest;
SELECT count(*) AS claims_with_pending FROM courier.claim
 WHERE pending <> '{}' AND group_id = (SELECT g.group_id FROM courier.group_meta g
                                        JOIN courier.topic_meta t USING (topic_id) WHERE t.name = 'dr');
SELECT backlog, in_flight FROM courier.groups WHERE topic = 'dr';
DROP EXTENSION amcheck;

SELECT courier.drop_topic('dr');
