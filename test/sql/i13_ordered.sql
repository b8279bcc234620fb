-- Issue 13, defect 14, ordered groups: delayed keyed heads counted towards
-- max_messages (a receive of 1 returned nothing, twice, while a due message
-- waited behind a delayed head of another key), and peek left out keyed
-- messages that receive would return.
SELECT courier.create_topic('ord');
SELECT courier.create_group('ord', 'fifo', ordered => true);

-- ---- delayed heads do not take the places of due messages
SELECT courier.send('ord', '{"m": "d1"}', keys => ARRAY['k1'], delay => '1 hour') > 0 AS sent;
SELECT courier.send('ord', '{"m": "d2"}', keys => ARRAY['k2'], delay => '1 hour') > 0 AS sent;
SELECT courier.send('ord', '{"m": "m3"}', keys => ARRAY['k3']) > 0 AS sent;
SELECT courier.send('ord', '{"m": "m4"}') > 0 AS sent;
SELECT courier.send('ord', '{"m": "m5"}', keys => ARRAY['k5']) > 0 AS sent;
SELECT body->>'m' AS m FROM courier.receive('ord', 'fifo', 1);
SELECT body->>'m' AS m FROM courier.receive('ord', 'fifo', 1);
SELECT body->>'m' AS m FROM courier.receive('ord', 'fifo', 1);
SELECT body->>'m' AS m FROM courier.receive('ord', 'fifo', 1);
SELECT grp, delayed, backlog, in_flight FROM courier.groups WHERE topic = 'ord' AND grp = 'fifo';
-- a message queued behind a delayed head waits for it
SELECT courier.send('ord', '{"m": "d1-next"}', keys => ARRAY['k1']) > 0 AS sent;
SELECT body->>'m' AS m FROM courier.receive('ord', 'fifo', 10);

-- ---- peek shows what receive would return: the first message of every
-- key that has none in flight, and messages without keys
SELECT courier.create_group('ord', 'look', ordered => true, start_from => 'latest');
SELECT courier.send('ord', '{"m": "a1"}', keys => ARRAY['a']) > 0 AS sent;
SELECT courier.send('ord', '{"m": "a2"}', keys => ARRAY['a']) > 0 AS sent;
SELECT courier.send('ord', '{"m": "b1"}', keys => ARRAY['b']) > 0 AS sent;
SELECT courier.send('ord', '{"m": "n1"}') > 0 AS sent;
-- before the group walked the new messages
SELECT body->>'m' AS m, attempt FROM courier.peek('ord', 'look', 100) ORDER BY id;
SELECT body->>'m' AS m, attempt FROM courier.receive('ord', 'look', 100) ORDER BY id;
-- the receive queued a2 behind a1 (in flight): nothing to show for key a
SELECT body->>'m' AS m, attempt FROM courier.peek('ord', 'look', 100) ORDER BY id;
-- a1 acked: a2 is the head of key a now, peek and receive agree
SELECT courier.ack('ord', 'look', id) FROM courier.find('ord', key => 'a') WHERE body->>'m' = 'a1' AND grp = 'look';
SELECT body->>'m' AS m, attempt FROM courier.peek('ord', 'look', 100) ORDER BY id;
SELECT body->>'m' AS m, attempt FROM courier.receive('ord', 'look', 100) ORDER BY id;
-- b1 nacked: it comes back at once (as the head of b), peek shows it first
SELECT courier.nack('ord', 'look', id, delay => '0') FROM courier.find('ord', key => 'b') WHERE grp = 'look';
SELECT courier.send('ord', '{"m": "b2"}', keys => ARRAY['b']) > 0 AS sent;
SELECT courier.send('ord', '{"m": "c1"}', keys => ARRAY['c']) > 0 AS sent;
SELECT body->>'m' AS m, attempt FROM courier.peek('ord', 'look', 100);
SELECT body->>'m' AS m, attempt FROM courier.receive('ord', 'look', 100);
-- peek's max_messages counts only what it shows
SELECT courier.send('ord', '{"m": "e1"}', keys => ARRAY['e'], delay => '1 hour') > 0 AS sent;
SELECT courier.send('ord', '{"m": "f1"}', keys => ARRAY['f']) > 0 AS sent;
SELECT body->>'m' AS m FROM courier.peek('ord', 'look', 1);
SELECT body->>'m' AS m FROM courier.receive('ord', 'look', 1);

SELECT courier.drop_topic('ord');
