-- courier.run_maintenance() works in READ COMMITTED only: a REPEATABLE READ
-- or SERIALIZABLE snapshot would hide what committed after it began
-- (active_sql_transaction, 25001).  Its own file, because api.sql runs in
-- one READ COMMITTED transaction.  Needs pg_courier and pgtap.  pgTAP keeps
-- its count in the session's temporary tables, so the two transactions
-- commit (they change nothing: the calls fail).
\set ON_ERROR_STOP 1
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
SET client_min_messages = warning;

SELECT plan(3);

BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT throws_ok($$SELECT courier.run_maintenance()$$, '25001',
	'courier.run_maintenance() must run in a READ COMMITTED transaction',
	'run_maintenance() in REPEATABLE READ: active_sql_transaction');
COMMIT;

BEGIN ISOLATION LEVEL SERIALIZABLE;
SELECT throws_ok($$SELECT courier.run_maintenance()$$, '25001', NULL,
	'run_maintenance() in SERIALIZABLE: active_sql_transaction');
SELECT lives_ok($$SELECT courier.check_filter('a = 1')$$, 'and the transaction goes on');
COMMIT;

SELECT * FROM finish();
