# Delayed messages parked in deferred spans (shared memory only, src/walk.c
# "Delayed messages") are not lost with shared memory: after a crash, and on
# a promoted standby, every one of them is delivered once when due, to a
# receive that waits for them; and a receiver asleep before another walk
# deferred them wakes up at their time.
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use CourierTest;
use Test::More;
use Time::HiRes qw(time);
use IPC::Run;

my $node = courier_node('spans', init => { allows_streaming => 1 });

# park: 1000 messages due in a few seconds, one due now, one due tomorrow
sub park
{
	my ($topic, $secs) = @_;
	sql("SELECT courier.create_topic('$topic')");
	my $due = sql("SELECT extract(epoch FROM clock_timestamp() + interval '$secs seconds')");
	sql("SELECT count(*) FROM courier.send_batch('$topic', "
		  . "(SELECT array_agg(jsonb_build_object('n', g)) FROM generate_series(1, 1000) g), "
		  . "deliver_at => to_timestamp($due))");
	sql("SELECT courier.send('$topic', '{\"now\": true}')");
	sql("SELECT courier.send('$topic', '{\"tomorrow\": true}', delay => '1 day')");
	is(sql("SELECT string_agg(body::text, ',') FROM courier.receive('$topic', 'default', 100, '1 hour')"),
		'{"now": true}', "$topic: only the due message goes out before the others' time");
	like(sql("SELECT rechecks FROM courier._group_position((SELECT group_id FROM courier.group_meta g "
			  . "JOIN courier.topic_meta t USING (topic_id) WHERE t.name = '$topic'))"),
		qr/^\[1,1000\]@.* \[1002,1002\]@/, "$topic: they wait in deferred spans");
	is(sql("SELECT count(*) FROM courier.lease"), '0', "$topic: not in the lease table");
	return $due;
}

# a waiting receive collects all 1000 once they are due; returns what it got
sub collect
{
	my ($n, $topic, $due) = @_;
	my $out = $n->safe_psql('postgres',
		"SELECT count(*), count(DISTINCT id), max(attempt), "
		  . "bool_and(extract(epoch FROM clock_timestamp()) >= $due) "
		  . "FROM courier.receive('$topic', 'default', 1000, '1 hour', wait => '5 minutes')");
	return $out;
}

# 1. a crash (immediate stop) forgets the spans; the rebuilt position finds them
my $due = park('crash', 6);
$node->stop('immediate');
$node->start;
my $t0 = time;
is(collect($node, 'crash', $due), '1000|1000|1|t',
	'after a crash all 1000 arrive once, at attempt 1, not before their time');
cmp_ok(time - $t0, '<', 120, 'the waiting receive woke up when they came due (not at the end of its wait)');
is(sql("SELECT count(*) FROM courier.receive('crash', 'default', 1000, '1 hour')"), '0', 'nothing comes twice');
is(sql("SELECT delayed FROM courier.groups WHERE topic = 'crash'"), '1', 'the one due tomorrow is still delayed');

# 2. a standby promoted after the primary deferred them
$node->backup('b');
my $standby = PostgreSQL::Test::Cluster->new('spans_standby');
$standby->init_from_backup($node, 'b', has_streaming => 1);
$standby->start;
$due = park('failover', 6);
$node->wait_for_catchup($standby);
$node->stop('immediate');
$standby->promote;
is(collect($standby, 'failover', $due), '1000|1000|1|t',
	'on the promoted standby all 1000 arrive once, when due');
is($standby->safe_psql('postgres', "SELECT count(*) FROM courier.receive('failover', 'default', 1000, '1 hour')"),
	'0', 'nothing comes twice on the promoted standby');
$standby->stop;
$node->start;

# 3. a receiver asleep on the topic before the messages were sent
sql("SELECT courier.create_topic('sleeper')");
$due = sql("SELECT extract(epoch FROM clock_timestamp() + interval '4 seconds')");
my ($out, $err) = ('', '');
my $h = IPC::Run::start(['psql', '-XAt', '-d', $node->connstr('postgres'), '-c',
	"SELECT count(*), bool_and(extract(epoch FROM clock_timestamp()) >= $due) "
	  . "FROM courier.receive('sleeper', 'default', 500, '1 hour', wait => '5 minutes')"],
	'>', \$out, '2>', \$err);
ok($node->poll_query_until('postgres',
	"SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%receive(''sleeper''%' AND pid <> pg_backend_pid()", '1'),
	'the receiver is waiting');
sql("SELECT count(*) FROM courier.send_batch('sleeper', "
	  . "(SELECT array_agg(jsonb_build_object('n', g)) FROM generate_series(1, 500) g), deliver_at => to_timestamp($due))");
$t0 = time;
$h->finish;
is($out, "500|t\n", 'the sleeping receiver gets all 500 when due, not before') or diag($err);
cmp_ok(time - $t0, '<', 120, 'it woke up for them');

done_testing();
