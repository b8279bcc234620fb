-- Nothing is executable by PUBLIC but the filter helpers (and what checks
-- topic privileges itself); a role granted EXECUTE on send/receive/ack and
-- the topic privileges send and receive can use a topic without any
-- privilege on the tables.  The whole matrix: privilege_matrix.sql.
\set VERBOSITY terse
SET client_min_messages = warning;

SELECT courier.create_topic('priv');
CREATE ROLE regress_courier_app;
GRANT EXECUTE ON FUNCTION
	courier.send(text, jsonb, text, text[], jsonb, interval, timestamptz),
	courier.receive(text, text, integer, interval, interval, interval),
	courier.ack(text, text, bigint, text) TO regress_courier_app;
SELECT courier.grant('priv', 'regress_courier_app', 'send');
SELECT courier.grant('priv', 'regress_courier_app', 'receive');

SET ROLE regress_courier_app;
SELECT courier.send('priv', '{"from": "app"}') AS id \gset
SELECT id = :id AS got, body FROM courier.receive('priv');
SELECT courier.ack('priv', 'default', :id);
SELECT courier.check_filter('a = 1');
SELECT courier.nack('priv', 'default', :id);
SELECT courier.create_topic('mine');
SELECT * FROM courier.lease;
RESET ROLE;

-- a burst of delayed messages due at the same moment all arrive together
SELECT count(*) FROM courier.send_batch('priv',
  (SELECT array_agg(jsonb_build_object('n', g)) FROM generate_series(1, 3000) g),
  deliver_at => clock_timestamp() + interval '1 second');
SELECT count(*) AS early FROM courier.receive('priv', 'default', 10000);
SELECT count(*) AS when_due FROM courier.receive('priv', 'default', 10000, wait => '30 seconds');

SELECT courier.drop_topic('priv');
DROP OWNED BY regress_courier_app;
DROP ROLE regress_courier_app;
