-- Issue 13, defect 13: redrive computed the ordering key as keys[1], the C
-- code as the first element.  For an array whose lower bound is not 1
-- ('[0:1]={A,B}', easy to build in PL/pgSQL) a redriven dead letter got key
-- B and was delivered while key A's head was in flight.  One definition
-- of the ordering key everywhere: the first element.
SELECT courier.create_topic('rk');
SELECT courier.create_group('rk', 'fifo', ordered => true, max_attempts => 1);

-- the message's keys keep their lower bound
SELECT courier.send('rk', '{"m": "m1"}', keys => '[0:1]={A,B}'::text[]) AS m1 \gset
SELECT keys, array_lower(keys, 1) AS lower FROM courier.peek('rk', 'fifo');
-- also from PL/pgSQL, the way the issue found it
DO $$
DECLARE
	k text[];
BEGIN
	k[0] := 'A';
	k[1] := 'B';
	PERFORM courier.send('rk', '{"m": "m2"}', keys => k);
END;
$$;

-- m1 is the head of key A: delivered, nacked on its last attempt: dead
SELECT body->>'m' AS m, keys FROM courier.receive('rk', 'fifo', 10);
SELECT courier.nack('rk', 'fifo', :m1, reason => 'poison');
SELECT courier.run_maintenance()->'dead_lettered' AS dead_lettered;
SELECT id = :m1 AS is_m1, keys, last_error FROM courier.dead_letters WHERE topic = 'rk';
-- m2 is now the head of key A, and in flight
SELECT body->>'m' AS m, keys FROM courier.receive('rk', 'fifo', 10, '1 hour');

-- m1 comes back: key A, not B, so not while m2 is in flight
SELECT courier.redrive('rk', 'fifo');
SELECT body->>'m' AS m FROM courier.receive('rk', 'fifo', 10);
SELECT body->>'m' AS m FROM courier.peek('rk', 'fifo', 10);
SELECT body->>'m' AS m, grp, state FROM courier.find('rk', key => 'A') ORDER BY id;
-- a message with key B is not held up by it
SELECT courier.send('rk', '{"m": "b"}', keys => ARRAY['B']) > 0 AS sent;
SELECT body->>'m' AS m FROM courier.receive('rk', 'fifo', 10);
-- once m2 is acked, m1 is delivered
SELECT courier.ack('rk', 'fifo', id) FROM courier.find('rk', key => 'A') WHERE body->>'m' = 'm2' AND grp = 'fifo';
SELECT body->>'m' AS m, keys, attempt FROM courier.receive('rk', 'fifo', 10);

-- courier._ordering_key, the one definition, for arrays of any lower bound
SELECT k, courier._ordering_key(k) FROM (VALUES
	('{A,B}'::text[]), ('[0:1]={A,B}'), ('[5:6]={X,Y}'), ('[-3:-2]={P,Q}'), ('{}'), ('{NULL,B}')) v (k);

SELECT courier.drop_topic('rk');
