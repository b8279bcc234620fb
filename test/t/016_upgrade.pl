# ALTER EXTENSION pg_courier UPDATE from the released 0.1.0.  A database
# created with 0.1.0's frozen script (sql/pg_courier--0.1.0.sql, in schema
# courier as 0.1.0 was) and filled -- topics, a filtered group, in-flight
# leases (a claim of more than 128 messages, as 0.1.0 made them), retries,
# dead letters, users' grants -- is refused by the 0.2.0 library with a hint,
# updated, and then keeps its data and serves the 0.2.0 API.  An empty
# database updated the same way is compared with a fresh 0.2.0 install,
# object by object (pg_dump --schema-only --binary-upgrade also dumps the
# extension's members, their privileges and pg_init_privs): the upgrade
# script can never drift from the install script.
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use CourierTest;
use Test::More;

my $node = courier_node('upgrade', conf => qq{
courier.worker = off
log_line_prefix = '%m [%p] %e '
}, extension => 0);

# ---- the empty upgrade is exactly a fresh install ----
sql("CREATE DATABASE fresh");
sql("CREATE DATABASE empty");
sql("CREATE EXTENSION pg_courier CASCADE", 'fresh');
sql("CREATE EXTENSION pg_courier VERSION '0.1.0' CASCADE", 'empty');
is(sql("SELECT extversion, extnamespace::regnamespace FROM pg_extension WHERE extname = 'pg_courier'", 'empty'),
	'0.1.0|courier', '0.1.0 installs from its frozen script, in schema courier');
sql("ALTER EXTENSION pg_courier UPDATE", 'empty');

sub schema_dump
{
	my ($db) = @_;
	my $out = $node->basedir . "/schema_$db.sql";
	command_ok([ 'pg_dump', '--schema-only', '--binary-upgrade', '-d', $node->connstr($db), '-f', $out ],
		"pg_dump --schema-only --binary-upgrade of $db");
	my @lines = grep {
		!/binary_upgrade_set_next_|^-- Dumped|^\\(un)?restrict |^SET |^SELECT pg_catalog\.set_config/
	} split /\n/, slurp_file($out);
	# OIDs differ between databases, names do not
	s/^WHERE oid = '\d+';$/WHERE oid = OID;/ for @lines;
	s/(binary_upgrade_create_empty_extension\('pg_courier', 'pg_catalog', false, '0\.2\.0', )'\{[0-9,]*\}'/$1OIDS/
	  for @lines;
	return join("\n", @lines) . "\n";
}
my $fresh = schema_dump('fresh');
my $updated = schema_dump('empty');
like($fresh, qr/ALTER EXTENSION pg_courier ADD FUNCTION courier\.seek/, 'the dump lists the members');
is($updated, $fresh, 'an updated 0.1.0 database has exactly the objects of a fresh 0.2.0 install');
if ($updated ne $fresh)
{
	open(my $fh, '>', $node->basedir . '/fresh.sql');
	print $fh $fresh;
	close $fh;
	open($fh, '>', $node->basedir . '/updated.sql');
	print $fh $updated;
	close $fh;
	diag(`diff -u ${\$node->basedir}/fresh.sql ${\$node->basedir}/updated.sql | head -60`);
}

# ---- a 0.1.0 database with data ----
# The 0.2.0 library refuses to send or receive on a 0.1.0 catalog, so the
# state 0.1.0's C code would have left is written the way 0.1.0 wrote it:
# log rows, a claim of 188 pending ids (0.1.0 did not cap claims at 128),
# retries in the lease table, a finished claim with lease_until NULL, dead
# letters with their copy of the message.
sql("CREATE EXTENSION pg_courier VERSION '0.1.0' CASCADE");
sql("CREATE ROLE app");
sql("GRANT EXECUTE ON FUNCTION courier.ack(text, text, bigint), courier.receive(text, text, integer, interval, interval) "
	  . "TO app");
sql("SELECT courier.create_topic('orders')");
sql("SELECT courier.create_group('orders', 'audit', filter => 'kind = ''big''')");
sql("SELECT courier.create_group('orders', 'fragile', max_attempts => 1)");
# (0.1.0 had no cap on max_retention; 0.2.0 refuses a new one beyond 10 years)
sql("SELECT courier.create_topic('other', max_retention => '20 years')");
is(sql("SELECT string_agg(t.name || '/' || g.name || '=' || g.group_id, ',' ORDER BY g.group_id) "
	  . "FROM courier.group_meta g JOIN courier.topic_meta t USING (topic_id)"),
	'orders/default=1,orders/audit=2,orders/fragile=3,other/default=4', 'groups as 0.1.0 made them');
# an ordered group (5) whose key kx has two heads, as 0.1.0 could leave it
# (a late message with a smaller id became a second head): 5 in flight, 4 waiting
sql("SELECT courier.create_group('orders', 'seq', ordered => true)");
sql(q{
INSERT INTO courier.log_1_1 (id, sent_at, keys, headers, body)
	SELECT g, now() - interval '1 minute' + g * interval '1 ms', ARRAY['k' || g],
		   jsonb_build_object('kind', CASE WHEN g % 2 = 0 THEN 'big' ELSE 'small' END),
		   jsonb_build_object('n', g)
	FROM generate_series(1, 300) g;
SELECT setval('courier.seq_1', 300);
INSERT INTO courier.log_2_1 (id, sent_at, body) VALUES (1, now(), '{"x": 1}');
SELECT setval('courier.seq_2', 1);
-- default: 1..200 delivered in one walk, 1..10 acked, 11 and 12 nacked
INSERT INTO courier.claim VALUES (1, 1, 200, now() + interval '1 hour', now(),
	ARRAY(SELECT g::bigint FROM generate_series(13, 200) g));
INSERT INTO courier.lease (group_id, msg_id, state, visible_at, attempt, first_delivered_at,
						   last_delivered_at, last_error)
	VALUES (1, 11, 'w', now(), 1, now(), now(), NULL),
		   (1, 12, 'w', now() + interval '1 hour', 1, now(), now(), 'later');
-- fragile: 1..3 delivered once, dead
INSERT INTO courier.claim VALUES (3, 1, 3, NULL, now(), '{}');
INSERT INTO courier.dead_letter (group_id, msg_id, attempts, first_delivered_at, last_delivered_at,
								 died_at, last_error, keys, headers, body, sent_at)
	SELECT 3, id, 1, now(), now(), now(), 'lease expired', keys, headers, body, sent_at
	FROM courier.log_1_1 WHERE id <= 3;
INSERT INTO courier.claim VALUES (5, 1, 300, NULL, now(), '{}');
INSERT INTO courier.lease (group_id, msg_id, state, visible_at, attempt, first_delivered_at,
						   last_delivered_at, okey)
	VALUES (5, 4, 'w', now(), 0, NULL, NULL, 'kx'),
		   (5, 5, 'l', now() + interval '1 hour', 1, now(), now(), 'kx');
});
is(sql("SELECT count(*) FROM courier.dead_letters"), '3', '0.1.0 has 3 dead letters');
my $claims_before = sql("SELECT count(*) FROM courier.claim");

# the 0.2.0 library refuses the 0.1.0 catalog with a hint
my ($ret, $out, $err) = $node->psql('postgres', "SELECT courier.send('orders', '{}')");
like($err, qr/pg_courier's library is version 0\.2\.0, but this database has version 0\.1\.0/,
	'the library refuses a database still on 0.1.0');
like($err, qr/HINT:\s+Run ALTER EXTENSION pg_courier UPDATE/, 'with a hint');

sql("ALTER EXTENSION pg_courier UPDATE");
is(sql("SELECT extversion, extnamespace::regnamespace FROM pg_extension WHERE extname = 'pg_courier'"),
	'0.2.0|pg_catalog', 'updated to 0.2.0, in pg_catalog');
is(sql("SELECT count(*) FROM pg_depend d JOIN pg_extension e ON d.refobjid = e.oid "
	  . "WHERE e.extname = 'pg_courier' AND d.classid = 'pg_namespace'::regclass "
	  . "AND d.objid = 'courier'::regnamespace AND d.deptype = 'e'"), '1', 'schema courier is a member now');
is(sql("SELECT count(*) FROM courier.claim"), $claims_before, 'claims kept');
is(sql("SELECT string_agg(name || ':' || owner::text, ',' ORDER BY name) FROM courier.topics"),
	'orders:' . sql("SELECT current_user") . ',other:' . sql("SELECT current_user"),
	'topics of 0.1.0 belong to the extension owner');

# a topic of 0.1.0 with a longer max_retention than 0.2.0 accepts keeps it,
# and its retention can still be changed
is(sql("SELECT courier.alter_topic('other', retention => '4 days')"), '0',
	'alter_topic of a topic whose max_retention 0.2.0 would refuse');
is(sql("SELECT retention || ' ' || max_retention FROM courier.topics WHERE topic = 'other'"),
	'4 days 20 years', 'its max_retention stays');
my ($rc_mr, $out_mr, $err_mr) = $node->psql('postgres', "SELECT courier.alter_topic('other', max_retention => '20 years')");
like($err_mr, qr/max_retention must not exceed 10 years/, 'but a new one beyond 10 years is refused');

# data and API after the update
is(sql("SELECT count(*) FROM courier.find('orders', key => 'k150') WHERE state = 'in_flight'"), '1',
	'a message of the large claim is still in flight');
is(sql("SELECT courier.ack('orders', 'default', ARRAY(SELECT g::bigint FROM generate_series(13, 200) g))"),
	'188', 'every message of the 0.1.0 claim can be acked');
is(sql("SELECT string_agg(id::text, ',') FROM courier.receive('orders', 'default', 1)"), '11',
	'the due retry comes back first');
is(sql("SELECT attempt || ':' || (receipt IS NOT NULL) FROM courier.receive('orders', 'default', 1) "),
	'1:true', 'then the log goes on where it stopped, with receipts');
is(sql("SELECT state || ':' || last_error FROM courier.find('orders', id => 12) WHERE grp = 'default'"),
	'retrying:later', 'the delayed retry keeps its state');
is(sql("SELECT count(*) FROM courier.receive('orders', 'audit', 1000)"), '150',
	'the filtered group receives its messages');
is(sql("SELECT courier.redrive('orders', 'fragile')"), '3', 'dead letters of 0.1.0 can be redriven');
is(sql("SELECT string_agg(id::text, ',' ORDER BY id) FROM courier.receive('orders', 'fragile', 3)"), '1,2,3',
	'and are delivered again');
is(sql("SELECT string_agg(msg_id || ':' || state::text, ',' ORDER BY msg_id) FROM courier.lease WHERE group_id = 5"),
	'4:q,5:l', 'a key of 0.1.0 with two heads keeps the one in flight and queues the other');
is(sql("SELECT count(*) FROM courier.receive('orders', 'seq', 10)"), '0',
	'nothing of that key while its head is in flight');
is(sql("SELECT courier.ack('orders', 'seq', 5::bigint)"), 't', 'the head in flight is acked');
is(sql("SELECT string_agg(id::text, ',') FROM courier.receive('orders', 'seq', 10)"), '4',
	'then the queued message is handed out');
is(sql("SELECT courier.send('orders', '{}')"), '301', 'ids go on');
is(sql("SELECT courier.seek('orders', 'audit', '-infinity')"), '300', 'seek works on the updated database');
is(sql("SELECT backlog FROM courier.groups WHERE topic = 'orders' AND grp = 'audit'"), '150', 'and the views');

# users' grants moved to the new signatures, and stay users' grants
is(sql("SELECT has_function_privilege('app', 'courier.ack(text, text, bigint, text)', 'EXECUTE')"), 't',
	'a grant on the old ack(text, text, bigint) moved to ack(text, text, bigint, text)');
is(sql("SELECT count(*) FROM pg_proc WHERE proname = 'ack' AND pronamespace = 'courier'::regnamespace"), '2',
	'the old signatures are gone');
my $dump = $node->basedir . '/data.sql';
command_ok([ 'pg_dump', '-d', $node->connstr('postgres'), '-f', $dump ], 'pg_dump of the updated database');
my $text = slurp_file($dump);
like($text, qr/GRANT ALL ON FUNCTION courier\.ack\(topic text, grp text, id bigint, receipt text\) TO app;/,
	'the moved grant is dumped as a user grant');
like($text, qr/GRANT ALL ON FUNCTION courier\.receive\(.*\) TO app;/, 'so is the kept one');
unlike($text, qr/GRANT .* TO courier_consumer/, 'the extension\'s own grants are not dumped');

# the updated extension drops like a fresh one (schema included) and comes back
sql("DROP EXTENSION pg_courier");
is(sql("SELECT count(*) FROM pg_namespace WHERE nspname = 'courier'"), '0',
	'DROP EXTENSION of an updated database drops schema courier');
is(sql("SELECT count(*) FROM pg_roles WHERE rolname LIKE 'courier\\_%'"), '3', 'and leaves the roles');
sql("CREATE EXTENSION pg_courier");
is(sql("SELECT extversion FROM pg_extension WHERE extname = 'pg_courier'"), '0.2.0', 'CREATE EXTENSION again');

unlike(slurp_file($node->logfile), qr/\bXX000\b/, 'no XX000 in the server log');
$node->stop;
done_testing();
