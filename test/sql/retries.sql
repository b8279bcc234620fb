-- nack, the retry ladder, max_attempts, dead letters, redrive and purge.
\set VERBOSITY terse
SET client_min_messages = warning;

SELECT courier.create_topic('jobs');
SELECT courier.create_group('jobs', 'mailer', max_attempts => 3,
                            retry_backoff => ARRAY['10 seconds', '1 minute']::interval[]);
SELECT courier.create_group('jobs', 'fast', max_attempts => 2, retry_backoff => '{0s}');
SELECT courier.send('jobs', '{"job": 1}') AS j1;

-- a nack without delay follows the group's ladder: attempt 1 waits 10 seconds
SELECT id, attempt FROM courier.receive('jobs', 'mailer', 10);
SELECT courier.nack('jobs', 'mailer', 1, reason => 'smtp down');
SELECT count(*) AS not_yet FROM courier.receive('jobs', 'mailer', 10);
SELECT count(*) AS not_yet FROM courier.peek('jobs', 'mailer', 10);
SELECT grp, backlog, in_flight, retrying FROM courier.groups WHERE grp = 'mailer';
-- each group retries independently: the default group still gets it, attempt 1
SELECT id, attempt FROM courier.receive('jobs', 'default', 10);
SELECT courier.ack('jobs', 'default', 1) AS acked;

-- a nack with an explicit delay of 0 comes back at once, attempt + 1
SELECT courier.send('jobs', '{"job": 2}') AS j2;
SELECT id, attempt FROM courier.receive('jobs', 'mailer', 10);
SELECT courier.nack('jobs', 'mailer', 2, delay => '0');
SELECT id, attempt FROM courier.receive('jobs', 'mailer', 10);
SELECT courier.nack('jobs', 'mailer', 2, delay => '0', reason => 'second try failed');
SELECT id, attempt FROM courier.receive('jobs', 'mailer', 10);
-- the third attempt was the last (max_attempts 3): this nack dead-letters it
SELECT courier.nack('jobs', 'mailer', 2, reason => 'gave up');
SELECT count(*) AS after_death FROM courier.receive('jobs', 'mailer', 10);
SELECT topic, grp, id, attempts, last_error, body, first_delivered_at <= last_delivered_at AS times_ok
  FROM courier.dead_letters;
SELECT grp, dead_letters FROM courier.groups WHERE topic = 'jobs' ORDER BY grp;

-- a lease that simply expires counts as an attempt too ('fast': 2 attempts)
SELECT id, attempt FROM courier.receive('jobs', 'fast', 1, '0');
SELECT id, attempt FROM courier.receive('jobs', 'fast', 1, '0');
-- its second lease ran out: dead-lettered, never delivered a third time
SELECT id, attempt FROM courier.receive('jobs', 'fast', 1, '1 hour');
SELECT grp, id, attempts FROM courier.dead_letters WHERE grp = 'fast';
-- maintenance moves a lease that ran out on its last attempt without any receiver
SELECT courier.set_visibility('jobs', 'fast', 2, '0') AS released;
SELECT id, attempt FROM courier.receive('jobs', 'fast', 1, '0');
SELECT courier.run_maintenance()->'dead_lettered' AS dead_lettered;
SELECT grp, id, attempts FROM courier.dead_letters WHERE grp = 'fast' ORDER BY id;

-- redrive: the dead letter comes back, its attempts counted from 1 again
SELECT courier.redrive('jobs', 'mailer') AS redriven;
SELECT count(*) FROM courier.dead_letters WHERE grp = 'mailer';
SELECT id, attempt, body FROM courier.receive('jobs', 'mailer', 10);
SELECT courier.ack('jobs', 'mailer', 2) AS acked;
-- redrive and purge chosen ids only
SELECT courier.redrive('jobs', 'fast', ARRAY[2]) AS redriven;
SELECT id FROM courier.dead_letters WHERE grp = 'fast';
SELECT id, attempt FROM courier.receive('jobs', 'fast', 10);
SELECT courier.purge_dead_letters('jobs', 'fast', ARRAY[1]) AS purged;
SELECT courier.purge_dead_letters('jobs', 'fast') AS purged_rest;
SELECT count(*) FROM courier.dead_letters;

-- errors: nack of a message you do not hold changes nothing
SELECT courier.nack('jobs', 'mailer', 999);
\echo :LAST_ERROR_SQLSTATE
SELECT courier.nack('jobs', 'mailer', 2);
SELECT courier.nack('jobs', 'fast', 2, delay => '-1 second');
SELECT courier.nack('jobs', 'fast', 2, delay => '10 years');
SELECT courier.nack('jobs', 'fast', NULL);
SELECT courier.redrive('jobs', 'nope');
SELECT courier.purge_dead_letters('nope', 'mailer');
SELECT grp, backlog, in_flight, retrying, dead_letters FROM courier.groups WHERE topic = 'jobs' ORDER BY grp;

-- alter_group changes the ladder and max_attempts
SELECT courier.alter_group('jobs', 'mailer', max_attempts => 5, retry_backoff => '{1s,2s,3s}');
SELECT grp, max_attempts, retry_backoff FROM courier.groups WHERE grp = 'mailer';
SELECT courier.alter_group('jobs', 'mailer', max_attempts => 0);
SELECT courier.alter_group('jobs', 'mailer', retry_backoff => '{}');
-- a step per retry at most: 1000 steps, as many as max_attempts allows, and no more
SELECT courier.alter_group('jobs', 'mailer', retry_backoff => pg_catalog.array_fill('1s'::interval, ARRAY[1000]));
SELECT pg_catalog.cardinality(retry_backoff) AS steps FROM courier.groups WHERE grp = 'mailer';
SELECT courier.alter_group('jobs', 'mailer', retry_backoff => pg_catalog.array_fill('1s'::interval, ARRAY[1001]));
SELECT courier.alter_group('jobs', 'mailer', retry_backoff => '{1s,2s,3s}');
SELECT courier.alter_group('jobs', 'nope', max_attempts => 2);

-- the default ladder is RocketMQ's 16 steps, the last one repeating
SELECT courier.create_group('jobs', 'ladder', max_attempts => 20);
SELECT retry_backoff FROM courier.groups WHERE grp = 'ladder';
SELECT courier.drop_topic('jobs');
