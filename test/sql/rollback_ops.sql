-- Review of 0.2.0: seek and purge that roll back (top level or savepoint)
-- must leave the group exactly as before.  0.2.0 rebuilds the group's shared
-- position inside the seek/purge transaction (any walk in that transaction:
-- a view, receive, peek) from the uncommitted rows, and nothing undoes it at
-- rollback: committed messages are never delivered (forward seek, purge), or
-- acked ones are delivered again (backward seek).  A purge whose transaction
-- also sent moved the topic's shared current segment to the purge's new,
-- uncommitted segment: after rollback every receive failed with 40001 and
-- every send spun uninterruptibly.  Now a send in the purge's transaction is
-- refused (55000), and the topic works after the rollback.
\set VERBOSITY terse
SET client_min_messages = warning;

-- 1. forward seek rolled back, the operator looked at the view in between
SELECT courier.create_topic('rb1');
SELECT count(*) FROM (SELECT courier.send('rb1', jsonb_build_object('n', g)) FROM generate_series(1, 5) g) s;
BEGIN;
SELECT courier.seek('rb1', 'default', 'infinity');
SELECT backlog FROM courier.groups WHERE topic = 'rb1';
ROLLBACK;
SELECT backlog FROM courier.groups WHERE topic = 'rb1';
SELECT id FROM courier.receive('rb1', 'default', 10) ORDER BY id;

-- 2. forward seek in a savepoint rolled back, receive in the same transaction
SELECT courier.create_topic('rb2');
SELECT count(*) FROM (SELECT courier.send('rb2', jsonb_build_object('n', g)) FROM generate_series(1, 5) g) s;
BEGIN;
SAVEPOINT a;
SELECT courier.seek('rb2', 'default', 'infinity');
SELECT id FROM courier.receive('rb2', 'default', 10);
ROLLBACK TO a;
COMMIT;
SELECT id FROM courier.receive('rb2', 'default', 10) ORDER BY id;

-- 3. backward seek rolled back: acked, compacted messages must stay acked
SELECT courier.create_topic('rb3');
SELECT count(*) FROM (SELECT courier.send('rb3', jsonb_build_object('n', g)) FROM generate_series(1, 5) g) s;
SELECT courier.ack('rb3', 'default', ARRAY(SELECT id FROM courier.receive('rb3', 'default', 10)));
SELECT (courier.run_maintenance()->>'compacted')::int > 0 AS compacted;
BEGIN;
SELECT courier.seek('rb3', 'default', '-infinity');
SELECT id FROM courier.peek('rb3', 'default', 10) ORDER BY id;
ROLLBACK;
SELECT id FROM courier.receive('rb3', 'default', 10);

-- 4. purge rolled back, the operator looked at the view in between
SELECT courier.create_topic('rb4');
SELECT count(*) FROM (SELECT courier.send('rb4', jsonb_build_object('n', g)) FROM generate_series(1, 5) g) s;
BEGIN;
SELECT courier.purge('rb4');
SELECT backlog FROM courier.groups WHERE topic = 'rb4';
ROLLBACK;
SELECT id FROM courier.receive('rb4', 'default', 10) ORDER BY id;

-- 5. purge and a send in one transaction, rolled back
SELECT courier.create_topic('rb5');
SELECT count(*) FROM (SELECT courier.send('rb5', jsonb_build_object('n', g)) FROM generate_series(1, 5) g) s;
BEGIN;
SELECT courier.purge('rb5');
SELECT courier.send('rb5', '{"after": "purge"}') > 5 AS sent;
ROLLBACK;
SELECT id FROM courier.receive('rb5', 'default', 10) ORDER BY id;
SELECT courier.send('rb5', '{"after": "rollback"}') > 5 AS sent;
SELECT body FROM courier.receive('rb5', 'default', 10);

-- 6. a transaction that ran seek or purge cannot be prepared (0A000; the
-- check comes before max_prepared_transactions'), and the group is as before
SELECT courier.create_topic('rb6');
SELECT count(*) FROM (SELECT courier.send('rb6', jsonb_build_object('n', g)) FROM generate_series(1, 3) g) s;
BEGIN;
SELECT courier.seek('rb6', 'default', 'infinity');
PREPARE TRANSACTION 'rb6_seek';
BEGIN;
SELECT courier.purge('rb6');
PREPARE TRANSACTION 'rb6_purge';
SELECT count(*) AS prepared FROM pg_prepared_xacts WHERE gid LIKE 'rb6%';
SELECT id FROM courier.receive('rb6', 'default', 10) ORDER BY id;

SELECT count(courier.drop_topic(name)) AS dropped FROM courier.topic_meta WHERE name LIKE 'rb_';
