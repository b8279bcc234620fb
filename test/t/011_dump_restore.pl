# pg_dump and restore with the DDL guard in place.  pg_dump writes the
# extension as CREATE EXTENSION (its members are not dumped), the data of its
# catalog tables (pg_extension_config_dump), and the run-time relations --
# segment tables, their indexes, per-topic sequences, which are not members --
# as ordinary CREATE TABLE / CREATE SEQUENCE / ALTER ... OWNER TO / CREATE
# INDEX statements.  The guard lets exactly those through (src/guard.c, "A
# restore"), so a plain `pg_dump | psql` with ON_ERROR_STOP and a parallel
# pg_restore both work, and the restored database delivers every message.
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use CourierTest;
use Test::More;

my $node = courier_node('dump', conf => qq{
courier.worker = off
log_line_prefix = '%m [%p] %e '
});

sql("SELECT courier.create_topic('orders', retention => '4 seconds')");
sql("SELECT courier.create_group('orders', 'audit', filter => 'kind = ''big''')");
sql("SELECT courier.create_topic('other')");
sql("SELECT courier.send('orders', jsonb_build_object('n', g), headers => jsonb_build_object('kind', "
	  . "CASE WHEN g % 2 = 0 THEN 'big' ELSE 'small' END), keys => ARRAY['k' || g]) "
	  . "FROM generate_series(1, 4) g");
# default acks 1 and 2; the rest stays
sql("SELECT courier.ack('orders', 'default', ARRAY(SELECT id FROM courier.receive('orders', 'default', 2)))");
sleep(1.2);
is(sql("SELECT courier.run_maintenance()->>'segments_created'"), '1', 'the topic rotated');
sql("SELECT courier.send('orders', jsonb_build_object('n', g), headers => '{\"kind\": \"big\"}') "
	  . "FROM generate_series(5, 6) g");
sql("SELECT courier.send('other', '{\"x\": 1}')");

# Everything else a dump must keep: topic owners and privileges, users'
# grants on functions, positions, in-flight leases, pending retries, dead
# letters, a paused group.
sql("CREATE ROLE app");
sql("CREATE ROLE teamlead IN ROLE courier_admin");
sql("SET ROLE teamlead; SELECT courier.create_topic('team')");
sql("SELECT courier.create_topic('state')");
sql("SELECT courier.create_group('state', 'fragile', max_attempts => 1)");
sql("SELECT courier.create_group('state', 'held')");
sql("SELECT courier.send('state', jsonb_build_object('n', g)) FROM generate_series(1, 6) g");
sql("SELECT courier.grant('state', 'app', 'receive')");
sql("SET ROLE teamlead; SELECT courier.grant('team', 'app', 'send')");
sql("GRANT EXECUTE ON FUNCTION courier.peek(text, text, integer) TO app");
is(sql("SELECT string_agg(id::text, ',') FROM courier.receive('state', 'default', 1, '1 hour')"), '1',
	'1 in flight');
is(sql("SELECT string_agg(id::text, ',' ORDER BY id) FROM courier.receive('state', 'default', 2, '1 hour')"), '2,3',
	'2 and 3 delivered');
sql("SELECT courier.nack('state', 'default', 2, delay => '0')");
sql("SELECT courier.nack('state', 'default', 3, delay => '1 hour', reason => 'later')");
sql("SELECT courier.nack('state', 'fragile', id, reason => 'broken') FROM courier.receive('state', 'fragile', 2)");
sql("SELECT courier.pause_group('state', 'held')");
# a topic's owner and privileges are its sequence's (src/acl.c)
my $acl_state = "SELECT t.name, c.relowner::regrole, c.relacl FROM courier.topic_meta t "
  . "JOIN pg_class c ON c.oid = t.seq ORDER BY t.name";
my $acl_before = sql($acl_state);
my $state_groups = "SELECT grp, backlog, in_flight, retrying, dead_letters, paused FROM courier.groups "
  . "WHERE topic = 'state' ORDER BY grp";
my $state_before = sql($state_groups);
is($state_before, "default|3|1|2|0|f\nfragile|4|0|0|2|f\nheld|6|0|0|0|t", 'the state to keep');

my $state = "SELECT t.name, s.seg_no, s.relid, (SELECT count(*) FROM courier.segment) "
  . "FROM courier.segment s JOIN courier.topic_meta t USING (topic_id) ORDER BY 1, 2";
my $before = sql($state);
my $groups = "SELECT topic, grp, backlog FROM courier.groups ORDER BY 1, 2";
my $groups_before = sql($groups);

my $dump = $node->basedir . '/plain.sql';
command_ok([ 'pg_dump', '-d', $node->connstr('postgres'), '-f', $dump ], 'pg_dump (plain)');
my $text = slurp_file($dump);
like($text, qr/CREATE EXTENSION IF NOT EXISTS pg_courier WITH SCHEMA pg_catalog;/,
	'the dump creates the extension in pg_catalog');
unlike($text, qr/CREATE SCHEMA courier/, 'the schema comes with the extension, not from the dump');
like($text, qr/CREATE TABLE courier\.log_1_2 /, 'segment tables are dumped as CREATE TABLE');
like($text, qr/CREATE UNIQUE INDEX log_1_2_id ON courier\.log_1_2 USING btree \(id\);/,
	'and their indexes as CREATE INDEX');
like($text, qr/CREATE SEQUENCE courier\.seq_1\b/, 'per-topic sequences as CREATE SEQUENCE');
my $team_seq = sql("SELECT seq FROM courier.topic_meta WHERE name = 'team'");
my $state_seq = sql("SELECT seq FROM courier.topic_meta WHERE name = 'state'");
like($text, qr/ALTER (TABLE|SEQUENCE) \Q$team_seq\E OWNER TO teamlead;/,
	'the owner of a topic is dumped by name');
like($text, qr/GRANT USAGE ON SEQUENCE \Q$team_seq\E TO app;/, 'a send grant is dumped by role name');
like($text, qr/GRANT SELECT ON SEQUENCE \Q$state_seq\E TO app;/, 'a receive grant is dumped by role name');

# plain restore, stopping at the first error
sql("CREATE DATABASE plain");
command_ok([ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('plain'), '-f', $dump ],
	'pg_dump | psql with ON_ERROR_STOP restores without an error');

# custom format, parallel restore
my $custom = $node->basedir . '/custom.dump';
command_ok([ 'pg_dump', '-Fc', '-d', $node->connstr('postgres'), '-f', $custom ], 'pg_dump (custom)');
sql("CREATE DATABASE custom");
command_ok([ 'pg_restore', '--exit-on-error', '-j', '2', '-d', $node->connstr('custom'), $custom ],
	'pg_restore -j 2 --exit-on-error');

for my $db ('plain', 'custom')
{
	is(sql($state, $db), $before, "$db: same topics and segments");
	is(sql($groups, $db), $groups_before, "$db: same group backlogs");
	is(sql("SELECT string_agg(id::text || ':' || (body->>'n'), ',' ORDER BY id) "
			  . "FROM courier.receive('orders', 'default', 10)", $db),
		'3:3,4:4,5:5,6:6', "$db: the default group receives what it had not acked");
	is(sql("SELECT string_agg(id::text, ',' ORDER BY id) FROM courier.receive('orders', 'audit', 10)", $db),
		'2,4,5,6', "$db: the filtered group receives its messages");
	is(sql("SELECT id FROM courier.find('orders', key => 'k3') WHERE grp = 'default'", $db), '3',
		"$db: find uses the restored key index");
	# owners, privileges, grants
	is(sql($acl_state, $db), $acl_before, "$db: topic owners and privileges");
	is(sql("SELECT has_function_privilege('app', 'courier.peek(text, text, integer)', 'EXECUTE')", $db), 't',
		"$db: a user's grant on a function");
	is(sql("SELECT courier.has_topic_privilege('team', 'admin', 'teamlead')", $db), 't',
		"$db: the owner of a topic created by a non-superuser");
	# in-flight leases, retries, dead letters, pause
	is(sql($state_groups, $db), $state_before, "$db: the groups' state");
	is(sql("SELECT state FROM courier.find('state', id => 1) WHERE grp = 'default'", $db), 'in_flight',
		"$db: the in-flight message is still leased");
	is(sql("SELECT courier.ack('state', 'default', 1)", $db), 't', "$db: and can be acked");
	is(sql("SELECT id || ':' || attempt FROM courier.receive('state', 'default', 1)", $db), '2:2',
		"$db: the due retry comes back with its attempt count");
	is(sql("SELECT state || ':' || last_error FROM courier.find('state', id => 3) WHERE grp = 'default'", $db),
		'retrying:later', "$db: the later retry keeps its time and reason");
	is(sql("SELECT string_agg(id::text, ',' ORDER BY id) FROM courier.receive('state', 'default', 10)", $db),
		'4,5,6', "$db: the group goes on where it stopped");
	is(sql("SELECT string_agg(id || ':' || last_error, ',' ORDER BY id) FROM courier.dead_letters "
		  . "WHERE topic = 'state'", $db), '1:broken,2:broken', "$db: dead letters");
	is(sql("SELECT courier.redrive('state', 'fragile')", $db), '2', "$db: can be redriven");
	is(sql("SELECT count(*) FROM courier.receive('state', 'held', 10)", $db), '0', "$db: the paused group stays paused");
	sql("SELECT courier.resume_group('state', 'held')", $db);
	is(sql("SELECT count(*) FROM courier.receive('state', 'held', 10)", $db), '6', "$db: until resumed");
	is(sql("SELECT courier.send('orders', '{\"n\": 7}')", $db), '7', "$db: ids go on from the restored sequence");
	is(sql("SELECT courier.send('other', '{}')", $db), '2', "$db: for every topic");
	# the guard is on in the restored database
	my ($ret, $out, $err) = $node->psql($db, "ALTER TABLE courier.log_1_2 ADD COLUMN note text");
	like($err, qr/ALTER TABLE is not allowed on relation "courier.log_1_2"/, "$db: the guard is on");
	# rotation and drop_topic work on restored segments
	sleep(1.2);
	is(sql("SELECT courier.run_maintenance()->>'segments_created'", $db), '1', "$db: the short-lived topic rotates");
	sql("SELECT courier.drop_topic('other')", $db);
	is(sql("SELECT count(*) FROM pg_class WHERE relname ~ '^(log_2_|seq_2)'", $db), '0',
		"$db: drop_topic drops restored segments");
	sql("DROP EXTENSION pg_courier", $db);
	is(sql("SELECT count(*) FROM pg_class WHERE relname ~ '^(log_|seq_)[0-9]'", $db), '0',
		"$db: DROP EXTENSION drops restored run-time relations");
}

unlike(slurp_file($node->logfile), qr/\bXX000\b/, 'no XX000 in the server log');
$node->stop;
done_testing();
