-- The backend's catalog cache: a reload keeps unchanged objects, so a
-- transaction that creates many groups allocates O(N) memory, not O(N^2)
-- (review 54 measured 550 MB for 1,000 groups); objects changed in the same
-- transaction are seen at once; retry ladders convert exactly as
-- date_part('epoch', step) * 1000000 would.
\set VERBOSITY terse
SET client_min_messages = warning;

SELECT courier.create_topic('cache');
SELECT courier.send('cache', '{"n": 1}') AS sent;

BEGIN;
SELECT count(courier.create_group('cache', 'g' || i)) AS created
  FROM generate_series(1, 600) i;
-- every group is there and usable
SELECT count(*) AS groups FROM courier.groups WHERE topic = 'cache';
SELECT count(*) AS received
  FROM generate_series(1, 600) i, courier.receive('cache', 'g' || i, 10);
-- the old cache grew to about 200 MB here; the new one stays small
SELECT sum(total_bytes) < 64 * 1024 * 1024 AS memory_bounded
  FROM pg_backend_memory_contexts;
ROLLBACK;
SELECT count(*) AS groups_after_rollback FROM courier.groups WHERE topic = 'cache';

-- changes within one transaction, after the cache was loaded
SELECT courier.create_group('cache', 'picky', 'latest', filter => 'a = 1');
SELECT courier.send('cache', '{}', headers => '{"a": 1}') AS a1,
       courier.send('cache', '{}', headers => '{"a": 2}') AS a2;
BEGIN;
SELECT headers FROM courier.peek('cache', 'picky');
-- the same group id with a new filter
SELECT courier.alter_group('cache', 'picky', filter => 'a = 2');
SELECT headers FROM courier.receive('cache', 'picky', 10);
-- dropped and created again under the same name: a new id, a new filter
SELECT courier.drop_group('cache', 'picky');
SELECT courier.create_group('cache', 'picky', 'earliest', filter => 'a = 1');
SELECT headers FROM courier.receive('cache', 'picky', 10);
COMMIT;
-- and in the next transaction
SELECT courier.alter_group('cache', 'picky', filter => 'a = 2');
SELECT courier.send('cache', '{}', headers => '{"a": 2}') AS a3;
SELECT id, headers FROM courier.receive('cache', 'picky', 10);

-- Many changes in one transaction: after the first, the session re-reads
-- only what each call changed (TAP 065 counts the reloads).  A savepoint
-- rolled back in the middle undoes its creates, drops and changes for this
-- session's cache too; the survivors work.
SELECT courier.send('cache', '{}', headers => '{"a": 3}') AS a4;
BEGIN;
SELECT count(courier.create_group('cache', 'a' || i)) AS created_a
  FROM generate_series(1, 100) i;
SAVEPOINT s;
SELECT count(courier.create_group('cache', 'b' || i, filter => 'a = 3')) AS created_b
  FROM generate_series(1, 100) i;
SELECT courier.drop_group('cache', 'a1');
SELECT courier.alter_group('cache', 'a2', filter => 'a = 3');
SELECT count(*) AS b_received FROM generate_series(1, 100) i, courier.receive('cache', 'b' || i, 10);
SELECT count(*) AS a2_received FROM courier.peek('cache', 'a2', 10);
ROLLBACK TO SAVEPOINT s;
SELECT count(courier.create_group('cache', 'c' || i)) AS created_c
  FROM generate_series(1, 100) i;
SAVEPOINT s2;
SELECT count(*) FROM courier.receive('cache', 'b50');
ROLLBACK TO SAVEPOINT s2;
-- a1 is back, a2 has no filter again
SELECT count(*) AS a1_received FROM courier.receive('cache', 'a1', 10, '1 hour');
SELECT count(*) AS a2_peeked FROM courier.peek('cache', 'a2', 10);
SELECT count(*) AS c_received FROM generate_series(1, 100) i, courier.receive('cache', 'c' || i, 10);
-- drops in one transaction, a savepoint of them rolled back
SAVEPOINT s3;
SELECT count(courier.drop_group('cache', 'a' || i)) AS dropped FROM generate_series(1, 50) i;
ROLLBACK TO SAVEPOINT s3;
SELECT count(courier.drop_group('cache', 'a' || i)) AS dropped FROM generate_series(51, 100) i;
SAVEPOINT s4;
SELECT count(*) FROM courier.peek('cache', 'a60');
ROLLBACK TO SAVEPOINT s4;
SELECT count(*) AS a_peeked FROM generate_series(1, 50) i, courier.peek('cache', 'a' || i, 10);
-- topics too: created, one rolled back, sent to and received from
SELECT count(courier.create_topic('many' || i)) AS topics FROM generate_series(1, 5) i;
SAVEPOINT s5;
SELECT courier.drop_topic('many1'), courier.create_topic('many6');
ROLLBACK TO SAVEPOINT s5;
SELECT count(courier.send('many' || i, '{}')) AS sent FROM generate_series(1, 5) i;
SAVEPOINT s6;
SELECT courier.send('many6', '{}');
ROLLBACK TO SAVEPOINT s6;
SELECT count(courier.drop_topic('many' || i)) AS topics_dropped FROM generate_series(1, 5) i;
COMMIT;
-- and after the commit
SELECT count(*) FILTER (WHERE grp LIKE 'a%') AS a, count(*) FILTER (WHERE grp LIKE 'b%') AS b,
       count(*) FILTER (WHERE grp LIKE 'c%') AS c
  FROM courier.groups WHERE topic = 'cache';
SELECT count(*) AS topics_left FROM courier.topics WHERE topic LIKE 'many%';
SELECT count(*) AS a_peeked FROM generate_series(1, 50) i, courier.peek('cache', 'a' || i, 10);
SELECT count(courier.drop_group('cache', g)) AS cleaned
  FROM (SELECT grp FROM courier.groups WHERE topic = 'cache' AND grp ~ '^[ac][0-9]+$') x(g);

-- the retry ladder: months count 30 days and years 365.25, as in date_part
SELECT courier.create_group('cache', 'l1', 'latest', retry_backoff => '{"1 mon 1 day"}'),
       courier.create_group('cache', 'l2', 'latest', retry_backoff => '{"1 year"}'),
       courier.create_group('cache', 'l3', 'latest', retry_backoff => '{"-1 day 25 hours"}');
SELECT courier.send('cache', '{"n": 2}') AS sent \gset
BEGIN;
SELECT count(*) AS received,
       count(courier.nack('cache', g, id)) AS nacked
  FROM unnest(ARRAY['l1', 'l2', 'l3']) g, courier.receive('cache', g, 1);
SELECT g.name, round(extract(epoch FROM l.visible_at - now())) AS step_seconds,
       round(extract(epoch FROM l.visible_at - now())) =
         round(date_part('epoch', g.retry_backoff[1])) AS as_sql
  FROM courier.lease l JOIN courier.group_meta g USING (group_id)
 WHERE l.msg_id = :sent ORDER BY g.name;
ROLLBACK;
SELECT courier.drop_topic('cache');
