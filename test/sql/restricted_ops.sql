-- Inside a security-restricted operation (ANALYZE or VACUUM evaluating an
-- index expression, REFRESH MATERIALIZED VIEW, CREATE INDEX, ...) PostgreSQL
-- runs a relation owner's code as that owner but leaves the outer user --
-- the role pg_courier checks -- as whoever started the operation: a
-- superuser, or autovacuum.  Every pg_courier function that needs the outer
-- user refuses there (src/acl.c, CourierOuterUser), so a role cannot read,
-- send to or grant itself a topic it has no privilege on by having a
-- superuser or autovacuum run its code.  Found by review of 1682c01; the
-- hole was older.
\set VERBOSITY terse
SET client_min_messages = warning;

CREATE ROLE regress_ro;
GRANT courier_admin TO regress_ro;
GRANT CREATE ON DATABASE :"DBNAME" TO regress_ro;
SELECT courier.create_topic('ro_secret');
SELECT courier.create_group('ro_secret', 'g');
SELECT courier.send('ro_secret', '{"password": "hunter2"}') IS NOT NULL AS sent;
-- and a dead letter, so that the views' filter has a row to judge
SELECT courier.create_group('ro_secret', 'dl', max_attempts => 1);
SELECT count(*) AS leased FROM courier.receive('ro_secret', 'dl', 10, '0');
SELECT count(*) AS none_left FROM courier.receive('ro_secret', 'dl', 10, '1 hour');

SET ROLE regress_ro;
-- directly: refused, as always
SELECT * FROM courier.peek('ro_secret', 'g', 10);
SELECT courier.grant('ro_secret', 'regress_ro', 'admin');
CREATE SCHEMA ro_evil;
CREATE TABLE ro_evil.loot (what text);
-- a materialized view over peek, refreshed later by a superuser
CREATE MATERIALIZED VIEW ro_evil.mv AS
  SELECT id, body FROM courier.peek('ro_secret', 'g', 10) WITH NO DATA;
-- an expression index whose "immutable" function sends, peeks and grants
CREATE FUNCTION ro_evil.steal() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO ro_evil.loot SELECT body::text FROM courier.peek('ro_secret', 'g', 10);
  PERFORM courier.send('ro_secret', '{"forged": true}');
  PERFORM courier.grant('ro_secret', 'regress_ro', 'admin');
END $$;
CREATE FUNCTION ro_evil.f(int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS
  $$BEGIN PERFORM ro_evil.steal(); RETURN $1; END$$;
CREATE TABLE ro_evil.t (x int);
INSERT INTO ro_evil.t VALUES (1);
RESET ROLE;

-- each way in, run by a superuser: refused
REFRESH MATERIALIZED VIEW ro_evil.mv;
SET ROLE regress_ro;
CREATE INDEX ON ro_evil.t (ro_evil.f(x));
RESET ROLE;
-- ANALYZE evaluates index expressions as the table's owner: create the
-- index with a harmless body, then swap the body in
SET ROLE regress_ro;
CREATE OR REPLACE FUNCTION ro_evil.f(int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT $1';
CREATE INDEX t_f ON ro_evil.t (ro_evil.f(x));
CREATE OR REPLACE FUNCTION ro_evil.f(int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS
  $$BEGIN PERFORM ro_evil.steal(); RETURN $1; END$$;
RESET ROLE;
ANALYZE ro_evil.t;
-- the other message functions and the views refuse there as well
CREATE FUNCTION ro_evil.try(q text) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN EXECUTE q; RETURN 1; END $$;
CREATE TABLE ro_evil.u (q text);
INSERT INTO ro_evil.u VALUES
  ($q$SELECT courier.send_batch('ro_secret', '{"{}"}')$q$),
  ($q$SELECT courier.receive('ro_secret', 'g')$q$),
  ($q$SELECT courier.ack('ro_secret', 'g', 1)$q$),
  ($q$SELECT courier.ack('ro_secret', 'g', '{1}'::bigint[])$q$),
  ($q$SELECT count(*) FROM courier.ack_and_receive('ro_secret', 'g', '{1}'::bigint[])$q$),
  ($q$SELECT courier.nack('ro_secret', 'g', 1)$q$),
  ($q$SELECT courier.set_visibility('ro_secret', 'g', 1, '0')$q$),
  ($q$SELECT count(*) FROM courier.topics$q$),
  ($q$SELECT count(*) FROM courier.dead_letters$q$),
  ($q$SELECT count(*) FROM courier.metrics()$q$),
  ($q$SELECT courier.create_topic('ro_made')$q$),
  ($q$SELECT courier.run_maintenance()$q$);
CREATE TABLE ro_evil.v (q text);
DO $$ DECLARE r record; BEGIN
  FOR r IN SELECT q FROM ro_evil.u LOOP
    BEGIN
      EXECUTE format('CREATE MATERIALIZED VIEW ro_evil.m AS SELECT ro_evil.try(%L) WITH NO DATA', r.q);
      REFRESH MATERIALIZED VIEW ro_evil.m;
      RAISE NOTICE 'ran: %', r.q;
    EXCEPTION WHEN insufficient_privilege THEN
      INSERT INTO ro_evil.v VALUES (r.q || ' -> ' || SQLERRM);
    END;
    DROP MATERIALIZED VIEW IF EXISTS ro_evil.m;
  END LOOP;
END $$;
SELECT q FROM ro_evil.v ORDER BY q;

-- nothing leaked, nothing forged, nothing granted
SELECT count(*) AS loot FROM ro_evil.loot;
SELECT count(*) AS messages FROM courier.peek('ro_secret', 'g', 10);
SELECT grantee, privilege FROM courier.privileges WHERE topic = 'ro_secret' ORDER BY 1, 2;
SELECT count(*) AS made FROM courier.topics WHERE topic = 'ro_made';
-- outside such an operation everything works as before
SELECT count(*) AS received FROM courier.receive('ro_secret', 'g', 10, '1 hour');

DROP SCHEMA ro_evil CASCADE;
SELECT courier.drop_topic('ro_secret');
REVOKE CREATE ON DATABASE :"DBNAME" FROM regress_ro;
DROP ROLE regress_ro;
