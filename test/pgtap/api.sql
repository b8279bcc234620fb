-- The SQL API contract of pg_courier, in pgTAP (run by pg_prove in `make
-- test`, suite pgtap): every public function's signature (argument names,
-- types and defaults), result, volatility, SECURITY DEFINER (or, for the
-- message functions, SECURITY INVOKER with the switch in C) and pinned
-- search_path; who may EXECUTE it; the views' and row types' columns; and
-- the SQLSTATE of every user-facing error.  A change to any of these is a
-- change of the API: update README.md's reference with it.
--
-- Needs a database with pg_courier and pgtap; everything but one topic
-- (api_purged, created before and dropped after) runs in one transaction
-- that is rolled back.
\set ON_ERROR_STOP 1
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
SET client_min_messages = warning;
-- one committed topic (dropped at the end): a send after a purge of it in
-- one transaction is refused (a topic the transaction created itself may be
-- purged and sent to: nobody else can see it)
SELECT courier.create_topic('api_purged') WHERE NOT EXISTS (SELECT FROM courier.topic_meta WHERE name = 'api_purged') \g /dev/null
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
SELECT * FROM no_plan();

-- the surface: exactly these functions in schema courier (internal ones
-- start with an underscore)
SELECT has_extension('pg_courier', 'pg_courier is installed');
SELECT has_schema('courier', 'schema courier exists');
SELECT functions_are('courier', ARRAY[
	'_change_acl', '_check_backoff', '_check_limits', '_check_privilege', '_citus_fanout', '_citus_require',
	'_clear_acl', '_count_messages', '_create_segment', '_created', '_ddl', '_ddl_changed', '_default_backoff',
	'_entries_elsewhere', '_first_id_since', '_forget', '_group_info',
	'_group_of', '_group_position', '_group_reset', '_invalidate_group', '_last_maintenance', '_lock', '_maintenance_status',
	'_may_see', '_next_id', '_ordering_key', '_outer_user', '_promote_keys', '_redrive_rows', '_seek_start',
	'_set_paused', '_state', '_topic_info', '_validate_name', '_wake',
	'ack', 'ack_and_receive', 'alter_group', 'alter_topic', 'alter_topic_owner', 'check_filter', 'citus_distribute', 'citus_owner',
	'create_group', 'create_topic', 'drop_group',
	'drop_topic', 'find', 'grant', 'has_topic_privilege', 'match_filter', 'metrics', 'nack', 'pause_group',
	'peek', 'purge', 'purge_dead_letters', 'receive', 'redrive', 'resume_group', 'revoke', 'run_maintenance',
	'seek', 'send', 'send_batch', 'set_visibility'], 'schema courier has exactly the documented functions');
SELECT is((SELECT count(*)::int FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
            WHERE n.nspname = 'courier' AND p.proname !~ '^_'), 32, '32 public functions (ack has two forms)');
SELECT views_are('courier', ARRAY['topics', 'groups', 'dead_letters', 'privileges',
	'cluster_topics', 'cluster_groups', 'cluster_dead_letters'], 'the four views and the three Citus cluster views');
SELECT types_are('courier', ARRAY['message', 'found'], 'the two row types');

-- each public function: signature, result, volatility, SECURITY DEFINER and
-- search_path pinned to pg_catalog, pg_temp (the message functions: SECURITY
-- INVOKER, no SET clause; CourierRunAsOwner does both in C)

-- ack(text, text, bigint[], text[])
SELECT has_function('courier', 'ack', '{text,text,bigint[],text[]}'::name[], 'courier.ack(text, text, bigint[], text[]) exists');
SELECT is(pg_get_function_arguments('courier.ack(text,text,bigint[],text[])'::regprocedure), 'topic text, grp text, ids bigint[], receipts text[] DEFAULT NULL::text[]', 'ack: argument names and defaults');
SELECT function_returns('courier', 'ack', '{text,text,bigint[],text[]}'::name[], 'integer', 'ack returns integer');
SELECT volatility_is('courier', 'ack', '{text,text,bigint[],text[]}'::name[], 'volatile', 'ack is volatile');
SELECT isnt_definer('courier', 'ack', '{text,text,bigint[],text[]}'::name[], 'ack is SECURITY INVOKER: it switches to the extension owner in C (CourierRunAsOwner)');
SELECT is((SELECT proconfig FROM pg_proc WHERE oid = 'courier.ack(text,text,bigint[],text[])'::regprocedure), NULL, 'ack has no SET clause: it pins search_path in C (test/sql/search_path_pin.sql)');

-- ack(text, text, bigint, text)
SELECT has_function('courier', 'ack', '{text,text,bigint,text}'::name[], 'courier.ack(text, text, bigint, text) exists');
SELECT is(pg_get_function_arguments('courier.ack(text,text,bigint,text)'::regprocedure), 'topic text, grp text, id bigint, receipt text DEFAULT NULL::text', 'ack: argument names and defaults');
SELECT function_returns('courier', 'ack', '{text,text,bigint,text}'::name[], 'boolean', 'ack returns boolean');
SELECT volatility_is('courier', 'ack', '{text,text,bigint,text}'::name[], 'volatile', 'ack is volatile');
SELECT isnt_definer('courier', 'ack', '{text,text,bigint,text}'::name[], 'ack is SECURITY INVOKER: it switches to the extension owner in C (CourierRunAsOwner)');
SELECT is((SELECT proconfig FROM pg_proc WHERE oid = 'courier.ack(text,text,bigint,text)'::regprocedure), NULL, 'ack has no SET clause: it pins search_path in C (test/sql/search_path_pin.sql)');

-- alter_group(text, text, text, integer, interval[])
SELECT has_function('courier', 'alter_group', '{text,text,text,integer,interval[]}'::name[], 'courier.alter_group(text, text, text, integer, interval[]) exists');
SELECT is(pg_get_function_arguments('courier.alter_group(text,text,text,integer,interval[])'::regprocedure), 'topic text, grp text, filter text DEFAULT NULL::text, max_attempts integer DEFAULT NULL::integer, retry_backoff interval[] DEFAULT NULL::interval[]', 'alter_group: argument names and defaults');
SELECT function_returns('courier', 'alter_group', '{text,text,text,integer,interval[]}'::name[], 'void', 'alter_group returns void');
SELECT volatility_is('courier', 'alter_group', '{text,text,text,integer,interval[]}'::name[], 'volatile', 'alter_group is volatile');
SELECT is_definer('courier', 'alter_group', '{text,text,text,integer,interval[]}'::name[], 'alter_group is SECURITY DEFINER');
SELECT is((SELECT proconfig FROM pg_proc WHERE oid = 'courier.alter_group(text,text,text,integer,interval[])'::regprocedure), ARRAY['search_path=pg_catalog, pg_temp'], 'alter_group pins search_path to pg_catalog, pg_temp');

-- alter_topic(text, interval, interval)
SELECT has_function('courier', 'alter_topic', '{text,interval,interval}'::name[], 'courier.alter_topic(text, interval, interval) exists');
SELECT is(pg_get_function_arguments('courier.alter_topic(text,interval,interval)'::regprocedure), 'topic text, retention interval DEFAULT NULL::interval, max_retention interval DEFAULT NULL::interval', 'alter_topic: argument names and defaults');
SELECT function_returns('courier', 'alter_topic', '{text,interval,interval}'::name[], 'bigint', 'alter_topic returns bigint');
SELECT volatility_is('courier', 'alter_topic', '{text,interval,interval}'::name[], 'volatile', 'alter_topic is volatile');
SELECT is_definer('courier', 'alter_topic', '{text,interval,interval}'::name[], 'alter_topic is SECURITY DEFINER');
SELECT is((SELECT proconfig FROM pg_proc WHERE oid = 'courier.alter_topic(text,interval,interval)'::regprocedure), ARRAY['search_path=pg_catalog, pg_temp'], 'alter_topic pins search_path to pg_catalog, pg_temp');

-- alter_topic_owner(text, name)
SELECT has_function('courier', 'alter_topic_owner', '{text,name}'::name[], 'courier.alter_topic_owner(text, name) exists');
SELECT is(pg_get_function_arguments('courier.alter_topic_owner(text,name)'::regprocedure), 'topic text, new_owner name', 'alter_topic_owner: argument names and defaults');
SELECT function_returns('courier', 'alter_topic_owner', '{text,name}'::name[], 'void', 'alter_topic_owner returns void');
SELECT volatility_is('courier', 'alter_topic_owner', '{text,name}'::name[], 'volatile', 'alter_topic_owner is volatile');
SELECT is_definer('courier', 'alter_topic_owner', '{text,name}'::name[], 'alter_topic_owner is SECURITY DEFINER');
SELECT is((SELECT proconfig FROM pg_proc WHERE oid = 'courier.alter_topic_owner(text,name)'::regprocedure), ARRAY['search_path=pg_catalog, pg_temp'], 'alter_topic_owner pins search_path to pg_catalog, pg_temp');

-- check_filter(text)
SELECT has_function('courier', 'check_filter', '{text}'::name[], 'courier.check_filter(text) exists');
SELECT is(pg_get_function_arguments('courier.check_filter(text)'::regprocedure), 'filter text', 'check_filter: argument names and defaults');
SELECT function_returns('courier', 'check_filter', '{text}'::name[], 'text', 'check_filter returns text');
SELECT volatility_is('courier', 'check_filter', '{text}'::name[], 'immutable', 'check_filter is immutable');
SELECT is_definer('courier', 'check_filter', '{text}'::name[], 'check_filter is SECURITY DEFINER');
SELECT is((SELECT proconfig FROM pg_proc WHERE oid = 'courier.check_filter(text)'::regprocedure), ARRAY['search_path=pg_catalog, pg_temp'], 'check_filter pins search_path to pg_catalog, pg_temp');

-- citus_distribute(regclass)
SELECT has_function('courier', 'citus_distribute', '{regclass}'::name[], 'courier.citus_distribute(regclass) exists');
SELECT is(pg_get_function_arguments('courier.citus_distribute(regclass)'::regprocedure), 'colocate_with regclass DEFAULT NULL::regclass', 'citus_distribute: argument names and defaults');
SELECT function_returns('courier', 'citus_distribute', '{regclass}'::name[], 'integer', 'citus_distribute returns integer');
SELECT volatility_is('courier', 'citus_distribute', '{regclass}'::name[], 'volatile', 'citus_distribute is volatile');
SELECT isnt_definer('courier', 'citus_distribute', '{regclass}'::name[], 'citus_distribute is not SECURITY DEFINER (it runs as its caller, a superuser)');
SELECT is((SELECT proconfig FROM pg_proc WHERE oid = 'courier.citus_distribute(regclass)'::regprocedure), ARRAY['search_path=pg_catalog, pg_temp'], 'citus_distribute pins search_path to pg_catalog, pg_temp');

-- citus_owner(text)
SELECT has_function('courier', 'citus_owner', '{text}'::name[], 'courier.citus_owner(text) exists');
SELECT is(pg_get_function_arguments('courier.citus_owner(text)'::regprocedure), 'topic text', 'citus_owner: argument names and defaults');
SELECT function_returns('courier', 'citus_owner', '{text}'::name[], 'text', 'citus_owner returns text');
SELECT volatility_is('courier', 'citus_owner', '{text}'::name[], 'stable', 'citus_owner is stable');
SELECT is_definer('courier', 'citus_owner', '{text}'::name[], 'citus_owner is SECURITY DEFINER');
SELECT is((SELECT proconfig FROM pg_proc WHERE oid = 'courier.citus_owner(text)'::regprocedure), ARRAY['search_path=pg_catalog, pg_temp'], 'citus_owner pins search_path to pg_catalog, pg_temp');

-- create_group(text, text, text, text, boolean, integer, interval[])
SELECT has_function('courier', 'create_group', '{text,text,text,text,boolean,integer,interval[]}'::name[], 'courier.create_group(text, text, text, text, boolean, integer, interval[]) exists');
SELECT is(pg_get_function_arguments('courier.create_group(text,text,text,text,boolean,integer,interval[])'::regprocedure), 'topic text, grp text, start_from text DEFAULT ''earliest''::text, filter text DEFAULT ''*''::text, ordered boolean DEFAULT false, max_attempts integer DEFAULT 16, retry_backoff interval[] DEFAULT NULL::interval[]', 'create_group: argument names and defaults');
SELECT function_returns('courier', 'create_group', '{text,text,text,text,boolean,integer,interval[]}'::name[], 'void', 'create_group returns void');
SELECT volatility_is('courier', 'create_group', '{text,text,text,text,boolean,integer,interval[]}'::name[], 'volatile', 'create_group is volatile');
SELECT is_definer('courier', 'create_group', '{text,text,text,text,boolean,integer,interval[]}'::name[], 'create_group is SECURITY DEFINER');
SELECT is((SELECT proconfig FROM pg_proc WHERE oid = 'courier.create_group(text,text,text,text,boolean,integer,interval[])'::regprocedure), ARRAY['search_path=pg_catalog, pg_temp'], 'create_group pins search_path to pg_catalog, pg_temp');

-- create_topic(text, interval, interval)
SELECT has_function('courier', 'create_topic', '{text,interval,interval}'::name[], 'courier.create_topic(text, interval, interval) exists');
SELECT is(pg_get_function_arguments('courier.create_topic(text,interval,interval)'::regprocedure), 'topic text, retention interval DEFAULT ''3 days''::interval, max_retention interval DEFAULT NULL::interval', 'create_topic: argument names and defaults');
SELECT function_returns('courier', 'create_topic', '{text,interval,interval}'::name[], 'void', 'create_topic returns void');
SELECT volatility_is('courier', 'create_topic', '{text,interval,interval}'::name[], 'volatile', 'create_topic is volatile');
SELECT is_definer('courier', 'create_topic', '{text,interval,interval}'::name[], 'create_topic is SECURITY DEFINER');
SELECT is((SELECT proconfig FROM pg_proc WHERE oid = 'courier.create_topic(text,interval,interval)'::regprocedure), ARRAY['search_path=pg_catalog, pg_temp'], 'create_topic pins search_path to pg_catalog, pg_temp');

-- drop_group(text, text)
SELECT has_function('courier', 'drop_group', '{text,text}'::name[], 'courier.drop_group(text, text) exists');
SELECT is(pg_get_function_arguments('courier.drop_group(text,text)'::regprocedure), 'topic text, grp text', 'drop_group: argument names and defaults');
SELECT function_returns('courier', 'drop_group', '{text,text}'::name[], 'void', 'drop_group returns void');
SELECT volatility_is('courier', 'drop_group', '{text,text}'::name[], 'volatile', 'drop_group is volatile');
SELECT is_definer('courier', 'drop_group', '{text,text}'::name[], 'drop_group is SECURITY DEFINER');
SELECT is((SELECT proconfig FROM pg_proc WHERE oid = 'courier.drop_group(text,text)'::regprocedure), ARRAY['search_path=pg_catalog, pg_temp'], 'drop_group pins search_path to pg_catalog, pg_temp');

-- drop_topic(text)
SELECT has_function('courier', 'drop_topic', '{text}'::name[], 'courier.drop_topic(text) exists');
SELECT is(pg_get_function_arguments('courier.drop_topic(text)'::regprocedure), 'topic text', 'drop_topic: argument names and defaults');
SELECT function_returns('courier', 'drop_topic', '{text}'::name[], 'void', 'drop_topic returns void');
SELECT volatility_is('courier', 'drop_topic', '{text}'::name[], 'volatile', 'drop_topic is volatile');
SELECT is_definer('courier', 'drop_topic', '{text}'::name[], 'drop_topic is SECURITY DEFINER');
SELECT is((SELECT proconfig FROM pg_proc WHERE oid = 'courier.drop_topic(text)'::regprocedure), ARRAY['search_path=pg_catalog, pg_temp'], 'drop_topic pins search_path to pg_catalog, pg_temp');

-- find(text, text, bigint)
SELECT has_function('courier', 'find', '{text,text,bigint}'::name[], 'courier.find(text, text, bigint) exists');
SELECT is(pg_get_function_arguments('courier.find(text,text,bigint)'::regprocedure), 'topic text, key text DEFAULT NULL::text, id bigint DEFAULT NULL::bigint', 'find: argument names and defaults');
SELECT function_returns('courier', 'find', '{text,text,bigint}'::name[], 'setof courier.found', 'find returns SETOF courier.found');
SELECT volatility_is('courier', 'find', '{text,text,bigint}'::name[], 'stable', 'find is stable');
SELECT is_definer('courier', 'find', '{text,text,bigint}'::name[], 'find is SECURITY DEFINER');
SELECT is((SELECT proconfig FROM pg_proc WHERE oid = 'courier.find(text,text,bigint)'::regprocedure), ARRAY['search_path=pg_catalog, pg_temp'], 'find pins search_path to pg_catalog, pg_temp');

-- grant(text, name, text)
SELECT has_function('courier', 'grant', '{text,name,text}'::name[], 'courier.grant(text, name, text) exists');
SELECT is(pg_get_function_arguments('courier."grant"(text,name,text)'::regprocedure), 'topic text, role name, privilege text', 'grant: argument names and defaults');
SELECT function_returns('courier', 'grant', '{text,name,text}'::name[], 'void', 'grant returns void');
SELECT volatility_is('courier', 'grant', '{text,name,text}'::name[], 'volatile', 'grant is volatile');
SELECT is_definer('courier', 'grant', '{text,name,text}'::name[], 'grant is SECURITY DEFINER');
SELECT is((SELECT proconfig FROM pg_proc WHERE oid = 'courier."grant"(text,name,text)'::regprocedure), ARRAY['search_path=pg_catalog, pg_temp'], 'grant pins search_path to pg_catalog, pg_temp');

-- has_topic_privilege(text, text, regrole)
SELECT has_function('courier', 'has_topic_privilege', '{text,text,regrole}'::name[], 'courier.has_topic_privilege(text, text, regrole) exists');
SELECT is(pg_get_function_arguments('courier.has_topic_privilege(text,text,regrole)'::regprocedure), 'topic text, privilege text, role regrole DEFAULT NULL::regrole', 'has_topic_privilege: argument names and defaults');
SELECT function_returns('courier', 'has_topic_privilege', '{text,text,regrole}'::name[], 'boolean', 'has_topic_privilege returns boolean');
SELECT volatility_is('courier', 'has_topic_privilege', '{text,text,regrole}'::name[], 'stable', 'has_topic_privilege is stable');
SELECT is_definer('courier', 'has_topic_privilege', '{text,text,regrole}'::name[], 'has_topic_privilege is SECURITY DEFINER');
SELECT is((SELECT proconfig FROM pg_proc WHERE oid = 'courier.has_topic_privilege(text,text,regrole)'::regprocedure), ARRAY['search_path=pg_catalog, pg_temp'], 'has_topic_privilege pins search_path to pg_catalog, pg_temp');

-- match_filter(text, jsonb, text)
SELECT has_function('courier', 'match_filter', '{text,jsonb,text}'::name[], 'courier.match_filter(text, jsonb, text) exists');
SELECT is(pg_get_function_arguments('courier.match_filter(text,jsonb,text)'::regprocedure), 'filter text, headers jsonb, tag text DEFAULT NULL::text', 'match_filter: argument names and defaults');
SELECT function_returns('courier', 'match_filter', '{text,jsonb,text}'::name[], 'boolean', 'match_filter returns boolean');
SELECT volatility_is('courier', 'match_filter', '{text,jsonb,text}'::name[], 'immutable', 'match_filter is immutable');
SELECT is_definer('courier', 'match_filter', '{text,jsonb,text}'::name[], 'match_filter is SECURITY DEFINER');
SELECT is((SELECT proconfig FROM pg_proc WHERE oid = 'courier.match_filter(text,jsonb,text)'::regprocedure), ARRAY['search_path=pg_catalog, pg_temp'], 'match_filter pins search_path to pg_catalog, pg_temp');

-- metrics()
SELECT has_function('courier', 'metrics', '{}'::name[], 'courier.metrics() exists');
SELECT is(pg_get_function_arguments('courier.metrics()'::regprocedure), 'OUT metric text, OUT topic text, OUT grp text, OUT value double precision, OUT kind text, OUT help text', 'metrics: argument names and defaults');
SELECT function_returns('courier', 'metrics', '{}'::name[], 'setof record', 'metrics returns SETOF record');
SELECT volatility_is('courier', 'metrics', '{}'::name[], 'stable', 'metrics is stable');
SELECT is_definer('courier', 'metrics', '{}'::name[], 'metrics is SECURITY DEFINER');
SELECT is((SELECT proconfig FROM pg_proc WHERE oid = 'courier.metrics()'::regprocedure), ARRAY['search_path=pg_catalog, pg_temp'], 'metrics pins search_path to pg_catalog, pg_temp');

-- nack(text, text, bigint, interval, text, text)
SELECT has_function('courier', 'nack', '{text,text,bigint,interval,text,text}'::name[], 'courier.nack(text, text, bigint, interval, text, text) exists');
SELECT is(pg_get_function_arguments('courier.nack(text,text,bigint,interval,text,text)'::regprocedure), 'topic text, grp text, id bigint, delay interval DEFAULT NULL::interval, reason text DEFAULT NULL::text, receipt text DEFAULT NULL::text', 'nack: argument names and defaults');
SELECT function_returns('courier', 'nack', '{text,text,bigint,interval,text,text}'::name[], 'boolean', 'nack returns boolean');
SELECT volatility_is('courier', 'nack', '{text,text,bigint,interval,text,text}'::name[], 'volatile', 'nack is volatile');
SELECT isnt_definer('courier', 'nack', '{text,text,bigint,interval,text,text}'::name[], 'nack is SECURITY INVOKER: it switches to the extension owner in C (CourierRunAsOwner)');
SELECT is((SELECT proconfig FROM pg_proc WHERE oid = 'courier.nack(text,text,bigint,interval,text,text)'::regprocedure), NULL, 'nack has no SET clause: it pins search_path in C (test/sql/search_path_pin.sql)');

-- pause_group(text, text)
SELECT has_function('courier', 'pause_group', '{text,text}'::name[], 'courier.pause_group(text, text) exists');
SELECT is(pg_get_function_arguments('courier.pause_group(text,text)'::regprocedure), 'topic text, grp text', 'pause_group: argument names and defaults');
SELECT function_returns('courier', 'pause_group', '{text,text}'::name[], 'bigint', 'pause_group returns bigint');
SELECT volatility_is('courier', 'pause_group', '{text,text}'::name[], 'volatile', 'pause_group is volatile');
SELECT is_definer('courier', 'pause_group', '{text,text}'::name[], 'pause_group is SECURITY DEFINER');
SELECT is((SELECT proconfig FROM pg_proc WHERE oid = 'courier.pause_group(text,text)'::regprocedure), ARRAY['search_path=pg_catalog, pg_temp'], 'pause_group pins search_path to pg_catalog, pg_temp');

-- peek(text, text, integer)
SELECT has_function('courier', 'peek', '{text,text,integer}'::name[], 'courier.peek(text, text, integer) exists');
SELECT is(pg_get_function_arguments('courier.peek(text,text,integer)'::regprocedure), 'topic text, grp text DEFAULT ''default''::text, max_messages integer DEFAULT 10', 'peek: argument names and defaults');
SELECT function_returns('courier', 'peek', '{text,text,integer}'::name[], 'setof courier.message', 'peek returns SETOF courier.message');
SELECT volatility_is('courier', 'peek', '{text,text,integer}'::name[], 'volatile', 'peek is volatile');
SELECT isnt_definer('courier', 'peek', '{text,text,integer}'::name[], 'peek is SECURITY INVOKER: it switches to the extension owner in C (CourierRunAsOwner)');
SELECT is((SELECT proconfig FROM pg_proc WHERE oid = 'courier.peek(text,text,integer)'::regprocedure), NULL, 'peek has no SET clause: it pins search_path in C (test/sql/search_path_pin.sql)');

-- purge(text)
SELECT has_function('courier', 'purge', '{text}'::name[], 'courier.purge(text) exists');
SELECT is(pg_get_function_arguments('courier.purge(text)'::regprocedure), 'topic text', 'purge: argument names and defaults');
SELECT function_returns('courier', 'purge', '{text}'::name[], 'bigint', 'purge returns bigint');
SELECT volatility_is('courier', 'purge', '{text}'::name[], 'volatile', 'purge is volatile');
SELECT is_definer('courier', 'purge', '{text}'::name[], 'purge is SECURITY DEFINER');
SELECT is((SELECT proconfig FROM pg_proc WHERE oid = 'courier.purge(text)'::regprocedure), ARRAY['search_path=pg_catalog, pg_temp'], 'purge pins search_path to pg_catalog, pg_temp');

-- purge_dead_letters(text, text, bigint[])
SELECT has_function('courier', 'purge_dead_letters', '{text,text,bigint[]}'::name[], 'courier.purge_dead_letters(text, text, bigint[]) exists');
SELECT is(pg_get_function_arguments('courier.purge_dead_letters(text,text,bigint[])'::regprocedure), 'topic text, grp text, ids bigint[] DEFAULT NULL::bigint[]', 'purge_dead_letters: argument names and defaults');
SELECT function_returns('courier', 'purge_dead_letters', '{text,text,bigint[]}'::name[], 'bigint', 'purge_dead_letters returns bigint');
SELECT volatility_is('courier', 'purge_dead_letters', '{text,text,bigint[]}'::name[], 'volatile', 'purge_dead_letters is volatile');
SELECT is_definer('courier', 'purge_dead_letters', '{text,text,bigint[]}'::name[], 'purge_dead_letters is SECURITY DEFINER');
SELECT is((SELECT proconfig FROM pg_proc WHERE oid = 'courier.purge_dead_letters(text,text,bigint[])'::regprocedure), ARRAY['search_path=pg_catalog, pg_temp'], 'purge_dead_letters pins search_path to pg_catalog, pg_temp');

-- ack_and_receive(text, text, bigint[], text[], integer, interval, interval, interval)
SELECT has_function('courier', 'ack_and_receive', '{text,text,bigint[],text[],integer,interval,interval,interval}'::name[], 'courier.ack_and_receive(text, text, bigint[], text[], integer, interval, interval, interval) exists');
SELECT is(pg_get_function_arguments('courier.ack_and_receive(text,text,bigint[],text[],integer,interval,interval,interval)'::regprocedure), 'topic text, grp text, ids bigint[], receipts text[] DEFAULT NULL::text[], max_messages integer DEFAULT 1, visibility_timeout interval DEFAULT ''00:00:30''::interval, wait interval DEFAULT NULL::interval, linger interval DEFAULT NULL::interval', 'ack_and_receive: argument names and defaults');
SELECT function_returns('courier', 'ack_and_receive', '{text,text,bigint[],text[],integer,interval,interval,interval}'::name[], 'setof courier.message', 'ack_and_receive returns SETOF courier.message');
SELECT volatility_is('courier', 'ack_and_receive', '{text,text,bigint[],text[],integer,interval,interval,interval}'::name[], 'volatile', 'ack_and_receive is volatile');
SELECT isnt_definer('courier', 'ack_and_receive', '{text,text,bigint[],text[],integer,interval,interval,interval}'::name[], 'ack_and_receive is SECURITY INVOKER: it switches to the extension owner in C (CourierRunAsOwner)');
SELECT is((SELECT proconfig FROM pg_proc WHERE oid = 'courier.ack_and_receive(text,text,bigint[],text[],integer,interval,interval,interval)'::regprocedure), NULL, 'ack_and_receive has no SET clause: it pins search_path in C');

-- receive(text, text, integer, interval, interval, interval)
SELECT has_function('courier', 'receive', '{text,text,integer,interval,interval,interval}'::name[], 'courier.receive(text, text, integer, interval, interval, interval) exists');
SELECT is(pg_get_function_arguments('courier.receive(text,text,integer,interval,interval,interval)'::regprocedure), 'topic text, grp text DEFAULT ''default''::text, max_messages integer DEFAULT 1, visibility_timeout interval DEFAULT ''00:00:30''::interval, wait interval DEFAULT NULL::interval, linger interval DEFAULT NULL::interval', 'receive: argument names and defaults');
SELECT function_returns('courier', 'receive', '{text,text,integer,interval,interval,interval}'::name[], 'setof courier.message', 'receive returns SETOF courier.message');
SELECT volatility_is('courier', 'receive', '{text,text,integer,interval,interval,interval}'::name[], 'volatile', 'receive is volatile');
SELECT isnt_definer('courier', 'receive', '{text,text,integer,interval,interval,interval}'::name[], 'receive is SECURITY INVOKER: it switches to the extension owner in C (CourierRunAsOwner)');
SELECT is((SELECT proconfig FROM pg_proc WHERE oid = 'courier.receive(text,text,integer,interval,interval,interval)'::regprocedure), NULL, 'receive has no SET clause: it pins search_path in C (test/sql/search_path_pin.sql)');

-- redrive(text, text, bigint[])
SELECT has_function('courier', 'redrive', '{text,text,bigint[]}'::name[], 'courier.redrive(text, text, bigint[]) exists');
SELECT is(pg_get_function_arguments('courier.redrive(text,text,bigint[])'::regprocedure), 'topic text, grp text, ids bigint[] DEFAULT NULL::bigint[]', 'redrive: argument names and defaults');
SELECT function_returns('courier', 'redrive', '{text,text,bigint[]}'::name[], 'bigint', 'redrive returns bigint');
SELECT volatility_is('courier', 'redrive', '{text,text,bigint[]}'::name[], 'volatile', 'redrive is volatile');
SELECT is_definer('courier', 'redrive', '{text,text,bigint[]}'::name[], 'redrive is SECURITY DEFINER');
SELECT is((SELECT proconfig FROM pg_proc WHERE oid = 'courier.redrive(text,text,bigint[])'::regprocedure), ARRAY['search_path=pg_catalog, pg_temp'], 'redrive pins search_path to pg_catalog, pg_temp');

-- resume_group(text, text)
SELECT has_function('courier', 'resume_group', '{text,text}'::name[], 'courier.resume_group(text, text) exists');
SELECT is(pg_get_function_arguments('courier.resume_group(text,text)'::regprocedure), 'topic text, grp text', 'resume_group: argument names and defaults');
SELECT function_returns('courier', 'resume_group', '{text,text}'::name[], 'bigint', 'resume_group returns bigint');
SELECT volatility_is('courier', 'resume_group', '{text,text}'::name[], 'volatile', 'resume_group is volatile');
SELECT is_definer('courier', 'resume_group', '{text,text}'::name[], 'resume_group is SECURITY DEFINER');
SELECT is((SELECT proconfig FROM pg_proc WHERE oid = 'courier.resume_group(text,text)'::regprocedure), ARRAY['search_path=pg_catalog, pg_temp'], 'resume_group pins search_path to pg_catalog, pg_temp');

-- revoke(text, name, text)
SELECT has_function('courier', 'revoke', '{text,name,text}'::name[], 'courier.revoke(text, name, text) exists');
SELECT is(pg_get_function_arguments('courier.revoke(text,name,text)'::regprocedure), 'topic text, role name, privilege text', 'revoke: argument names and defaults');
SELECT function_returns('courier', 'revoke', '{text,name,text}'::name[], 'void', 'revoke returns void');
SELECT volatility_is('courier', 'revoke', '{text,name,text}'::name[], 'volatile', 'revoke is volatile');
SELECT is_definer('courier', 'revoke', '{text,name,text}'::name[], 'revoke is SECURITY DEFINER');
SELECT is((SELECT proconfig FROM pg_proc WHERE oid = 'courier.revoke(text,name,text)'::regprocedure), ARRAY['search_path=pg_catalog, pg_temp'], 'revoke pins search_path to pg_catalog, pg_temp');

-- run_maintenance()
SELECT has_function('courier', 'run_maintenance', '{}'::name[], 'courier.run_maintenance() exists');
SELECT is(pg_get_function_arguments('courier.run_maintenance()'::regprocedure), '', 'run_maintenance: argument names and defaults');
SELECT function_returns('courier', 'run_maintenance', '{}'::name[], 'jsonb', 'run_maintenance returns jsonb');
SELECT volatility_is('courier', 'run_maintenance', '{}'::name[], 'volatile', 'run_maintenance is volatile');
SELECT is_definer('courier', 'run_maintenance', '{}'::name[], 'run_maintenance is SECURITY DEFINER');
SELECT is((SELECT proconfig FROM pg_proc WHERE oid = 'courier.run_maintenance()'::regprocedure), ARRAY['search_path=pg_catalog, pg_temp'], 'run_maintenance pins search_path to pg_catalog, pg_temp');

-- seek(text, text, timestamp with time zone)
SELECT has_function('courier', 'seek', '{text,text,"timestamp with time zone"}'::name[], 'courier.seek(text, text, timestamp with time zone) exists');
SELECT is(pg_get_function_arguments('courier.seek(text,text,timestamp with time zone)'::regprocedure), 'topic text, grp text, since timestamp with time zone', 'seek: argument names and defaults');
SELECT function_returns('courier', 'seek', '{text,text,"timestamp with time zone"}'::name[], 'bigint', 'seek returns bigint');
SELECT volatility_is('courier', 'seek', '{text,text,"timestamp with time zone"}'::name[], 'volatile', 'seek is volatile');
SELECT is_definer('courier', 'seek', '{text,text,"timestamp with time zone"}'::name[], 'seek is SECURITY DEFINER');
SELECT is((SELECT proconfig FROM pg_proc WHERE oid = 'courier.seek(text,text,timestamp with time zone)'::regprocedure), ARRAY['search_path=pg_catalog, pg_temp'], 'seek pins search_path to pg_catalog, pg_temp');

-- send(text, jsonb, text, text[], jsonb, interval, timestamp with time zone)
SELECT has_function('courier', 'send', '{text,jsonb,text,text[],jsonb,interval,"timestamp with time zone"}'::name[], 'courier.send(text, jsonb, text, text[], jsonb, interval, timestamp with time zone) exists');
SELECT is(pg_get_function_arguments('courier.send(text,jsonb,text,text[],jsonb,interval,timestamp with time zone)'::regprocedure), 'topic text, body jsonb, tag text DEFAULT NULL::text, keys text[] DEFAULT NULL::text[], headers jsonb DEFAULT NULL::jsonb, delay interval DEFAULT NULL::interval, deliver_at timestamp with time zone DEFAULT NULL::timestamp with time zone', 'send: argument names and defaults');
SELECT function_returns('courier', 'send', '{text,jsonb,text,text[],jsonb,interval,"timestamp with time zone"}'::name[], 'bigint', 'send returns bigint');
SELECT volatility_is('courier', 'send', '{text,jsonb,text,text[],jsonb,interval,"timestamp with time zone"}'::name[], 'volatile', 'send is volatile');
SELECT isnt_definer('courier', 'send', '{text,jsonb,text,text[],jsonb,interval,"timestamp with time zone"}'::name[], 'send is SECURITY INVOKER: it switches to the extension owner in C (CourierRunAsOwner)');
SELECT is((SELECT proconfig FROM pg_proc WHERE oid = 'courier.send(text,jsonb,text,text[],jsonb,interval,timestamp with time zone)'::regprocedure), NULL, 'send has no SET clause: it pins search_path in C (test/sql/search_path_pin.sql)');

-- send_batch(text, jsonb[], text, jsonb, interval, timestamp with time zone, text[])
SELECT has_function('courier', 'send_batch', '{text,jsonb[],text,jsonb,interval,"timestamp with time zone",text[]}'::name[], 'courier.send_batch(text, jsonb[], text, jsonb, interval, timestamp with time zone, text[]) exists');
SELECT is(pg_get_function_arguments('courier.send_batch(text,jsonb[],text,jsonb,interval,timestamp with time zone,text[])'::regprocedure), 'topic text, bodies jsonb[], tag text DEFAULT NULL::text, headers jsonb DEFAULT NULL::jsonb, delay interval DEFAULT NULL::interval, deliver_at timestamp with time zone DEFAULT NULL::timestamp with time zone, keys text[] DEFAULT NULL::text[]', 'send_batch: argument names and defaults');
SELECT function_returns('courier', 'send_batch', '{text,jsonb[],text,jsonb,interval,"timestamp with time zone",text[]}'::name[], 'setof bigint', 'send_batch returns SETOF bigint');
SELECT volatility_is('courier', 'send_batch', '{text,jsonb[],text,jsonb,interval,"timestamp with time zone",text[]}'::name[], 'volatile', 'send_batch is volatile');
SELECT isnt_definer('courier', 'send_batch', '{text,jsonb[],text,jsonb,interval,"timestamp with time zone",text[]}'::name[], 'send_batch is SECURITY INVOKER: it switches to the extension owner in C (CourierRunAsOwner)');
SELECT is((SELECT proconfig FROM pg_proc WHERE oid = 'courier.send_batch(text,jsonb[],text,jsonb,interval,timestamp with time zone,text[])'::regprocedure), NULL, 'send_batch has no SET clause: it pins search_path in C (test/sql/search_path_pin.sql)');

-- set_visibility(text, text, bigint, interval, text)
SELECT has_function('courier', 'set_visibility', '{text,text,bigint,interval,text}'::name[], 'courier.set_visibility(text, text, bigint, interval, text) exists');
SELECT is(pg_get_function_arguments('courier.set_visibility(text,text,bigint,interval,text)'::regprocedure), 'topic text, grp text, id bigint, visibility_timeout interval, receipt text DEFAULT NULL::text', 'set_visibility: argument names and defaults');
SELECT function_returns('courier', 'set_visibility', '{text,text,bigint,interval,text}'::name[], 'boolean', 'set_visibility returns boolean');
SELECT volatility_is('courier', 'set_visibility', '{text,text,bigint,interval,text}'::name[], 'volatile', 'set_visibility is volatile');
SELECT isnt_definer('courier', 'set_visibility', '{text,text,bigint,interval,text}'::name[], 'set_visibility is SECURITY INVOKER: it switches to the extension owner in C (CourierRunAsOwner)');
SELECT is((SELECT proconfig FROM pg_proc WHERE oid = 'courier.set_visibility(text,text,bigint,interval,text)'::regprocedure), NULL, 'set_visibility has no SET clause: it pins search_path in C (test/sql/search_path_pin.sql)');

-- EXECUTE: producers send, consumers receive / ack / nack / peek / find,
-- admins everything; filters, metrics and has_topic_privilege are public.
-- (Per-topic privileges on top of these are the matrix in
-- test/sql/privilege_matrix.sql.)
SELECT function_privs_are('courier', 'ack', '{text,text,bigint,text}'::name[], 'courier_admin', '{EXECUTE}'::text[], 'ack(text, text, bigint, text): courier_admin has EXECUTE');
SELECT function_privs_are('courier', 'ack', '{text,text,bigint,text}'::name[], 'courier_consumer', '{EXECUTE}'::text[], 'ack(text, text, bigint, text): courier_consumer has EXECUTE');
SELECT function_privs_are('courier', 'ack', '{text,text,bigint,text}'::name[], 'courier_producer', '{}'::text[], 'ack(text, text, bigint, text): courier_producer has no EXECUTE');
SELECT function_privs_are('courier', 'ack', '{text,text,bigint,text}'::name[], 'public', '{}'::text[], 'ack(text, text, bigint, text): public has no EXECUTE');
SELECT function_privs_are('courier', 'ack', '{text,text,bigint[],text[]}'::name[], 'courier_admin', '{EXECUTE}'::text[], 'ack(text, text, bigint[], text[]): courier_admin has EXECUTE');
SELECT function_privs_are('courier', 'ack', '{text,text,bigint[],text[]}'::name[], 'courier_consumer', '{EXECUTE}'::text[], 'ack(text, text, bigint[], text[]): courier_consumer has EXECUTE');
SELECT function_privs_are('courier', 'ack', '{text,text,bigint[],text[]}'::name[], 'courier_producer', '{}'::text[], 'ack(text, text, bigint[], text[]): courier_producer has no EXECUTE');
SELECT function_privs_are('courier', 'ack', '{text,text,bigint[],text[]}'::name[], 'public', '{}'::text[], 'ack(text, text, bigint[], text[]): public has no EXECUTE');
SELECT function_privs_are('courier', 'alter_group', '{text,text,text,integer,interval[]}'::name[], 'courier_admin', '{EXECUTE}'::text[], 'alter_group(text, text, text, integer, interval[]): courier_admin has EXECUTE');
SELECT function_privs_are('courier', 'alter_group', '{text,text,text,integer,interval[]}'::name[], 'courier_consumer', '{}'::text[], 'alter_group(text, text, text, integer, interval[]): courier_consumer has no EXECUTE');
SELECT function_privs_are('courier', 'alter_group', '{text,text,text,integer,interval[]}'::name[], 'courier_producer', '{}'::text[], 'alter_group(text, text, text, integer, interval[]): courier_producer has no EXECUTE');
SELECT function_privs_are('courier', 'alter_group', '{text,text,text,integer,interval[]}'::name[], 'public', '{}'::text[], 'alter_group(text, text, text, integer, interval[]): public has no EXECUTE');
SELECT function_privs_are('courier', 'alter_topic', '{text,interval,interval}'::name[], 'courier_admin', '{EXECUTE}'::text[], 'alter_topic(text, interval, interval): courier_admin has EXECUTE');
SELECT function_privs_are('courier', 'alter_topic', '{text,interval,interval}'::name[], 'courier_consumer', '{}'::text[], 'alter_topic(text, interval, interval): courier_consumer has no EXECUTE');
SELECT function_privs_are('courier', 'alter_topic', '{text,interval,interval}'::name[], 'courier_producer', '{}'::text[], 'alter_topic(text, interval, interval): courier_producer has no EXECUTE');
SELECT function_privs_are('courier', 'alter_topic', '{text,interval,interval}'::name[], 'public', '{}'::text[], 'alter_topic(text, interval, interval): public has no EXECUTE');
SELECT function_privs_are('courier', 'alter_topic_owner', '{text,name}'::name[], 'courier_admin', '{EXECUTE}'::text[], 'alter_topic_owner(text, name): courier_admin has EXECUTE');
SELECT function_privs_are('courier', 'alter_topic_owner', '{text,name}'::name[], 'courier_consumer', '{}'::text[], 'alter_topic_owner(text, name): courier_consumer has no EXECUTE');
SELECT function_privs_are('courier', 'alter_topic_owner', '{text,name}'::name[], 'courier_producer', '{}'::text[], 'alter_topic_owner(text, name): courier_producer has no EXECUTE');
SELECT function_privs_are('courier', 'alter_topic_owner', '{text,name}'::name[], 'public', '{}'::text[], 'alter_topic_owner(text, name): public has no EXECUTE');
SELECT function_privs_are('courier', 'check_filter', '{text}'::name[], 'courier_admin', '{EXECUTE}'::text[], 'check_filter(text): courier_admin has EXECUTE');
SELECT function_privs_are('courier', 'check_filter', '{text}'::name[], 'courier_consumer', '{EXECUTE}'::text[], 'check_filter(text): courier_consumer has EXECUTE');
SELECT function_privs_are('courier', 'check_filter', '{text}'::name[], 'courier_producer', '{EXECUTE}'::text[], 'check_filter(text): courier_producer has EXECUTE');
SELECT function_privs_are('courier', 'check_filter', '{text}'::name[], 'public', '{EXECUTE}'::text[], 'check_filter(text): public has EXECUTE');
SELECT function_privs_are('courier', 'citus_distribute', '{regclass}'::name[], 'courier_admin', '{}'::text[], 'citus_distribute(regclass): courier_admin has no EXECUTE');
SELECT function_privs_are('courier', 'citus_distribute', '{regclass}'::name[], 'courier_consumer', '{}'::text[], 'citus_distribute(regclass): courier_consumer has no EXECUTE');
SELECT function_privs_are('courier', 'citus_distribute', '{regclass}'::name[], 'courier_producer', '{}'::text[], 'citus_distribute(regclass): courier_producer has no EXECUTE');
SELECT function_privs_are('courier', 'citus_distribute', '{regclass}'::name[], 'public', '{}'::text[], 'citus_distribute(regclass): public has no EXECUTE');
SELECT function_privs_are('courier', 'citus_owner', '{text}'::name[], 'courier_admin', '{EXECUTE}'::text[], 'citus_owner(text): courier_admin has EXECUTE');
SELECT function_privs_are('courier', 'citus_owner', '{text}'::name[], 'courier_consumer', '{EXECUTE}'::text[], 'citus_owner(text): courier_consumer has EXECUTE');
SELECT function_privs_are('courier', 'citus_owner', '{text}'::name[], 'courier_producer', '{EXECUTE}'::text[], 'citus_owner(text): courier_producer has EXECUTE');
SELECT function_privs_are('courier', 'citus_owner', '{text}'::name[], 'public', '{EXECUTE}'::text[], 'citus_owner(text): public has EXECUTE');
SELECT function_privs_are('courier', 'create_group', '{text,text,text,text,boolean,integer,interval[]}'::name[], 'courier_admin', '{EXECUTE}'::text[], 'create_group(text, text, text, text, boolean, integer, interval[]): courier_admin has EXECUTE');
SELECT function_privs_are('courier', 'create_group', '{text,text,text,text,boolean,integer,interval[]}'::name[], 'courier_consumer', '{}'::text[], 'create_group(text, text, text, text, boolean, integer, interval[]): courier_consumer has no EXECUTE');
SELECT function_privs_are('courier', 'create_group', '{text,text,text,text,boolean,integer,interval[]}'::name[], 'courier_producer', '{}'::text[], 'create_group(text, text, text, text, boolean, integer, interval[]): courier_producer has no EXECUTE');
SELECT function_privs_are('courier', 'create_group', '{text,text,text,text,boolean,integer,interval[]}'::name[], 'public', '{}'::text[], 'create_group(text, text, text, text, boolean, integer, interval[]): public has no EXECUTE');
SELECT function_privs_are('courier', 'create_topic', '{text,interval,interval}'::name[], 'courier_admin', '{EXECUTE}'::text[], 'create_topic(text, interval, interval): courier_admin has EXECUTE');
SELECT function_privs_are('courier', 'create_topic', '{text,interval,interval}'::name[], 'courier_consumer', '{}'::text[], 'create_topic(text, interval, interval): courier_consumer has no EXECUTE');
SELECT function_privs_are('courier', 'create_topic', '{text,interval,interval}'::name[], 'courier_producer', '{}'::text[], 'create_topic(text, interval, interval): courier_producer has no EXECUTE');
SELECT function_privs_are('courier', 'create_topic', '{text,interval,interval}'::name[], 'public', '{}'::text[], 'create_topic(text, interval, interval): public has no EXECUTE');
SELECT function_privs_are('courier', 'drop_group', '{text,text}'::name[], 'courier_admin', '{EXECUTE}'::text[], 'drop_group(text, text): courier_admin has EXECUTE');
SELECT function_privs_are('courier', 'drop_group', '{text,text}'::name[], 'courier_consumer', '{}'::text[], 'drop_group(text, text): courier_consumer has no EXECUTE');
SELECT function_privs_are('courier', 'drop_group', '{text,text}'::name[], 'courier_producer', '{}'::text[], 'drop_group(text, text): courier_producer has no EXECUTE');
SELECT function_privs_are('courier', 'drop_group', '{text,text}'::name[], 'public', '{}'::text[], 'drop_group(text, text): public has no EXECUTE');
SELECT function_privs_are('courier', 'drop_topic', '{text}'::name[], 'courier_admin', '{EXECUTE}'::text[], 'drop_topic(text): courier_admin has EXECUTE');
SELECT function_privs_are('courier', 'drop_topic', '{text}'::name[], 'courier_consumer', '{}'::text[], 'drop_topic(text): courier_consumer has no EXECUTE');
SELECT function_privs_are('courier', 'drop_topic', '{text}'::name[], 'courier_producer', '{}'::text[], 'drop_topic(text): courier_producer has no EXECUTE');
SELECT function_privs_are('courier', 'drop_topic', '{text}'::name[], 'public', '{}'::text[], 'drop_topic(text): public has no EXECUTE');
SELECT function_privs_are('courier', 'find', '{text,text,bigint}'::name[], 'courier_admin', '{EXECUTE}'::text[], 'find(text, text, bigint): courier_admin has EXECUTE');
SELECT function_privs_are('courier', 'find', '{text,text,bigint}'::name[], 'courier_consumer', '{EXECUTE}'::text[], 'find(text, text, bigint): courier_consumer has EXECUTE');
SELECT function_privs_are('courier', 'find', '{text,text,bigint}'::name[], 'courier_producer', '{}'::text[], 'find(text, text, bigint): courier_producer has no EXECUTE');
SELECT function_privs_are('courier', 'find', '{text,text,bigint}'::name[], 'public', '{}'::text[], 'find(text, text, bigint): public has no EXECUTE');
SELECT function_privs_are('courier', 'grant', '{text,name,text}'::name[], 'courier_admin', '{EXECUTE}'::text[], 'grant(text, name, text): courier_admin has EXECUTE');
SELECT function_privs_are('courier', 'grant', '{text,name,text}'::name[], 'courier_consumer', '{}'::text[], 'grant(text, name, text): courier_consumer has no EXECUTE');
SELECT function_privs_are('courier', 'grant', '{text,name,text}'::name[], 'courier_producer', '{}'::text[], 'grant(text, name, text): courier_producer has no EXECUTE');
SELECT function_privs_are('courier', 'grant', '{text,name,text}'::name[], 'public', '{}'::text[], 'grant(text, name, text): public has no EXECUTE');
SELECT function_privs_are('courier', 'has_topic_privilege', '{text,text,regrole}'::name[], 'courier_admin', '{EXECUTE}'::text[], 'has_topic_privilege(text, text, regrole): courier_admin has EXECUTE');
SELECT function_privs_are('courier', 'has_topic_privilege', '{text,text,regrole}'::name[], 'courier_consumer', '{EXECUTE}'::text[], 'has_topic_privilege(text, text, regrole): courier_consumer has EXECUTE');
SELECT function_privs_are('courier', 'has_topic_privilege', '{text,text,regrole}'::name[], 'courier_producer', '{EXECUTE}'::text[], 'has_topic_privilege(text, text, regrole): courier_producer has EXECUTE');
SELECT function_privs_are('courier', 'has_topic_privilege', '{text,text,regrole}'::name[], 'public', '{EXECUTE}'::text[], 'has_topic_privilege(text, text, regrole): public has EXECUTE');
SELECT function_privs_are('courier', 'match_filter', '{text,jsonb,text}'::name[], 'courier_admin', '{EXECUTE}'::text[], 'match_filter(text, jsonb, text): courier_admin has EXECUTE');
SELECT function_privs_are('courier', 'match_filter', '{text,jsonb,text}'::name[], 'courier_consumer', '{EXECUTE}'::text[], 'match_filter(text, jsonb, text): courier_consumer has EXECUTE');
SELECT function_privs_are('courier', 'match_filter', '{text,jsonb,text}'::name[], 'courier_producer', '{EXECUTE}'::text[], 'match_filter(text, jsonb, text): courier_producer has EXECUTE');
SELECT function_privs_are('courier', 'match_filter', '{text,jsonb,text}'::name[], 'public', '{EXECUTE}'::text[], 'match_filter(text, jsonb, text): public has EXECUTE');
SELECT function_privs_are('courier', 'metrics', '{}'::name[], 'courier_admin', '{EXECUTE}'::text[], 'metrics(): courier_admin has EXECUTE');
SELECT function_privs_are('courier', 'metrics', '{}'::name[], 'courier_consumer', '{EXECUTE}'::text[], 'metrics(): courier_consumer has EXECUTE');
SELECT function_privs_are('courier', 'metrics', '{}'::name[], 'courier_producer', '{EXECUTE}'::text[], 'metrics(): courier_producer has EXECUTE');
SELECT function_privs_are('courier', 'metrics', '{}'::name[], 'public', '{EXECUTE}'::text[], 'metrics(): public has EXECUTE');
SELECT function_privs_are('courier', 'nack', '{text,text,bigint,interval,text,text}'::name[], 'courier_admin', '{EXECUTE}'::text[], 'nack(text, text, bigint, interval, text, text): courier_admin has EXECUTE');
SELECT function_privs_are('courier', 'nack', '{text,text,bigint,interval,text,text}'::name[], 'courier_consumer', '{EXECUTE}'::text[], 'nack(text, text, bigint, interval, text, text): courier_consumer has EXECUTE');
SELECT function_privs_are('courier', 'nack', '{text,text,bigint,interval,text,text}'::name[], 'courier_producer', '{}'::text[], 'nack(text, text, bigint, interval, text, text): courier_producer has no EXECUTE');
SELECT function_privs_are('courier', 'nack', '{text,text,bigint,interval,text,text}'::name[], 'public', '{}'::text[], 'nack(text, text, bigint, interval, text, text): public has no EXECUTE');
SELECT function_privs_are('courier', 'pause_group', '{text,text}'::name[], 'courier_admin', '{EXECUTE}'::text[], 'pause_group(text, text): courier_admin has EXECUTE');
SELECT function_privs_are('courier', 'pause_group', '{text,text}'::name[], 'courier_consumer', '{}'::text[], 'pause_group(text, text): courier_consumer has no EXECUTE');
SELECT function_privs_are('courier', 'pause_group', '{text,text}'::name[], 'courier_producer', '{}'::text[], 'pause_group(text, text): courier_producer has no EXECUTE');
SELECT function_privs_are('courier', 'pause_group', '{text,text}'::name[], 'public', '{}'::text[], 'pause_group(text, text): public has no EXECUTE');
SELECT function_privs_are('courier', 'peek', '{text,text,integer}'::name[], 'courier_admin', '{EXECUTE}'::text[], 'peek(text, text, integer): courier_admin has EXECUTE');
SELECT function_privs_are('courier', 'peek', '{text,text,integer}'::name[], 'courier_consumer', '{EXECUTE}'::text[], 'peek(text, text, integer): courier_consumer has EXECUTE');
SELECT function_privs_are('courier', 'peek', '{text,text,integer}'::name[], 'courier_producer', '{}'::text[], 'peek(text, text, integer): courier_producer has no EXECUTE');
SELECT function_privs_are('courier', 'peek', '{text,text,integer}'::name[], 'public', '{}'::text[], 'peek(text, text, integer): public has no EXECUTE');
SELECT function_privs_are('courier', 'purge', '{text}'::name[], 'courier_admin', '{EXECUTE}'::text[], 'purge(text): courier_admin has EXECUTE');
SELECT function_privs_are('courier', 'purge', '{text}'::name[], 'courier_consumer', '{}'::text[], 'purge(text): courier_consumer has no EXECUTE');
SELECT function_privs_are('courier', 'purge', '{text}'::name[], 'courier_producer', '{}'::text[], 'purge(text): courier_producer has no EXECUTE');
SELECT function_privs_are('courier', 'purge', '{text}'::name[], 'public', '{}'::text[], 'purge(text): public has no EXECUTE');
SELECT function_privs_are('courier', 'purge_dead_letters', '{text,text,bigint[]}'::name[], 'courier_admin', '{EXECUTE}'::text[], 'purge_dead_letters(text, text, bigint[]): courier_admin has EXECUTE');
SELECT function_privs_are('courier', 'purge_dead_letters', '{text,text,bigint[]}'::name[], 'courier_consumer', '{}'::text[], 'purge_dead_letters(text, text, bigint[]): courier_consumer has no EXECUTE');
SELECT function_privs_are('courier', 'purge_dead_letters', '{text,text,bigint[]}'::name[], 'courier_producer', '{}'::text[], 'purge_dead_letters(text, text, bigint[]): courier_producer has no EXECUTE');
SELECT function_privs_are('courier', 'purge_dead_letters', '{text,text,bigint[]}'::name[], 'public', '{}'::text[], 'purge_dead_letters(text, text, bigint[]): public has no EXECUTE');
SELECT function_privs_are('courier', 'ack_and_receive', '{text,text,bigint[],text[],integer,interval,interval,interval}'::name[], 'courier_admin', '{EXECUTE}'::text[], 'ack_and_receive(text, text, bigint[], text[], integer, interval, interval, interval): courier_admin has EXECUTE');
SELECT function_privs_are('courier', 'ack_and_receive', '{text,text,bigint[],text[],integer,interval,interval,interval}'::name[], 'courier_consumer', '{EXECUTE}'::text[], 'ack_and_receive(text, text, bigint[], text[], integer, interval, interval, interval): courier_consumer has EXECUTE');
SELECT function_privs_are('courier', 'ack_and_receive', '{text,text,bigint[],text[],integer,interval,interval,interval}'::name[], 'courier_producer', '{}'::text[], 'ack_and_receive(text, text, bigint[], text[], integer, interval, interval, interval): courier_producer has no EXECUTE');
SELECT function_privs_are('courier', 'ack_and_receive', '{text,text,bigint[],text[],integer,interval,interval,interval}'::name[], 'public', '{}'::text[], 'ack_and_receive(text, text, bigint[], text[], integer, interval, interval, interval): public has no EXECUTE');
SELECT function_privs_are('courier', 'receive', '{text,text,integer,interval,interval,interval}'::name[], 'courier_admin', '{EXECUTE}'::text[], 'receive(text, text, integer, interval, interval, interval): courier_admin has EXECUTE');
SELECT function_privs_are('courier', 'receive', '{text,text,integer,interval,interval,interval}'::name[], 'courier_consumer', '{EXECUTE}'::text[], 'receive(text, text, integer, interval, interval, interval): courier_consumer has EXECUTE');
SELECT function_privs_are('courier', 'receive', '{text,text,integer,interval,interval,interval}'::name[], 'courier_producer', '{}'::text[], 'receive(text, text, integer, interval, interval, interval): courier_producer has no EXECUTE');
SELECT function_privs_are('courier', 'receive', '{text,text,integer,interval,interval,interval}'::name[], 'public', '{}'::text[], 'receive(text, text, integer, interval, interval, interval): public has no EXECUTE');
SELECT function_privs_are('courier', 'redrive', '{text,text,bigint[]}'::name[], 'courier_admin', '{EXECUTE}'::text[], 'redrive(text, text, bigint[]): courier_admin has EXECUTE');
SELECT function_privs_are('courier', 'redrive', '{text,text,bigint[]}'::name[], 'courier_consumer', '{}'::text[], 'redrive(text, text, bigint[]): courier_consumer has no EXECUTE');
SELECT function_privs_are('courier', 'redrive', '{text,text,bigint[]}'::name[], 'courier_producer', '{}'::text[], 'redrive(text, text, bigint[]): courier_producer has no EXECUTE');
SELECT function_privs_are('courier', 'redrive', '{text,text,bigint[]}'::name[], 'public', '{}'::text[], 'redrive(text, text, bigint[]): public has no EXECUTE');
SELECT function_privs_are('courier', 'resume_group', '{text,text}'::name[], 'courier_admin', '{EXECUTE}'::text[], 'resume_group(text, text): courier_admin has EXECUTE');
SELECT function_privs_are('courier', 'resume_group', '{text,text}'::name[], 'courier_consumer', '{}'::text[], 'resume_group(text, text): courier_consumer has no EXECUTE');
SELECT function_privs_are('courier', 'resume_group', '{text,text}'::name[], 'courier_producer', '{}'::text[], 'resume_group(text, text): courier_producer has no EXECUTE');
SELECT function_privs_are('courier', 'resume_group', '{text,text}'::name[], 'public', '{}'::text[], 'resume_group(text, text): public has no EXECUTE');
SELECT function_privs_are('courier', 'revoke', '{text,name,text}'::name[], 'courier_admin', '{EXECUTE}'::text[], 'revoke(text, name, text): courier_admin has EXECUTE');
SELECT function_privs_are('courier', 'revoke', '{text,name,text}'::name[], 'courier_consumer', '{}'::text[], 'revoke(text, name, text): courier_consumer has no EXECUTE');
SELECT function_privs_are('courier', 'revoke', '{text,name,text}'::name[], 'courier_producer', '{}'::text[], 'revoke(text, name, text): courier_producer has no EXECUTE');
SELECT function_privs_are('courier', 'revoke', '{text,name,text}'::name[], 'public', '{}'::text[], 'revoke(text, name, text): public has no EXECUTE');
SELECT function_privs_are('courier', 'run_maintenance', '{}'::name[], 'courier_admin', '{EXECUTE}'::text[], 'run_maintenance(): courier_admin has EXECUTE');
SELECT function_privs_are('courier', 'run_maintenance', '{}'::name[], 'courier_consumer', '{}'::text[], 'run_maintenance(): courier_consumer has no EXECUTE');
SELECT function_privs_are('courier', 'run_maintenance', '{}'::name[], 'courier_producer', '{}'::text[], 'run_maintenance(): courier_producer has no EXECUTE');
SELECT function_privs_are('courier', 'run_maintenance', '{}'::name[], 'public', '{}'::text[], 'run_maintenance(): public has no EXECUTE');
SELECT function_privs_are('courier', 'seek', '{text,text,"timestamp with time zone"}'::name[], 'courier_admin', '{EXECUTE}'::text[], 'seek(text, text, timestamp with time zone): courier_admin has EXECUTE');
SELECT function_privs_are('courier', 'seek', '{text,text,"timestamp with time zone"}'::name[], 'courier_consumer', '{}'::text[], 'seek(text, text, timestamp with time zone): courier_consumer has no EXECUTE');
SELECT function_privs_are('courier', 'seek', '{text,text,"timestamp with time zone"}'::name[], 'courier_producer', '{}'::text[], 'seek(text, text, timestamp with time zone): courier_producer has no EXECUTE');
SELECT function_privs_are('courier', 'seek', '{text,text,"timestamp with time zone"}'::name[], 'public', '{}'::text[], 'seek(text, text, timestamp with time zone): public has no EXECUTE');
SELECT function_privs_are('courier', 'send', '{text,jsonb,text,text[],jsonb,interval,"timestamp with time zone"}'::name[], 'courier_admin', '{EXECUTE}'::text[], 'send(text, jsonb, text, text[], jsonb, interval, timestamp with time zone): courier_admin has EXECUTE');
SELECT function_privs_are('courier', 'send', '{text,jsonb,text,text[],jsonb,interval,"timestamp with time zone"}'::name[], 'courier_consumer', '{}'::text[], 'send(text, jsonb, text, text[], jsonb, interval, timestamp with time zone): courier_consumer has no EXECUTE');
SELECT function_privs_are('courier', 'send', '{text,jsonb,text,text[],jsonb,interval,"timestamp with time zone"}'::name[], 'courier_producer', '{EXECUTE}'::text[], 'send(text, jsonb, text, text[], jsonb, interval, timestamp with time zone): courier_producer has EXECUTE');
SELECT function_privs_are('courier', 'send', '{text,jsonb,text,text[],jsonb,interval,"timestamp with time zone"}'::name[], 'public', '{}'::text[], 'send(text, jsonb, text, text[], jsonb, interval, timestamp with time zone): public has no EXECUTE');
SELECT function_privs_are('courier', 'send_batch', '{text,jsonb[],text,jsonb,interval,"timestamp with time zone",text[]}'::name[], 'courier_admin', '{EXECUTE}'::text[], 'send_batch(text, jsonb[], text, jsonb, interval, timestamp with time zone, text[]): courier_admin has EXECUTE');
SELECT function_privs_are('courier', 'send_batch', '{text,jsonb[],text,jsonb,interval,"timestamp with time zone",text[]}'::name[], 'courier_consumer', '{}'::text[], 'send_batch(text, jsonb[], text, jsonb, interval, timestamp with time zone, text[]): courier_consumer has no EXECUTE');
SELECT function_privs_are('courier', 'send_batch', '{text,jsonb[],text,jsonb,interval,"timestamp with time zone",text[]}'::name[], 'courier_producer', '{EXECUTE}'::text[], 'send_batch(text, jsonb[], text, jsonb, interval, timestamp with time zone, text[]): courier_producer has EXECUTE');
SELECT function_privs_are('courier', 'send_batch', '{text,jsonb[],text,jsonb,interval,"timestamp with time zone",text[]}'::name[], 'public', '{}'::text[], 'send_batch(text, jsonb[], text, jsonb, interval, timestamp with time zone, text[]): public has no EXECUTE');
SELECT function_privs_are('courier', 'set_visibility', '{text,text,bigint,interval,text}'::name[], 'courier_admin', '{EXECUTE}'::text[], 'set_visibility(text, text, bigint, interval, text): courier_admin has EXECUTE');
SELECT function_privs_are('courier', 'set_visibility', '{text,text,bigint,interval,text}'::name[], 'courier_consumer', '{EXECUTE}'::text[], 'set_visibility(text, text, bigint, interval, text): courier_consumer has EXECUTE');
SELECT function_privs_are('courier', 'set_visibility', '{text,text,bigint,interval,text}'::name[], 'courier_producer', '{}'::text[], 'set_visibility(text, text, bigint, interval, text): courier_producer has no EXECUTE');
SELECT function_privs_are('courier', 'set_visibility', '{text,text,bigint,interval,text}'::name[], 'public', '{}'::text[], 'set_visibility(text, text, bigint, interval, text): public has no EXECUTE');

-- internal functions: only the views' helpers are callable by everyone
SELECT bag_eq($$
	SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
	 WHERE n.nspname = 'courier' AND p.proname ~ '^_' AND has_function_privilege('public', p.oid, 'EXECUTE')$$,
	ARRAY['courier._may_see(integer,boolean)', 'courier._topic_info(integer)', 'courier._group_info(integer)',
	      'courier._last_maintenance()', 'courier._citus_require()', 'courier._citus_fanout(text)'],
	'PUBLIC may execute only the internal helpers of the views (the cluster views included)');
SELECT ok(NOT has_function_privilege('public', 'courier._wake(integer)', 'EXECUTE'), 'PUBLIC may not call _wake');
SELECT ok(NOT has_function_privilege('public', 'courier._ddl(text)', 'EXECUTE'), 'PUBLIC may not call _ddl');
SELECT ok(NOT has_function_privilege(r, 'courier._entries_elsewhere()', 'EXECUTE'), r || ' may not call _entries_elsewhere')
  FROM unnest(ARRAY['public', 'courier_admin', 'courier_producer', 'courier_consumer']) r;
SELECT ok(NOT has_function_privilege(r, 'courier._created(integer,integer)', 'EXECUTE'), r || ' may not call _created')
  FROM unnest(ARRAY['public', 'courier_admin', 'courier_producer', 'courier_consumer']) r;
SELECT ok(NOT has_function_privilege(r, f, 'EXECUTE'), r || ' may not call ' || f)
  FROM unnest(ARRAY['public', 'courier_admin', 'courier_producer', 'courier_consumer']) r,
       unnest(ARRAY['courier._seek_start(integer,timestamp with time zone)',
                    'courier._group_reset(integer,bigint,boolean)',
                    'courier._clear_acl(regclass)', 'courier._redrive_rows(integer,bigint[])']) f;
SELECT ok(NOT has_function_privilege(r, 'courier._promote_keys(integer,integer,text[])', 'EXECUTE'), r || ' may not call _promote_keys')
  FROM unnest(ARRAY['public', 'courier_admin', 'courier_producer', 'courier_consumer']) r;
SELECT schema_privs_are('courier', 'public', ARRAY['USAGE'], 'PUBLIC has USAGE on schema courier, not CREATE');

-- the views and row types, column by column and in this order
SELECT is(ARRAY(SELECT attname::text FROM pg_attribute WHERE attrelid = 'courier.topics'::regclass AND attnum > 0 ORDER BY attnum),
	ARRAY['topic', 'name', 'messages', 'segments', 'retention', 'max_retention', 'created_at', 'counts_exact', 'bytes',
	      'oldest_message', 'newest_message', 'sent_last_minute', 'last_maintenance', 'owner'], 'columns of view topics');
SELECT is(ARRAY(SELECT attname::text FROM pg_attribute WHERE attrelid = 'courier.groups'::regclass AND attnum > 0 ORDER BY attnum),
	ARRAY['topic', 'grp', 'backlog', 'in_flight', 'delayed', 'retrying', 'dead_letters', 'dropped', 'filter', 'ordered',
	      'max_attempts', 'retry_backoff', 'created_at', 'backlog_exact', 'undelivered_age', 'unacked_age',
	      'last_receive', 'last_ack', 'paused'], 'columns of view groups');
SELECT is(ARRAY(SELECT attname::text FROM pg_attribute WHERE attrelid = 'courier.dead_letters'::regclass AND attnum > 0 ORDER BY attnum),
	ARRAY['topic', 'grp', 'id', 'attempts', 'first_delivered_at', 'last_delivered_at', 'died_at', 'last_error', 'tag',
	      'keys', 'headers', 'body', 'sent_at'], 'columns of view dead_letters');
SELECT is(ARRAY(SELECT attname::text FROM pg_attribute WHERE attrelid = 'courier.privileges'::regclass AND attnum > 0 ORDER BY attnum),
	ARRAY['topic', 'grantee', 'privilege'], 'columns of view privileges');
-- the Citus cluster views: node, port (topics: the owning node), then the
-- columns of the local view
SELECT is(ARRAY(SELECT attname::text FROM pg_attribute WHERE attrelid = 'courier.cluster_topics'::regclass AND attnum > 0 ORDER BY attnum),
	ARRAY['nodename', 'nodeport', 'owner_node'] || ARRAY(SELECT attname::text FROM pg_attribute WHERE attrelid = 'courier.topics'::regclass AND attnum > 0 ORDER BY attnum),
	'columns of view cluster_topics: nodename, nodeport, owner_node, then those of topics');
SELECT is(ARRAY(SELECT attname::text FROM pg_attribute WHERE attrelid = 'courier.cluster_groups'::regclass AND attnum > 0 ORDER BY attnum),
	ARRAY['nodename', 'nodeport'] || ARRAY(SELECT attname::text FROM pg_attribute WHERE attrelid = 'courier.groups'::regclass AND attnum > 0 ORDER BY attnum),
	'columns of view cluster_groups: nodename, nodeport, then those of groups');
SELECT is(ARRAY(SELECT attname::text FROM pg_attribute WHERE attrelid = 'courier.cluster_dead_letters'::regclass AND attnum > 0 ORDER BY attnum),
	ARRAY['nodename', 'nodeport'] || ARRAY(SELECT attname::text FROM pg_attribute WHERE attrelid = 'courier.dead_letters'::regclass AND attnum > 0 ORDER BY attnum),
	'columns of view cluster_dead_letters: nodename, nodeport, then those of dead_letters');
SELECT col_type_is('courier', 'cluster_topics', 'nodeport', 'integer', 'cluster_topics.nodeport is integer');
SELECT col_type_is('courier', 'cluster_topics', 'owner_node', 'text', 'cluster_topics.owner_node is text');
SELECT col_type_is('courier', 'topics', 'owner', 'regrole', 'topics.owner is a regrole');
SELECT is(ARRAY(SELECT attname::text FROM pg_attribute WHERE attrelid = 'courier.message'::regclass AND attnum > 0 ORDER BY attnum),
	ARRAY['id', 'attempt', 'tag', 'keys', 'headers', 'body', 'sent_at', 'lease_until', 'receipt'], 'columns of type message');
SELECT is(ARRAY(SELECT attname::text FROM pg_attribute WHERE attrelid = 'courier.found'::regclass AND attnum > 0 ORDER BY attnum),
	ARRAY['id', 'tag', 'keys', 'headers', 'body', 'sent_at', 'deliver_at', 'grp', 'state', 'attempt', 'lease_until',
	      'last_error'], 'columns of type found');
SELECT col_type_is('courier', 'groups', 'backlog', 'bigint', 'groups.backlog is bigint');
SELECT col_type_is('courier', 'groups', 'undelivered_age', 'interval', 'groups.undelivered_age is an interval');
SELECT col_type_is('courier', 'groups', 'retry_backoff', 'interval[]', 'groups.retry_backoff is interval[]');
SELECT col_type_is('courier', 'dead_letters', 'body', 'jsonb', 'dead_letters.body is jsonb');
SELECT col_type_is('courier', 'topics', 'retention', 'interval', 'topics.retention is an interval');
SELECT col_type_is('courier', 'message', 'id', 'bigint', 'message.id is bigint');
SELECT col_type_is('courier', 'message', 'receipt', 'text', 'message.receipt is text');
SELECT col_type_is('courier', 'found', 'state', 'text', 'found.state is text');
SELECT ok(has_table_privilege('public', 'courier.' || v, 'SELECT'), 'everyone may read view ' || v)
  FROM unnest(ARRAY['topics', 'groups', 'dead_letters', 'privileges', 'cluster_topics', 'cluster_groups',
                     'cluster_dead_letters']) v;

-- every user-facing error has its SQLSTATE and changes nothing
SELECT courier.create_topic('api') \g /dev/null
SELECT courier.create_group('api', 'g', max_attempts => 1) \g /dev/null
SELECT courier.send('api', '{"n": 1}') \g /dev/null
CREATE ROLE api_nobody;
GRANT courier_admin TO api_nobody;
CREATE ROLE api_other;
CREATE FUNCTION pg_temp.as_role(r text, q text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	PERFORM set_config('role', r, true);
	EXECUTE q;
END;
$$;

-- names and existence
SELECT throws_ok($$SELECT courier.create_topic('api')$$, '42710', 'topic "api" already exists', 'create_topic of an existing topic: duplicate_object');
SELECT throws_ok($$SELECT courier.send('api', '{}', keys => (SELECT array_agg('k' || g) FROM generate_series(1, 65) g))$$,
	'22023', 'too many keys', 'send with 65 keys (at most 64): invalid_parameter_value');
SELECT throws_ok($$SELECT courier.send_batch('api', array_fill('{}'::jsonb, ARRAY[100001]))$$,
	'54000', 'too many messages in one batch', 'send_batch of 100001 bodies (at most 100000): program_limit_exceeded');
SELECT throws_ok($$SELECT courier.create_topic('Bad Name')$$, '22023', NULL, 'a name outside [a-z0-9_.-]: invalid_parameter_value');
SELECT throws_ok($$SELECT courier.create_topic('')$$, '22023', NULL, 'an empty name: invalid_parameter_value');
SELECT throws_ok($$SELECT courier.create_topic(repeat('a', 49))$$, '22023', NULL, 'a 49-byte name: invalid_parameter_value');
SELECT throws_ok($$SELECT courier.create_topic('x"; DROP TABLE t; --')$$, '22023', NULL, 'a name with quotes: invalid_parameter_value');
SELECT throws_ok($$SELECT courier.create_topic(NULL)$$, '22004', NULL, 'a NULL name: null_value_not_allowed');
SELECT throws_ok($$SELECT courier.create_topic('x', retention => '-1 day')$$, '22023', NULL, 'a negative retention: invalid_parameter_value');
SELECT throws_ok($$SELECT courier.drop_topic('nope')$$, '42704', 'topic "nope" does not exist', 'drop_topic of an unknown topic: undefined_object');
SELECT throws_ok($$SELECT courier.create_group('nope', 'g')$$, '42704', NULL, 'create_group on an unknown topic: undefined_object');
SELECT throws_ok($$SELECT courier.create_group('api', 'g')$$, '42710', 'group "g" of topic "api" already exists', 'create_group of an existing group: duplicate_object');
SELECT throws_ok($$SELECT courier.create_group('api', 'h', start_from => 'middle')$$, '22023', NULL, 'a bad start_from: invalid_parameter_value');
SELECT throws_ok($$SELECT courier.create_group('api', 'h', max_attempts => 0)$$, '22023', NULL, 'max_attempts 0: invalid_parameter_value');
SELECT throws_ok($$SELECT courier.create_group('api', 'h', retry_backoff => '{}')$$, '22023', NULL, 'an empty retry_backoff: invalid_parameter_value');
SELECT throws_ok($$SELECT courier.create_group('api', 'h', retry_backoff => '{-1s}')$$, '22023', NULL, 'a negative backoff step: invalid_parameter_value');
SELECT throws_ok($$SELECT courier.alter_group('api', 'nope', max_attempts => 2)$$, '42704', NULL, 'alter_group of an unknown group: undefined_object');
SELECT throws_ok($$SELECT courier.drop_group('api', 'nope')$$, '42704', NULL, 'drop_group of an unknown group: undefined_object');
SELECT throws_ok($$SELECT courier.alter_topic('api', retention => '-1 day')$$, '22023', NULL, 'alter_topic with a negative retention: invalid_parameter_value');
SELECT throws_ok($$SELECT courier.seek('api', 'g', NULL)$$, '22004', NULL, 'seek to NULL: null_value_not_allowed');
SELECT throws_ok($$SELECT courier.seek('api', 'nope', now())$$, '42704', NULL, 'seek of an unknown group: undefined_object');
SELECT throws_ok($$SELECT courier.pause_group('api', 'nope')$$, '42704', NULL, 'pause_group of an unknown group: undefined_object');
SELECT throws_ok($$SELECT courier.resume_group('nope', 'g')$$, '42704', NULL, 'resume_group on an unknown topic: undefined_object');
SELECT throws_ok($$SELECT courier.purge('nope')$$, '42704', NULL, 'purge of an unknown topic: undefined_object');
-- a send into a topic that the same transaction purged (review of 0.2.0)
CREATE FUNCTION pg_temp.purge_then_send(t text) RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
	PERFORM courier.purge(t);
	RETURN courier.send(t, '{}');
END;
$$;
SELECT throws_ok($$SELECT pg_temp.purge_then_send('api_purged')$$, '55000',
	'cannot send to topic "api_purged" in the transaction that purged it',
	'send after purge in one transaction: object_not_in_prerequisite_state');
-- more topics or groups than courier.max_topics / max_groups (over all
-- databases) are refused at create time; the loop stops at the limit
CREATE FUNCTION pg_temp.create_until_refused(kind text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	FOR i IN 1 .. current_setting('courier.max_' || kind || 's')::int + 1 LOOP
		IF kind = 'topic' THEN
			PERFORM courier.create_topic('api_lim_' || i);
		ELSE
			PERFORM courier.create_group('api', 'lim_' || i);
		END IF;
	END LOOP;
END;
$$;
SELECT throws_ok($$SELECT pg_temp.create_until_refused('topic')$$, '53400', 'too many topics',
	'a topic beyond courier.max_topics: configuration_limit_exceeded');
SELECT throws_ok($$SELECT pg_temp.create_until_refused('group')$$, '53400', 'too many consumer groups',
	'a group beyond courier.max_groups: configuration_limit_exceeded');

-- filters: syntax_error with the position
SELECT throws_ok($$SELECT courier.create_group('api', 'h', filter => 'a = ')$$, '42601',
	'syntax error at position 5: expected a value after ''='', found end of input', 'a bad filter: syntax_error, with the position');
SELECT throws_ok($$SELECT courier.check_filter('a = ')$$, '42601', NULL, 'check_filter of a bad filter: syntax_error');
SELECT throws_ok($$SELECT courier.match_filter('a >', '{}')$$, '42601', NULL, 'match_filter of a bad filter: syntax_error');
SELECT throws_ok($$SELECT courier.alter_group('api', 'g', filter => '(a = 1')$$, '42601', NULL, 'alter_group with a bad filter: syntax_error');

-- sending
SELECT throws_ok($$SELECT courier.send('nope', '{}')$$, '42704', 'topic "nope" does not exist', 'send to an unknown topic: undefined_object');
SELECT throws_ok($$SELECT courier.send('api', NULL)$$, '22004', NULL, 'a NULL body: null_value_not_allowed');
SELECT throws_ok($$SELECT courier.send('api', '{}', tag => 'a|b')$$, '22023', NULL, 'a tag with "|": invalid_parameter_value');
SELECT throws_ok($$SELECT courier.send('api', '{}', headers => '[1]')$$, '22023', NULL, 'headers that are not an object: invalid_parameter_value');
SELECT throws_ok($$SELECT courier.send('api', '{}', delay => '1s', deliver_at => now())$$, '22023', NULL, 'both delay and deliver_at: invalid_parameter_value');
SELECT throws_ok($$SELECT courier.send('api', '{}', delay => '-1s')$$, '22023', NULL, 'a negative delay: invalid_parameter_value');
SELECT throws_ok($$SELECT courier.send('api', '{}', delay => '10 years')$$, '22023', NULL, 'a delay beyond the retention: invalid_parameter_value');
SELECT throws_ok($$SELECT courier.send('api', jsonb_build_object('x', repeat('x', 2000000)))$$, '54000', 'message is too large', 'a body over max_body_size: program_limit_exceeded');
SELECT throws_ok($$SELECT courier.send_batch('api', NULL)$$, '22004', NULL, 'send_batch of NULL: null_value_not_allowed');
SELECT throws_ok($$SELECT courier.send_batch('api', ARRAY[NULL]::jsonb[])$$, '22004', NULL, 'send_batch with a NULL body: null_value_not_allowed');

-- receiving
SELECT throws_ok($$SELECT courier.receive('api', 'nope')$$, '42704', 'group "nope" of topic "api" does not exist', 'receive from an unknown group: undefined_object');
SELECT throws_ok($$SELECT courier.receive('api', 'g', 0)$$, '22023', NULL, 'max_messages 0: invalid_parameter_value');
SELECT throws_ok($$SELECT courier.receive('api', 'g', 10001)$$, '22023', NULL, 'max_messages 10001: invalid_parameter_value');
SELECT throws_ok($$SELECT courier.receive('api', 'g', 1, '13 hours')$$, '22023', NULL, 'a visibility_timeout over 12 hours: invalid_parameter_value');
SELECT throws_ok($$SELECT courier.receive('api', 'g', 1, '-1 s')$$, '22023', NULL, 'a negative visibility_timeout: invalid_parameter_value');
SELECT throws_ok($$SELECT courier.receive('api', 'g', 1, '1 s', '2 hours')$$, '22023', NULL, 'a wait over 1 hour: invalid_parameter_value');
SELECT throws_ok($$SELECT courier.receive('api', 'g', 10, linger => '2 minutes')$$, '22023', NULL, 'a linger over 1 minute: invalid_parameter_value');
SELECT throws_ok($$SELECT courier.receive('api', 'g', 10, linger => '-1 s')$$, '22023', NULL, 'a negative linger: invalid_parameter_value');
SELECT throws_ok($$SELECT courier.peek('api', 'g', -1)$$, '22023', NULL, 'peek of -1 messages: invalid_parameter_value');
SELECT throws_ok($$SELECT courier.nack('api', 'g', 999)$$, '55000', 'message 999 is not in flight in group "g" of topic "api"', 'nack of a message not in flight: object_not_in_prerequisite_state');
SELECT throws_ok($$SELECT courier.nack('api', 'g', 1, delay => '-1 s')$$, '22023', NULL, 'nack with a negative delay: invalid_parameter_value');
SELECT throws_ok($$SELECT courier.ack('api', 'g', 1, receipt => 'garbage')$$, '22023', 'invalid receipt "garbage"', 'a malformed receipt: invalid_parameter_value');
SELECT throws_ok($$SELECT courier.set_visibility('api', 'g', 1, '-1 s')$$, '22023', NULL, 'set_visibility with a negative timeout: invalid_parameter_value');
SELECT throws_ok($$SELECT courier.redrive('api', 'nope')$$, '42704', NULL, 'redrive of an unknown group: undefined_object');
SELECT throws_ok($$SELECT courier.purge_dead_letters('nope', 'g')$$, '42704', NULL, 'purge_dead_letters on an unknown topic: undefined_object');
SELECT throws_ok($$SELECT courier.find('api')$$, '22023', 'give either key or id', 'find with neither key nor id: invalid_parameter_value');
SELECT throws_ok($$SELECT courier.find('api', key => 'k', id => 1)$$, '22023', NULL, 'find with both key and id: invalid_parameter_value');
SELECT lives_ok($$SELECT courier.ack('api', 'g', 999)$$, 'ack of a message not held is no error (returns false)');

-- privileges
SELECT throws_ok($$SELECT courier.grant('api', 'api_nobody', 'fly')$$, '22023', 'unknown topic privilege "fly"', 'an unknown privilege: invalid_parameter_value');
SELECT throws_ok($$SELECT courier.grant('api', 'nobody_here', 'send')$$, '42704', NULL, 'grant to an unknown role: undefined_object');
SELECT throws_ok($$SELECT courier.has_topic_privilege('api', 'fly')$$, '22023', NULL, 'has_topic_privilege of an unknown privilege: invalid_parameter_value');
SELECT throws_ok($$SELECT pg_temp.as_role('api_nobody', 'SELECT courier.send(''api'', ''{}'')')$$, '42501',
	'permission denied for topic "api"', 'send without the topic''s send privilege: insufficient_privilege, naming the topic');
SELECT throws_ok($$SELECT pg_temp.as_role('api_nobody', 'SELECT courier.receive(''api'', ''g'')')$$, '42501', NULL, 'receive without the receive privilege: insufficient_privilege');
SELECT throws_ok($$SELECT pg_temp.as_role('api_nobody', 'SELECT courier.create_group(''api'', ''h'')')$$, '42501', NULL, 'create_group without the admin privilege: insufficient_privilege');
SELECT throws_ok($$SELECT pg_temp.as_role('api_nobody', 'SELECT courier.drop_topic(''api'')')$$, '42501', NULL, 'drop_topic by another role: insufficient_privilege');

-- a topic's owner (alter_topic_owner): only its owner (or a superuser)
-- hands it over, and only to a role the owner is a member of
SET ROLE api_nobody;
SELECT courier.create_topic('api_owned') \g /dev/null
RESET ROLE;
SELECT throws_ok($$SELECT courier.alter_topic_owner('nope', 'api_nobody')$$, '42704', 'topic "nope" does not exist', 'alter_topic_owner of an unknown topic: undefined_object');
SELECT throws_ok($$SELECT courier.alter_topic_owner('Bad Name', 'api_nobody')$$, '22023', NULL, 'alter_topic_owner of a bad topic name: invalid_parameter_value');
SELECT throws_ok($$SELECT courier.alter_topic_owner('api', NULL)$$, '22004', NULL, 'alter_topic_owner to NULL: null_value_not_allowed');
SELECT throws_ok($$SELECT courier.alter_topic_owner('api', 'nobody_here')$$, '42704', 'role "nobody_here" does not exist', 'alter_topic_owner to an unknown role: undefined_object');
SELECT throws_ok($$SELECT pg_temp.as_role('api_nobody', 'SELECT courier.alter_topic_owner(''api'', ''api_nobody'')')$$, '42501',
	'permission denied for topic "api"', 'alter_topic_owner by a role that does not own the topic: insufficient_privilege');
SELECT throws_ok($$SELECT pg_temp.as_role('api_nobody', 'SELECT courier.alter_topic_owner(''api_owned'', ''api_other'')')$$, '42501',
	'permission denied for topic "api_owned"', 'alter_topic_owner to a role the owner is not a member of: insufficient_privilege');
SELECT is((SELECT owner::text FROM courier.topics WHERE topic = 'api_owned'), 'api_nobody', 'api_owned still belongs to api_nobody');
SELECT lives_ok($$SELECT courier.alter_topic_owner('api_owned', 'api_other')$$, 'a superuser hands a topic to any role');
SELECT is((SELECT owner::text FROM courier.topics WHERE topic = 'api_owned'), 'api_other', 'api_owned belongs to api_other now');

-- Citus (this database has none; with Citus: test/citus): citus_distribute
-- and the cluster views refuse, citus_owner answers NULL, only superusers
-- may turn the guard off
SELECT throws_ok($$SELECT courier.citus_distribute()$$, '0A000', 'Citus is not installed in this database', 'citus_distribute without Citus: feature_not_supported');
SELECT throws_ok($$SELECT * FROM courier.cluster_topics$$, '0A000', 'Citus is not installed in this database', 'cluster_topics without Citus: feature_not_supported');
SELECT throws_ok($$SELECT * FROM courier.cluster_groups$$, '0A000', 'Citus is not installed in this database', 'cluster_groups without Citus: feature_not_supported');
SELECT throws_ok($$SELECT * FROM courier.cluster_dead_letters$$, '0A000', 'Citus is not installed in this database', 'cluster_dead_letters without Citus: feature_not_supported');
SELECT throws_ok($$SELECT pg_temp.as_role('api_nobody', 'SELECT courier.citus_distribute()')$$, '42501',
	'permission denied for function citus_distribute', 'citus_distribute by a non-superuser: insufficient_privilege');
SELECT is(courier.citus_owner('api'), NULL, 'citus_owner without Citus: NULL');
SELECT throws_ok($$SELECT courier.citus_owner('Bad Name')$$, '22023', 'invalid topic name "Bad Name"', 'citus_owner of a bad name: invalid_parameter_value');
SELECT throws_ok($$SELECT pg_temp.as_role('api_nobody', 'SET courier.citus_guard = off')$$, '42501',
	'permission denied to set parameter "courier.citus_guard"', 'courier.citus_guard set by a non-superuser: insufficient_privilege');

-- and none of it changed the topic (its message is not committed, so not counted here)
SELECT is((SELECT count(*)::int FROM courier.topics WHERE topic = 'api'), 1, 'still one topic api');
SELECT is(ARRAY(SELECT grp FROM courier.groups WHERE topic = 'api' ORDER BY grp), ARRAY['default', 'g'], 'still its two groups');

SELECT * FROM finish();
ROLLBACK;
SELECT courier.drop_topic('api_purged') \g /dev/null
