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
