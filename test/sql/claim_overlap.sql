-- Claims of a group never overlap (src/walk.c, claim_overlap_check): a claim
-- written behind the walk's back over ids the group has not reached yet
-- (what a logic error would leave) makes the next walk that meets it stop
-- with SQLSTATE 23P01 and hand out nothing, instead of writing a second
-- claim over the same ids.
\set VERBOSITY terse
SET client_min_messages = warning;
SELECT courier.create_topic('ov');
SELECT courier.send('ov', '{"n": 1}');
SELECT id FROM courier.receive('ov', 'default', 1, '1 hour');	-- the position is in shared memory
INSERT INTO courier.claim (group_id, lo, hi, lease_until, delivered_at, pending)
  SELECT group_id, 3, 4, now() + interval '1 hour', now(), '{3}'
  FROM courier.group_meta JOIN courier.topic_meta USING (topic_id) WHERE topic_meta.name = 'ov';
SELECT count(*) AS sent FROM courier.send_batch('ov', ARRAY['{"n": 2}', '{"n": 3}', '{"n": 4}']::jsonb[]);
\set ON_ERROR_STOP 0
SELECT id FROM courier.receive('ov', 'default', 10, '1 hour');
\set ON_ERROR_STOP 1
SELECT lo, hi, pending FROM courier.claim c JOIN courier.group_meta g USING (group_id)
  JOIN courier.topic_meta t USING (topic_id) WHERE t.name = 'ov' ORDER BY lo;
-- a claim in the way that the receiving transaction wrote itself (not yet
-- committed) counts as well
BEGIN;
DELETE FROM courier.claim c USING courier.group_meta g, courier.topic_meta t
  WHERE c.group_id = g.group_id AND g.topic_id = t.topic_id AND t.name = 'ov' AND c.lo = 3;
INSERT INTO courier.claim (group_id, lo, hi, lease_until, delivered_at, pending)
  SELECT group_id, 4, 4, now() + interval '1 hour', now(), '{4}'
  FROM courier.group_meta JOIN courier.topic_meta USING (topic_id) WHERE topic_meta.name = 'ov';
\set ON_ERROR_STOP 0
SELECT id FROM courier.receive('ov', 'default', 10, '1 hour');
\set ON_ERROR_STOP 1
ROLLBACK;
SELECT courier.drop_topic('ov');
