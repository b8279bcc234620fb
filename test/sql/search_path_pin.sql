-- The message functions (send, send_batch, receive, peek, ack, nack,
-- set_visibility) are SECURITY INVOKER and switch to the extension owner
-- and a pinned search_path in C (src/acl.c, CourierRunAsOwner).  A role
-- that may create schemas (as a database owner may) plants operators,
-- functions and types named like pg_catalog's in a schema it puts before
-- pg_catalog in its search_path, then uses every message function, on
-- every path that runs SQL inside (delays, ordered groups, expiry,
-- redelivery, dead letters): nothing it planted runs, as the owner or at all,
-- and the functions still work.  Without the pin, CourierPrepare refuses to
-- prepare (lease.c) and most of this suite fails.
\set VERBOSITY terse
SET client_min_messages = warning;

CREATE ROLE regress_pin;
GRANT courier_admin TO regress_pin;
GRANT CREATE ON DATABASE :"DBNAME" TO regress_pin;

SET ROLE regress_pin;
CREATE SCHEMA evil;
CREATE TABLE evil.log (who name, what text);
GRANT INSERT ON evil.log TO PUBLIC;
CREATE FUNCTION evil.trap(what text) RETURNS boolean LANGUAGE plpgsql AS
$$BEGIN INSERT INTO evil.log VALUES (current_user, what); RETURN true; END$$;
CREATE FUNCTION evil.eq8(bigint, bigint) RETURNS boolean LANGUAGE sql AS
  $$SELECT evil.trap('= bigint') AND $1 OPERATOR(pg_catalog.=) $2$$;
CREATE FUNCTION evil.lt8(bigint, bigint) RETURNS boolean LANGUAGE sql AS
  $$SELECT evil.trap('< bigint') AND $1 OPERATOR(pg_catalog.<) $2$$;
CREATE FUNCTION evil.le8(bigint, bigint) RETURNS boolean LANGUAGE sql AS
  $$SELECT evil.trap('<= bigint') AND $1 OPERATOR(pg_catalog.<=) $2$$;
CREATE FUNCTION evil.ge8(bigint, bigint) RETURNS boolean LANGUAGE sql AS
  $$SELECT evil.trap('>= bigint') AND $1 OPERATOR(pg_catalog.>=) $2$$;
CREATE FUNCTION evil.eq4(integer, integer) RETURNS boolean LANGUAGE sql AS
  $$SELECT evil.trap('= integer') AND $1 OPERATOR(pg_catalog.=) $2$$;
CREATE FUNCTION evil.eqt(text, text) RETURNS boolean LANGUAGE sql AS
  $$SELECT evil.trap('= text') AND $1 OPERATOR(pg_catalog.=) $2$$;
CREATE FUNCTION evil.lets(timestamptz, timestamptz) RETURNS boolean LANGUAGE sql AS
  $$SELECT evil.trap('<= timestamptz') AND $1 OPERATOR(pg_catalog.<=) $2$$;
CREATE OPERATOR evil.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = evil.eq8);
CREATE OPERATOR evil.< (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = evil.lt8);
CREATE OPERATOR evil.<= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = evil.le8);
CREATE OPERATOR evil.>= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = evil.ge8);
CREATE OPERATOR evil.= (LEFTARG = integer, RIGHTARG = integer, FUNCTION = evil.eq4);
CREATE OPERATOR evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.eqt);
CREATE OPERATOR evil.<= (LEFTARG = timestamptz, RIGHTARG = timestamptz, FUNCTION = evil.lets);
CREATE FUNCTION evil.now() RETURNS timestamptz LANGUAGE sql AS
  $$SELECT CASE WHEN evil.trap('now()') THEN pg_catalog.now() END$$;
CREATE FUNCTION evil.clock_timestamp() RETURNS timestamptz LANGUAGE sql AS
  $$SELECT CASE WHEN evil.trap('clock_timestamp()') THEN pg_catalog.clock_timestamp() END$$;
CREATE FUNCTION evil.unnest(bigint[]) RETURNS SETOF bigint LANGUAGE sql AS
  $$SELECT m FROM pg_catalog.unnest($1) m WHERE evil.trap('unnest()')$$;
CREATE FUNCTION evil.array_length(bigint[], integer) RETURNS integer LANGUAGE sql AS
  $$SELECT CASE WHEN evil.trap('array_length()') THEN pg_catalog.array_length($1, $2) END$$;
CREATE FUNCTION evil.cardinality(anyarray) RETURNS integer LANGUAGE sql AS
  $$SELECT CASE WHEN evil.trap('cardinality()') THEN pg_catalog.cardinality($1) END$$;
CREATE DOMAIN evil.int8 AS pg_catalog.int8 CHECK (evil.trap('int8'));
CREATE DOMAIN evil.text AS pg_catalog.text CHECK (evil.trap('text'));
CREATE DOMAIN evil.interval AS pg_catalog.interval CHECK (evil.trap('interval'));
CREATE DOMAIN evil.timestamptz AS pg_catalog.timestamptz CHECK (evil.trap('timestamptz'));

-- its own topic, a plain and an ordered group with one attempt
SELECT courier.create_topic('pin');
SELECT courier.create_group('pin', 'ord', ordered => true, max_attempts => 2);
SELECT courier.create_group('pin', 'dl', max_attempts => 1);

SET search_path = evil, pg_catalog, public;
SELECT courier.send('pin', '{"n": 1}', keys => '{k1}') AS s1 \gset
SELECT ids AS s2 FROM courier.send_batch('pin', '{"{\"n\": 2}","{\"n\": 3}"}', keys => '{k1}') ids LIMIT 1 \gset
SELECT courier.send('pin', '{"n": 4}', deliver_at => pg_catalog.clock_timestamp() OPERATOR(pg_catalog.+) '1 hour') AS later \gset
SELECT count(*) AS peeked FROM courier.peek('pin', 'default', 10);
-- plain group: receive 3, ack one, ack two by array, nack one (after a new receive)
SELECT pg_catalog.array_agg(id) AS got FROM courier.receive('pin', 'default', 10, '1 hour') \gset
SELECT :'got';
SELECT courier.ack('pin', 'default', :s1);
SELECT courier.set_visibility('pin', 'default', :s2, '0');
SELECT courier.ack('pin', 'default', ARRAY[:s2]::bigint[]);
-- ordered group: the head of k1, nacked, comes back; then acked
SELECT id AS head FROM courier.receive('pin', 'ord', 10, '1 hour') \gset
SELECT :head OPERATOR(pg_catalog.=) :s1 AS head_is_first;
SELECT courier.nack('pin', 'ord', :head, '0');
SELECT id AS again, attempt FROM courier.receive('pin', 'ord', 10, '1 hour');
SELECT courier.ack('pin', 'ord', :s1);
-- expiry and dead letters: a lease of 0 expires at once; max_attempts 1
SELECT count(*) AS leased FROM courier.receive('pin', 'dl', 10, '0');
SELECT count(*) AS after_expiry FROM courier.receive('pin', 'dl', 10, '1 hour');
-- a temporary schema first in the caller's path (so it is in the pinned
-- path too, last): temp tables named like courier's, temp domains, a temp
-- operator
CREATE TEMP TABLE topic_meta (x int);
CREATE TEMP TABLE lease (x int);
CREATE TEMP TABLE claim (x int);
CREATE DOMAIN pg_temp.int8 AS pg_catalog.int8 CHECK (evil.trap('temp int8'));
CREATE DOMAIN pg_temp.jsonb AS pg_catalog.jsonb CHECK (evil.trap('temp jsonb'));
CREATE FUNCTION pg_temp.eq8(bigint, bigint) RETURNS boolean LANGUAGE sql AS
  $$SELECT evil.trap('temp =') AND $1 OPERATOR(pg_catalog.=) $2$$;
CREATE OPERATOR pg_temp.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = pg_temp.eq8);
SET search_path = pg_temp, evil, pg_catalog;
SELECT courier.send('pin', '{"n": 5}') AS s5 \gset
SELECT id OPERATOR(pg_catalog.=) :s5 AS got_s5 FROM courier.receive('pin', 'default', 10, '1 hour');
SELECT courier.ack('pin', 'default', :s5);
-- ack_and_receive: the ack of s5 again (a no-op) and the next message
SELECT courier.send('pin', '{"n": 6}') AS s6 \gset
SELECT id OPERATOR(pg_catalog.=) :s6 AS got_s6
  FROM courier.ack_and_receive('pin', 'default', ARRAY[:s5]::bigint[], NULL, 10, '1 hour');
SELECT count(*) AS none_after_ack FROM courier.ack_and_receive('pin', 'default', ARRAY[:s6]::bigint[], NULL, 10, '1 hour');
SELECT count(*) AS ord_waits FROM courier.receive('pin', 'ord', 10, '1 hour');
SET search_path = evil, pg_catalog, public;
-- the control: the traps do catch an unqualified name on this path
SELECT now() IS NOT NULL AS control;
RESET search_path;
RESET ROLE;

-- nothing planted ran but the control, and the messages went where they should
SELECT count(*) AS trapped FROM evil.log;
SELECT who, what FROM evil.log GROUP BY 1, 2 ORDER BY 1, 2;
SELECT count(*) AS dead_in_dl FROM courier.dead_letters WHERE topic = 'pin' AND grp = 'dl';
SELECT count(*) AS left_in_default FROM courier.receive('pin', 'default', 10, '1 hour');

SELECT courier.drop_topic('pin');
DISCARD TEMP;
DROP SCHEMA evil CASCADE;
REVOKE CREATE ON DATABASE :"DBNAME" FROM regress_pin;
DROP ROLE regress_pin;
