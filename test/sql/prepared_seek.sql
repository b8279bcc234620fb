-- A receive prepared (two-phase commit) and rolled back leaves its span in
-- the prepared-claims table until a walk settles it (ROLLBACK PREPARED runs
-- no callback of ours).  A seek in between invalidates the group's position,
-- and the rebuilt position already walks everything above the new
-- low_water: the stale span must not come back as a recheck.  Seek back:
-- the walk covered ids 3 and 4 twice (23P01, and every later receive of the
-- group failed the same way).  Seek forward: ids 3 and 4 were handed out
-- although the seek skipped them.
\set VERBOSITY terse
SET client_min_messages = warning;
SELECT courier.create_topic('pseek');
SELECT courier.create_group('pseek', 'back');
SELECT courier.create_group('pseek', 'fwd');
SELECT count(*) AS sent FROM courier.send_batch('pseek',
  ARRAY['{"n": 1}', '{"n": 2}', '{"n": 3}', '{"n": 4}', '{"n": 5}']::jsonb[]);
SELECT string_agg(id::text, ',' ORDER BY id) AS got FROM courier.receive('pseek', 'back', 2, '1 hour');
SELECT string_agg(id::text, ',' ORDER BY id) AS got FROM courier.receive('pseek', 'fwd', 2, '1 hour');
BEGIN;
SELECT string_agg(id::text, ',' ORDER BY id) AS got FROM courier.receive('pseek', 'back', 2, '1 hour');
SELECT string_agg(id::text, ',' ORDER BY id) AS got FROM courier.receive('pseek', 'fwd', 2, '1 hour');
PREPARE TRANSACTION 'pseek';
ROLLBACK PREPARED 'pseek';
-- seek back: everything once more, in one claim
SELECT courier.seek('pseek', 'back', '-infinity');
SELECT string_agg(id::text, ',' ORDER BY id) AS got FROM courier.receive('pseek', 'back', 100, '1 hour');
SELECT string_agg(id::text, ',' ORDER BY id) AS got FROM courier.receive('pseek', 'back', 100, '1 hour');
-- seek forward: nothing of what was sent before
SELECT courier.seek('pseek', 'fwd', 'infinity');
SELECT string_agg(id::text, ',' ORDER BY id) AS got FROM courier.receive('pseek', 'fwd', 100, '1 hour');
SELECT count(*) AS sent FROM courier.send_batch('pseek', ARRAY['{"n": 6}']::jsonb[]);
SELECT string_agg(id::text, ',' ORDER BY id) AS got FROM courier.receive('pseek', 'fwd', 100, '1 hour');
SELECT courier.drop_topic('pseek');
