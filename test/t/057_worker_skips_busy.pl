# Review 40, finding 3: the worker queued behind a seek.  A receive of
# group ws/default sits in a prepared transaction (an open one does the
# same); a seek of that group waits for it with an exclusive request on the
# group's lock; the worker's share request queued behind the seek, and
# maintenance of every topic of the database stopped for as long as the
# prepared transaction lived.  Now the worker takes topic and group locks
# only when they are free, and skips what is busy until a later round.
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use CourierTest;
use Test::More;

my $node = courier_node('workerbusy', conf => qq{
courier.worker_naptime = 100
max_prepared_transactions = 5
log_line_prefix = '%m [%p] %e '
}, extension => 0);
sql("CREATE EXTENSION pg_courier CASCADE");
sql("SELECT courier.create_topic('ws')");
sql("SELECT courier.create_topic('other')");
sql("SELECT courier.send('ws', '{}')");
ok($node->poll_query_until('postgres', "SELECT last_finished IS NOT NULL FROM courier._maintenance_status()"),
	'the worker finishes rounds');

is(sql("BEGIN;\nSELECT count(*) FROM courier.receive('ws', 'default', 1, '30 s');\nPREPARE TRANSACTION 'ws_held';"),
	'1', 'a receive of ws/default is prepared');
my $seek = $node->background_psql('postgres', on_error_stop => 0);
$seek->query_until(qr/started/, "\\echo started\nSELECT courier.seek('ws', 'default', 'infinity');\n\\echo seek-done\n");
ok( $node->poll_query_until('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT courier.seek%' AND wait_event_type = 'Lock'", '1'),
	'the seek waits for the prepared receive');
my $t0 = sql("SELECT clock_timestamp()");

# maintenance goes on meanwhile: rounds finish after the seek began waiting,
# and the other topic's expired leases become receivable again through them
sql("SELECT courier.create_group('other', 'once', max_attempts => 1)");
sql("SELECT courier.send('other', '{\"o\": 1}')");
is(sql("SELECT count(*) FROM courier.receive('other', 'once', 1, '1 s')"), '1', 'a message of other is leased for 1 s');
ok($node->poll_query_until('postgres', "SELECT last_finished > '$t0' FROM courier._maintenance_status()"),
	'the worker finishes a round while the seek waits');
ok($node->poll_query_until('postgres', "SELECT dead_letters = 1 FROM courier.groups WHERE topic = 'other' AND grp = 'once'"),
	'and moves the other topic\'s expired last attempt to its dead letters');

sql("ROLLBACK PREPARED 'ws_held'");
like($seek->query_until(qr/seek-done/, ""), qr/seek-done/, 'the seek completes once the receive is rolled back');
$seek->quit;
unlike(slurp_file($node->logfile), qr/\b(XX\d\d\d|40P01)\b/, 'no internal error or deadlock in the server log');
$node->stop;
done_testing();
