-- Ordered groups: messages that share a key (the first element of keys) are
-- handed out one at a time, in send order; other keys flow meanwhile.
\set VERBOSITY terse
SET client_min_messages = warning;

SELECT courier.create_topic('o');
SELECT courier.create_group('o', 'fifo', ordered => true, max_attempts => 2, retry_backoff => '{1h}');
SELECT count(*) FROM (
  SELECT courier.send('o', jsonb_build_object('k', k, 'n', n), keys => ARRAY['key-' || k, 'other'])
    FROM generate_series(1, 3) n, generate_series(1, 2) k ORDER BY n, k) s;
SELECT courier.send('o', '{"unkeyed": true}') AS unkeyed;

-- one head per key, plus what has no key
SELECT id, keys[1] AS key, attempt FROM courier.receive('o', 'fifo', 10) ORDER BY id;
-- nothing more until a head is finished
SELECT count(*) FROM courier.receive('o', 'fifo', 10);
SELECT grp, backlog, in_flight FROM courier.groups WHERE grp = 'fifo';
SELECT courier.ack('o', 'fifo', 1);
SELECT id, keys[1] AS key FROM courier.receive('o', 'fifo', 10) ORDER BY id;
-- a nacked head keeps its place: its key waits (here for an hour), the other key goes on
SELECT courier.nack('o', 'fifo', 2);
SELECT courier.ack('o', 'fifo', 3);
SELECT id, keys[1] AS key FROM courier.receive('o', 'fifo', 10) ORDER BY id;
SELECT courier.ack('o', 'fifo', 5);
SELECT count(*) AS key2_blocked FROM courier.receive('o', 'fifo', 10);
SELECT id, grp, state, attempt FROM courier.find('o', key => 'key-2') WHERE grp = 'fifo';
-- a released lease counts as an attempt: with max_attempts 2 the head dies, the key moves on
SELECT courier.redrive('o', 'fifo') AS nothing_to_redrive;
UPDATE courier.lease SET visible_at = now() WHERE msg_id = 2;
SELECT id, attempt FROM courier.receive('o', 'fifo', 10);
SELECT courier.nack('o', 'fifo', 2, reason => 'poison');
SELECT id, body FROM courier.dead_letters;
SELECT id, keys[1] AS key FROM courier.receive('o', 'fifo', 10) ORDER BY id;
SELECT courier.ack('o', 'fifo', ARRAY[4, 7]) AS acked;
SELECT id, keys[1] AS key FROM courier.receive('o', 'fifo', 10);
SELECT courier.ack('o', 'fifo', 6) AS acked;
SELECT count(*) AS left FROM courier.receive('o', 'fifo', 10);
-- redriving the dead head puts it back on its key
SELECT courier.redrive('o', 'fifo') AS redriven;
SELECT id, keys[1] AS key, attempt FROM courier.receive('o', 'fifo', 10);
SELECT courier.ack('o', 'fifo', 2);
SELECT grp, backlog, in_flight, retrying, dead_letters FROM courier.groups WHERE grp = 'fifo';

-- keys are validated
SELECT courier.send('o', '{}', keys => ARRAY['']);
SELECT courier.send('o', '{}', keys => ARRAY[repeat('k', 256)]);
SELECT courier.drop_topic('o');
