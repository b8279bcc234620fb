-- Delayed messages and waiting receives.
\set VERBOSITY terse
SET client_min_messages = warning;

SELECT courier.create_topic('later', retention => '1 day');
SELECT courier.create_group('later', 'other');

-- delay and deliver_at: not receivable before their time
SELECT courier.send('later', '{"remind": 1}', delay => '15 minutes') AS d1;
SELECT courier.send('later', '{"report": 2}', deliver_at => now() + interval '2 hours') AS d2;
SELECT courier.send('later', '{"now": 3}') AS d3;
SELECT id, body FROM courier.receive('later', 'default', 10);
SELECT id FROM courier.receive('later', 'other', 10);
SELECT grp, backlog, delayed, in_flight FROM courier.groups WHERE topic = 'later' ORDER BY grp;
-- a deliver_at in the past is simply due
SELECT courier.send('later', '{"past": 4}', deliver_at => now() - interval '1 hour') AS d4;
SELECT id, body FROM courier.receive('later', 'default', 10);

-- send_batch takes a delay too
SELECT count(*) FROM courier.send_batch('later', ARRAY['{"b": 1}', '{"b": 2}']::jsonb[], delay => '1 hour');
SELECT grp, delayed FROM courier.groups WHERE topic = 'later' ORDER BY grp;

-- a short delay: a waiting receive returns as soon as it is due (no polling by us)
SELECT courier.send('later', '{"soon": 5}', delay => '300 milliseconds') AS d5 \gset
SELECT count(*) AS before_due FROM courier.receive('later', 'default', 10);
SELECT id = :d5 AS got_it_when_due, clock_timestamp() - now() < interval '20 seconds' AS well_before_the_wait_ended
  FROM courier.receive('later', 'default', 10, wait => '30 seconds');
-- a waiting receive with nothing coming returns empty at the end of the wait
SELECT count(*) AS nothing FROM courier.receive('later', 'default', 10, wait => '200 milliseconds');
-- a lease that runs out wakes a waiting receive too
SELECT id = :d5 AS got_it FROM courier.receive('later', 'other', 10, '200 milliseconds') WHERE id = :d5;
SELECT id = :d5 AS back_again, attempt FROM courier.receive('later', 'other', 10, wait => '30 seconds') WHERE id = :d5;

-- bad input changes nothing
SELECT courier.send('later', '{}', delay => '1 hour', deliver_at => now());
SELECT courier.send('later', '{}', delay => '-1 second');
SELECT courier.send('later', '{}', delay => '2 days');
\echo :LAST_ERROR_SQLSTATE
SELECT courier.send('later', '{}', deliver_at => now() + interval '3 days');
SELECT courier.send('later', '{}', deliver_at => 'infinity');
SELECT courier.send_batch('later', ARRAY['{}']::jsonb[], delay => '-1 hour');
SELECT grp, backlog, delayed FROM courier.groups WHERE topic = 'later' ORDER BY grp;

SELECT courier.drop_topic('later');
