# Review 27 of 407d4a8: a compaction that is PREPAREd keeps its deletions of
# finished claims in progress, but no longer holds the group's claim lock.
# Its fold lives only in shared memory (CourierGroupShared.folded).  After a
# restart (or a promotion) that fold is gone, and a rebuild reads low_water
# as committed (the old one) and makes (old low_water, P) a recheck span.
# COMMIT PREPARED then deletes the claims below the new low_water, and the
# next claiming walk walks the recheck span, finds no claim there and hands
# out again messages that were received and acked long ago.
#
# Before 407d4a8 the prepared transaction held the claim lock (re-acquired
# at recovery), so the rebuild waited for COMMIT PREPARED (here: the peek
# times out on lock_timeout) and then read the new low_water.
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use CourierTest;
use Test::More;

my $node = courier_node('prepcompact', conf => qq{
courier.worker = off
max_prepared_transactions = 10
log_line_prefix = '%m [%p] %e '
}, init => { allows_streaming => 1 });

sub setup
{
	my ($n, $t, $gid) = @_;
	$n->safe_psql('postgres', qq{
SELECT courier.create_topic('$t');
SELECT courier.create_group('$t', 'g');
SELECT courier.send('$t', jsonb_build_object('m', i)) FROM generate_series(1, 3) i;
SELECT courier.ack('$t', 'g', id) FROM courier.receive('$t', 'g', 1, '1 minute');
SELECT courier.ack('$t', 'g', id) FROM courier.receive('$t', 'g', 1, '1 minute');
SELECT courier.ack('$t', 'g', id) FROM courier.receive('$t', 'g', 1, '1 minute');
SELECT courier.send('$t', '{"m": 4}');
BEGIN;
SELECT courier.run_maintenance();
PREPARE TRANSACTION '$gid';
});
}

sub after_restart
{
	my ($n, $t, $gid) = @_;
	# anything that rebuilds the position without walking it: a peek
	$n->psql('postgres', "SET lock_timeout = '2s'; SELECT count(*) FROM courier.peek('$t', 'g', 10)");
	$n->safe_psql('postgres', "COMMIT PREPARED '$gid'");
	return $n->safe_psql('postgres',
		"SELECT coalesce(string_agg(body->>'m', ',' ORDER BY id), '') "
		  . "FROM courier.receive('$t', 'g', 10, '1 minute')");
}

# --- restart --------------------------------------------------------------
setup($node, 'r', 'pr');
$node->restart;
is(after_restart($node, 'r', 'pr'), '4',
	'restart: after COMMIT PREPARED of a compaction, only the unreceived message is handed out');

# --- promotion ------------------------------------------------------------
$node->backup('b1');
my $standby = PostgreSQL::Test::Cluster->new('prepcompact_standby');
$standby->init_from_backup($node, 'b1', has_streaming => 1);
$standby->start;
setup($node, 'p', 'pp');
$node->wait_for_catchup($standby);
$node->stop('immediate');
$standby->promote;
is(after_restart($standby, 'p', 'pp'), '4',
	'promotion: after COMMIT PREPARED of a compaction, only the unreceived message is handed out');

my $log = slurp_file($node->logfile) . slurp_file($standby->logfile);
unlike($log, qr/terminated by signal|XX000/, 'no server process crashed, no XX000');
done_testing();
