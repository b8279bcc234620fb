-- Issue 7 section 7: receipts.  receive returns a receipt naming each
-- delivery; ack, nack and set_visibility accept it (receipt => text) and
-- act only if it still names the current delivery.  Without a receipt they
-- behave as before (operator override).  A malformed receipt, or the
-- receipt of another message, is refused with invalid_parameter_value.
-- (The stale-holder races are in the isolation spec receipts.)
\set VERBOSITY terse
SET client_min_messages = warning;

-- runs a statement and reports its SQLSTATE (or ok) with the message
-- (receipts in it, which contain a time, masked)
CREATE FUNCTION pg_temp.try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE stmt;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM, '"[0-9A-Fa-f]{20,}"', '"<receipt>"');
END;
$$;

SELECT courier.create_topic('rcpt');
SELECT count(*) FROM (SELECT courier.send('rcpt', jsonb_build_object('n', n)) FROM generate_series(1, 6) n) s;

-- the column exists, is text, and names one delivery
SELECT a.attname, format_type(a.atttypid, a.atttypmod)
  FROM pg_attribute a WHERE a.attrelid = 'courier.message'::regclass AND a.attname = 'receipt';
CREATE TEMP TABLE got AS
	SELECT id, attempt, receipt FROM courier.receive('rcpt', 'default', 6, '1 hour');
SELECT id, attempt, receipt IS NOT NULL AS has_receipt FROM got ORDER BY id;
SELECT count(DISTINCT receipt) AS distinct_receipts FROM got;
-- peek leases nothing: no receipt
SELECT courier.send('rcpt', '{"n": 7}') AS seven;
SELECT id, receipt IS NULL AS no_receipt FROM courier.peek('rcpt', 'default', 10);

-- the current holder's receipt works, once
SELECT courier.ack('rcpt', 'default', 1, receipt => (SELECT receipt FROM got WHERE id = 1)) AS acked;
SELECT courier.ack('rcpt', 'default', 1, receipt => (SELECT receipt FROM got WHERE id = 1)) AS acked_again;
SELECT courier.set_visibility('rcpt', 'default', 2, '2 hours',
							  receipt => (SELECT receipt FROM got WHERE id = 2)) AS extended;
SELECT state, attempt, lease_until > now() + interval '90 minutes' AS extended
  FROM courier.find('rcpt', id => 2);
-- after set_visibility the delivery is the same: the receipt still works
SELECT courier.nack('rcpt', 'default', 2, delay => '1 hour',
					receipt => (SELECT receipt FROM got WHERE id = 2)) AS nacked;
SELECT state, attempt FROM courier.find('rcpt', id => 2);
-- not in flight any more: with a receipt that is false, without one an error
SELECT courier.nack('rcpt', 'default', 2, receipt => (SELECT receipt FROM got WHERE id = 2)) AS nacked_again;
SELECT courier.set_visibility('rcpt', 'default', 2, '0', receipt => (SELECT receipt FROM got WHERE id = 2)) AS released;
SELECT pg_temp.try($$ SELECT courier.nack('rcpt', 'default', 2) $$);
-- arrays: one receipt per id, NULL elements mean no receipt
SELECT courier.ack('rcpt', 'default', ARRAY[3, 4],
				   (SELECT array_agg(receipt ORDER BY id) FROM got WHERE id IN (3, 4))) AS acked;
SELECT courier.ack('rcpt', 'default', ARRAY[5, 6], ARRAY[NULL, NULL]::text[]) AS acked_without;
SELECT courier.ack('rcpt', 'default', ARRAY[3, 4, 5, 6],
				   (SELECT array_agg(receipt ORDER BY id) FROM got WHERE id BETWEEN 3 AND 6)) AS acked_again;
-- a NULL receipt is no receipt: the override
SELECT id FROM courier.receive('rcpt', 'default', 1, '1 hour');
SELECT courier.ack('rcpt', 'default', 7, receipt => NULL) AS acked;

-- malformed receipts and receipts of another message: 22023, nothing changes
SELECT courier.send('rcpt', '{"n": 8}') AS eight;
CREATE TEMP TABLE got8 AS SELECT id, receipt FROM courier.receive('rcpt', 'default', 1, '1 hour');
SELECT id FROM got8;
SELECT pg_temp.try($$ SELECT courier.ack('rcpt', 'default', 8, receipt => 'nonsense') $$);
SELECT pg_temp.try($$ SELECT courier.ack('rcpt', 'default', 8, receipt => '') $$);
SELECT pg_temp.try(format($$ SELECT courier.ack('rcpt', 'default', 8, receipt => %L) $$,
						  overlay((SELECT receipt FROM got8) placing 'F' from 1 for 1)));
SELECT pg_temp.try(format($$ SELECT courier.ack('rcpt', 'default', 8, receipt => %L) $$,
						  (SELECT receipt FROM got8) || '0'));
SELECT pg_temp.try(format($$ SELECT courier.ack('rcpt', 'default', 8, receipt => %L) $$,
						  (SELECT receipt FROM got WHERE id = 1)));
SELECT pg_temp.try(format($$ SELECT courier.nack('rcpt', 'default', 8, receipt => %L) $$,
						  (SELECT receipt FROM got WHERE id = 1)));
SELECT pg_temp.try(format($$ SELECT courier.set_visibility('rcpt', 'default', 8, '0', receipt => %L) $$,
						  (SELECT receipt FROM got WHERE id = 1)));
SELECT pg_temp.try($$ SELECT courier.nack('rcpt', 'default', 8, receipt => 'zz') $$);
SELECT pg_temp.try($$ SELECT courier.set_visibility('rcpt', 'default', 8, '0', receipt => 'zz') $$);
SELECT pg_temp.try($$ SELECT courier.ack('rcpt', 'default', ARRAY[8], ARRAY['zz']) $$);
SELECT pg_temp.try(format($$ SELECT courier.ack('rcpt', 'default', ARRAY[8], ARRAY[%L]) $$,
						  (SELECT receipt FROM got WHERE id = 1)));
SELECT pg_temp.try($$ SELECT courier.ack('rcpt', 'default', ARRAY[8], ARRAY[NULL, NULL]::text[]) $$);
SELECT state, attempt FROM courier.find('rcpt', id => 8);
SELECT courier.ack('rcpt', 'default', 8, receipt => (SELECT receipt FROM got8)) AS acked;

-- a receipt names a delivery in one group only
SELECT courier.create_group('rcpt', 'other');
SELECT courier.send('rcpt', '{"n": 9}') AS nine;
CREATE TEMP TABLE got9 AS
	SELECT 'default' AS grp, id, receipt FROM courier.receive('rcpt', 'default', 1, '1 hour');
INSERT INTO got9 SELECT 'other', id, receipt FROM courier.receive('rcpt', 'other', 10, '1 hour') WHERE id = 9;
SELECT grp, id FROM got9 ORDER BY grp;
SELECT courier.ack('rcpt', 'other', 9, receipt => (SELECT receipt FROM got9 WHERE grp = 'default')) AS wrong_group;
SELECT courier.ack('rcpt', 'other', 9, receipt => (SELECT receipt FROM got9 WHERE grp = 'other')) AS acked;

SELECT courier.drop_topic('rcpt');
