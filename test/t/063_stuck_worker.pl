# The worker pool with a worker stuck in its round (review 60): three
# databases share two slots, and the worker of one of them waits for a lock
# a session holds.  The launcher asks workers to leave so that every
# database gets its turn; it used to count a worker it had asked as leaving
# for as long as it stayed, so once it had asked the stuck one, no other
# worker was asked and a database waited for as long as the lock was held.
# Now a worker that has not left after a grace period no longer counts as
# leaving, and the two other databases keep taking turns in the other slot.
#
# Every wait is a poll with the harness's generous timeout: the test asserts
# what happens, never how fast.
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use CourierTest qw(courier_node courier_databases);
use Test::More;

my $node = courier_node('stuck', conf => qq{
courier.worker_naptime = 100
courier.max_workers = 2
courier.databases = 'd1, d2, d3'
max_worker_processes = 16
log_line_prefix = '%m [%p] %e %b '
}, extension => 0);

sub sql { my ($db, $q) = @_; return $node->safe_psql($db, $q); }
sub now { return sql('postgres', 'SELECT clock_timestamp()'); }

courier_databases($node, qw(d1 d2 d3));

# d1's next round waits for this lock for as long as the session holds it
my $holder = $node->background_psql('d1', on_error_stop => 0);
$holder->query_until(qr/locked/, "BEGIN;\nLOCK courier.topic_meta IN ACCESS EXCLUSIVE MODE;\n\\echo locked\n");
ok($node->poll_query_until('postgres',
	"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_courier worker' "
	. "AND datname = 'd1' AND wait_event_type = 'Lock'", '1'),
	"d1's worker waits for the lock in its round");

# the other two databases keep taking turns in the other slot
for my $turn (1 .. 3)
{
	my $t = now();
	for my $db (qw(d2 d3))
	{
		ok($node->poll_query_until($db,
			"SELECT last_started > '$t' AND last_finished >= last_started FROM courier._maintenance_status()", 't'),
			"turn $turn: $db had a round while d1's worker is stuck");
	}
}

$holder->query_until(qr/released/, "ROLLBACK;\n\\echo released\n");
$holder->quit;
my $t = now();
ok($node->poll_query_until('d1',
	"SELECT last_started > '$t' AND last_finished >= last_started FROM courier._maintenance_status()", 't'),
	'once the lock is released, d1 is maintained again');
unlike(slurp_file($node->logfile), qr/ XX\d\d\d /, 'no internal error in the server log');
$node->stop;
done_testing();
