# Issue 7 section 1: a waiting receive that spans a segment rotation.
# 0.1.0 looked the topic up once and reused its segment list across its
# sleeps; a message sent to the new segment was claimed as "passed over":
# the waiter returned nothing, a fresh receive returned nothing, and find
# called the message acked.  Here the waiter must get the message, and a
# fresh receive and find must agree about every message.
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use CourierTest;
use Test::More;
use Time::HiRes qw(sleep);

my $node = courier_node('rotation', conf => qq{
courier.worker = off
log_line_prefix = '%m [%p] %e '
});
# a segment is sealed after a quarter of the retention (at least 1 second)
sql("SELECT courier.create_topic('rot', retention => '4 seconds')");
sql("SELECT courier.send('rot', '{\"n\": 1}', keys => ARRAY['k'])");
is(sql("SELECT courier.ack('rot', 'default', array_agg(id)) FROM courier.receive('rot', 'default', 10)"),
	'1', 'message 1 sent, received and acked');

my $waiting = "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%courier.receive(''rot''%' "
  . "AND state = 'active' AND wait_event_type = 'Extension'";
my $newest = "SELECT max(seg_no) FROM courier.segment s JOIN courier.topic_meta t USING (topic_id) WHERE t.name = 'rot'";

my $n = 1;
for my $round (1, 2)
{
	# the waiter reports what it got and how long its statement took
	my $waiter = $node->background_psql('postgres', on_error_stop => 0);
	$waiter->query_safe("SELECT count(*) FROM courier.peek('rot')");	# a warm cache
	$waiter->query_until(qr/started/,
		"\\echo started\n"
		  . "SELECT 'got ' || coalesce(string_agg(body->>'n', ',' ORDER BY id), 'nothing') || ' after ' || "
		  . "round(extract(epoch FROM clock_timestamp() - statement_timestamp())::numeric, 1) "
		  . "FROM courier.receive('rot', 'default', 10, '1 hour', wait => '10 seconds');\n"
		  . "\\echo done\n");
	ok($node->poll_query_until('postgres', $waiting, '1'), "round $round: the receive is waiting");

	# rotate from another session while it sleeps (the second time, after
	# the retention has passed, maintenance also drops the oldest segment)
	my $before = sql($newest);
	sleep($round == 1 ? 1.2 : 4.2);
	note sql("SELECT courier.run_maintenance()");
	is(sql($newest), $before + 1, "round $round: a new segment while the receive waits");
	is(sql($waiting), '1', "round $round: still waiting after the rotation");

	# a message to the new segment wakes it up with that message
	$n++;
	sql("SELECT courier.send('rot', '{\"n\": $n}', keys => ARRAY['k'])");
	my $out = $waiter->query_until(qr/done/, "");
	like($out, qr/got $n after/, "round $round: the waiter got message $n from the new segment");
	my ($secs) = $out =~ /after ([0-9.]+)/;
	ok(defined $secs && $secs < 9, "round $round: well before its 10 s wait ended (" . ($secs // '?') . " s)");
	$waiter->quit;

	# find agrees: in flight, not acked
	is(sql("SELECT string_agg(state, ',') FROM courier.find('rot', id => $n)"), 'in_flight',
		"round $round: find says message $n is in flight");

	# a fresh receive in a new session gets a message sent after the rotation
	$n++;
	sql("SELECT courier.send('rot', '{\"n\": $n}', keys => ARRAY['k'])");
	is(sql("SELECT string_agg(body->>'n', ',') FROM courier.receive('rot', 'default', 10)"), "$n",
		"round $round: a fresh receive gets message $n");
	is(sql("SELECT string_agg(state, ',') FROM courier.find('rot', id => $n)"), 'in_flight',
		"round $round: find says message $n is in flight");
}

# nothing was lost: every message is in flight, as it was handed out
# (message 1, acked, went with the oldest segment)
is(sql("SELECT string_agg(body->>'n' || ':' || state, ',' ORDER BY id) FROM courier.find('rot', key => 'k')"),
	join(',', map { "$_:in_flight" } 2 .. $n), 'find: every message after the first is in flight');
is(sql("SELECT backlog FROM courier.groups WHERE topic = 'rot'"), '0', 'no backlog');

unlike(slurp_file($node->logfile), qr/\bXX000\b/, 'no XX000 in the server log');
$node->stop;
done_testing();
