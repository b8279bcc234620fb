-- Review 7: a topic's ACL is its sequence's, and create_topic makes that
-- sequence as the extension's owner (a SECURITY DEFINER function), so the
-- extension owner's default privileges for sequences -- a common DBA
-- setting, "ALTER DEFAULT PRIVILEGES GRANT SELECT ON SEQUENCES TO
-- reporting" -- are applied to every new topic, and ALTER SEQUENCE ... OWNER
-- TO hands them over to the topic's owner as if she had granted them.
-- SELECT is the receive privilege: the reporting role can read and ack
-- every new topic's messages.  WITH GRANT OPTION in the default privileges
-- also gets past the guard's "no grant options" rule, and the grantee can
-- pass receive on by a plain GRANT ... ON SEQUENCE.
-- Expected: a new topic has the owner's privileges only (relacl NULL or the
-- owner's entry alone); the reporting role holds nothing and cannot grant.
\set VERBOSITY terse
SET client_min_messages = warning;

CREATE ROLE regress_r7_owner IN ROLE courier_admin;
CREATE ROLE regress_r7_reporting IN ROLE courier_consumer;
CREATE ROLE regress_r7_friend IN ROLE courier_consumer;
ALTER DEFAULT PRIVILEGES GRANT SELECT ON SEQUENCES TO regress_r7_reporting WITH GRANT OPTION;
-- and the same for tables: a segment holds the bodies
ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO regress_r7_reporting;

SET ROLE regress_r7_owner;
SELECT courier.create_topic('r7_payroll');
SELECT courier.send('r7_payroll', '{"salary": 1}') > 0 AS sent;
RESET ROLE;

-- the topic's ACL as pg_courier shows it: the owner's only
SELECT grantee, privilege FROM courier.privileges WHERE topic = 'r7_payroll' ORDER BY 1, 2;
SELECT array_length(c.relacl, 1) IS DISTINCT FROM 2 AS no_default_entry
  FROM courier.topic_meta t JOIN pg_class c ON c.oid = t.seq WHERE t.name = 'r7_payroll';

-- no segment of the topic is readable by the reporting role either
SELECT bool_or(has_table_privilege('regress_r7_reporting', s.relid, 'SELECT')) AS reporting_reads_segments
  FROM courier.segment s JOIN courier.topic_meta t USING (topic_id) WHERE t.name = 'r7_payroll';
-- the reporting role holds nothing on the topic
SET ROLE regress_r7_reporting;
SELECT courier.has_topic_privilege('r7_payroll', 'receive', NULL) AS reporting_may_receive;
SELECT count(*) AS bodies_read FROM courier.peek('r7_payroll', 'default', 10);
RESET ROLE;
-- ... and cannot grant it on (the guard refuses grant options)
SELECT set_config('r7.seq', t.seq::text, false) IS NOT NULL AS have_seq FROM courier.topic_meta t WHERE t.name = 'r7_payroll';
SET ROLE regress_r7_reporting;
DO $$
BEGIN
	EXECUTE 'GRANT SELECT ON SEQUENCE ' || current_setting('r7.seq') || ' TO regress_r7_friend';
EXCEPTION WHEN OTHERS THEN NULL;
END $$;
RESET ROLE;
SET ROLE regress_r7_friend;
SELECT courier.has_topic_privilege('r7_payroll', 'receive', NULL) AS friend_may_receive;
RESET ROLE;

-- clean up
ALTER DEFAULT PRIVILEGES REVOKE ALL ON SEQUENCES FROM regress_r7_reporting;
ALTER DEFAULT PRIVILEGES REVOKE ALL ON TABLES FROM regress_r7_reporting;
SELECT courier.drop_topic('r7_payroll');
DROP ROLE regress_r7_owner, regress_r7_reporting, regress_r7_friend;
