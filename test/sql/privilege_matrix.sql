-- Per-topic privileges, the whole matrix (pgTAP): every function and view
-- x {no grant, send, receive, admin, owner} x {the topic granted on, another
-- topic}.  A call without the privilege fails with 42501 naming the topic;
-- with it, it runs (and is rolled back, so every cell starts from the same
-- state).  Roles are checked as GetOuterUserId(): SET ROLE counts.
\set ECHO none
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pgtap;

CREATE ROLE regress_m_none;
CREATE ROLE regress_m_send;
CREATE ROLE regress_m_recv;
CREATE ROLE regress_m_admin;
CREATE ROLE regress_m_owner;
-- EXECUTE on every function comes from the extension's roles
GRANT courier_admin TO regress_m_none, regress_m_send, regress_m_recv, regress_m_admin, regress_m_owner;

SELECT courier.create_topic('granted');
SELECT courier.create_topic('other');
SET ROLE regress_m_owner;
SELECT courier.create_topic('mine');
RESET ROLE;
SELECT courier.grant('granted', 'regress_m_send', 'send');
SELECT courier.grant('granted', 'regress_m_recv', 'receive');
SELECT courier.grant('granted', 'regress_m_admin', 'admin');

-- the same state in every topic: message 1 in flight in default, messages
-- 1..3 dead in group dl
SELECT courier.create_group(t, 'dl', max_attempts => 1) FROM unnest(ARRAY['granted', 'other', 'mine']) t;
SELECT count(courier.send(t, jsonb_build_object('n', g)))
  FROM unnest(ARRAY['granted', 'other', 'mine']) t, generate_series(1, 3) g;
SELECT count(*) FROM unnest(ARRAY['granted', 'other', 'mine']) t, courier.receive(t, 'default', 1, '1 hour');
SELECT count(*) FROM unnest(ARRAY['granted', 'other', 'mine']) t, courier.receive(t, 'dl', 3, '0');
SELECT courier.run_maintenance() IS NOT NULL;

-- run q as role r, roll it back, say 'ok' or the SQLSTATE
CREATE FUNCTION pg_temp.try_as(r text, q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	BEGIN
		PERFORM set_config('role', r, true);
		EXECUTE q;
		RAISE EXCEPTION 'roll back' USING ERRCODE = 'P0099';
	EXCEPTION
		WHEN SQLSTATE 'P0099' THEN RETURN 'ok';
		WHEN OTHERS THEN RETURN SQLSTATE;
	END;
END;
$$;

CREATE TEMP TABLE calls (n int, fn text, needs text, q text);
INSERT INTO calls VALUES
	(1, 'send', 'send', $q$SELECT courier.send('%T', '{}')$q$),
	(2, 'send_batch', 'send', $q$SELECT courier.send_batch('%T', ARRAY['{}'::jsonb])$q$),
	(3, 'receive', 'receive', $q$SELECT * FROM courier.receive('%T')$q$),
	(4, 'ack', 'receive', $q$SELECT courier.ack('%T', 'default', 1)$q$),
	(5, 'ack[]', 'receive', $q$SELECT courier.ack('%T', 'default', ARRAY[1::bigint])$q$),
	(6, 'nack', 'receive', $q$SELECT courier.nack('%T', 'default', 1)$q$),
	(7, 'set_visibility', 'receive', $q$SELECT courier.set_visibility('%T', 'default', 1, '1 minute')$q$),
	(8, 'peek', 'receive', $q$SELECT * FROM courier.peek('%T')$q$),
	(9, 'find', 'receive', $q$SELECT * FROM courier.find('%T', id => 1)$q$),
	(10, 'create_group', 'admin', $q$SELECT courier.create_group('%T', 'newg')$q$),
	(11, 'alter_group', 'admin', $q$SELECT courier.alter_group('%T', 'default', max_attempts => 5)$q$),
	(12, 'drop_group', 'admin', $q$SELECT courier.drop_group('%T', 'dl')$q$),
	(13, 'redrive', 'admin', $q$SELECT courier.redrive('%T', 'dl')$q$),
	(14, 'purge_dead_letters', 'admin', $q$SELECT courier.purge_dead_letters('%T', 'dl')$q$),
	(15, 'seek', 'admin', $q$SELECT courier.seek('%T', 'default', '-infinity')$q$),
	(16, 'pause_group', 'admin', $q$SELECT courier.pause_group('%T', 'default')$q$),
	(17, 'resume_group', 'admin', $q$SELECT courier.resume_group('%T', 'default')$q$),
	(18, 'grant', 'admin', $q$SELECT courier.grant('%T', 'regress_m_none', 'send')$q$),
	(19, 'revoke', 'admin', $q$SELECT courier.revoke('%T', 'regress_m_send', 'send')$q$),
	(20, 'alter_topic', 'admin', $q$SELECT courier.alter_topic('%T', retention => '2 days')$q$),
	(21, 'purge', 'admin', $q$SELECT courier.purge('%T')$q$),
	(22, 'drop_topic', 'owner', $q$SELECT courier.drop_topic('%T')$q$),
	-- to oneself: the new owner's membership is a second check, not this one
	(23, 'alter_topic_owner', 'owner', $q$SELECT courier.alter_topic_owner('%T', current_user)$q$),
	-- like has_table_privilege: anyone may ask, about any topic (NULL: no privilege needed)
	(24, 'has_topic_privilege', NULL, $q$SELECT courier.has_topic_privilege('%T', 'send', 'regress_m_send')$q$),
	(25, 'ack_and_receive', 'receive', $q$SELECT * FROM courier.ack_and_receive('%T', 'default', ARRAY[1::bigint])$q$);

-- who holds what where
CREATE TEMP TABLE holders (r text, t text, holds text[]);
INSERT INTO holders VALUES
	('regress_m_none', 'granted', '{}'), ('regress_m_none', 'other', '{}'),
	('regress_m_send', 'granted', '{send}'), ('regress_m_send', 'other', '{}'),
	('regress_m_recv', 'granted', '{receive}'), ('regress_m_recv', 'other', '{}'),
	('regress_m_admin', 'granted', '{admin}'), ('regress_m_admin', 'other', '{}'),
	('regress_m_owner', 'mine', '{send,receive,admin,owner}'), ('regress_m_owner', 'other', '{}'),
	('postgres_superuser', 'other', '{send,receive,admin,owner}');
UPDATE holders SET r = current_user WHERE r = 'postgres_superuser';

SELECT * FROM no_plan();

SELECT is(pg_temp.try_as(h.r, replace(c.q, '%T', h.t)),
		  CASE WHEN c.needs IS NULL OR c.needs = ANY (h.holds) THEN 'ok' ELSE '42501' END,
		  format('%s on %s as %s', c.fn, h.t,
				 CASE WHEN h.r = current_user THEN 'superuser' ELSE h.r END))
FROM holders h, calls c
ORDER BY h.r = current_user, h.r, h.t, c.n;

-- the error names the topic and the missing privilege
SET ROLE regress_m_recv;
SELECT throws_ok($$SELECT courier.send('granted', '{}')$$, '42501',
				 'permission denied for topic "granted"', 'the error names the topic');
-- a group's existence is not revealed without the privilege
SELECT throws_ok($$SELECT * FROM courier.receive('other', 'no_such_group')$$, '42501',
				 'permission denied for topic "other"', 'no privilege: the group is not even looked up');
RESET ROLE;

-- views: only topics with some privilege (pg_monitor: all), bodies only with receive
CREATE FUNCTION pg_temp.seen_as(r text, q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	res text;
BEGIN
	PERFORM set_config('role', r, true);
	EXECUTE q INTO res;
	PERFORM set_config('role', 'none', true);
	RETURN res;
END;
$$;
SELECT is(pg_temp.seen_as('regress_m_none', $$SELECT string_agg(topic, ',' ORDER BY topic) FROM courier.topics$$),
		  NULL, 'topics: nothing without a privilege');
SELECT is(pg_temp.seen_as('regress_m_send', $$SELECT string_agg(topic, ',' ORDER BY topic) FROM courier.topics$$),
		  'granted', 'topics: send shows the topic');
SELECT is(pg_temp.seen_as('regress_m_admin', $$SELECT string_agg(topic || '/' || grp, ',' ORDER BY topic, grp) FROM courier.groups$$),
		  'granted/default,granted/dl', 'groups: admin shows the topic''s groups');
SELECT is(pg_temp.seen_as('regress_m_owner', $$SELECT string_agg(topic, ',' ORDER BY topic) FROM courier.topics$$),
		  'mine', 'topics: the owner sees its topic');
SELECT is(pg_temp.seen_as('regress_m_send', $$SELECT count(*)::text FROM courier.dead_letters$$),
		  '0', 'dead letters: no bodies with send');
SELECT is(pg_temp.seen_as('regress_m_admin', $$SELECT count(*)::text FROM courier.dead_letters$$),
		  '0', 'dead letters: no bodies with admin');
SELECT is(pg_temp.seen_as('regress_m_recv', $$SELECT string_agg(topic || ':' || id, ',' ORDER BY id) FROM courier.dead_letters$$),
		  'granted:1,granted:2,granted:3', 'dead letters: receive shows its topic''s');
SELECT is(pg_temp.seen_as('regress_m_recv', $$SELECT string_agg(topic || ':' || grantee || ':' || privilege, ',' ORDER BY grantee) FROM courier.privileges$$),
		  'granted:regress_m_admin:admin,granted:regress_m_recv:receive,granted:regress_m_send:send',
		  'privileges: who holds what on the topics the caller sees');
SELECT is(pg_temp.seen_as('regress_m_none', $$SELECT count(*)::text FROM courier.metrics() WHERE topic IS NOT NULL$$),
		  '0', 'metrics: no topic without a privilege');
SELECT is(pg_temp.seen_as('regress_m_send', $$SELECT count(DISTINCT topic)::text FROM courier.metrics() WHERE topic IS NOT NULL$$),
		  '1', 'metrics: the topics the caller sees');
CREATE ROLE regress_m_monitor IN ROLE pg_monitor;
SELECT is(pg_temp.seen_as('regress_m_monitor', $$SELECT string_agg(topic, ',' ORDER BY topic) FROM courier.topics$$),
		  'granted,mine,other', 'pg_monitor sees every topic');
SELECT is(pg_temp.seen_as('regress_m_monitor', $$SELECT count(*)::text FROM courier.dead_letters$$),
		  '0', 'but no bodies');
-- _group_info is executable by everyone and answers only what the caller may see
SELECT is(pg_temp.seen_as('regress_m_none', $$SELECT (courier._group_info(1)).backlog::text$$),
		  NULL, '_group_info: NULL for a topic the caller may not see');

-- a security_barrier view: a leaky function sees only visible rows
CREATE FUNCTION pg_temp.leak(t text) RETURNS boolean LANGUAGE plpgsql COST 0.0000001 AS $$
BEGIN
	RAISE NOTICE 'leak %', t;
	RETURN true;
END;
$$;
GRANT EXECUTE ON FUNCTION pg_temp.leak(text) TO PUBLIC;
SET client_min_messages = notice;
SET ROLE regress_m_send;
SELECT is((SELECT count(*)::int FROM courier.dead_letters WHERE pg_temp.leak(body::text)), 0,
		  'dead_letters is a security barrier');
RESET ROLE;
SET client_min_messages = warning;

-- PUBLIC, ALL, errors of grant/revoke
SELECT courier.grant('other', 'public', 'send');
SELECT is(pg_temp.try_as('regress_m_none', $$SELECT courier.send('other', '{}')$$), 'ok',
		  'a grant to public reaches every role');
SELECT courier.revoke('other', 'public', 'send');
SELECT is(pg_temp.try_as('regress_m_none', $$SELECT courier.send('other', '{}')$$), '42501',
		  'and its revoke');
SELECT courier.grant('other', 'regress_m_none', 'all');
SELECT is(courier.has_topic_privilege('other', 'admin', 'regress_m_none'), true, 'all is send, receive and admin');
SELECT is(courier.has_topic_privilege('other', 'RECEIVE', 'regress_m_none'), true,
		  'privilege names in any case, as has_table_privilege takes them');
SELECT courier.revoke('other', 'regress_m_none', 'ALL');
SELECT is(courier.has_topic_privilege('other', 'send', 'regress_m_none'), false, 'revoke all');
SELECT is((SELECT count(*) FROM courier.privileges WHERE topic = 'other'), 0::bigint, 'revoke all leaves no privilege behind');
SELECT throws_ok($$SELECT courier.grant('other', 'regress_m_none', 'read')$$, '22023',
				 'unknown topic privilege "read"', 'unknown privilege');
SELECT throws_ok($$SELECT courier.grant('other', 'no_such_role', 'send')$$, '42704',
				 'role "no_such_role" does not exist', 'unknown role');
SELECT throws_ok($$SELECT courier.grant('nope', 'regress_m_none', 'send')$$, '42704',
				 'topic "nope" does not exist', 'unknown topic');
-- members of a role with the privilege hold it, as for tables
CREATE ROLE regress_m_member IN ROLE regress_m_send;
GRANT courier_producer TO regress_m_member;
SELECT is(pg_temp.try_as('regress_m_member', $$SELECT courier.send('granted', '{}')$$), 'ok',
		  'membership in a role that holds send');
-- members of the owner's role hold everything
CREATE ROLE regress_m_team IN ROLE regress_m_owner;
SELECT is(courier.has_topic_privilege('mine', 'admin', 'regress_m_team'), true, 'membership in the owner role');
-- a SECURITY DEFINER wrapper is checked as its caller (fails closed)
CREATE SCHEMA regress_wrap AUTHORIZATION regress_m_send;
GRANT USAGE ON SCHEMA regress_wrap TO regress_m_none;
SET ROLE regress_m_send;
CREATE FUNCTION regress_wrap.send() RETURNS bigint LANGUAGE sql SECURITY DEFINER
	AS $$ SELECT courier.send('granted', '{}') $$;
RESET ROLE;
SELECT is(pg_temp.try_as('regress_m_send', 'SELECT regress_wrap.send()'), 'ok',
		  'a SECURITY DEFINER wrapper works for a caller with the privilege');
SELECT is(pg_temp.try_as('regress_m_none', 'SELECT regress_wrap.send()'), '42501',
		  'a user''s SECURITY DEFINER wrapper does not lend its owner''s topic privileges');
DROP SCHEMA regress_wrap CASCADE;
-- the extension's roles exist and hold EXECUTE on what they are for
SELECT is(has_function_privilege('courier_producer', 'courier.send(text, jsonb, text, text[], jsonb, interval, timestamptz)', 'EXECUTE'),
		  true, 'courier_producer may call send');
SELECT is(has_function_privilege('courier_producer', 'courier.receive(text, text, integer, interval, interval, interval)', 'EXECUTE'),
		  false, 'but not receive');
SELECT is(has_function_privilege('courier_consumer', 'courier.nack(text, text, bigint, interval, text, text)', 'EXECUTE'),
		  true, 'courier_consumer may call nack');
SELECT is(has_function_privilege('courier_consumer', 'courier.seek(text, text, timestamptz)', 'EXECUTE'),
		  false, 'but not seek');
SELECT is(has_function_privilege('courier_admin', 'courier.seek(text, text, timestamptz)', 'EXECUTE'),
		  true, 'courier_admin may call seek');
SELECT is((SELECT rolcanlogin FROM pg_roles WHERE rolname = 'courier_admin'), false, 'the roles cannot log in');

SELECT * FROM finish();

SELECT courier.drop_topic(t) FROM unnest(ARRAY['granted', 'other', 'mine']) t;
DROP ROLE regress_m_member, regress_m_team, regress_m_monitor;
DROP ROLE regress_m_none, regress_m_send, regress_m_recv, regress_m_admin, regress_m_owner;
