-- Issue 12: the Citus support on a server without Citus.  citus_distribute
-- and the cluster views refuse with a clear error and hint; citus_owner
-- answers NULL; the guard is inert (calls work as always); only superusers
-- may turn the guard off.  (With Citus: test/citus.)
\set VERBOSITY default
SET client_min_messages = warning;

SELECT courier.create_topic('cit');
SELECT courier.send('cit', '{"n": 1}') > 0 AS sent;

-- 0A000 with a hint, and nothing created
SELECT courier.citus_distribute();
SELECT courier.citus_distribute('pg_class');
SELECT count(*) AS anchor_schemas FROM pg_namespace WHERE nspname = 'courier_citus';
SELECT * FROM courier.cluster_topics;
SELECT * FROM courier.cluster_groups;
SELECT * FROM courier.cluster_dead_letters;

-- no owner without Citus; bad names are still refused
SELECT courier.citus_owner('cit') IS NULL AS no_owner;
SELECT courier.citus_owner('Bad Name');

-- the guard is on by default and changes nothing without Citus
SHOW courier.citus_guard;
SELECT id, attempt FROM courier.receive('cit');
SELECT courier.ack('cit', 'default', 1);

-- only superusers may turn it off
CREATE ROLE regress_citus_user;
SET ROLE regress_citus_user;
SET courier.citus_guard = off;
RESET ROLE;
SET courier.citus_guard = off;
SELECT courier.send('cit', '{"n": 2}') > 0 AS sent;
RESET courier.citus_guard;
DROP ROLE regress_citus_user;

-- citus_distribute is not for PUBLIC
SELECT has_function_privilege('public', 'courier.citus_distribute(regclass)', 'execute') AS public_may_distribute;

SELECT courier.drop_topic('cit');
