-- Issue 13, defect 12 (second half): send_batch took its ids one nextval()
-- at a time, up to 100,000 calls under the topic's exclusive LWLock.  It
-- must take them in one step.  We count the WAL records of resource manager
-- Sequence that a 100,000-message send_batch writes (pg_walinspect): one
-- nextval() writes one every 32 values, so 0.1.0 wrote about 3,100; taking
-- the ids in one step writes one or two.  And the ids are contiguous, in
-- array order.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_walinspect;
SELECT courier.create_topic('big');
SELECT courier.send('big', '{"first": true}') > 0 AS sent;
SELECT body FROM courier.receive('big', 'default', 10);

SELECT pg_current_wal_insert_lsn() AS start_lsn \gset
CREATE TEMP TABLE big_ids AS
	SELECT id, ord FROM courier.send_batch('big',
		(SELECT array_agg(jsonb_build_object('n', g) ORDER BY g) FROM generate_series(1, 100000) g))
		WITH ORDINALITY AS b (id, ord);
SELECT pg_current_wal_insert_lsn() AS end_lsn \gset

SELECT count(*) AS ids, count(DISTINCT id) AS distinct_ids,
	   max(id) - min(id) + 1 AS span,
	   bool_and(id = (SELECT min(id) FROM big_ids) + ord - 1) AS contiguous_in_array_order
  FROM big_ids;
SELECT count > 0 AND count <= 3 AS ids_taken_in_one_step
  FROM pg_get_wal_stats(:'start_lsn', :'end_lsn') WHERE "resource_manager/record_type" = 'Sequence';

-- every message is there, in the order of the array
SELECT count(*) AS received, bool_and((m.body->>'n')::bigint = b.ord) AS bodies_match
  FROM courier.receive('big', 'default', 10000) m JOIN big_ids b USING (id);
SELECT messages FROM courier.topics WHERE topic = 'big';
-- and the next send continues above them
SELECT courier.send('big', '{"last": true}') > (SELECT max(id) FROM big_ids) AS above;

SELECT courier.drop_topic('big');
DROP EXTENSION pg_walinspect;
