-- The DDL guard (src/guard.c): every DDL statement that would change one of
-- pg_courier's relations is refused with 42501, for superusers too; the
-- extension's own DDL (topics, rotation, drop) still works; a restore may
-- recreate run-time relations exactly as pg_dump writes them; DROP
-- EXTENSION removes everything and CREATE EXTENSION starts from scratch.
-- Runs in a database of its own so that relation names (ids) are stable.
SET client_min_messages = warning;
CREATE DATABASE regress_courier_guard;
\c regress_courier_guard
SET client_min_messages = warning;
CREATE EXTENSION pg_courier CASCADE;
CREATE ROLE regress_guard_user;

-- the extension's own DDL: a topic, a rotation
SELECT courier.create_topic('g', retention => '4 seconds');
SELECT courier.send('g', '{"n": 1}') AS id1;
SELECT courier.ack('g', 'default', array_agg(id)) FROM courier.receive('g', 'default', 10);
SELECT pg_sleep(1.1);
SELECT courier.run_maintenance()->'segments_created' AS created;
SELECT courier.send('g', '{"n": 2}') AS id2;
SELECT seg_no, relid FROM courier.segment ORDER BY seg_no;
SELECT relname, relkind FROM pg_class
 WHERE relnamespace = 'courier'::regnamespace AND relname ~ '^(log|seq)_' ORDER BY 1;

-- one refusal in full
\set VERBOSITY default
ALTER TABLE courier.log_1_1 ADD COLUMN note text;
\set VERBOSITY terse

-- ALTER TABLE / INDEX / SEQUENCE / VIEW / TYPE: any subcommand
ALTER TABLE courier.log_1_2 ADD COLUMN note text;
ALTER TABLE courier.log_1_2 DROP COLUMN tag;
ALTER TABLE courier.log_1_2 ALTER COLUMN body DROP NOT NULL;
ALTER TABLE courier.log_1_2 ALTER COLUMN body SET STORAGE EXTERNAL;
ALTER TABLE courier.log_1_2 SET UNLOGGED;
ALTER TABLE courier.log_1_2 SET LOGGED;
ALTER TABLE courier.log_1_2 ENABLE ROW LEVEL SECURITY;
ALTER TABLE courier.log_1_2 FORCE ROW LEVEL SECURITY;
ALTER TABLE courier.log_1_2 DISABLE TRIGGER ALL;
ALTER TABLE courier.log_1_2 ENABLE REPLICA TRIGGER t;
ALTER TABLE courier.log_1_2 REPLICA IDENTITY FULL;
ALTER TABLE courier.log_1_2 SET (autovacuum_enabled = off);
ALTER TABLE courier.log_1_2 SET TABLESPACE pg_default;
ALTER TABLE courier.log_1_2 CLUSTER ON log_1_2_id;
ALTER TABLE courier.log_1_2 OWNER TO regress_guard_user;
ALTER TABLE courier.topic_meta OWNER TO CURRENT_USER;
ALTER TABLE courier.lease ADD CONSTRAINT positive CHECK (attempt >= 0);
ALTER TABLE courier.log_1_2 RENAME TO moved;
ALTER TABLE courier.log_1_2 RENAME COLUMN body TO payload;
ALTER TABLE courier.log_1_2 SET SCHEMA public;
ALTER TABLE IF EXISTS courier.log_1_2 ADD COLUMN note text;
ALTER INDEX courier.log_1_2_id RENAME TO other;
ALTER INDEX courier.log_1_2_id SET (fillfactor = 50);
ALTER SEQUENCE courier.seq_1 RESTART;
-- (a topic's sequence carries the topic's owner and privileges: OWNER TO,
-- GRANT and REVOKE on it are allowed, see topic_roles.sql; the extension's
-- own sequences stay untouchable)
ALTER SEQUENCE courier.topic_id_seq OWNER TO regress_guard_user;
ALTER VIEW courier.topics RENAME TO t2;
ALTER TYPE courier.message ADD ATTRIBUTE extra integer;
-- unqualified names, through search_path
SET search_path = courier, public;
ALTER TABLE log_1_2 ADD COLUMN note text;
RESET search_path;
-- from PL/pgSQL
DO $$ BEGIN EXECUTE 'ALTER TABLE courier.log_1_2 ADD COLUMN note text'; END $$;
-- from a role that is not superuser (refused before the ownership check)
SET ROLE regress_guard_user;
ALTER TABLE courier.log_1_2 ADD COLUMN note text;
SELECT courier._ddl('ALTER TABLE courier.log_1_2 ADD COLUMN note text');
RESET ROLE;

-- the internal door does not stay open after an error it raised was caught
DO $$
BEGIN
	BEGIN
		PERFORM courier._ddl('CREATE TABLE courier.log_1_1 (x integer)');
	EXCEPTION WHEN duplicate_table THEN
		NULL;
	END;
	EXECUTE 'ALTER TABLE courier.log_1_2 ADD COLUMN note text';
END;
$$;

-- triggers, policies, rules, statistics, security labels, indexes
CREATE TRIGGER t BEFORE INSERT ON courier.log_1_2
	FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger();
CREATE POLICY p ON courier.log_1_2 USING (true);
ALTER POLICY p ON courier.log_1_2 USING (false);
CREATE RULE r AS ON INSERT TO courier.log_1_2 DO INSTEAD NOTHING;
CREATE STATISTICS s ON tag, sent_at FROM courier.log_1_2;
SECURITY LABEL ON TABLE courier.log_1_2 IS 'secret';
CREATE INDEX ON courier.log_1_2 (sent_at);
CREATE INDEX CONCURRENTLY by_sent ON courier.log_1_2 (sent_at);
CREATE UNIQUE INDEX log_1_2_again ON courier.log_1_2 USING btree (id);
CREATE INDEX lease_more ON courier.lease (okey);

-- TRUNCATE, DROP, CLUSTER
TRUNCATE courier.log_1_1;
TRUNCATE courier.claim, courier.lease;
DROP TABLE courier.log_1_1;
DROP TABLE IF EXISTS courier.topic_meta;
DROP INDEX courier.log_1_2_id;
DROP INDEX CONCURRENTLY courier.log_1_2_keys;
DROP SEQUENCE courier.seq_1;
DROP VIEW courier.groups;
DROP TRIGGER IF EXISTS t ON courier.log_1_2;
DROP POLICY IF EXISTS p ON courier.log_1_2;
DROP RULE IF EXISTS r ON courier.log_1_2;
CLUSTER courier.log_1_2 USING log_1_2_id;

-- privileges go through the extension's functions
GRANT SELECT ON courier.log_1_2 TO regress_guard_user;
GRANT SELECT (id, body) ON courier.log_1_2 TO regress_guard_user;
GRANT INSERT ON TABLE courier.lease TO regress_guard_user;
REVOKE ALL ON courier.topic_meta FROM PUBLIC;
GRANT USAGE ON SEQUENCE courier.topic_id_seq TO regress_guard_user;
GRANT USAGE ON SEQUENCE courier.seq_1 TO regress_guard_user WITH GRANT OPTION;
GRANT SELECT ON ALL TABLES IN SCHEMA courier TO regress_guard_user;
GRANT ALL ON ALL SEQUENCES IN SCHEMA courier TO regress_guard_user;
ALTER DEFAULT PRIVILEGES IN SCHEMA courier GRANT SELECT ON TABLES TO regress_guard_user;

-- the schema, the extension's members, owners
GRANT CREATE ON SCHEMA courier TO regress_guard_user;
GRANT ALL ON SCHEMA courier TO regress_guard_user;
ALTER SCHEMA courier RENAME TO mailroom;
ALTER SCHEMA courier OWNER TO regress_guard_user;
DROP SCHEMA courier CASCADE;
-- another extension's objects in schema courier (a trusted extension's
-- script runs as a superuser, so the schema's ACL would not stop it)
CREATE EXTENSION hstore SCHEMA courier;
CREATE EXTENSION IF NOT EXISTS citext WITH SCHEMA courier;
ALTER EXTENSION pg_courier DROP TABLE courier.claim;
ALTER EXTENSION pg_courier ADD TABLE courier.log_1_2;
REASSIGN OWNED BY CURRENT_USER TO regress_guard_user;
DROP OWNED BY CURRENT_USER;
ALTER TABLE ALL IN TABLESPACE pg_default SET TABLESPACE pg_default;

-- the functions and types of schema courier
ALTER FUNCTION courier.send(text, jsonb, text, text[], jsonb, interval, timestamptz) SECURITY INVOKER;
ALTER FUNCTION courier.send(text, jsonb, text, text[], jsonb, interval, timestamptz) RESET search_path;
ALTER FUNCTION courier.send(text, jsonb, text, text[], jsonb, interval, timestamptz) OWNER TO regress_guard_user;
ALTER FUNCTION courier.send(text, jsonb, text, text[], jsonb, interval, timestamptz) RENAME TO post;
ALTER FUNCTION courier.send(text, jsonb, text, text[], jsonb, interval, timestamptz) SET SCHEMA public;
ALTER FUNCTION courier.send(text, jsonb, text, text[], jsonb, interval, timestamptz) DEPENDS ON EXTENSION plpgsql;
ALTER ROUTINE courier.check_filter(text) IMMUTABLE;
CREATE FUNCTION courier.send(topic text, body jsonb) RETURNS bigint LANGUAGE sql AS 'SELECT 0::bigint';
CREATE OR REPLACE FUNCTION courier.check_filter(filter text) RETURNS text LANGUAGE sql AS 'SELECT $1';
CREATE AGGREGATE courier.agg (integer) (sfunc = int4pl, stype = integer);
ALTER TYPE courier.found RENAME TO found2;
ALTER TYPE courier.message OWNER TO regress_guard_user;
ALTER TYPE courier.message SET SCHEMA public;
CREATE TYPE courier.mood AS ENUM ('ok');
CREATE TYPE courier.pair AS (a integer, b integer);
CREATE DOMAIN courier.positive AS integer CHECK (VALUE > 0);
CREATE FUNCTION public.elsewhere() RETURNS integer LANGUAGE sql AS 'SELECT 1';
ALTER FUNCTION public.elsewhere() SET SCHEMA courier;
DROP FUNCTION public.elsewhere();
-- granting EXECUTE is how privileges are given, and comments are fine
GRANT EXECUTE ON FUNCTION courier.peek(text, text, integer) TO regress_guard_user;
REVOKE EXECUTE ON FUNCTION courier.peek(text, text, integer) FROM regress_guard_user;
COMMENT ON FUNCTION courier.peek(text, text, integer) IS 'look ahead';
COMMENT ON FUNCTION courier.peek(text, text, integer) IS NULL;

-- no new relations in schema courier, and none tied to ours
CREATE TABLE courier.mine (x integer);
CREATE TABLE courier.log_9_1 (id bigint);
CREATE UNLOGGED TABLE courier.log_9_2 (id bigint NOT NULL, sent_at timestamptz NOT NULL,
	deliver_at timestamptz, tag text, keys text[], headers jsonb, body jsonb NOT NULL)
	WITH (fillfactor = 100);
CREATE TABLE courier.ctas AS SELECT 1 AS x;
SELECT 1 AS x INTO courier.selinto;
EXPLAIN ANALYZE CREATE TABLE courier.ectas AS SELECT 1 AS x;
CREATE MATERIALIZED VIEW courier.mv AS SELECT 1 AS x;
CREATE VIEW courier.v AS SELECT 1 AS x;
CREATE SEQUENCE courier.myseq INCREMENT BY 2;
CREATE TABLE public.child () INHERITS (courier.topic_meta);
CREATE TABLE public.fk (t integer REFERENCES courier.topic_meta);
CREATE TABLE public.fk2 (t integer, FOREIGN KEY (t) REFERENCES courier.topic_meta);
CREATE TABLE public.plain (t integer);
ALTER TABLE public.plain ADD FOREIGN KEY (t) REFERENCES courier.topic_meta;
ALTER TABLE public.plain ADD COLUMN t2 integer REFERENCES courier.topic_meta;
ALTER TABLE public.plain INHERIT courier.topic_meta;
ALTER TABLE public.plain SET SCHEMA courier;
CREATE TABLE public.parted (LIKE courier.log_1_2) PARTITION BY RANGE (id);
ALTER TABLE public.parted ATTACH PARTITION courier.log_1_2 FOR VALUES FROM (1) TO (100);
DROP TABLE public.plain, public.parted;

-- every refusal is SQLSTATE 42501
CREATE FUNCTION pg_temp.sqlstate_of(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE sql;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE;
END;
$$;
SELECT s AS statement, pg_temp.sqlstate_of(s) AS sqlstate FROM unnest(ARRAY[
	'ALTER TABLE courier.log_1_2 ADD COLUMN note text',
	'CREATE TRIGGER t BEFORE INSERT ON courier.log_1_2 FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger()',
	'CREATE POLICY p ON courier.log_1_2 USING (true)',
	'TRUNCATE courier.claim',
	'DROP TABLE courier.log_1_1',
	'CREATE INDEX ON courier.log_1_2 (tag)',
	'GRANT SELECT ON courier.log_1_2 TO PUBLIC',
	'CREATE TABLE courier.x (a integer)',
	'ALTER SCHEMA courier RENAME TO y']) s;

-- allowed: maintenance, comments, locks, reads, GRANT on views
VACUUM courier.log_1_2;
VACUUM FULL courier.lease;
VACUUM (ANALYZE) courier.claim;
ANALYZE courier.log_1_1;
REINDEX TABLE courier.log_1_2;
REINDEX TABLE CONCURRENTLY courier.log_1_2;
REINDEX INDEX courier.log_1_1_id;
COMMENT ON TABLE courier.log_1_2 IS 'a segment';
SELECT obj_description('courier.log_1_2'::regclass, 'pg_class');
COMMENT ON TABLE courier.log_1_2 IS NULL;
BEGIN;
LOCK TABLE courier.segment IN SHARE MODE;
COMMIT;
COPY courier.log_1_1 (id) TO stdout;
SELECT count(*) FROM courier.log_1_2;
GRANT SELECT ON courier.topics, courier.groups TO regress_guard_user;
REVOKE SELECT ON courier.topics, courier.groups FROM regress_guard_user;
GRANT USAGE ON SCHEMA courier TO regress_guard_user;
REVOKE USAGE ON SCHEMA courier FROM regress_guard_user;
ALTER TABLE courier.log_1_2 OWNER TO CURRENT_USER;
SELECT id, body FROM courier.log_1_2;
-- objects that would depend on a segment, a topic's sequence or a catalog
-- table are refused, for superusers too: they would stop retention, purge
-- and drop_topic from dropping it.  None needs a privilege on the relation
-- (a type is PUBLIC's, a view is checked when read), so any role could
-- have kept a topic's log forever (review 43).
SET ROLE regress_guard_user;
CREATE TEMP TABLE hold (c courier.log_1_2);
CREATE TEMP TABLE hold (c courier.log_1_2[]);
CREATE VIEW pg_temp.peek AS SELECT 1 AS one FROM courier.log_1_2;
CREATE TEMP TABLE hold (n bigint DEFAULT nextval('courier.seq_1'));
CREATE TEMP TABLE hold (n integer);
ALTER TABLE hold ADD COLUMN c courier.log_1_2;
ALTER TABLE hold ALTER COLUMN n SET DEFAULT nextval('courier.seq_1');
CREATE INDEX ON hold (((NULL::courier.log_1_2) IS NULL));
DROP TABLE hold;
RESET ROLE;
CREATE VIEW public.recent AS SELECT id, body FROM courier.log_1_2;
CREATE OR REPLACE VIEW public.recent AS SELECT 1 AS one FROM courier.claim;
CREATE MATERIALIZED VIEW public.recent AS SELECT id FROM courier.log_1_2;
CREATE FUNCTION public.recent(courier.log_1_2) RETURNS integer LANGUAGE sql AS 'SELECT 1';
CREATE FUNCTION public.recent() RETURNS bigint LANGUAGE sql
	BEGIN ATOMIC SELECT count(*) FROM courier.log_1_2; END;
CREATE DOMAIN public.recent AS courier.log_1_2[];
CREATE TYPE public.recent AS (c courier.log_1_2);
CREATE TABLE public.recent (c integer CHECK ((NULL::courier.log_1_2) IS NULL));
-- CREATE INDEX CONCURRENTLY commits the index before the statement ends: it
-- is checked as it is created, and nothing is left behind (review 44)
CREATE TABLE public.cic_pin (c oid);
CREATE INDEX CONCURRENTLY ON public.cic_pin ((c = 'courier.log_1_2'::regclass));
CREATE INDEX CONCURRENTLY ON public.cic_pin (c) WHERE c <> 'courier.seq_1'::regclass;
CREATE INDEX CONCURRENTLY ON public.cic_pin (((NULL::courier.log_1_2) IS NULL));
CREATE INDEX CONCURRENTLY ON public.cic_pin (c);
SELECT count(*) AS indexes FROM pg_index WHERE indrelid = 'public.cic_pin'::regclass;
DROP TABLE public.cic_pin;
DO $$ BEGIN EXECUTE 'CREATE VIEW public.recent AS SELECT id FROM courier.log_1_2'; END $$;
-- a copy of the rows, or views over pg_courier's own views, are fine
CREATE TABLE public.recent AS SELECT id, body FROM courier.log_1_2;
DROP TABLE public.recent;
CREATE VIEW public.watch AS SELECT topic, grp FROM courier.groups;
CREATE FUNCTION public.watch_fn() RETURNS SETOF courier.groups LANGUAGE sql AS 'SELECT * FROM courier.groups';
DROP FUNCTION public.watch_fn();
DROP VIEW public.watch;
-- one made through the extension's own door (as one made before 0.2.0)
SELECT courier._ddl('CREATE VIEW public.recent AS SELECT id, body FROM courier.log_1_2');
SELECT * FROM public.recent;
-- and the queue still works after all that
SELECT courier.send('g', '{"n": 3}') AS id3;
SELECT id, body FROM courier.receive('g', 'default', 10) ORDER BY id;

-- a restore recreates run-time relations exactly as pg_dump writes them
CREATE TABLE courier.log_7_1 (
    id bigint NOT NULL,
    sent_at timestamp with time zone NOT NULL,
    deliver_at timestamp with time zone,
    tag text,
    keys text[],
    headers jsonb,
    body jsonb NOT NULL
)
WITH (fillfactor='100');
ALTER TABLE courier.log_7_1 OWNER TO CURRENT_USER;
CREATE SEQUENCE courier.seq_7
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;
ALTER TABLE courier.seq_7 OWNER TO CURRENT_USER;
-- (a parallel pg_restore truncates the tables it just created before COPY)
TRUNCATE TABLE ONLY courier.log_7_1;
COPY courier.log_7_1 (id, sent_at, body) FROM stdin;
1	2020-01-01 00:00:00+00	{"restored": true}
\.
TRUNCATE TABLE ONLY courier.log_7_1;
CREATE UNIQUE INDEX log_7_1_id ON courier.log_7_1 USING btree (id);
CREATE INDEX log_7_1_keys ON courier.log_7_1 USING gin (keys) WHERE (keys IS NOT NULL);
-- ... and nothing else
CREATE UNIQUE INDEX log_7_1_id_again ON courier.log_7_1 USING btree (id);
CREATE INDEX log_7_1_sent ON courier.log_7_1 USING btree (sent_at);
ALTER TABLE courier.log_7_1 OWNER TO regress_guard_user;
ALTER TABLE courier.log_7_1 ADD COLUMN note text;
SELECT relname, relkind FROM pg_class
 WHERE relnamespace = 'courier'::regnamespace AND relname ~ '_7' ORDER BY 1;

-- dropping a topic drops its segments and sequence (internal DDL); a user's
-- view on a segment (made above through the door) holds it back, as it
-- would a DROP TABLE
SELECT courier.drop_topic('g');
DROP VIEW public.recent;
SELECT courier.drop_topic('g');
SELECT relname FROM pg_class
 WHERE relnamespace = 'courier'::regnamespace AND relname ~ '^(log|seq)_1' ORDER BY 1;

-- an event trigger of the user's fires on the extension's DDL, and its own
-- DDL on the new relations is not refused (it runs inside internal DDL);
-- a grant it makes on a new segment is revoked right after, as default
-- privileges are (courier._clear_acl): bodies are read per topic privilege
CREATE FUNCTION public.grant_new_tables() RETURNS event_trigger LANGUAGE plpgsql AS $$
DECLARE
	obj record;
BEGIN
	FOR obj IN SELECT * FROM pg_event_trigger_ddl_commands() WHERE command_tag = 'CREATE TABLE' LOOP
		EXECUTE format('GRANT SELECT ON %s TO regress_guard_user', obj.object_identity);
	END LOOP;
END;
$$;
CREATE EVENT TRIGGER grant_new_tables ON ddl_command_end EXECUTE FUNCTION public.grant_new_tables();
-- DROP EXTENSION: run-time relations go too, with the statement's behaviour
SELECT courier.create_topic('d');
SELECT has_table_privilege('regress_guard_user', 'courier.log_2_1', 'SELECT') AS still_granted_by_event_trigger;
DROP EVENT TRIGGER grant_new_tables;
DROP FUNCTION public.grant_new_tables();
SELECT courier.send('d', '{"n": 1}') AS d1;
SELECT oid AS ext_oid FROM pg_extension WHERE extname = 'pg_courier' \gset
SELECT 'courier'::regnamespace::oid AS nsp_oid \gset
-- the schema is a member of the extension, the extension lives in pg_catalog
SELECT extnamespace::regnamespace FROM pg_extension WHERE extname = 'pg_courier';
SELECT pg_describe_object(classid, objid, objsubid) FROM pg_depend
 WHERE refobjid = :ext_oid AND deptype = 'e' AND classid = 'pg_namespace'::regclass;
-- (a view on a segment, as one made before 0.2.0 was)
SELECT courier._ddl('CREATE VIEW public.d_log AS SELECT * FROM courier.log_2_1');
DROP EXTENSION pg_courier;
SET ROLE regress_guard_user;
DROP EXTENSION pg_courier CASCADE;
RESET ROLE;
BEGIN READ ONLY;
DROP EXTENSION pg_courier CASCADE;
ROLLBACK;
BEGIN;
DROP EXTENSION pg_courier CASCADE;
PREPARE TRANSACTION 'regress_guard_drop';
BEGIN;
SAVEPOINT s;
DROP EXTENSION pg_courier CASCADE;
ROLLBACK TO s;
PREPARE TRANSACTION 'regress_guard_kept';
ROLLBACK PREPARED 'regress_guard_kept';
SELECT count(*) AS still_there FROM courier.log_2_1;
DROP EXTENSION pg_courier CASCADE;
-- nothing is left behind
SELECT count(*) AS extension FROM pg_extension WHERE extname = 'pg_courier';
SELECT count(*) AS schema FROM pg_namespace WHERE nspname = 'courier';
SELECT count(*) AS relations FROM pg_class WHERE relnamespace = :nsp_oid;
SELECT count(*) AS types FROM pg_type WHERE typnamespace = :nsp_oid;
SELECT count(*) AS functions FROM pg_proc WHERE pronamespace = :nsp_oid;
SELECT count(*) AS dependencies FROM pg_depend WHERE refobjid IN (:ext_oid, :nsp_oid)
	OR (classid = 'pg_class'::regclass AND objid NOT IN (SELECT oid FROM pg_class));
SELECT count(*) AS view FROM pg_class WHERE relname = 'd_log';

-- CREATE EXTENSION refuses a schema courier it did not create
CREATE SCHEMA courier;
\set VERBOSITY default
CREATE EXTENSION pg_courier CASCADE;
\set VERBOSITY terse
DROP SCHEMA courier;

-- and starts from scratch, also from inside DO (a migration tool's way;
-- the guard trusts an extension's own script, review 44)
DO $$ BEGIN CREATE EXTENSION pg_courier CASCADE; END $$;
SELECT courier.create_topic('again');
SELECT courier.send('again', '{"fresh": true}') AS fresh_id;
SELECT id, body FROM courier.receive('again');
SELECT seg_no, relid FROM courier.segment;
DROP EXTENSION pg_courier;

\c contrib_regression
SET client_min_messages = warning;
DROP DATABASE regress_courier_guard;
DROP ROLE regress_guard_user;
