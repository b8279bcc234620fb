-- pg_courier on call: what is stuck, why, and how to get it moving.
--
--   psql -X -f examples/oncall.sql                          look (changes nothing)
--   psql -X -v topic=orders -v grp=billing -f examples/oncall.sql
--   psql -X -v topic=orders -v grp=billing -v key=order-42 -f ...   one message's story
--   psql -X -v topic=orders -v grp=billing -v redrive=1 -f ...      dead letters back
--   psql -X -v topic=orders -v grp=billing -v since='2024-05-01 12:00' -f ...   replay
--
-- Each query also works pasted on its own (replace :'topic' and :'grp').
\set ON_ERROR_STOP 1
\pset footer off
\pset null '-'
\if :{?stuck_after} \else \set stuck_after '5 minutes' \endif

\echo '== 1. Every group: backlog, work in hand, retries, dead letters, lag'
SELECT topic, grp, backlog, in_flight, retrying, delayed, dead_letters, dropped,
       date_trunc('second', undelivered_age) AS lag, date_trunc('second', unacked_age) AS oldest_lease,
       paused, date_trunc('second', now() - last_receive) AS since_receive,
       date_trunc('second', now() - last_ack) AS since_ack
  FROM courier.groups ORDER BY undelivered_age DESC NULLS LAST, topic, grp;

\echo '== 2. Stuck: paused, lagging more than' :'stuck_after' ', or holding leases that long'
SELECT topic, grp,
       CASE WHEN paused THEN 'paused (courier.resume_group)'
            WHEN undelivered_age > :'stuck_after'::interval AND coalesce(now() - last_receive > :'stuck_after'::interval, true)
                 THEN 'nobody receives'
            WHEN undelivered_age > :'stuck_after'::interval THEN 'consumers too slow'
            ELSE 'leases held long: slow or hung consumers' END AS looks_like,
       backlog, in_flight, date_trunc('second', undelivered_age) AS lag,
       date_trunc('second', unacked_age) AS oldest_lease
  FROM courier.groups
 WHERE paused OR undelivered_age > :'stuck_after'::interval OR unacked_age > :'stuck_after'::interval
 ORDER BY topic, grp;

\echo '== 3. Who is receiving right now (waiting receives sleep with wait_event_type Extension)'
SELECT pid, usename, application_name, client_addr, state, wait_event_type,
       date_trunc('second', now() - query_start) AS for, left(query, 60) AS query
  FROM pg_stat_activity
 WHERE query ILIKE '%courier.receive%' AND pid <> pg_backend_pid()
 ORDER BY query_start;

\echo '== 4. The background worker: last round, and its error if it had one'
SELECT date_trunc('second', now() - last_started) AS started_ago,
       date_trunc('second', now() - last_finished) AS finished_ago, last_error
  FROM courier._maintenance_status();

\echo '== 5. Why: dead letters by reason (last_error is what the consumer passed to nack)'
SELECT topic, grp, last_error, count(*) AS messages, max(attempts) AS attempts,
       date_trunc('second', min(died_at)) AS first_died, date_trunc('second', max(died_at)) AS last_died
  FROM courier.dead_letters GROUP BY topic, grp, last_error ORDER BY topic, grp, messages DESC;

\if :{?topic}
\if :{?grp}
\echo '== 6. The newest dead letters of' :'topic' '/' :'grp'
SELECT id, attempts, date_trunc('second', died_at) AS died_at, last_error, tag, keys, left(body::text, 60) AS body
  FROM courier.dead_letters WHERE topic = :'topic' AND grp = :'grp' ORDER BY died_at DESC LIMIT 20;
\echo '   and the next messages the group would get (peek leases nothing)'
SELECT id, attempt, tag, keys, date_trunc('second', sent_at) AS sent_at, left(body::text, 60) AS body
  FROM courier.peek(:'topic', :'grp', 10);
\endif
\if :{?key}
\echo '== 7. Where is each message of key' :'key' 'in every group of' :'topic'
SELECT id, grp, state, attempt, lease_until, last_error, tag, date_trunc('second', sent_at) AS sent_at
  FROM courier.find(:'topic', key => :'key') ORDER BY id, grp;
\endif
\endif

-- Actions: only when asked for, and only for one topic and group.
\if :{?redrive}
\echo '== Redrive: every dead letter of' :'topic' '/' :'grp' 'back to the group, attempts from 1'
\echo '   (one message only: SELECT courier.redrive(topic, grp, ARRAY[id]))'
SELECT courier.redrive(:'topic', :'grp') AS redriven;
\endif
\if :{?since}
\echo '== Replay: the group starts again at the first message sent at or after' :'since'
\echo '   (its messages in flight and retries are dropped; -infinity replays all retained)'
SELECT courier.seek(:'topic', :'grp', :'since'::timestamptz) AS affected;
SELECT topic, grp, backlog, in_flight, retrying FROM courier.groups WHERE topic = :'topic' AND grp = :'grp';
\endif
-- Also at hand:
--   SELECT courier.pause_group(topic, grp);   -- stop delivery, keep the backlog
--   SELECT courier.resume_group(topic, grp);
--   SELECT courier.set_visibility(topic, grp, id, '0');   -- release a hung lease now
--   SELECT courier.purge_dead_letters(topic, grp, ARRAY[id]);   -- give up on some
