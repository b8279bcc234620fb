-- Issue 13, defect 2: a column added to a segment crashed the server on the
-- next receive (tuples deformed into fixed arrays), and send gave XX000,
-- even after DROP COLUMN.  Now the DDL guard refuses ALTER TABLE on
-- segments for everyone (guard.sql), and every open of a segment checks its
-- shape (CourierCheckSegment).  The one SQL path left that changes a
-- segment's shape is the extension's internal door courier._ddl(), which
-- only a superuser can call (EXECUTE is granted to nobody); through it we
-- make segments of the wrong shape and check that every call that reads or
-- writes them gives a clean error (55000) and that the server survives.
-- The second half tries to get past the guard in other ways.
-- Runs in a database of its own so that relation names (ids) are stable.
SET client_min_messages = warning;
CREATE DATABASE regress_courier_i13_shape;
\c regress_courier_i13_shape
SET client_min_messages = warning;
CREATE EXTENSION pg_courier CASCADE;
CREATE ROLE regress_i13_shape_user;
\set VERBOSITY sqlstate

-- every call that reads or writes a segment, as SQLSTATEs (in public: they
-- outlive a reconnection)
CREATE FUNCTION public.i13_try(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE sql;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ' ' || SQLERRM;
END;
$$;
CREATE FUNCTION public.i13_calls(topic text) RETURNS TABLE (call text, result text) LANGUAGE sql AS $$
	SELECT c, public.i13_try(format(c, topic)) FROM unnest(ARRAY[
		'SELECT courier.send(%L, ''{"n": 9}'')',
		'SELECT courier.send_batch(%L, ARRAY[''{"n": 9}'']::jsonb[])',
		'SELECT * FROM courier.receive(%L, ''default'', 10)',
		'SELECT * FROM courier.receive(%L, ''ordered'', 10)',
		'SELECT * FROM courier.peek(%L, ''default'', 10)',
		'SELECT courier.ack(%L, ''default'', 1)',
		'SELECT * FROM courier.find(%L, id => 1)',
		'SELECT * FROM courier.groups WHERE topic = %L',
		'SELECT * FROM courier.topics WHERE topic = %L',
		'SELECT courier.run_maintenance() IS NOT NULL']) c
$$;

-- a topic with a message of each kind that a walk reads
SELECT courier.create_topic('shape');
SELECT courier.create_group('shape', 'ordered', ordered => true);
SELECT courier.send('shape', '{"n": 1}');
SELECT courier.send('shape', '{"n": 2}', keys => ARRAY['k']);
SELECT courier.send('shape', '{"n": 3}', delay => '1 hour');
SELECT relid FROM courier.segment WHERE topic_id = 1;

-- a column added through the internal door (superuser only)
SELECT courier._ddl('ALTER TABLE courier.log_1_1 ADD COLUMN note text');
\set VERBOSITY default
SELECT * FROM courier.receive('shape', 'default', 10);
\set VERBOSITY sqlstate
SELECT * FROM public.i13_calls('shape');
-- a second receive in the same session, and one in a new session
SELECT * FROM courier.receive('shape', 'default', 10);
\c regress_courier_i13_shape
SET client_min_messages = warning;
\set VERBOSITY sqlstate
SELECT * FROM courier.receive('shape', 'default', 10);
SELECT courier.send('shape', '{"n": 4}');

-- dropped again: the dropped column is still in the tuple descriptor
SELECT courier._ddl('ALTER TABLE courier.log_1_1 DROP COLUMN note');
SELECT attname, attisdropped FROM pg_attribute
 WHERE attrelid = 'courier.log_1_1'::regclass AND attnum > 0 ORDER BY attnum;
SELECT * FROM courier.receive('shape', 'default', 10);
SELECT courier.send('shape', '{"n": 4}');

-- other changes of shape: a column of another type, a renamed column, a
-- column dropped (fewer columns than ours)
SELECT courier.create_topic('retyped');
SELECT courier.send('retyped', '{"n": 1}', tag => 't');
SELECT courier._ddl('ALTER TABLE courier.log_2_1 ALTER COLUMN tag TYPE varchar(20)');
SELECT * FROM public.i13_calls('retyped') WHERE call ~ 'courier\.(send|receive|peek)\(' AND call !~ 'ordered';
SELECT courier.create_topic('renamed');
SELECT courier.send('renamed', '{"n": 1}');
SELECT courier._ddl('ALTER TABLE courier.log_3_1 RENAME COLUMN headers TO props');
SELECT * FROM public.i13_calls('renamed') WHERE call ~ 'courier\.(send|receive|peek)\(' AND call !~ 'ordered';
SELECT courier.create_topic('fewer');
SELECT courier.send('fewer', '{"n": 1}');
SELECT courier._ddl('ALTER TABLE courier.log_4_1 DROP COLUMN headers');
SELECT * FROM public.i13_calls('fewer') WHERE call ~ 'courier\.(send|receive|peek)\(' AND call !~ 'ordered';

-- the server is still up, and a topic whose segment is intact works
SELECT courier.create_topic('intact');
SELECT courier.send('intact', '{"n": 1}') AS id;
SELECT id, body FROM courier.receive('intact', 'default', 10);

-- ---- the guard cannot be bypassed: every way we could think of to run
-- ALTER TABLE (or another statement that changes what a segment is) on a
-- segment is refused with 42501, for superusers too
\set VERBOSITY terse
-- through an SQL function, a PL/pgSQL function with a static statement, a
-- procedure, a DO block
CREATE FUNCTION public.alter_sql() RETURNS void LANGUAGE sql
	AS $$ ALTER TABLE courier.log_5_1 ADD COLUMN note text $$;
SELECT public.alter_sql();
CREATE FUNCTION public.alter_plpgsql() RETURNS void LANGUAGE plpgsql
	AS $$ BEGIN ALTER TABLE courier.log_5_1 ADD COLUMN note text; END $$;
SELECT public.alter_plpgsql();
CREATE PROCEDURE public.alter_proc() LANGUAGE plpgsql
	AS $$ BEGIN EXECUTE 'ALTER TABLE courier.log_5_1 ADD COLUMN note text'; COMMIT; END $$;
CALL public.alter_proc();
DO $$ BEGIN ALTER TABLE courier.log_5_1 ADD COLUMN note text; END $$;
-- through a SECURITY DEFINER function of a superuser, called by another role
CREATE FUNCTION public.alter_definer() RETURNS void LANGUAGE plpgsql SECURITY DEFINER
	AS $$ BEGIN EXECUTE 'ALTER TABLE courier.log_5_1 ADD COLUMN note text'; END $$;
GRANT EXECUTE ON FUNCTION public.alter_definer() TO regress_i13_shape_user;
SET ROLE regress_i13_shape_user;
SELECT public.alter_definer();
RESET ROLE;
-- through other spellings of the name: the database name, quoting, upper
-- case, search_path, the row type, ONLY
ALTER TABLE regress_courier_i13_shape.courier.log_5_1 ADD COLUMN note text;
ALTER TABLE "courier"."log_5_1" ADD COLUMN note text;
ALTER TABLE COURIER.LOG_5_1 ADD COLUMN note text;
ALTER TABLE ONLY courier.log_5_1 ADD COLUMN note text;
ALTER TYPE courier.log_5_1 ADD ATTRIBUTE note text;
SET search_path = pg_temp, courier;
ALTER TABLE log_5_1 ADD COLUMN note text;
RESET search_path;
-- through the schema: renamed, or the segment moved out of it, or the
-- extension (and with it the schema's members) moved
ALTER SCHEMA courier RENAME TO courier_old;
ALTER TABLE courier.log_5_1 SET SCHEMA public;
ALTER EXTENSION pg_courier SET SCHEMA public;
CREATE SCHEMA other;
ALTER TABLE courier.log_5_1 SET SCHEMA other;
-- through a table tied to the segment, whose DDL would recurse into it
CREATE TABLE public.parent (LIKE courier.log_5_1);
ALTER TABLE courier.log_5_1 INHERIT public.parent;
CREATE TABLE public.parted (LIKE courier.log_5_1) PARTITION BY RANGE (id);
ALTER TABLE public.parted ATTACH PARTITION courier.log_5_1 FOR VALUES FROM (1) TO (1000000);
-- through ALTER ... ALL IN TABLESPACE, to a real other tablespace
SET allow_in_place_tablespaces = on;
CREATE TABLESPACE regress_i13_ts LOCATION '';
ALTER TABLE ALL IN TABLESPACE pg_default SET TABLESPACE regress_i13_ts;
ALTER INDEX ALL IN TABLESPACE pg_default SET TABLESPACE regress_i13_ts;
ALTER TABLE courier.log_5_1 SET TABLESPACE regress_i13_ts;
SELECT count(*) AS courier_relations_moved FROM pg_class
 WHERE relnamespace = 'courier'::regnamespace AND reltablespace <> 0;
-- through CREATE SCHEMA's embedded statements
CREATE SCHEMA embedded CREATE TRIGGER t BEFORE INSERT ON courier.log_5_1
	FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger();
-- through the internal door, for a role that is not superuser
SET ROLE regress_i13_shape_user;
SELECT courier._ddl('ALTER TABLE courier.log_5_1 ADD COLUMN note text');
RESET ROLE;
-- nothing of that changed the segment, and the topic works
SELECT attname FROM pg_attribute WHERE attrelid = 'courier.log_5_1'::regclass AND attnum > 0 ORDER BY attnum;
SELECT relnamespace::regnamespace, reltablespace FROM pg_class WHERE oid = 'courier.log_5_1'::regclass;
SELECT count(*) AS triggers FROM pg_trigger WHERE tgrelid = 'courier.log_5_1'::regclass;
SELECT courier.send('intact', '{"n": 2}') AS id;
SELECT id, body FROM courier.receive('intact', 'default', 10);

\c contrib_regression
SET client_min_messages = warning;
DROP DATABASE regress_courier_i13_shape;
DROP TABLESPACE regress_i13_ts;
DROP ROLE regress_i13_shape_user;
