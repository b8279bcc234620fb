-- Review 7: an ordered group wedged by seek + redrive.  After a seek back,
-- redrive of a dead letter queues the message in the lease table (its
-- promotion waits until the group's walk has passed the id).  The walk then
-- meets the same id in the log and inserts a lease row for it as well:
-- 23505 duplicate key on lease_pkey.  The walk's claim rolls back with the
-- error, so every later receive walks the id again and fails the same way:
-- the group delivers nothing, to anyone, until an operator deletes rows.
-- (redrive has ON CONFLICT DO NOTHING for the other order, "after a seek
-- back, the log may have handed the message out again"; the walk has no
-- such case.)
-- Expected: receives succeed; message 1 is delivered (once), then 2.
\set VERBOSITY terse
SET client_min_messages = warning;

SELECT courier.create_topic('r7_rs');
SELECT courier.create_group('r7_rs', 'o', ordered => true, max_attempts => 1);
SELECT courier.send('r7_rs', '{"n": 1}', keys => ARRAY['k']);
SELECT courier.send('r7_rs', '{"n": 2}', keys => ARRAY['k']);
SELECT id FROM courier.receive('r7_rs', 'o', 10, '1 hour');
-- the last attempt: dead letter
SELECT courier.nack('r7_rs', 'o', 1) AS nacked;
SELECT id FROM courier.dead_letters WHERE topic = 'r7_rs';
SELECT courier.seek('r7_rs', 'o', '-infinity') AS affected;
SELECT courier.redrive('r7_rs', 'o', ARRAY[1]::bigint[]) AS redriven;
SELECT id FROM courier.receive('r7_rs', 'o', 10, '1 hour');
SELECT id FROM courier.receive('r7_rs', 'o', 10, '1 hour');
SELECT courier.ack('r7_rs', 'o', 1::bigint) AS acked;
SELECT id FROM courier.receive('r7_rs', 'o', 10, '1 hour');
SELECT courier.drop_topic('r7_rs');
