# The background worker: starts by itself in databases that have the
# extension, does the maintenance jobs without anyone calling them, comes
# back after being killed, reloads its configuration, does nothing on a
# standby and starts after promotion.  Delayed messages survive a crash.
# Under a sustained send/receive/ack load the log stays bounded.
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use CourierTest;
use Test::More;
use IPC::Run;

my $node = courier_node('worker', init => { allows_streaming => 1 }, conf => qq{
courier.worker_naptime = 100
max_worker_processes = 16
restart_after_crash = on
}, extension => 0);
my $workers = "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_courier worker' AND datname = 'postgres'";

is($node->safe_psql('postgres', "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_courier launcher'"),
	'1', 'the launcher runs');
sql("CREATE EXTENSION pg_courier CASCADE");
sql("SELECT courier.create_topic('jobs')");
ok($node->poll_query_until('postgres', $workers, '1'), 'a worker starts for the database with the extension');

# maintenance without anyone calling run_maintenance: a lease that runs
# out on its last attempt becomes a dead letter
sql("SELECT courier.create_group('jobs', 'once', max_attempts => 1)");
sql("SELECT courier.send('jobs', '{\"j\": 1}')");
is(sql("SELECT count(*) FROM courier.receive('jobs', 'once', 1, '0')"), '1', 'received with a lease that ends at once');
ok($node->poll_query_until('postgres', "SELECT count(*) FROM courier.dead_letters WHERE grp = 'once'", '1'),
	'the worker dead-letters it');

# killed (SIGTERM): the launcher starts it again, and it works again
my $pid = sql("SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_courier worker' AND datname = 'postgres'");
sql("SELECT pg_terminate_backend($pid)");
ok($node->poll_query_until('postgres',
	"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_courier worker' AND datname = 'postgres' AND pid <> $pid", '1'),
	'a new worker replaces a terminated one');
sql("SELECT courier.send('jobs', '{\"j\": 2}')");
sql("SELECT count(*) FROM courier.receive('jobs', 'once', 1, '0')");
ok($node->poll_query_until('postgres', "SELECT count(*) FROM courier.dead_letters WHERE grp = 'once'", '2'),
	'and it does the work');

# killed with SIGKILL: the postmaster restarts everything, the worker comes back
$pid = sql("SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_courier worker' AND datname = 'postgres'");
kill 'KILL', $pid;
ok($node->poll_query_until('postgres', $workers, '1'), 'the worker is back after a SIGKILL and crash restart');
sql("SELECT courier.send('jobs', '{\"j\": 3}')");
sql("SELECT count(*) FROM courier.receive('jobs', 'once', 1, '0')");
ok($node->poll_query_until('postgres', "SELECT count(*) FROM courier.dead_letters WHERE grp = 'once'", '3'),
	'and it does the work');

# SIGHUP: a new naptime is picked up without a restart
$pid = sql("SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_courier worker' AND datname = 'postgres'");
$node->append_conf('postgresql.conf', "courier.worker_naptime = 150");
$node->reload;
sleep(1);
is(sql("SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_courier worker' AND datname = 'postgres'"),
	$pid, 'the worker survives a reload');

# a database without the extension gets no worker
sql("CREATE DATABASE plain");
sleep(1);
ok($node->poll_query_until('plain',
	"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_courier worker' AND datname = 'plain'", '0'),
	'no worker stays in a database without the extension');

# delayed messages survive an immediate shutdown
sql("SELECT courier.create_topic('delayed')");
sql("SELECT courier.send('delayed', '{\"later\": true}', delay => '2 seconds')");
$node->stop('immediate');
$node->start;
is(sql("SELECT body->>'later' FROM courier.receive('delayed', 'default', 10, wait => '1 minute')"),
	'true', 'a delayed message survives a crash and is delivered when due');

# standby: the worker does nothing there, and starts after promotion
$node->backup('b');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($node, 'b', has_streaming => 1);
$standby->start;
sql("SELECT courier.send('jobs', '{\"j\": 4}')");
sql("SELECT count(*) FROM courier.receive('jobs', 'once', 1, '0')");
$node->wait_for_catchup($standby);
is($standby->safe_psql('postgres', "SELECT count(*) FROM pg_stat_activity WHERE backend_type LIKE 'pg_courier%'"),
	'0', 'no launcher and no worker on a standby');
$node->stop('immediate');
$standby->promote;
ok($standby->poll_query_until('postgres',
	"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_courier worker' AND datname = 'postgres'", '1'),
	'a worker starts after promotion');
ok($standby->poll_query_until('postgres', "SELECT count(*) FROM courier.dead_letters WHERE grp = 'once'", '4'),
	'and does the work left over from the old primary');
$standby->stop;

# bounded size: sustained send + receive + ack with a short retention
$node->start;
sql("SELECT courier.create_topic('steady', retention => '1 second')");
my $dir = PostgreSQL::Test::Utils::tempdir;
open(my $fh, '>', "$dir/send.sql") or die;
print $fh "SELECT count(*) FROM courier.send_batch('steady', (SELECT array_agg(jsonb_build_object('n', g)) FROM generate_series(1, 20) g));\n";
close $fh;
open($fh, '>', "$dir/consume.sql") or die;
print $fh "SELECT coalesce(array_agg(id), '{}') AS ids FROM courier.receive('steady', 'default', 50) \\gset\n";
print $fh "SELECT courier.ack('steady', 'default', :ids::bigint[]);\n";
close $fh;
my $connstr = $node->connstr('postgres');
my $p1 = IPC::Run::start(['pgbench', '-n', '-M', 'prepared', '-c', '2', '-T', '12', '-f', "$dir/send.sql", $connstr], '>', "$dir/send.out", '2>&1');
my $p2 = IPC::Run::start(['pgbench', '-n', '-M', 'prepared', '-c', '2', '-T', '12', '-f', "$dir/consume.sql", $connstr], '>', "$dir/consume.out", '2>&1');
my $max_segments = 0;
for (1 .. 10)
{
	sleep(1);
	my $s = sql("SELECT segments FROM courier.topics WHERE topic = 'steady'");
	$max_segments = $s if $s > $max_segments;
}
$p1->finish;
$p2->finish;
note slurp_file("$dir/send.out");
note slurp_file("$dir/consume.out");
my $reclaimed = sql("SELECT reclaimed FROM courier.topic_meta WHERE name = 'steady'");
cmp_ok($reclaimed, '>', 2, "segments were reclaimed while the load ran ($reclaimed)");
cmp_ok($max_segments, '<=', 8, "the log never held more than a few segments ($max_segments)");
sql("SELECT pg_stat_force_next_flush()");
is(sql("SELECT coalesce(sum(n_tup_upd + n_tup_del + n_dead_tup), 0) FROM pg_stat_user_tables "
	. "WHERE schemaname = 'courier' AND relname LIKE 'log\\_%'"), '0', 'log rows were never updated or deleted');

$node->stop;
done_testing();
