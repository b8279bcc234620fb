-- A topic's owner and privileges are its sequence's (src/acl.c), so
-- PostgreSQL tracks them: DROP ROLE is refused while a role owns a topic or
-- holds a privilege on one, DROP OWNED revokes the role's privileges and
-- drops its topics, REASSIGN OWNED and courier.alter_topic_owner hand
-- topics over.  GRANT ... ON SEQUENCE is a topic grant (what pg_dump writes).
\set VERBOSITY terse
SET client_min_messages = warning;

-- an error with its SQLSTATE and detail; sequence names vary with the tests before
CREATE FUNCTION pg_temp.try(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	m text;
	d text;
BEGIN
	EXECUTE q;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS m = MESSAGE_TEXT, d = PG_EXCEPTION_DETAIL;
	RETURN regexp_replace(SQLSTATE || ': ' || m || ' / ' || d, 'seq_[0-9]+', 'seq_N', 'g');
END;
$$;

CREATE ROLE regress_tr_owner IN ROLE courier_admin;
CREATE ROLE regress_tr_reader;
CREATE ROLE regress_tr_heir IN ROLE courier_admin;
SET ROLE regress_tr_owner;
SELECT courier.create_topic('tr_payroll');
SELECT courier.grant('tr_payroll', 'regress_tr_reader', 'receive');
SELECT courier.grant('tr_payroll', 'regress_tr_reader', 'send');
RESET ROLE;
SELECT topic, owner FROM courier.topics WHERE topic = 'tr_payroll';
SELECT grantee, privilege FROM courier.privileges WHERE topic = 'tr_payroll' ORDER BY 1, 2;
-- the sequence carries them
SELECT c.relowner::regrole, c.relacl, c.relname ~ '^seq_[0-9]+$' AS is_seq FROM courier.topic_meta t JOIN pg_class c ON c.oid = t.seq
 WHERE t.name = 'tr_payroll';

-- DROP ROLE is refused, with PostgreSQL's usual detail
SELECT pg_temp.try('DROP ROLE regress_tr_reader');
SELECT pg_temp.try('DROP ROLE regress_tr_owner');

-- GRANT/REVOKE on the sequence are topic grants; no grant option
SELECT seq AS payroll_seq FROM courier.topic_meta WHERE name = 'tr_payroll' \gset
SELECT pg_temp.try(format('GRANT UPDATE ON SEQUENCE %s TO regress_tr_heir', :'payroll_seq'));
SELECT courier.has_topic_privilege('tr_payroll', 'admin', 'regress_tr_heir');
SELECT pg_temp.try(format('REVOKE UPDATE ON SEQUENCE %s FROM regress_tr_heir', :'payroll_seq'));
SELECT courier.has_topic_privilege('tr_payroll', 'admin', 'regress_tr_heir');
SELECT pg_temp.try(format('GRANT SELECT ON SEQUENCE %s TO regress_tr_heir WITH GRANT OPTION', :'payroll_seq'));
SELECT courier.has_topic_privilege('tr_payroll', 'receive', 'regress_tr_heir');
-- other DDL on the sequence stays refused
SELECT pg_temp.try(format('ALTER SEQUENCE %s RESTART', :'payroll_seq'));
SELECT pg_temp.try(format('DROP SEQUENCE %s', :'payroll_seq'));

-- DROP OWNED BY a grantee revokes its topic privileges
DROP OWNED BY regress_tr_reader;
SELECT count(*) AS reader_privileges FROM courier.privileges WHERE grantee = 'regress_tr_reader';
DROP ROLE regress_tr_reader;

-- courier.alter_topic_owner: the owner, to a role it is a member of
CREATE ROLE regress_tr_team;
SET ROLE regress_tr_owner;
SELECT courier.alter_topic_owner('tr_payroll', 'regress_tr_team');
RESET ROLE;
GRANT regress_tr_team TO regress_tr_owner;
SET ROLE regress_tr_heir;
SELECT courier.alter_topic_owner('tr_payroll', 'regress_tr_heir');
RESET ROLE;
SET ROLE regress_tr_owner;
SELECT courier.alter_topic_owner('tr_payroll', 'regress_tr_team');
SELECT courier.alter_topic_owner('tr_payroll', 'no_such_role');
RESET ROLE;
SELECT topic, owner FROM courier.topics WHERE topic = 'tr_payroll';
-- the old owner keeps it through membership only
SELECT courier.has_topic_privilege('tr_payroll', 'admin', 'regress_tr_owner');
REVOKE regress_tr_team FROM regress_tr_owner;
SELECT courier.has_topic_privilege('tr_payroll', 'admin', 'regress_tr_owner');

-- REASSIGN OWNED hands the topics over, messages and groups included
SELECT courier.create_group('tr_payroll', 'audit');
SELECT courier.send('tr_payroll', '{"salary": 1}') IS NOT NULL AS sent;
REASSIGN OWNED BY regress_tr_team TO regress_tr_heir;
SELECT topic, owner, messages FROM courier.topics WHERE topic = 'tr_payroll';
SELECT courier.has_topic_privilege('tr_payroll', 'admin', 'regress_tr_team');
DROP ROLE regress_tr_team;
SET ROLE regress_tr_heir;
SELECT body FROM courier.receive('tr_payroll', 'audit');
RESET ROLE;

-- DROP OWNED BY the owner drops its topics (groups, segments, sequence)
SET ROLE regress_tr_heir;
SELECT courier.create_topic('tr_second');
RESET ROLE;
SELECT count(*) AS heir_topics FROM courier.topics WHERE owner = 'regress_tr_heir'::regrole;
DROP OWNED BY regress_tr_heir;
SELECT count(*) AS heir_topics FROM courier.topic_meta WHERE name LIKE 'tr\_%';
SELECT count(*) AS heir_groups FROM courier.group_meta g
 WHERE NOT EXISTS (SELECT 1 FROM courier.topic_meta t WHERE t.topic_id = g.topic_id);
SELECT count(*) AS orphan_segments FROM courier.segment s
 WHERE NOT EXISTS (SELECT 1 FROM courier.topic_meta t WHERE t.topic_id = s.topic_id);
SELECT count(*) AS orphan_sequences FROM pg_class c
 WHERE c.relnamespace = 'courier'::regnamespace AND c.relkind = 'S' AND c.relname LIKE 'seq\_%'
   AND NOT EXISTS (SELECT 1 FROM courier.topic_meta t WHERE t.seq = c.oid);
SELECT pg_temp.try('DROP ROLE regress_tr_heir');

-- DROP OWNED / REASSIGN OWNED of the extension's owner stay refused
REASSIGN OWNED BY CURRENT_USER TO regress_tr_owner;
DROP ROLE regress_tr_owner;

-- setval() on a topic's sequence (its owner may) never makes an id come twice
SELECT courier.create_topic('tr_ids');
SELECT courier.send('tr_ids', '{}') AS first_id;
SELECT courier.send('tr_ids', '{}') AS second_id;
SELECT seq AS ids_seq FROM courier.topic_meta WHERE name = 'tr_ids' \gset
SELECT setval(:'ids_seq', 1) IS NOT NULL AS rewound;
SELECT courier.send('tr_ids', '{}') AS third_id;
SELECT courier.send('tr_ids', '{}') AS fourth_id;
-- nor, moved to the end of bigint, makes ids wrap round (review 43): a send
-- past the last id fails, and the ids before it are still delivered
SELECT setval(:'ids_seq', 9223372034707292158) IS NOT NULL AS moved_up;
SELECT courier.send('tr_ids', '{}') AS last_but_one;
SELECT courier.send('tr_ids', '{}') AS last_id;
SELECT courier.send('tr_ids', '{}') AS past_the_end;
SELECT setval(:'ids_seq', 9223372036854775806) IS NOT NULL AS moved_further;
SELECT courier.send('tr_ids', '{}') AS past_the_end;
SELECT setval(:'ids_seq', 1) IS NOT NULL AS rewound;
SELECT courier.send('tr_ids', '{}') AS past_the_end;
SELECT count(*) AS received, max(id) AS highest FROM courier.receive('tr_ids', 'default', 10);
SELECT courier.drop_topic('tr_ids');
