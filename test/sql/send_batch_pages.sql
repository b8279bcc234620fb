-- send_batch writes a batch page by page (src/heap.c,
-- CourierInserterInsertMany): one Heap2 MULTI_INSERT WAL record per heap
-- page instead of one Heap INSERT per message, as COPY does, then the index
-- entries of every message.  2,500 messages (three chunks of at most 1,000)
-- with a tag and keys: no per-message heap record, every row in both
-- indexes of the segment, every message received in array order.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_walinspect;
CREATE EXTENSION IF NOT EXISTS amcheck;
SELECT courier.create_topic('mpage');
SELECT c.oid::regclass AS seg, pg_relation_filenode(c.oid) AS fn
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'courier' AND c.relkind = 'r' AND c.relname LIKE 'log\_%'
 ORDER BY c.oid DESC LIMIT 1 \gset

SELECT pg_current_wal_insert_lsn() AS start_lsn \gset
CREATE TEMP TABLE mp_ids AS
	SELECT id, ord FROM courier.send_batch('mpage',
		(SELECT array_agg(jsonb_build_object('n', g) ORDER BY g) FROM generate_series(1, 2500) g),
		tag => 't', keys => ARRAY['k1', 'k2'])
		WITH ORDINALITY AS b (id, ord);
SELECT pg_current_wal_insert_lsn() AS end_lsn \gset

SELECT count(*) FILTER (WHERE resource_manager = 'Heap' AND record_type LIKE 'INSERT%') AS per_message_records,
	   count(*) FILTER (WHERE resource_manager = 'Heap2' AND record_type LIKE 'MULTI_INSERT%')
		 BETWEEN 3 AND 250 AS page_records
  FROM pg_get_wal_records_info(:'start_lsn', :'end_lsn')
 WHERE block_ref LIKE '%/' || :'fn' || ' %';

-- every row is in the id index (amcheck, heapallindexed) and in the
-- keys index (GIN, read through a bitmap scan)
SELECT count(*) AS btree_indexes_checked
  FROM (SELECT bt_index_check(i.indexrelid, true)
		  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam
		 WHERE i.indrelid = :'seg'::regclass AND a.amname = 'btree') s;
SELECT count(*) AS rows_in_segment FROM :seg;
SET enable_seqscan = off;
SELECT count(*) AS rows_by_key FROM :seg WHERE keys @> ARRAY['k2'];
RESET enable_seqscan;

SELECT count(*) AS received, bool_and((m.body->>'n')::bigint = b.ord) AS bodies_match,
	   bool_and(m.tag = 't' AND m.keys = ARRAY['k1', 'k2']) AS tag_and_keys
  FROM courier.receive('mpage', 'default', 10000) m JOIN mp_ids b USING (id);

-- a batch that rolls back leaves nothing behind
BEGIN;
SELECT count(*) AS sent FROM courier.send_batch('mpage',
	(SELECT array_agg(jsonb_build_object('n', g)) FROM generate_series(1, 1500) g));
ROLLBACK;
SELECT count(*) AS after_rollback FROM courier.receive('mpage', 'default', 10000);
SELECT courier.drop_topic('mpage');
DROP EXTENSION amcheck;
DROP EXTENSION pg_walinspect;
