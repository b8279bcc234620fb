# Idle databases cost little when databases outnumber the pool's slots
# (DESIGN.md: "more databases than worker slots ... nothing may grow with
# them except linearly in the work actually done").  Every round in such a
# database is a new worker process; twelve idle databases with two slots
# took half a core at the default naptime, for no work at all.  Now a
# database whose last rounds had nothing to do is due again after 2, 4 and
# then 8 naptimes instead of one, and one with work is due after one.
#
# Assertions: with three idle databases and one slot, the workers started
# for one database are at least 4 naptimes apart once it has been idle a
# while (their backend_start, recorded by the server: a slow machine only
# makes them further apart; without the back-off they came one to three
# launches apart, well under a second), the idle databases are still
# visited, and a database with work gets it done while the others idle.
# Last, a lowered naptime applies to a worker already asleep.
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use CourierTest qw(courier_node courier_databases);
use Test::More;
use Time::HiRes qw(sleep time);

my $NAPTIME_MS = 250;
my $node = courier_node('idle', conf => qq{
courier.worker_naptime = $NAPTIME_MS
courier.max_workers = 1
courier.databases = 'i1, i2, i3'
log_line_prefix = '%m [%p] %e %b '
}, extension => 0);

sub sql { my ($db, $q) = @_; return $node->safe_psql($db, $q); }

courier_databases($node, qw(i1 i2 i3));
# a few idle rounds everywhere (each visit is at least one round)
sleep(3);

# the start times of the workers that serve i2, as the server recorded them
my %start;
my $t0 = time();
while (keys(%start) < 4 && time() - $t0 < 120)
{
	for my $row (split /\n/, sql('postgres',
		"SELECT pid || ' ' || extract(epoch FROM backend_start) FROM pg_stat_activity "
		. "WHERE backend_type = 'pg_courier worker' AND datname = 'i2'"))
	{
		my ($pid, $at) = split / /, $row;
		$start{$pid} //= $at;
	}
	sleep(0.05);
}
my @at = sort { $a <=> $b } values %start;
cmp_ok(scalar(@at), '>=', 4, 'an idle database is still visited (' . scalar(@at) . ' workers seen)');
my @gaps = map { $at[$_] - $at[ $_ - 1 ] } 1 .. $#at;
my ($min) = sort { $a <=> $b } @gaps;
note('seconds between the workers of i2: ' . join(', ', map { sprintf('%.2f', $_) } @gaps));
cmp_ok($min // 0, '>=', 4 * $NAPTIME_MS / 1000,
	sprintf('its workers start at least 4 naptimes apart (the closest %.2f s)', $min // 0));

# work in i3 (a lease that runs out on its last attempt) is done while the
# others idle: its message moves to the dead letters
sql('i3', "SELECT courier.create_group('t', 'g', max_attempts => 1)");
sql('i3', "SELECT courier.send('t', '{}')");
is(sql('i3', "SELECT count(*) FROM courier.receive('t', 'g', 1, '0.1 seconds')"), '1', 'i3: a message leased');
ok($node->poll_query_until('i3', "SELECT count(*) FROM courier.dead_letters WHERE grp = 'g'", '1'),
	'i3: its lease ran out and a round moved it to the dead letters');

# A lowered courier.worker_naptime applies to a worker's sleep in progress
# (review 62): i1 alone, with its own worker, at a 10-minute naptime; after
# a reload to 250 ms it has a round within the harness's timeout (180 s),
# not ten minutes after its last one.
$node->append_conf('postgresql.conf', "courier.databases = 'i1'\ncourier.worker_naptime = 600000\n");
$node->reload;
ok($node->poll_query_until('postgres',
	"SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'pg_courier worker' AND datname <> 'i1'", 't'),
	'only i1 keeps a worker');
sleep(2);	# any round in progress is over: the worker sleeps for ten minutes
my $t = sql('postgres', 'SELECT clock_timestamp()');
$node->append_conf('postgresql.conf', "courier.worker_naptime = $NAPTIME_MS\n");
$node->reload;
ok($node->poll_query_until('i1', "SELECT last_started > '$t' FROM courier._maintenance_status()", 't'),
	'after a reload to a shorter naptime the next round comes at once, not after the old one');

$node->stop;
done_testing();
