-- The role sqlsmith runs as (test/sqlfuzz/run.sh): not a superuser, with
-- EXECUTE on every public function of schema courier, all topic privileges
-- on the topics of setup.sql, SELECT on its views
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
-- (the views' helpers, _may_see, _topic_info, _group_info and
-- _last_maintenance, are granted to PUBLIC by the install script since 0.2.0:
-- no EXECUTE on an internal function here, or the 'monitor' test of
-- test/sqlfuzz/run.sh could pass here and fail for a user)
GRANT SELECT ON courier.topics, courier.groups, courier.dead_letters TO smith;
-- and every privilege on the topics of setup.sql (issue 7: EXECUTE alone
-- reaches no topic); the topics smith creates are its own
SELECT courier.grant(t, 'smith', 'all') FROM unnest(ARRAY['fz', 'fz.two', 'victim']) t;

-- PostgreSQL's own internal errors (XX000) that random SQL reaches by calling
-- support functions directly (calls.py, CORE_XX000): the transition, final,
-- combine and (de)serial functions of the built-in aggregates, the
-- interval typmod coercion and amvalidate.  smith may not call them, so they answer 42501;
-- aggregates still work (PostgreSQL checks their support functions against
-- the aggregate's owner).  This cluster is thrown away after the run.
DO $$
DECLARE f regprocedure;
BEGIN
	FOR f IN SELECT DISTINCT p.oid::regprocedure
			   FROM pg_aggregate a,
					unnest(ARRAY[a.aggtransfn, a.aggfinalfn, a.aggcombinefn, a.aggserialfn,
								 a.aggdeserialfn, a.aggmtransfn, a.aggminvtransfn,
								 a.aggmfinalfn]::oid[]) s(fn)
					JOIN pg_proc p ON p.oid = s.fn
			  WHERE p.pronamespace = 'pg_catalog'::regnamespace
				-- not those that also implement an operator or a cast (int4and is &)
				AND NOT EXISTS (SELECT 1 FROM pg_operator o WHERE o.oprcode = p.oid)
				AND NOT EXISTS (SELECT 1 FROM pg_cast c WHERE c.castfunc = p.oid) LOOP
		EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', f);
	END LOOP;
END $$;
REVOKE EXECUTE ON FUNCTION pg_catalog.interval(interval, integer) FROM PUBLIC;
-- amvalidate(oid) of an OID that is no operator class: XX000 'cache lookup
-- failed for operator class 0' (seed 763462134 reached it through
-- amvalidate(pg_my_temp_schema()); the only one of the 160 one-OID functions
-- of pg_catalog, each called with 0 as a plain role, that raises XX000)
REVOKE EXECUTE ON FUNCTION pg_catalog.amvalidate(oid) FROM PUBLIC;

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
-- (one of run_maintenance and of metrics), make one query in four call one of them.  Set-returning functions become counts,
-- void ones booleans.
DO $$
DECLARE
	f record;
	k int;
	ret text;
	body text;
BEGIN
	FOR f IN SELECT p.proname, p.proretset, p.pronargs, p.prorettype::regtype::text AS rettype,
					-- the input arguments (no OUT ones: metrics()), without defaults
					(SELECT string_agg(a, ', ') FROM unnest(string_to_array(
						regexp_replace(pg_get_function_arguments(p.oid), ' DEFAULT [^,]*', '', 'g'), ', ')) a
					  WHERE a !~ '^OUT ') AS args,
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
		-- run_maintenance() and metrics() take no argument and fit anywhere: one copy is plenty
		FOR k IN 1..CASE WHEN f.pronargs = 0 THEN 1 ELSE 25 END LOOP
			EXECUTE format('CREATE FUNCTION smith.%I(%s) RETURNS %s LANGUAGE sql AS %L',
						   f.proname || '_' || k, coalesce(f.args, ''),
						   ret, body);
		END LOOP;
	END LOOP;
END $$;
RESET ROLE;
