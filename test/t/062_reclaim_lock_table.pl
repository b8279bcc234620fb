# Review 57: the worker's reclaim step (src/shmem.c,
# CourierForgetStaleEntries) took one existence lock per object it gave
# back and held them all until its transaction ended.  After many groups
# were dropped through prepared transactions while the worker was off (or
# replayed on a standby since promoted) it filled the server's lock table:
# "out of shared memory" (53200) in the worker, and for every session
# meanwhile.  It now releases each lock as soon as the object is dealt with.
#
# The lock table here is sized for about 10 * (30 + 4) locks (shared memory
# has some room to spare); 1,200 groups are dropped through prepared
# transactions with the worker off, then the worker is turned on.
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use CourierTest;
use Test::More;

my $node = courier_node('reclaimlocks', conf => qq{
courier.worker = off
courier.worker_naptime = 50
courier.max_groups = 1500
max_connections = 20
max_locks_per_transaction = 10
max_prepared_transactions = 4
max_wal_senders = 0
wal_level = minimal
autovacuum_max_workers = 1
log_line_prefix = '%m [%p] %e '
});

my $n = 1200;
sql(q{CREATE DATABASE other});
$node->safe_psql('other', 'CREATE EXTENSION pg_courier');
sql(q{SELECT courier.create_topic('lt')});
# one group per transaction: a transaction of 1,200 creations needs more
# locks than this lock table has
my $script = join('', map { "SELECT courier.create_group('lt', 'g$_');\n"
	  . "SELECT count(*) FROM courier.peek('lt', 'g$_', 1);\n" } 1 .. $n);
sql($script);
is($node->safe_psql('other', 'SELECT groups FROM courier._entries_elsewhere()'), $n + 0,
	"the $n groups hold a slot each (the topic's default group is not loaded)");
$script = join('', map { "BEGIN; SELECT courier.drop_group('lt', 'g$_'); PREPARE TRANSACTION 'd$_'; "
	  . "COMMIT PREPARED 'd$_';\n" } 1 .. $n);
sql($script);
is($node->safe_psql('other', 'SELECT groups FROM courier._entries_elsewhere()'), $n + 0,
	'with the worker off, the prepared drops keep their slots');

my $t0 = sql('SELECT clock_timestamp()');
$node->append_conf('postgresql.conf', 'courier.worker = on');
$node->reload;
ok($node->poll_query_until('postgres',
	"SELECT last_finished > '$t0' FROM courier._maintenance_status()", 't'),
	'the worker ran a round');
is($node->safe_psql('other', 'SELECT groups FROM courier._entries_elsewhere()'), '0',
	'its first round gave every slot back');
is(sql(q{SELECT last_error IS NULL FROM courier._maintenance_status()}), 't',
	'without an error');
my $log = slurp_file($node->logfile);
unlike($log, qr/ 53200 /, 'no "out of shared memory" in the server log');
unlike($log, qr/ XX000 /, 'no XX000 in the server log');
done_testing();
