-- Issue 13, defect 8: a savepoint per send made a transaction quadratic
-- (xact.c kept one item per send and rescanned them all at every
-- subtransaction commit): 160k sends with a savepoint each took 23 s against
-- 1.4 s without.  JDBC's autosave=always does exactly this.  Now the
-- bookkeeping per transaction is a small set keyed by topic and only the
-- tail of the claim list is looked at when a savepoint ends.
--
-- Tests never assert timings, so: (1) the backend's memory inside such a
-- transaction grows only by what PostgreSQL itself needs per subtransaction
-- (its list of committed child xids, 4 bytes each), and (2) the 160k sends
-- finish under a generous statement_timeout (here they take 3 to 9 s, on
-- 0.1.0 about 50 s).  Then rolled-back savepoints:
-- their sends never show up, and their receives give every message back.
SET client_min_messages = warning;
SELECT courier.create_topic('sp');
CREATE FUNCTION pg_temp.memory() RETURNS bigint LANGUAGE sql
	AS $$ SELECT sum(total_bytes)::bigint FROM pg_backend_memory_contexts $$;

-- ---- 160,000 sends, each in a savepoint of its own, in one transaction
BEGIN;
SET LOCAL statement_timeout = '30s';
SELECT pg_temp.memory() AS before \gset
DO $$
BEGIN
	FOR i IN 1 .. 160000 LOOP
		BEGIN
			PERFORM courier.send('sp', jsonb_build_object('i', i));
		EXCEPTION WHEN division_by_zero THEN
			NULL;
		END;
	END LOOP;
END;
$$;
-- PostgreSQL's own share: 160,000 child xids of 4 bytes (a doubling array)
SELECT pg_temp.memory() - :before < 2 * 1024 * 1024 AS memory_bounded;
COMMIT;
SELECT messages FROM courier.topics WHERE topic = 'sp';
SELECT courier.drop_topic('sp');

-- ---- sends in rolled-back savepoints never show up
SELECT courier.create_topic('sp');
DO $$
BEGIN
	FOR i IN 1 .. 1000 LOOP
		BEGIN
			PERFORM courier.send('sp', jsonb_build_object('i', i));
			IF i % 2 = 1 THEN
				RAISE division_by_zero;
			END IF;
		EXCEPTION WHEN division_by_zero THEN
			NULL;
		END;
	END LOOP;
END;
$$;
SELECT count(*) AS received, bool_and((body->>'i')::int % 2 = 0) AS only_even
  FROM courier.receive('sp', 'default', 10000);

-- ---- a receive per savepoint; every other savepoint rolled back: its
-- messages come back, the others stay delivered
SELECT count(courier.send('sp', jsonb_build_object('r', g))) AS sent FROM generate_series(1, 200) g;
CREATE TEMP TABLE kept (id bigint);
DO $$
DECLARE
	got bigint;
BEGIN
	FOR i IN 1 .. 200 LOOP
		BEGIN
			SELECT id INTO got FROM courier.receive('sp', 'default', 1);
			IF i % 2 = 1 THEN
				RAISE division_by_zero;
			END IF;
			INSERT INTO kept VALUES (got);
		EXCEPTION WHEN division_by_zero THEN
			NULL;
		END;
	END LOOP;
END;
$$;
SELECT count(*) AS kept, count(DISTINCT id) AS distinct_kept FROM kept;
-- the 100 rolled back come back, each once, as first deliveries
CREATE TEMP TABLE back AS SELECT id, attempt FROM courier.receive('sp', 'default', 10000);
SELECT count(*) AS came_back, count(DISTINCT id) AS distinct_back, max(attempt) AS attempt,
	   (SELECT count(*) FROM back JOIN kept USING (id)) AS overlap
  FROM back;
SELECT count(*) AS left_over FROM courier.receive('sp', 'default', 10000);

-- ---- SQL-level savepoints, as a driver issues them (nested, released,
-- rolled back), with the ids shown by their order of sending
SELECT count(courier.send('sp', jsonb_build_object('s', g))) AS sent FROM generate_series(1, 6) g;
BEGIN;
SAVEPOINT a;
SELECT body->>'s' AS s FROM courier.receive('sp', 'default', 1);
RELEASE a;
SAVEPOINT b;
SELECT body->>'s' AS s FROM courier.receive('sp', 'default', 1);
ROLLBACK TO b;
-- given back at once, in the same transaction
SELECT body->>'s' AS s, attempt FROM courier.receive('sp', 'default', 1);
RELEASE b;
SAVEPOINT c;
SELECT body->>'s' AS s FROM courier.receive('sp', 'default', 1);
SAVEPOINT d;
SELECT body->>'s' AS s FROM courier.receive('sp', 'default', 1);
RELEASE d;
ROLLBACK TO c;
SAVEPOINT e;
SELECT body->>'s' AS s FROM courier.receive('sp', 'default', 1);
RELEASE e;
COMMIT;
-- 1, 2 and 3 were kept; 4 went back with c (d was released into c); 5 and 6
-- were never received
SELECT body->>'s' AS s, attempt FROM courier.receive('sp', 'default', 10) ORDER BY id;

SELECT courier.drop_topic('sp');
