-- courier.ack_and_receive(topic, grp, ids, receipts, max_messages,
-- visibility_timeout, wait, linger): ack the previous batch and receive the
-- next in one call, so in one transaction: both commit or neither does.
-- Given ids to ack it waits at most a second for a first message (its acks
-- stay uncommitted while it sleeps); with no ids it is receive.
-- (Concurrency: the isolation spec ack_and_receive_races.)
\set VERBOSITY terse
SET client_min_messages = warning;

-- runs a statement and reports its SQLSTATE (or ok) with the message
CREATE FUNCTION pg_temp.try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE stmt;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM, '"[0-9A-Fa-f]{20,}"', '"<receipt>"');
END;
$$;
-- what find says of a message in a group
CREATE FUNCTION pg_temp.state(t text, g text, i bigint) RETURNS text LANGUAGE sql AS $$
	SELECT state FROM courier.find(t, id => i) WHERE grp = g
$$;

SELECT courier.create_topic('aar');
SELECT count(*) FROM courier.send_batch('aar',
	(SELECT array_agg(jsonb_build_object('n', n)) FROM generate_series(1, 8) n));

-- no ids: a plain receive
SELECT id, attempt FROM courier.ack_and_receive('aar', 'default', NULL, max_messages => 2);
-- the previous batch acked, the next one leased, in one call
SELECT id, attempt FROM courier.ack_and_receive('aar', 'default', ARRAY[1, 2], max_messages => 2);
SELECT i, pg_temp.state('aar', 'default', i) FROM generate_series(1, 5) i;
-- an empty array is no ids either
SELECT id FROM courier.ack_and_receive('aar', 'default', '{}', max_messages => 1);

-- the call is one statement: an error after the ack takes the ack back
SELECT pg_temp.try($$SELECT * FROM courier.ack_and_receive('aar', 'default', ARRAY[3, 4], max_messages => 0)$$);
SELECT i, pg_temp.state('aar', 'default', i) FROM generate_series(3, 5) i;
-- and so does a rollback of the transaction: the ack and the new leases go
BEGIN;
SELECT id FROM courier.ack_and_receive('aar', 'default', ARRAY[3, 4, 5], max_messages => 2);
ROLLBACK;
SELECT i, pg_temp.state('aar', 'default', i) FROM generate_series(3, 7) i;

-- given ids it waits at most a second for a first message, whatever wait
-- says (statement_timeout would end a wait of an hour); the empty array
-- waits like receive (for a due message here)
SET statement_timeout = '60s';
SELECT id FROM courier.ack_and_receive('aar', 'default', ARRAY[3, 4, 5], max_messages => 10, wait => '1 hour');
SELECT id FROM courier.ack_and_receive('aar', 'default', ARRAY[6, 7, 8], max_messages => 10, wait => '1 hour');
SELECT courier.send('aar', '{"late": true}', delay => '1 second') AS late \gset
SELECT id = :late AS the_delayed_one
  FROM courier.ack_and_receive('aar', 'default', '{}', max_messages => 10, wait => '1 hour');
RESET statement_timeout;
SELECT i, pg_temp.state('aar', 'default', i) FROM generate_series(3, 8) i;

-- receipts: the current delivery's is acked, a stale one is not (and the
-- receive still runs); wrong receipts are refused before anything changes
SELECT count(*) FROM courier.send_batch('aar', ARRAY['{"r": 1}', '{"r": 2}']::jsonb[]);
CREATE TEMP TABLE got AS SELECT id, receipt FROM courier.receive('aar', 'default', 2, '1 hour');
SELECT count(*) AS got FROM got;
SELECT courier.set_visibility('aar', 'default', (SELECT min(id) FROM got), '0 seconds');
CREATE TEMP TABLE again AS SELECT id, attempt, receipt FROM courier.receive('aar', 'default', 1, '1 hour');
SELECT id = (SELECT min(id) FROM got) AS same_message, attempt FROM again;
SELECT count(*) AS received
  FROM courier.ack_and_receive('aar', 'default', (SELECT array_agg(id ORDER BY id) FROM got),
							   (SELECT array_agg(receipt ORDER BY id) FROM got));
SELECT id - (SELECT min(id) FROM got) AS nth, pg_temp.state('aar', 'default', id) FROM got ORDER BY id;
SELECT count(*) AS received
  FROM courier.ack_and_receive('aar', 'default', ARRAY[(SELECT id FROM again)], ARRAY[(SELECT receipt FROM again)]);
SELECT pg_temp.state('aar', 'default', (SELECT id FROM again));
SELECT pg_temp.try($$SELECT * FROM courier.ack_and_receive('aar', 'default', ARRAY[1], ARRAY['x'])$$);
SELECT pg_temp.try($$SELECT * FROM courier.ack_and_receive('aar', 'default', ARRAY[1, 2], ARRAY[NULL])$$);
SELECT pg_temp.try($$SELECT * FROM courier.ack_and_receive('aar', 'default', NULL, ARRAY['x'])$$);
SELECT pg_temp.try($$SELECT * FROM courier.ack_and_receive('aar', 'default', '{}', ARRAY['x'])$$);
SELECT pg_temp.try($$SELECT * FROM courier.ack_and_receive('aar', 'default', '{{1},{2}}')$$);
SELECT pg_temp.try($$SELECT * FROM courier.ack_and_receive('aar', 'default', ARRAY[1], '{{a},{b}}')$$);
SELECT pg_temp.try($$SELECT * FROM courier.ack_and_receive('aar', 'nope', ARRAY[1])$$);
SELECT pg_temp.try($$SELECT * FROM courier.ack_and_receive('nope', 'default', ARRAY[1])$$);
SELECT pg_temp.try($$SELECT * FROM courier.ack_and_receive('aar', 'default', ARRAY[1], visibility_timeout => NULL)$$);
SELECT pg_temp.try($$SELECT * FROM courier.ack_and_receive('aar', 'default', ARRAY[1], wait => '-1 s')$$);
SELECT pg_temp.try($$SELECT * FROM courier.ack_and_receive('aar', 'default', ARRAY[1], linger => '2 min')$$);
BEGIN READ ONLY;
SELECT pg_temp.try($$SELECT * FROM courier.ack_and_receive('aar', 'default', ARRAY[1])$$);
ROLLBACK;

-- one id given twice: the first one given decides (here its stale receipt,
-- so nothing is acked), however many other ids sort around it (review 46:
-- the sort was not stable from 7 elements up)
SELECT courier.send('aar', '{"dup": 1}') AS dup \gset
SELECT receipt AS dup_r1 FROM courier.receive('aar', 'default', 1, '0') \gset
SELECT attempt FROM courier.receive('aar', 'default', 1, '1 hour');
SELECT courier.ack('aar', 'default', ARRAY[:dup, 1000000001, 1000000002, :dup, 1000000003, 1000000004, 1000000005],
				   ARRAY[:'dup_r1', NULL, NULL, NULL, NULL, NULL, NULL]) AS acked;
SELECT count(*) AS received
  FROM courier.ack_and_receive('aar', 'default', ARRAY[:dup, 1000000001, 1000000002, :dup, 1000000003, 1000000004, 1000000005],
							   ARRAY[:'dup_r1', NULL, NULL, NULL, NULL, NULL, NULL]);
SELECT pg_temp.state('aar', 'default', :dup);
SELECT courier.ack('aar', 'default', ARRAY[:dup, :dup], ARRAY[NULL, :'dup_r1']) AS acked;
SELECT pg_temp.state('aar', 'default', :dup);

-- a lingering call hands out each message once: it stops lingering while
-- the leases it holds have half their time left (review 46: with a lease
-- shorter than linger, the last look redelivered the call's own messages
-- and used up their attempts)
SELECT courier.create_topic('aar_l');
SELECT courier.alter_group('aar_l', 'default', max_attempts => 3);
SELECT courier.send('aar_l', '{"short": 1}') AS short \gset
SELECT id = :short AS the_one, attempt FROM courier.receive('aar_l', 'default', 10, '0', linger => '1 second');
SELECT id = :short AS the_one, attempt FROM courier.receive('aar_l', 'default', 10, '300 ms', linger => '2 seconds');
SELECT pg_sleep(0.4);
SELECT id = :short AS the_one, attempt
  FROM courier.ack_and_receive('aar_l', 'default', ARRAY[-1], NULL, 10, '300 ms', linger => '2 seconds');
SELECT pg_temp.state('aar_l', 'default', :short);
SELECT courier.drop_topic('aar_l');

-- an ordered group: the ack of a key's message makes its successor
-- receivable in the same call
SELECT courier.create_topic('aar_o');
SELECT courier.create_group('aar_o', 'ord', ordered => true);
SELECT courier.send('aar_o', jsonb_build_object('k', n), keys => ARRAY['K']) IS NOT NULL AS sent
  FROM generate_series(1, 3) n;
SELECT body FROM courier.receive('aar_o', 'ord', 10);
CREATE FUNCTION pg_temp.held_of_k() RETURNS bigint[] LANGUAGE sql AS $$
	SELECT array_agg(id) FROM courier.find('aar_o', key => 'K') WHERE grp = 'ord' AND state = 'in_flight'
$$;
SELECT body FROM courier.ack_and_receive('aar_o', 'ord', pg_temp.held_of_k(), max_messages => 10);
SELECT body FROM courier.ack_and_receive('aar_o', 'ord', pg_temp.held_of_k(), max_messages => 10);
SELECT body FROM courier.ack_and_receive('aar_o', 'ord', pg_temp.held_of_k(), max_messages => 10);
SELECT count(*) AS open_of_k FROM courier.find('aar_o', key => 'K') WHERE grp = 'ord' AND state <> 'acked';
SELECT courier.drop_topic('aar_o');

-- privileges: EXECUTE as for receive, and the topic's receive privilege,
-- checked before anything is acked
CREATE ROLE regress_aar_app;
GRANT EXECUTE ON FUNCTION
	courier.ack_and_receive(text, text, bigint[], text[], integer, interval, interval, interval)
	TO regress_aar_app;
SELECT courier.send('aar', '{"p": 1}') AS pid \gset
SELECT count(*) FROM courier.receive('aar', 'default', 10, '1 hour');
SET ROLE regress_aar_app;
SELECT pg_temp.try(format($$SELECT * FROM courier.ack_and_receive('aar', 'default', ARRAY[%s])$$, :pid));
RESET ROLE;
SELECT pg_temp.state('aar', 'default', :pid);
SELECT courier.grant('aar', 'regress_aar_app', 'receive');
SET ROLE regress_aar_app;
SELECT count(*) FROM courier.ack_and_receive('aar', 'default', ARRAY[:pid]);
RESET ROLE;
SELECT pg_temp.state('aar', 'default', :pid);
SELECT has_function_privilege(r, 'courier.ack_and_receive(text, text, bigint[], text[], integer, interval, interval, interval)', 'EXECUTE')
  FROM unnest(ARRAY['courier_consumer', 'courier_admin', 'courier_producer', 'public']) r;

SELECT courier.drop_topic('aar');
DROP OWNED BY regress_aar_app;
DROP ROLE regress_aar_app;
