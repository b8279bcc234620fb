# The worker vacuums its bookkeeping tables (issue 11, vacuum debt): every
# receive inserts a claim that compaction deletes later, and every
# redelivery a lease row its ack deletes; those dead rows keep their index
# entries until VACUUM.  With autovacuum off, only the worker can vacuum
# courier.claim and courier.lease here, and it does once one holds
# courier.vacuum_threshold dead rows -- but not again while an old snapshot
# holds the xmin horizon where its last VACUUM left it, never while another
# session holds a conflicting lock on the table (SKIP_LOCKED: its rounds go
# on), and never with courier.vacuum_threshold = 0.
#
# Every wait is a poll with the harness's timeout; the test asserts what
# happens, never how fast.
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use CourierTest;
use Test::More;

my $THRESHOLD = 200;
my $node = courier_node('vacuum', conf => qq{
autovacuum = off
courier.worker_naptime = 100
courier.vacuum_threshold = $THRESHOLD
log_line_prefix = '%m [%p] %e '
});

sql("SELECT courier.create_topic('t')");
sql("SELECT courier.send_batch('t', array_agg(jsonb_build_object('n', g))) FROM generate_series(1, 5000) g");
# one receive, one ack and one commit per message: one claim each; with
# nack, first a nack and a second delivery: one lease row each, deleted by the ack
sql(q{CREATE PROCEDURE cycle(n int, nack boolean) LANGUAGE plpgsql AS $$
DECLARE m record; r record;
BEGIN
	FOR i IN 1 .. n LOOP
		SELECT * INTO m FROM courier.receive('t', 'default', 1, '1 minute');
		IF m.id IS NULL THEN
			RAISE 'nothing to receive';
		END IF;
		IF nack THEN
			PERFORM courier.nack('t', 'default', m.id, delay => '0 seconds');
			COMMIT;
			SELECT * INTO r FROM courier.receive('t', 'default', 1, '1 minute');
			IF r.id IS DISTINCT FROM m.id THEN
				RAISE 'redelivered % instead of %', r.id, m.id;
			END IF;
		END IF;
		PERFORM courier.ack('t', 'default', m.id);
		COMMIT;
	END LOOP;
END $$});

sub relstat
{
	my ($rel, $col) = @_;
	return sql("SELECT $col FROM pg_stat_user_tables WHERE relid = 'courier.$rel'::regclass");
}

# $n more receive + ack cycles, and wait until their dead claims are counted
sub dead_claims
{
	my ($n) = @_;
	sql("CALL cycle($n, false)");
	$node->poll_query_until('postgres',
		"SELECT n_dead_tup >= $n FROM pg_stat_user_tables WHERE relid = 'courier.claim'::regclass", 't')
	  or die 'the dead claims were not counted';
}

# wait until the worker finished $n more rounds
sub rounds
{
	my ($n) = @_;
	my $t = sql('SELECT clock_timestamp()');
	$node->poll_query_until('postgres',
		"SELECT last_finished > '$t'::timestamptz + interval '${\ ($n * 100)} ms' "
		  . "FROM courier._maintenance_status()", 't')
	  or die "the worker finished no round";
}

# ---- the worker vacuums claim and lease once they hold the threshold
sql('CALL cycle(1000, false)');
ok($node->poll_query_until('postgres',
		"SELECT vacuum_count > 0 AND n_dead_tup < $THRESHOLD FROM pg_stat_user_tables "
		  . "WHERE relid = 'courier.claim'::regclass", 't'),
	'1000 receives: the worker vacuumed courier.claim, fewer than the threshold dead rows left');
is(relstat('claim', 'autovacuum_count'), '0', 'autovacuum did not (it is off)');
sql('CALL cycle(400, true)');
ok($node->poll_query_until('postgres',
		"SELECT vacuum_count > 0 AND n_dead_tup < $THRESHOLD FROM pg_stat_user_tables "
		  . "WHERE relid = 'courier.lease'::regclass", 't'),
	'400 redeliveries: the worker vacuumed courier.lease too');

# ---- an old snapshot: one VACUUM may still move up to it, then none
my $old = $node->background_psql('postgres');
$old->query_safe("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM courier.topics");
rounds(5);
my $v0 = relstat('claim', 'vacuum_count');
dead_claims(600);
rounds(20);
cmp_ok(relstat('claim', 'vacuum_count'), '<=', $v0 + 1,
	'while an old snapshot holds the horizon, 20 rounds vacuum claim once at most');
# a new worker process for the database (as after a rotation among more
# databases than courier.max_workers) remembers it: the state is shared
my $pid = sql("SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_courier worker' AND datname = 'postgres'");
sql("SELECT pg_terminate_backend($pid)");
$node->poll_query_until('postgres',
	"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_courier worker' "
	  . "AND datname = 'postgres' AND pid <> $pid", '1')
  or die 'no new worker';
rounds(10);
cmp_ok(relstat('claim', 'vacuum_count'), '<=', $v0 + 1,
	'and a new worker process for the database does not vacuum it again either');
cmp_ok(relstat('claim', 'n_dead_tup'), '>=', 600, 'and the dead claims stay (the snapshot may see them)');
$old->query_safe('COMMIT');
$old->quit;
ok($node->poll_query_until('postgres',
		"SELECT n_dead_tup < $THRESHOLD FROM pg_stat_user_tables WHERE relid = 'courier.claim'::regclass", 't'),
	'once the snapshot is gone, the next VACUUM removes them');

# ---- a conflicting lock: the table is skipped, the rounds go on
my $locker = $node->background_psql('postgres');
$locker->query_safe("BEGIN; LOCK TABLE courier.claim IN SHARE UPDATE EXCLUSIVE MODE");
$v0 = relstat('claim', 'vacuum_count');
dead_claims(600);
rounds(10);
pass('the worker finishes rounds while another session holds SHARE UPDATE EXCLUSIVE on courier.claim');
is(relstat('claim', 'vacuum_count'), $v0, 'and does not vacuum the locked table');
is(sql("SELECT count(*) FROM pg_locks WHERE relation = 'courier.claim'::regclass AND NOT granted"), '0',
	'nobody waits for a lock on it');
$locker->query_safe('COMMIT');
$locker->quit;
ok($node->poll_query_until('postgres',
		"SELECT vacuum_count > $v0 AND n_dead_tup < $THRESHOLD FROM pg_stat_user_tables "
		  . "WHERE relid = 'courier.claim'::regclass", 't'),
	'after the lock is gone, it vacuums the table');

unlike(slurp_file($node->logfile), qr/skipping vacuum/,
	'no "skipping vacuum ... lock not available" WARNING for the skipped rounds');

# ---- a cancel request while the worker sleeps or between steps is dropped
$pid = sql("SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_courier worker' AND datname = 'postgres'");
for (1 .. 20)
{
	sql("SELECT pg_cancel_backend($pid)");
	select(undef, undef, undef, 0.03);
}
rounds(3);
is(sql("SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_courier worker' AND datname = 'postgres'"),
	$pid, '20 pg_cancel_backend calls: the same worker process goes on');

# ---- a database owner's vacuum_cost_delay does not slow the worker's VACUUM
sql("ALTER DATABASE postgres SET vacuum_cost_delay = 100");
sql("ALTER DATABASE postgres SET vacuum_cost_limit = 1");
sql("ALTER DATABASE postgres SET vacuum_cost_page_hit = 10000");
sql("SELECT pg_terminate_backend($pid)");	# its successor reads the database's settings
$node->poll_query_until('postgres',
	"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_courier worker' "
	  . "AND datname = 'postgres' AND pid <> $pid", '1')
  or die 'no new worker';
$v0 = relstat('claim', 'vacuum_count');
sql('CALL cycle(300, false)');
ok($node->poll_query_until('postgres',
		"SELECT vacuum_count > $v0 AND n_dead_tup < $THRESHOLD FROM pg_stat_user_tables "
		  . "WHERE relid = 'courier.claim'::regclass", 't'),
	'with vacuum_cost_delay = 100 set on the database, the worker vacuums claim');
unlike(slurp_file($node->logfile), qr/statement timeout/, 'within its time limit (no cost delay)');
sql("ALTER DATABASE postgres RESET ALL");

# ---- a pinned index page: VACUUM gives up after its time limit, rounds go on
# Dead claims that VACUUM can remove must exist when the cursor opens (its
# snapshot holds the horizon): make them with the threshold out of reach,
# open the cursor, then bring the threshold back.
my $held = sql("SELECT string_agg(id::text, ',') FROM courier.receive('t', 'default', 5, '1 hour')");
sql("ALTER SYSTEM SET courier.vacuum_threshold = 1000000");
sql("SELECT pg_reload_conf()");
rounds(2);
sql('CALL cycle(300, false)');
$node->poll_query_until('postgres', "SELECT count(*) <= 3 FROM courier.claim")
  or die 'compaction did not delete the drained claims';
my $pinner = $node->background_psql('postgres');
$pinner->query_safe("SET enable_seqscan = off; SET enable_bitmapscan = off; BEGIN; "
	  . "DECLARE c CURSOR FOR SELECT lo FROM courier.claim WHERE group_id = "
	  . "(SELECT min(group_id) FROM courier.claim) ORDER BY lo; FETCH 1 FROM c");
sql("ALTER SYSTEM SET courier.vacuum_threshold = $THRESHOLD");
sql("ALTER SYSTEM SET log_min_messages = debug1");	# the worker logs each VACUUM it starts
sql("SELECT pg_reload_conf()");
ok($node->poll_query_until('postgres', "SELECT count(*) > 0 FROM pg_stat_activity "
	  . "WHERE backend_type = 'pg_courier worker' AND wait_event = 'BufferPin'", 't'),
	'an open cursor pins a page of claim_pkey: the worker\'s VACUUM waits for it');
ok($node->poll_query_until('postgres', "SELECT count(*) = 0 FROM pg_stat_activity "
	  . "WHERE backend_type = 'pg_courier worker' AND wait_event = 'BufferPin'", 't'),
	'and gives up');
like(slurp_file($node->logfile), qr/canceling statement due to statement timeout\n.*CONTEXT:  .*vacuum/,
	'logged as a timeout of the worker\'s vacuum');
my $offset = -s $node->logfile;
rounds(30);
pass('the worker finishes rounds while the page stays pinned');
like(substr(slurp_file($node->logfile), 0, $offset), qr/pg_courier worker: VACUUM of courier\.claim/,
	'the VACUUM that timed out was logged at DEBUG1');
unlike(substr(slurp_file($node->logfile), $offset), qr/pg_courier worker: VACUUM of courier\.claim/,
	'and for the next 3 seconds of rounds (a VACUUM is due every second) the table is left alone');
sql("ALTER SYSTEM RESET log_min_messages");
sql("SELECT pg_reload_conf()");
$pinner->query_safe('COMMIT');
$pinner->quit;
is(sql("SELECT courier.ack('t', 'default', '{$held}'::bigint[])"), '5', 'the 5 messages held for the cursor are acked');

# ---- courier.vacuum_threshold = 0 leaves the tables to autovacuum
sql("ALTER SYSTEM SET courier.vacuum_threshold = 0");
sql("SELECT pg_reload_conf()");
rounds(3);
$v0 = relstat('claim', 'vacuum_count');
dead_claims(600);
rounds(10);
is(relstat('claim', 'vacuum_count'), $v0, 'courier.vacuum_threshold = 0: no VACUUM by the worker');

# every message was delivered and acked once (the VACUUMs lost nothing)
is(sql("SELECT backlog || ' ' || in_flight FROM courier.groups WHERE topic = 't'"), '1195 0',
	'5000 sent, 3805 acked: 1195 left, none in flight');
my $log = slurp_file($node->logfile);
unlike($log, qr/\bXX\d{3}\b|PANIC|TRAP:/, 'no internal error in the server log');
my @exits = $log =~ /background worker "pg_courier worker" \(PID \d+\) exited with exit code [1-9]/g;
is(scalar(@exits), 2, 'the only workers that exited with an error are the two pg_terminate_backend ended');
done_testing();
