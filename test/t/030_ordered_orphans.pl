# Ordered groups: a key must never be left without a head.
#
# 1. A promotion deferred to a transaction still running (a receiver that
# queued the key's next message and has not committed) is taken out of
# shared memory by the next receive, which promotes in its own transaction;
# if that transaction rolls back, the promotion is gone and the key has no
# head until the server restarts (found by the chaos suite's steady
# scenario: 198 messages of group 'ordered' never delivered, no crash).
#
# 2. After a crash: keys whose head was acked while the next
# message of the key belonged to a transaction still prepared.  The
# promotion that would make the next queued message the head waits in
# shared memory for that transaction; a crash loses it ("promotions pending
# at a crash are gone"), and the group's rebuilt position asks for the scan
# of keys left without a head.  That scan must give every key its head back
# -- and must not crash the server.
#
# Found by the chaos suite's crash scenario and the Patroni run (issue 8):
# 318 messages of group 'ordered' never delivered, and the pg_courier worker
# killed by SIGSEGV right after a promotion, in CourierRunPromotions ->
# CourierPromoteNext -> CourierKeyFirstRow with a garbage key pointer
# (src/lease.c: the list of keys is built with lappend() between
# SPI_connect() and SPI_finish(), so its cells live in the SPI procedure
# context that SPI_finish() frees; only the strings are copied out).
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use CourierTest;
use Test::More;
use Time::HiRes qw(sleep);

my $nkeys = 2000;
my $node = courier_node('orphans', conf => qq{
courier.worker = off
max_prepared_transactions = 4
log_line_prefix = '%m [%p] %e '
});


# 1. a deferred promotion run by a receive that rolls back
sql("SELECT courier.create_topic('r')");
sql("SELECT courier.create_group('r', 'o', ordered => true)");
sql("SELECT courier.send('r', '{\"m\": 1}', keys => ARRAY['k'])");
is(sql("SELECT string_agg(id::text, ',') FROM courier.receive('r', 'o', 10, '1 minute')"), '1', 'message 1 is the head');
sql("SELECT courier.send('r', '{\"m\": 2}', keys => ARRAY['k'])");
my $s2 = $node->background_psql('postgres');
$s2->query_safe("BEGIN");
is($s2->query_safe("SELECT count(*) FROM courier.receive('r', 'o', 10, '1 minute')"), '0',
	'a receiver in an open transaction queues message 2 behind the head');
is(sql("SELECT courier.ack('r', 'o', 1::bigint)"), 't', 'message 1 acked while that transaction is open');
$s2->query_safe("COMMIT");
$s2->quit;
sql("BEGIN; SELECT count(*) FROM courier.receive('r', 'o', 10, '1 minute'); ROLLBACK");
my $second = '';
for (1 .. 3)
{
	$second .= sql("SELECT string_agg(id::text, ',') FROM courier.receive('r', 'o', 10, '1 minute')");
	sql("SELECT courier.run_maintenance()");
}
is($second, '2', 'after a receive that rolled back, message 2 becomes the head and is delivered');

# 2. keys left without a head by a crash
sql("SELECT courier.create_topic('t')");
sql("SELECT courier.create_group('t', 'o', ordered => true)");
# a head for each key; then one message of each key in a transaction left
# prepared; then one more message of each key, committed
sql("SELECT count(courier.send('t', '{\"m\": 1}', keys => ARRAY['key-' || k])) FROM generate_series(1, $nkeys) k");
sql("BEGIN; SELECT count(courier.send('t', '{\"m\": 2}', keys => ARRAY['key-' || k])) FROM generate_series(1, $nkeys) k;"
	. " PREPARE TRANSACTION 'a'");
sql("SELECT count(courier.send('t', '{\"m\": 3}', keys => ARRAY['key-' || k])) FROM generate_series(1, $nkeys) k");
is(sql("SELECT count(courier.ack('t', 'o', id)) FROM courier.receive('t', 'o', 10000, '1 minute')"),
	$nkeys, 'every head received and acked: the next message of each key is in the prepared transaction');

$node->stop('immediate');
$node->start;
sql("ROLLBACK PREPARED 'a'");
is(sql("SELECT backlog FROM courier.groups WHERE topic = 't' AND grp = 'o'"), $nkeys,
	'after the crash: one message per key left, all of them queued');

# receive (and maintenance) run the scan for keys without a head: every
# third message must come out, once, and the server must survive it
my $got = 0;
for my $round (1 .. 5)
{
	my ($rc, $out, $err) = $node->psql('postgres',
		"SELECT count(courier.ack('t', 'o', id)) FROM courier.receive('t', 'o', 10000, '1 minute')");
	if ($rc != 0)
	{
		diag("receive failed: $err");
		last;
	}
	$got += $out;
	last if $got >= $nkeys;
	$node->psql('postgres', "SELECT courier.run_maintenance()");
}
is($got, $nkeys, 'every key got its head back: all queued messages delivered');
my $log = slurp_file($node->logfile);
unlike($log, qr/terminated by signal/, 'no server process crashed');
# TAP clusters run with restart_after_crash = off: a crashed one is down
if ($log =~ /shutting down because restart_after_crash is off/)
{
	my $pidfile = $node->data_dir . '/postmaster.pid';
	for (1 .. 100) { last unless -e $pidfile; sleep 0.1; }
	$node->_update_pid(0);
	fail('nothing left in the group (not checked: the server crashed)');
}
else
{
	is($node->safe_psql('postgres', "SELECT backlog + in_flight FROM courier.groups WHERE topic = 't' AND grp = 'o'"), '0',
		'nothing left in the group');
}
done_testing();
