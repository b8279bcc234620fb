-- Redrive after a seek back (review 7, findings 3 and 4, beyond the ordered
-- case of review7_redrive_seek): a dead letter whose message the group is
-- owed again by the seek's replay.  Whichever comes first, the walk or the
-- redrive, the message is handed out once and nothing fails: redrive gives
-- the lease table a row only for an id that the group's walk has passed and
-- that is not in flight (docs/design.md, "Redrive").
\set VERBOSITY terse
SET client_min_messages = warning;
-- The delayed message 2 below waits in a lease row (made due by an UPDATE):
-- keep delayed messages in the lease table, as they are when a group has
-- no room for deferred spans (test/sql/delay_spans.sql covers those).
SET courier.delay_spans = 0;

SELECT courier.create_topic('rs');
SELECT courier.create_group('rs', 'p', max_attempts => 1);
SELECT courier.send('rs', '{"n": 1}') AS sent;
SELECT courier.send('rs', '{"n": 2}', delay => '1 hour') AS sent_delayed;
SELECT id FROM courier.receive('rs', 'p', 10, '1 hour');
SELECT courier.nack('rs', 'p', 1) AS nacked;
UPDATE courier.lease SET visible_at = now() WHERE msg_id = 2;
SELECT id FROM courier.receive('rs', 'p', 10, '1 hour');
SELECT courier.nack('rs', 'p', 2) AS nacked;
SELECT id FROM courier.dead_letters WHERE topic = 'rs' ORDER BY id;

-- 1. plain group, redrive before the walk: the walk hands 1 out once (it
-- was handed out twice, from the redriven row and from the log), and the
-- delayed 2 waits for its time (the walk failed on lease_pkey, for good)
SELECT courier.seek('rs', 'p', '-infinity') AS affected;
SELECT courier.redrive('rs', 'p') AS redriven;
SELECT id FROM courier.receive('rs', 'p', 10, '1 hour');
SELECT id FROM courier.receive('rs', 'p', 10, '1 hour');
SELECT msg_id, state FROM courier.lease l JOIN courier.group_meta g USING (group_id)
 WHERE g.name = 'p' ORDER BY msg_id;
-- the lease of 1 expires (its last attempt): the claim's pending id becomes
-- a lease row and a dead letter again, once (a redriven row beside it made
-- that conversion fail on lease_pkey)
UPDATE courier.claim SET lease_until = now() - interval '1 second'
 WHERE group_id = (SELECT group_id FROM courier.group_meta WHERE name = 'p') AND pending <> '{}';
SELECT id FROM courier.receive('rs', 'p', 10, '1 hour');
SELECT id FROM courier.dead_letters WHERE topic = 'rs' ORDER BY id;
UPDATE courier.lease SET visible_at = now() WHERE msg_id = 2;
SELECT id FROM courier.receive('rs', 'p', 10, '1 hour');
SELECT courier.ack('rs', 'p', 2::bigint) AS acked;

-- 2. plain group, walk first: the replay of 1 is in flight when 1 is
-- redriven; the redrive takes the dead letter away and adds no second
-- delivery
SELECT courier.seek('rs', 'p', '-infinity') AS affected;
SELECT id FROM courier.receive('rs', 'p', 10, '1 hour') ORDER BY id;
SELECT courier.redrive('rs', 'p', ARRAY[1]::bigint[]) AS redriven;
SELECT id FROM courier.dead_letters WHERE topic = 'rs';
SELECT id FROM courier.receive('rs', 'p', 10, '1 hour');
SELECT msg_id, state FROM courier.lease l JOIN courier.group_meta g USING (group_id)
 WHERE g.name = 'p' ORDER BY msg_id;
SELECT courier.ack('rs', 'p', 1::bigint) AS acked;

-- 3. a redrive that rolls back after a walk handed the message out in the
-- same transaction: the dead letter is back, and the log hands the message
-- out again (the seek's replay, which the rolled-back receive had taken)
SELECT courier.send('rs', '{"n": 3}') AS sent;
SELECT id FROM courier.receive('rs', 'p', 10, '1 hour');
SELECT courier.nack('rs', 'p', 3) AS nacked;
SELECT courier.seek('rs', 'p', '-infinity') AS affected;
BEGIN;
SELECT courier.redrive('rs', 'p', ARRAY[3]::bigint[]) AS redriven;
SELECT id FROM courier.receive('rs', 'p', 10, '1 hour') ORDER BY id;
ROLLBACK;
SELECT id FROM courier.dead_letters WHERE topic = 'rs';
SELECT id FROM courier.receive('rs', 'p', 10, '1 hour') ORDER BY id;
-- redriven now, with the replay in flight: no second delivery
SELECT courier.redrive('rs', 'p', ARRAY[3]::bigint[]) AS redriven;
SELECT id FROM courier.receive('rs', 'p', 10, '1 hour');
SELECT courier.ack('rs', 'p', ARRAY[1, 3]::bigint[]) AS acked;
-- and one that rolls back before any walk: the replay is still owed
SELECT courier.send('rs', '{"n": 4}') AS sent;
SELECT id FROM courier.receive('rs', 'p', 10, '1 hour');
SELECT courier.nack('rs', 'p', 4) AS nacked;
SELECT courier.seek('rs', 'p', '-infinity') AS affected;
BEGIN;
SELECT courier.redrive('rs', 'p', ARRAY[4]::bigint[]) AS redriven;
ROLLBACK;
SELECT id FROM courier.receive('rs', 'p', 10, '1 hour') ORDER BY id;
SELECT courier.ack('rs', 'p', ARRAY[1, 3, 4]::bigint[]) AS acked;
SELECT id FROM courier.dead_letters WHERE topic = 'rs';

-- 4. no seek: the group has passed 4 and acked it; a redrive hands it out again
SELECT courier.redrive('rs', 'p') AS redriven;
SELECT id, attempt FROM courier.receive('rs', 'p', 10, '1 hour');
SELECT courier.ack('rs', 'p', 4::bigint) AS acked;
SELECT id FROM courier.receive('rs', 'p', 10, '1 hour');
SELECT courier.drop_topic('rs');

-- 5. ordered group, walk first: the replayed head is in flight when it is
-- redriven (redrive adds nothing, the key keeps one head)
SELECT courier.create_topic('ro');
SELECT courier.create_group('ro', 'o', ordered => true, max_attempts => 1);
SELECT courier.send('ro', '{"n": 1}', keys => ARRAY['k']) AS sent;
SELECT courier.send('ro', '{"n": 2}', keys => ARRAY['k']) AS sent;
SELECT id FROM courier.receive('ro', 'o', 10, '1 hour');
SELECT courier.nack('ro', 'o', 1) AS nacked;
SELECT courier.seek('ro', 'o', '-infinity') AS affected;
SELECT id FROM courier.receive('ro', 'o', 10, '1 hour');
SELECT courier.redrive('ro', 'o') AS redriven;
SELECT id FROM courier.receive('ro', 'o', 10, '1 hour');
SELECT courier.ack('ro', 'o', 1::bigint) AS acked;
SELECT id FROM courier.receive('ro', 'o', 10, '1 hour');
SELECT courier.ack('ro', 'o', 2::bigint) AS acked;
SELECT id FROM courier.receive('ro', 'o', 10, '1 hour');

-- 6. ordered group, behind the walk (no seek): the dead head queues behind
-- the key's head and comes back after it
SELECT courier.send('ro', '{"n": 3}', keys => ARRAY['m']) AS sent;
SELECT courier.send('ro', '{"n": 4}', keys => ARRAY['m']) AS sent;
SELECT id FROM courier.receive('ro', 'o', 10, '1 hour');
SELECT courier.nack('ro', 'o', 3) AS nacked;
SELECT id FROM courier.receive('ro', 'o', 10, '1 hour');
SELECT courier.redrive('ro', 'o') AS redriven;
SELECT id FROM courier.receive('ro', 'o', 10, '1 hour');
SELECT courier.ack('ro', 'o', 4::bigint) AS acked;
SELECT id, attempt FROM courier.receive('ro', 'o', 10, '1 hour');
SELECT courier.ack('ro', 'o', 3::bigint) AS acked;

-- 7. ordered group, redrive before the walk, after a seek back over two
-- keys: the walk hands the redriven 5 out after 3 and 4 of its key
SELECT courier.send('ro', '{"n": 5}', keys => ARRAY['m']) AS sent;
SELECT id FROM courier.receive('ro', 'o', 10, '1 hour');
SELECT courier.nack('ro', 'o', 5) AS nacked;
SELECT courier.seek('ro', 'o', '-infinity') AS affected;
SELECT courier.redrive('ro', 'o') AS redriven;
SELECT id FROM courier.receive('ro', 'o', 10, '1 hour') ORDER BY id;
SELECT courier.ack('ro', 'o', ARRAY[1, 3]::bigint[]) AS acked;
SELECT id FROM courier.receive('ro', 'o', 10, '1 hour') ORDER BY id;
SELECT courier.ack('ro', 'o', ARRAY[2, 4]::bigint[]) AS acked;
SELECT id, attempt FROM courier.receive('ro', 'o', 10, '1 hour');
SELECT courier.ack('ro', 'o', 5::bigint) AS acked;
SELECT id FROM courier.receive('ro', 'o', 10, '1 hour');
SELECT count(*) AS dead FROM courier.dead_letters WHERE topic = 'ro';
SELECT courier.drop_topic('ro');

-- 8. a savepoint: the redrive and a receive under it roll back, the
-- transaction goes on; the dead letter is back, and the walk hands the
-- replay out again in the same transaction
SELECT courier.create_topic('rsp');
SELECT courier.create_group('rsp', 'p', max_attempts => 1);
SELECT courier.send('rsp', '{"n": 1}') AS sent;
SELECT id FROM courier.receive('rsp', 'p', 10, '1 hour');
SELECT courier.nack('rsp', 'p', 1) AS nacked;
SELECT courier.seek('rsp', 'p', '-infinity') AS affected;
BEGIN;
SAVEPOINT a;
SELECT courier.redrive('rsp', 'p') AS redriven;
SELECT id FROM courier.receive('rsp', 'p', 10, '1 hour');
ROLLBACK TO SAVEPOINT a;
SELECT id FROM courier.dead_letters WHERE topic = 'rsp';
SELECT id FROM courier.receive('rsp', 'p', 10, '1 hour');
-- redriven with the replay in flight under our own claim: nothing added
SELECT courier.redrive('rsp', 'p') AS redriven;
COMMIT;
SELECT id FROM courier.dead_letters WHERE topic = 'rsp';
SELECT id FROM courier.receive('rsp', 'p', 10, '1 hour');
SELECT msg_id FROM courier.lease;
SELECT courier.ack('rsp', 'p', 1::bigint) AS acked;
SELECT courier.drop_topic('rsp');
