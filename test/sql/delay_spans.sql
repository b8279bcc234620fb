-- Delayed messages met before their time wait in deferred spans of the
-- group's shared position, not in lease rows, and go out as first
-- deliveries (claims) when due (issue 11, W7; src/walk.c "Delayed
-- messages").  Counts, find() and the lease table say the same as before.
\set VERBOSITY terse
SET client_min_messages = warning;

SELECT courier.create_topic('ds');
SELECT courier.create_group('ds', 'odd', filter => 'n <> 3');
SELECT clock_timestamp() + interval '4 seconds' AS due \gset

-- 300 messages due together, 3 due now among them, 1 far in the future
SELECT count(*) AS sent FROM courier.send_batch('ds',
  (SELECT array_agg(jsonb_build_object('n', g)) FROM generate_series(1, 150) g),
  headers => '{"n": 1}', deliver_at => :'due');
SELECT count(*) AS sent FROM courier.send_batch('ds',
  (SELECT array_agg(jsonb_build_object('n', g)) FROM generate_series(1, 3) g),
  headers => '{"n": 2}');
SELECT count(*) AS sent FROM courier.send_batch('ds',
  (SELECT array_agg(jsonb_build_object('n', g)) FROM generate_series(151, 300) g),
  headers => '{"n": 3}', deliver_at => :'due');
SELECT courier.send('ds', '{"late": true}', headers => '{"n": 5}', delay => '1 day') AS sent_late;

-- before their time: the due ones go out, the rest wait without a row
SELECT count(*) AS received_now, min(attempt), max(attempt)
  FROM courier.receive('ds', 'default', 1000, '1 hour');
SELECT count(*) AS lease_rows FROM courier.lease;
-- one span for the 300 (the 3 claimed ids inside it are jumped over), one
-- for the late one
SELECT rechecks ~ '^\[1,303\]@[^ ]+ [^ ]+ \[304,304\]@' AS deferred_spans, holes
  FROM courier._group_position((SELECT group_id FROM courier.group_meta WHERE name = 'default'));
SELECT grp, backlog, backlog_exact, delayed, in_flight FROM courier.groups
 WHERE topic = 'ds' ORDER BY grp;
SELECT DISTINCT f.state FROM courier.find('ds', id => 10) f WHERE f.grp = 'default';
-- the filtered group defers only what matches it
SELECT count(*) AS received_now FROM courier.receive('ds', 'odd', 1000, '1 hour');
SELECT grp, backlog, delayed FROM courier.groups WHERE topic = 'ds' AND grp = 'odd';

-- maintenance never folds the claims past a deferred id
SELECT courier.ack('ds', 'default', ARRAY[151, 152, 153]::bigint[]) AS acked;
SELECT count(*) >= 0 AS maintained FROM courier.run_maintenance();
SELECT low_water < 1 AS low_water_below_deferred FROM courier.group_meta WHERE name = 'default';

-- a receive that rolls back after deferring loses nothing
BEGIN;
SELECT count(*) AS received FROM courier.receive('ds', 'default', 1000, '1 hour');
ROLLBACK;

-- peek lists nothing before the time
SELECT count(*) AS peeked FROM courier.peek('ds', 'default', 100);

-- when due: every one goes out once, at attempt 1, in claims
SELECT true AS waited FROM pg_sleep_until(:'due');
SELECT count(*) AS peeked FROM courier.peek('ds', 'default', 10);
CREATE TEMP TABLE got AS SELECT id, attempt FROM courier.receive('ds', 'default', 1000, '1 hour');
SELECT count(*) AS received, count(DISTINCT id) AS distinct_ids, min(id), max(id), max(attempt)
  FROM got;
SELECT count(*) AS lease_rows FROM courier.lease;
SELECT count(*) AS more FROM courier.receive('ds', 'default', 1000, '1 hour');
SELECT courier.ack('ds', 'default', array_agg(id)) AS acked FROM got;
SELECT grp, backlog, delayed, in_flight FROM courier.groups WHERE topic = 'ds' ORDER BY grp;
SELECT count(*) AS received FROM courier.receive('ds', 'odd', 1000, '1 hour');

-- courier.delay_spans = 0: each delayed message waits in a lease row
SET courier.delay_spans = 0;
SELECT courier.send('ds', '{"x": 1}', delay => '1 hour') AS sent;
SELECT count(*) AS received FROM courier.receive('ds', 'default', 10, '1 hour');
SELECT state, attempt FROM courier.lease l JOIN courier.group_meta g USING (group_id)
 WHERE g.name = 'default' ORDER BY msg_id;
RESET courier.delay_spans;

-- room: a group keeps at most courier.delay_spans spans; beyond, lease rows
SELECT courier.create_topic('ds2');
SET courier.delay_spans = 2;
SELECT courier.send('ds2', '{"k": 1}', delay => '1 hour') AS sent;
SELECT courier.send('ds2', '{"k": 2}', delay => '2 hours') AS sent;
SELECT courier.send('ds2', '{"k": 3}', delay => '3 hours') AS sent;
SELECT count(*) AS received FROM courier.receive('ds2', 'default', 10, '1 hour');
SELECT regexp_count(rechecks, '@') AS spans
  FROM courier._group_position((SELECT group_id FROM courier.group_meta g JOIN courier.topic_meta t
                                USING (topic_id) WHERE t.name = 'ds2' AND g.name = 'default'));
SELECT msg_id, state FROM courier.lease l JOIN courier.group_meta g USING (group_id)
  JOIN courier.topic_meta t USING (topic_id) WHERE t.name = 'ds2' ORDER BY msg_id;
SELECT grp, delayed FROM courier.groups WHERE topic = 'ds2';
RESET courier.delay_spans;

-- an invalidated position (seek) finds the deferred messages again
SELECT courier.seek('ds2', 'default', 'infinity') >= 0 AS sought;
SELECT courier.seek('ds2', 'default', '-infinity') >= 0 AS sought_back;
SELECT count(*) AS received FROM courier.receive('ds2', 'default', 10, '1 hour');
SELECT grp, delayed FROM courier.groups WHERE topic = 'ds2';

-- seek counts the deferred messages it drops like delayed lease rows: the
-- in-flight one and the two delayed (before, it missed the delayed ones)
SELECT courier.create_topic('ds3');
SELECT courier.send('ds3', '{"d": 1}', delay => '1 hour') AS sent;
SELECT courier.send('ds3', '{"d": 0}') AS sent;
SELECT courier.send('ds3', '{"d": 1}', delay => '1 hour') AS sent;
SELECT count(*) AS received FROM courier.receive('ds3', 'default', 10, '1 hour');
SELECT courier.seek('ds3', 'default', 'infinity') AS affected;
SELECT courier.seek('ds3', 'default', '-infinity') AS affected;
SELECT count(*) AS received FROM courier.receive('ds3', 'default', 10, '1 hour');
SELECT courier.seek('ds3', 'default', '-infinity') AS affected;

SELECT courier.drop_topic('ds');
SELECT courier.drop_topic('ds2');
SELECT courier.drop_topic('ds3');
