# DROP EXTENSION pg_courier CASCADE and CREATE EXTENSION again, in a running
# server with the worker on (issue 13 item 3): the drop removes everything
# the extension created, run-time segment tables, their indexes and the
# per-topic sequences included, and the fresh install works from scratch in
# new and in warm sessions -- sends, receives, waiting receives, rotation --
# without inheriting shared-memory state of the old one.  No XX000 anywhere.
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use CourierTest;
use Test::More;

my $node = courier_node('reinstall', conf => qq{
courier.worker_naptime = 100
log_line_prefix = '%m [%p] %e '
}, extension => 0);

# Everything of the install that could be left behind: relations, types,
# functions of the schema, dependencies on the extension or its schema,
# dependency rows of relations that no longer exist.
sub leftovers
{
	my ($ext, $nsp) = @_;
	return sql(qq{
		SELECT (SELECT count(*) FROM pg_namespace WHERE nspname = 'courier')
		     + (SELECT count(*) FROM pg_class WHERE relnamespace = $nsp)
		     + (SELECT count(*) FROM pg_class WHERE relname ~ '^(log_[0-9]+_[0-9]+|seq_[0-9]+)')
		     + (SELECT count(*) FROM pg_type WHERE typnamespace = $nsp)
		     + (SELECT count(*) FROM pg_proc WHERE pronamespace = $nsp)
		     + (SELECT count(*) FROM pg_depend WHERE refobjid IN ($ext, $nsp))
		     + (SELECT count(*) FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
		          AND NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = d.objid))});
}

# a warm session that lives through every reinstall
my $warm = $node->background_psql('postgres', on_error_stop => 0);

for my $round (1 .. 3)
{
	sql("CREATE EXTENSION pg_courier CASCADE");
	is(sql("SELECT count(*) FROM courier.segment"), '0', "round $round: a fresh install has no segments");

	# topics and groups start at id 1 again; messages in flight, a rotation
	sql("SELECT courier.create_topic('orders', retention => '4 seconds')");
	sql("SELECT courier.create_group('orders', 'audit')");
	is(sql("SELECT topic_id FROM courier.topic_meta WHERE name = 'orders'"), '1',
		"round $round: the first topic is topic 1 again");
	is(sql("SELECT string_agg(s::text, ',') FROM (SELECT courier.send('orders', jsonb_build_object('n', g)) s "
			  . "FROM generate_series(1, 5) g) x"), '1,2,3,4,5', "round $round: ids start at 1 again");
	is(sql("SELECT string_agg(id::text, ',' ORDER BY id) FROM courier.receive('orders', 'default', 5)"),
		'1,2,3,4,5', "round $round: a new session receives all five");
	# the worker rotates it (a quarter of the retention is 1 s)
	ok($node->poll_query_until('postgres', "SELECT count(*) >= 2 FROM courier.segment"),
		"round $round: the worker rotated the topic");
	sql("SELECT courier.send('orders', '{\"n\": 6}')");

	# the warm session: everything it cached belongs to the previous install
	my $out = $warm->query_safe(
		"SELECT string_agg(id::text, ',' ORDER BY id) FROM courier.receive('orders', 'audit', 10)");
	like($out, qr/^1,2,3,4,5,6$/m, "round $round: a warm session receives every message of the new install");
	$out = $warm->query_safe("SELECT courier.send('orders', '{\"n\": 7}')");
	like($out, qr/^7$/m, "round $round: and sends to it");
	is(sql("SELECT string_agg(id::text, ',' ORDER BY id) FROM courier.receive('orders', 'default', 10)"),
		'6,7', "round $round: which another session receives");

	# a waiting receive on the new install is woken by a commit
	my $waiter = $node->background_psql('postgres', on_error_stop => 0);
	$waiter->query_until(qr/started/,
		"\\echo started\nSELECT 'got ' || string_agg(id::text, ',') "
		  . "FROM courier.receive('orders', 'default', 10, wait => '30 seconds');\n\\echo done\n");
	ok($node->poll_query_until('postgres',
			"SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Extension' "
			  . "AND query LIKE '%receive(''orders''%'", '1'), "round $round: a receive is waiting");
	sql("SELECT courier.send('orders', '{\"n\": 8}')");
	like($waiter->query_until(qr/done/, ""), qr/got 8/, "round $round: the send wakes it");
	$waiter->quit;

	# leave a lease in flight and a message unreceived, then drop everything
	sql("SELECT courier.send('orders', '{\"n\": 9}')");
	sql("SELECT count(*) FROM courier.receive('orders', 'audit', 10, '1 hour')");
	sql("SELECT courier.create_topic('other')");
	sql("SELECT courier.send('other', '{}')");
	my $ext = sql("SELECT oid FROM pg_extension WHERE extname = 'pg_courier'");
	my $nsp = sql("SELECT 'courier'::regnamespace::oid");
	ok(sql("SELECT count(*) FROM pg_class WHERE relname ~ '^(log_[0-9]+_[0-9]+|seq_[0-9]+)'") >= 5,
		"round $round: segments and sequences exist before the drop");
	sql($round == 2 ? "DROP EXTENSION pg_courier" : "DROP EXTENSION pg_courier CASCADE");
	is(leftovers($ext, $nsp), '0', "round $round: DROP EXTENSION leaves nothing behind");
}

$warm->quit;
my $log = slurp_file($node->logfile);
unlike($log, qr/\bXX000\b/, 'no XX000 in the server log');
unlike($log, qr/\b(PANIC|TRAP)\b/, 'no PANIC or assertion failure');
$node->stop;
done_testing();
