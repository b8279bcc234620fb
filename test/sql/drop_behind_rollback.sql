-- Review of 407d4a8 (helper): a transaction that ran run_maintenance()
-- twice, where the first dropped messages past max_retention (drop_behind
-- moves the group's low_water in that transaction) and the second compacted
-- on top of that uncommitted low_water, left the fold in shared memory when
-- it rolled back: message 1, committed and never received, was never handed
-- out.  The same with a peek instead of the second round (the peek rebuilt
-- the shared position from the transaction's own low_water and left it
-- valid), which predates 407d4a8.  drop_behind now forgets the group's
-- position when its transaction ends, however it ends, and such a
-- transaction cannot be prepared.
\set VERBOSITY terse
CREATE FUNCTION pg_temp.setup() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	PERFORM courier.create_topic('dbr', retention => '1 second', max_retention => '2 seconds');
END $$;

-- id 1 is sent by a transaction that stays prepared while 2-4 are received,
-- so the walk claims 2-4 and leaves 1 as a hole
SELECT pg_temp.setup();
BEGIN;
SELECT courier.send('dbr', '{"m": 1}') AS id1;
PREPARE TRANSACTION 'dbr_p1';
SELECT courier.send('dbr', '{"m": 2}') AS id2, courier.send('dbr', '{"m": 3}') AS id3;
SELECT pg_sleep(1.1);
SELECT courier.run_maintenance()->'segments_created' AS created;
SELECT courier.send('dbr', '{"m": 4}') AS id4;
SELECT string_agg(id::text, ',' ORDER BY id) AS got FROM courier.receive('dbr', 'default', 10, '1 hour');
SELECT courier.ack('dbr', 'default', 4);
COMMIT PREPARED 'dbr_p1';
SELECT pg_sleep(2.1);
-- drop_behind, then a compaction over its uncommitted low_water; rolled back
BEGIN;
SELECT courier.run_maintenance()->'messages_dropped' AS dropped;
SELECT courier.run_maintenance() IS NOT NULL AS ran_again;
ROLLBACK;
SELECT string_agg(body->>'m', ',' ORDER BY id) AS got_after FROM courier.receive('dbr', 'default', 10, '1 hour');
SELECT courier.drop_topic('dbr');

-- the same with a peek (which rebuilds the position) instead of the second round
SELECT pg_temp.setup();
BEGIN;
SELECT courier.send('dbr', '{"m": 1}') AS id1;
PREPARE TRANSACTION 'dbr_p2';
SELECT courier.send('dbr', '{"m": 2}') AS id2, courier.send('dbr', '{"m": 3}') AS id3;
SELECT pg_sleep(1.1);
SELECT courier.run_maintenance()->'segments_created' AS created;
SELECT courier.send('dbr', '{"m": 4}') AS id4;
SELECT string_agg(id::text, ',' ORDER BY id) AS got FROM courier.receive('dbr', 'default', 10, '1 hour');
SELECT courier.ack('dbr', 'default', 4);
COMMIT PREPARED 'dbr_p2';
SELECT pg_sleep(2.1);
BEGIN;
SELECT courier.run_maintenance() IS NOT NULL AS ran;
SELECT count(*) AS peeked FROM courier.peek('dbr', 'default', 10);
ROLLBACK;
SELECT string_agg(body->>'m', ',' ORDER BY id) AS got_after FROM courier.receive('dbr', 'default', 10, '1 hour');
SELECT courier.drop_topic('dbr');

-- a transaction whose maintenance dropped messages cannot be prepared
SELECT pg_temp.setup();
BEGIN;
SELECT courier.send('dbr', '{"m": 1}') AS id1;
PREPARE TRANSACTION 'dbr_p3';
SELECT courier.send('dbr', '{"m": 2}') AS id2;
SELECT pg_sleep(1.1);
SELECT courier.run_maintenance()->'segments_created' AS created;
SELECT courier.send('dbr', '{"m": 3}') AS id3;
SELECT string_agg(id::text, ',' ORDER BY id) AS got FROM courier.receive('dbr', 'default', 10, '1 hour');
COMMIT PREPARED 'dbr_p3';
SELECT pg_sleep(2.1);
BEGIN;
SELECT courier.run_maintenance() IS NOT NULL AS ran;
PREPARE TRANSACTION 'dbr_p4';
SELECT count(*) AS prepared FROM pg_prepared_xacts WHERE gid LIKE 'dbr%';
ROLLBACK PREPARED 'dbr_p4';	-- fails: nothing was prepared (else it keeps the suite from hanging)
SELECT courier.drop_topic('dbr');
