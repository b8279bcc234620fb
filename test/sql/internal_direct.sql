-- The internal C functions that run kept SPI plans pin search_path in
-- their declaration (SET search_path = pg_catalog, pg_temp), so a
-- superuser calling one directly, in a fresh session whose plans are not
-- prepared yet and with any search_path, gets an answer, not XX000 from
-- CourierPrepare's check of the pinned path (review 38, finding 2).
\set VERBOSITY terse
SET client_min_messages = warning;
SET search_path = public, pg_catalog;
SELECT courier.create_topic('idir');
SELECT courier.create_group('idir', 'o', ordered => true);
SELECT topic_id AS t FROM courier.topic_meta WHERE name = 'idir' \gset
SELECT group_id AS g FROM courier.group_meta WHERE name = 'o' AND topic_id = :t \gset
SELECT courier._promote_keys(:t, :g, '{k}');
-- ids that name nothing, or a group of another topic, are clean errors: an
-- unknown group crashed the server (review 42)
SELECT courier._promote_keys(:t, 999999, '{k}');
SELECT courier._promote_keys(999999, :g, '{k}');
SELECT courier.create_topic('idir2');
\set VERBOSITY sqlstate
SELECT courier._promote_keys(:t, (SELECT g.group_id FROM courier.group_meta g
	JOIN courier.topic_meta m USING (topic_id) WHERE m.name = 'idir2'), '{k}');
\set VERBOSITY terse
SELECT courier.drop_topic('idir2');
SELECT courier._ddl('SELECT 1');
SELECT courier._count_messages(:t, 0, 100) AS messages;
SELECT topics >= 0 AS ok FROM courier._entries_elsewhere();
SELECT courier.send('idir', '{"n": 1}', keys => '{k}') > 0 AS sent;
SELECT count(*) AS received FROM courier.receive('idir', 'o', 10, '1 hour');
SELECT courier.drop_topic('idir');
