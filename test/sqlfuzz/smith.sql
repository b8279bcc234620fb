-- The role sqlsmith runs as (test/sqlfuzz/run.sh): not a superuser, with
-- EXECUTE on every public function of schema courier, SELECT on its views
-- (the only GRANT the extension's DDL guard allows on its relations), and scalar wrappers of the set-returning
-- functions (sqlsmith calls only functions that return one value).  Table
-- smith.vals holds values from real traffic (topics, groups, ids, receipts,
-- filters, headers) for sqlsmith's generated calls to pick from.
\set ON_ERROR_STOP 1
CREATE ROLE smith LOGIN;
GRANT USAGE ON SCHEMA courier TO smith;
DO $$
DECLARE f regprocedure;
BEGIN
	FOR f IN SELECT p.oid::regprocedure FROM pg_proc p
			  WHERE p.pronamespace = 'courier'::regnamespace AND p.proname !~ '^_' LOOP
		EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO smith', f);
	END LOOP;
END $$;
GRANT SELECT ON courier.topics, courier.groups, courier.dead_letters TO smith;
-- SELECT on the views is not enough to read them (the bug that
-- test/sqlfuzz/run.sh's 'monitor' test shows): they call these two
GRANT EXECUTE ON FUNCTION courier._group_stats(integer), courier._topic_stats(integer) TO smith;

CREATE SCHEMA smith AUTHORIZATION smith;
SET ROLE smith;
CREATE TABLE smith.vals (topic text, grp text, id bigint, receipt text, filter text, tag text,
						 headers jsonb, body jsonb, keys text[], ids bigint[], delay interval,
						 at timestamptz, n int);
INSERT INTO smith.vals
SELECT 'fz', g, m.id, m.receipt, f, m.tag, m.headers, m.body, m.keys, ARRAY[m.id, m.id + 1],
	   (m.id % 5) * interval '10 ms', now() + (m.id % 3) * interval '1 s', (m.id % 12)::int
  FROM (VALUES ('tags', 'created || paid'), ('sql', $$region = 'eu' AND amount >= 100$$),
			   ('ord', '*'), ('dlq', $$amount BETWEEN 1 AND 50$$)) AS gs(g, f),
	   LATERAL courier.receive('fz', g, 5, '10 minutes') m;
INSERT INTO smith.vals (topic, grp, filter, tag, n) VALUES ('fz.two', 'late', $$TAGS IN ('a', 'b')$$, 'a', 0),
	('victim', 'default', 'x IS NULL', NULL, -1), ('nosuch', 'nosuch', 'a ||', '', 2147483647);

CREATE FUNCTION smith.receive_ids(topic text, grp text, n int, vt interval, wait interval)
	RETURNS bigint[] LANGUAGE sql AS $$ SELECT array_agg(id) FROM courier.receive(topic, grp, n, vt, wait) $$;
CREATE FUNCTION smith.receive_receipt(topic text, grp text) RETURNS text LANGUAGE sql
	AS $$ SELECT receipt FROM courier.receive(topic, grp, 1, '1 second') $$;
CREATE FUNCTION smith.peek_ids(topic text, grp text, n int) RETURNS bigint[] LANGUAGE sql
	AS $$ SELECT array_agg(id) FROM courier.peek(topic, grp, n) $$;
CREATE FUNCTION smith.find_states(topic text, key text, id bigint) RETURNS text[] LANGUAGE sql
	AS $$ SELECT array_agg(grp || ':' || state) FROM courier.find(topic, key, id) $$;
CREATE FUNCTION smith.send_batch_ids(topic text, bodies jsonb[], tag text, headers jsonb, delay interval,
									 keys text[]) RETURNS bigint[] LANGUAGE sql
	AS $$ SELECT array_agg(i) FROM courier.send_batch(topic, bodies, tag, headers, delay, NULL, keys) i $$;
-- sqlsmith draws each call from every function of the database (some three
-- thousand in pg_catalog): SQL copies of pg_courier's functions, 25 of each
-- (one of run_maintenance), make one query in four call one of them.  Set-returning functions become counts,
-- void ones booleans.
DO $$
DECLARE
	f record;
	k int;
	ret text;
	body text;
BEGIN
	FOR f IN SELECT p.proname, p.proretset, p.prorettype::regtype::text AS rettype,
					pg_get_function_arguments(p.oid) AS args,
					(SELECT string_agg('$' || i, ', ') FROM generate_series(1, p.pronargs) i) AS params
			   FROM pg_proc p
			  WHERE p.pronamespace = 'courier'::regnamespace AND p.proname !~ '^_' LOOP
		IF f.proretset THEN
			ret := 'bigint';
			body := format('SELECT count(*) FROM courier.%I(%s)', f.proname, coalesce(f.params, ''));
		ELSIF f.rettype = 'void' THEN
			ret := 'boolean';
			body := format('SELECT courier.%I(%s) IS NULL', f.proname, coalesce(f.params, ''));
		ELSE
			ret := f.rettype;
			body := format('SELECT courier.%I(%s)', f.proname, coalesce(f.params, ''));
		END IF;
		-- run_maintenance() takes no argument and fits anywhere: one copy is plenty
		FOR k IN 1..CASE WHEN f.proname = 'run_maintenance' THEN 1 ELSE 25 END LOOP
			EXECUTE format('CREATE FUNCTION smith.%I(%s) RETURNS %s LANGUAGE sql AS %L',
						   f.proname || '_' || k, regexp_replace(f.args, ' DEFAULT [^,]*', '', 'g'),
						   ret, body);
		END LOOP;
	END LOOP;
END $$;
RESET ROLE;
