# Issue 7 section 5: after a restart, shared memory knows nothing and the
# first receive of a group rebuilds its position from the tables.  0.1.0 read
# the group's low_water under the caller's snapshot: a REPEATABLE READ (or
# SERIALIZABLE) transaction whose snapshot predated a compaction saw the old
# low_water but no longer the deleted claims, handed out acked messages
# again, and left a claim below low_water that was never removed.
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use CourierTest;
use Test::More;

my $node = courier_node('restart_snapshot', conf => qq{
courier.worker = off
log_line_prefix = '%m [%p] %e '
});
sql("SELECT courier.create_topic('snap')");

my $next = 1;
for my $level ('REPEATABLE READ', 'SERIALIZABLE')
{
	# ten messages, received and acked: one claim, nothing pending
	my $first = $next;
	my $last = $next + 9;
	sql("SELECT courier.send('snap', jsonb_build_object('n', n)) FROM generate_series($first, $last) n");
	is(sql("SELECT courier.ack('snap', 'default', array_agg(id)) FROM courier.receive('snap', 'default', 100)"),
		'10', "$level: ten messages received and acked");
	$next = $last + 1;

	# a crash: shared memory is gone, positions are rebuilt on first use
	$node->stop('immediate');
	$node->start;

	# a transaction takes its snapshot before the compaction ...
	my $rr = $node->background_psql('postgres');
	$rr->query_safe("BEGIN ISOLATION LEVEL $level");
	my $claims = $rr->query_safe("SELECT count(*) FROM courier.claim");
	cmp_ok($claims, '>=', 1, "$level: the snapshot sees the claim(s)");

	# ... which another session runs now
	my $m = sql("SELECT courier.run_maintenance()");
	like($m, qr/"compacted": [1-9]/, "$level: maintenance compacted the finished claims");
	is(sql("SELECT count(*) FROM courier.claim"), '0', "$level: no claim left");
	is(sql("SELECT low_water FROM courier.group_meta"), $last, "$level: low_water is $last");

	# the old snapshot's receive must not hand the acked messages out again
	is($rr->query_safe("SELECT coalesce(string_agg(id::text, ','), 'nothing') FROM courier.receive('snap', 'default', 100)"),
		'nothing', "$level: the receive under the old snapshot hands out nothing");
	$rr->query_safe("COMMIT");
	$rr->quit;

	# nothing below low_water stays behind, and the group carries on
	sql("SELECT courier.run_maintenance()");
	is(sql("SELECT count(*) FROM courier.claim c JOIN courier.group_meta g USING (group_id) WHERE c.lo <= g.low_water"),
		'0', "$level: no claim below low_water");
	my $id = sql("SELECT courier.send('snap', '{\"new\": true}')");
	$next = $id + 1;
	is(sql("SELECT string_agg(id::text, ',') FROM courier.receive('snap', 'default', 100)"), $id,
		"$level: a fresh receive gets only the new message");
	sql("SELECT courier.ack('snap', 'default', $id)");
	is(sql("SELECT string_agg(DISTINCT state, ',') FROM generate_series($first, $last) n, LATERAL courier.find('snap', id => n) f"),
		'acked', "$level: find says every one of the ten is acked");
}

unlike(slurp_file($node->logfile), qr/\bXX000\b/, 'no XX000 in the server log');
$node->stop;
done_testing();
