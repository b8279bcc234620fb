-- The DDL guard and users' event triggers.  The guard lets the extension's
-- own DDL through (courier._ddl), and everything nested in it -- which
-- includes users' event triggers that fire on that DDL, so that an
-- "auto-grant" trigger does not break create_topic or rotation.  But an
-- event trigger may do more than GRANT: a common pattern adds an audit
-- column, or an audit trigger, to every new table.  Issue 13 asks that
-- ALTER TABLE, CREATE TRIGGER and CREATE POLICY on segment tables be
-- refused altogether: a trigger or policy on a segment never fires (sends
-- bypass the executor), and a segment of another shape makes its topic
-- unusable (every send fails).  Whatever the extension does about such an
-- event trigger -- refuse its statement (create_topic or the rotation then
-- fails with 42501) or keep it from firing on its own DDL -- no segment may
-- end up with another shape, a trigger or a policy, and every topic that
-- exists must keep working.
-- Runs in a database of its own so that relation names (ids) are stable.
SET client_min_messages = warning;
CREATE DATABASE regress_courier_i13_evt;
\c regress_courier_i13_evt
SET client_min_messages = warning;
CREATE EXTENSION pg_courier CASCADE;
CREATE ROLE regress_i13_evt_user;
\set VERBOSITY terse

-- 'ok', or the SQLSTATE of the error
CREATE FUNCTION public.i13_try(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE sql;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE;
END;
$$;
-- what event triggers must not have done to any segment
CREATE VIEW public.segments_touched AS
	WITH seg AS (SELECT oid AS relid FROM pg_class
				  WHERE relnamespace = 'courier'::regnamespace AND relname ~ '^log_[0-9]+_[0-9]+$')
	SELECT (SELECT count(*) FROM pg_attribute a JOIN seg s ON a.attrelid = s.relid
			 WHERE a.attnum > 0 AND a.attname NOT IN ('id', 'sent_at', 'deliver_at', 'tag', 'keys', 'headers', 'body'))
			 AS other_columns,
		   (SELECT count(*) FROM pg_trigger t JOIN seg s ON t.tgrelid = s.relid) AS triggers,
		   (SELECT count(*) FROM pg_policy p JOIN seg s ON p.polrelid = s.relid) AS policies,
		   (SELECT count(*) FROM pg_class c JOIN seg s ON c.oid = s.relid
			 WHERE c.relrowsecurity) AS row_security;
-- send and receive on every topic that exists: 'ok' for each
CREATE VIEW public.topics_work AS
	SELECT name AS topic,
		   public.i13_try(format('SELECT courier.send(%L, ''{"n": 1}'')', name)) AS send,
		   public.i13_try(format('SELECT courier.receive(%L, ''default'', 10)', name)) AS receive
	FROM courier.topics;

-- an event trigger that adds an audit column to every new table
CREATE FUNCTION public.add_audit_column() RETURNS event_trigger LANGUAGE plpgsql AS $$
DECLARE
	obj record;
BEGIN
	FOR obj IN SELECT * FROM pg_event_trigger_ddl_commands() WHERE command_tag = 'CREATE TABLE' LOOP
		EXECUTE format('ALTER TABLE %s ADD COLUMN audited_at timestamptz DEFAULT now()', obj.object_identity);
	END LOOP;
END;
$$;
-- a topic from before the event trigger, due for rotation
SELECT courier.create_topic('before', retention => '4 seconds');
SELECT courier.send('before', '{"n": 0}') AS id;
SELECT pg_sleep(1.1);
CREATE EVENT TRIGGER add_audit_column ON ddl_command_end EXECUTE FUNCTION public.add_audit_column();
-- the old topic rotates, a new topic is created
SELECT public.i13_try($$SELECT courier.run_maintenance()$$) IN ('ok', '42501') AS rotation_clean;
SELECT public.i13_try($$SELECT courier.create_topic('evt')$$) IN ('ok', '42501') AS create_topic_clean;
SELECT * FROM public.segments_touched;
SELECT count(*) FILTER (WHERE topic LIKE 'before%') AS old_topic,
	   count(*) FILTER (WHERE send <> 'ok' OR receive <> 'ok') AS broken_topics FROM public.topics_work;
DROP EVENT TRIGGER add_audit_column;
SELECT count(courier.drop_topic(name)) AS dropped FROM courier.topic_meta;

-- an event trigger that puts an audit trigger and a policy on every new table
CREATE FUNCTION public.audit_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	RAISE NOTICE 'audited';
	RETURN NEW;
END;
$$;
CREATE FUNCTION public.add_audit_trigger() RETURNS event_trigger LANGUAGE plpgsql AS $$
DECLARE
	obj record;
BEGIN
	FOR obj IN SELECT * FROM pg_event_trigger_ddl_commands() WHERE command_tag = 'CREATE TABLE' LOOP
		EXECUTE format('CREATE TRIGGER audit AFTER INSERT ON %s FOR EACH ROW EXECUTE FUNCTION public.audit_row()',
					   obj.object_identity);
		EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', obj.object_identity);
		EXECUTE format('CREATE POLICY mine ON %s USING (false)', obj.object_identity);
	END LOOP;
END;
$$;
SELECT courier.create_topic('before2', retention => '4 seconds');
SELECT courier.send('before2', '{"n": 0}') AS id;
SELECT pg_sleep(1.1);
CREATE EVENT TRIGGER add_audit_trigger ON ddl_command_end EXECUTE FUNCTION public.add_audit_trigger();
SELECT public.i13_try($$SELECT courier.run_maintenance()$$) IN ('ok', '42501') AS rotation_clean;
SELECT public.i13_try($$SELECT courier.create_topic('evt2')$$) IN ('ok', '42501') AS create_topic_clean;
SELECT * FROM public.segments_touched;
SELECT count(*) FILTER (WHERE topic LIKE 'before%') AS old_topic,
	   count(*) FILTER (WHERE send <> 'ok' OR receive <> 'ok') AS broken_topics FROM public.topics_work;
DROP EVENT TRIGGER add_audit_trigger;
SELECT count(courier.drop_topic(name)) AS dropped FROM courier.topic_meta;

-- an auto-grant event trigger still works (guard.sql tests it too)
CREATE FUNCTION public.grant_new_tables() RETURNS event_trigger LANGUAGE plpgsql AS $$
DECLARE
	obj record;
BEGIN
	FOR obj IN SELECT * FROM pg_event_trigger_ddl_commands() WHERE command_tag = 'CREATE TABLE' LOOP
		EXECUTE format('GRANT SELECT ON %s TO regress_i13_evt_user', obj.object_identity);
	END LOOP;
END;
$$;
CREATE EVENT TRIGGER grant_new_tables ON ddl_command_end EXECUTE FUNCTION public.grant_new_tables();
SELECT courier.create_topic('evt3');
SELECT courier.send('evt3', '{"n": 1}') AS id;
SELECT id, body FROM courier.receive('evt3', 'default', 10);
DROP EVENT TRIGGER grant_new_tables;

\c contrib_regression
SET client_min_messages = warning;
DROP DATABASE regress_courier_i13_evt;
DROP ROLE regress_i13_evt_user;
