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
#
# Each case: messages 1-3 handed out one per receive (claims 1-1, 2-2 and
# 3-3), 1 and 3 acked, 2 nacked into a dead letter (max_attempts 1); 4 sent
# and not received.  A compaction (run_maintenance() in a transaction)
# folds all three claims and is PREPAREd.  After the restart (or the
# promotion), beside the prepared compaction: a peek, courier.groups and a
# redrive of the dead letter (courier.redrive -> _redrive_rows, which reads
# low_water too); then the compaction is committed or rolled back
# (ROLLBACK PREPARED: its claims and the old low_water are back).  Either
# way 2 (redriven) and 4 are handed out once each, and nothing acked comes
# again; the next compaction finds what is left (commit: the claim of 4;
# rollback: all four claims).
#
# With read_low_water (src/walk.c) reading low_water with an MVCC snapshot
# instead of the dirty one, the COMMIT cases fail: after COMMIT PREPARED
# courier.groups counts 1-3 again (backlog 5), and the receive hands out
# 1,2,2,3,4.  The ROLLBACK cases pass either way (the old low_water is then
# the right one), and so does the redrive: beside a prepared compaction
# _redrive_rows still finds the claim being deleted (dirty read of claims),
# so its answer does not depend on how low_water is read -- only a COMMIT
# PREPARED between its two reads would tell, which no test here can time.
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

# the compaction's result, in the prepared transaction
sub setup
{
	my ($n, $t, $gid) = @_;
	$n->safe_psql('postgres', qq{
SELECT courier.create_topic('$t');
SELECT courier.create_group('$t', 'g', max_attempts => 1);
SELECT courier.send('$t', jsonb_build_object('m', i)) FROM generate_series(1, 3) i;
SELECT courier.ack('$t', 'g', id) FROM courier.receive('$t', 'g', 1, '1 minute');
SELECT courier.nack('$t', 'g', id) FROM courier.receive('$t', 'g', 1, '1 minute');
SELECT courier.ack('$t', 'g', id) FROM courier.receive('$t', 'g', 1, '1 minute');
SELECT courier.send('$t', '{"m": 4}');
});
	return $n->safe_psql('postgres', qq{
BEGIN;
SELECT courier.run_maintenance()->>'compacted';
PREPARE TRANSACTION '$gid';
});
}

# backlog|in_flight|retrying|dead_letters of the group
sub groups
{
	my ($n, $t) = @_;
	return $n->safe_psql('postgres',
		"SELECT backlog || '|' || in_flight || '|' || retrying || '|' || dead_letters "
		  . "FROM courier.groups WHERE topic = '$t' AND grp = 'g'");
}

# receive everything, ack it; the messages' m, in id order
sub receive_all
{
	my ($n, $t) = @_;
	return $n->safe_psql('postgres', qq{
WITH d AS (SELECT id, body FROM courier.receive('$t', 'g', 10, '1 minute')),
	 a AS (SELECT courier.ack('$t', 'g', id) FROM d)
SELECT coalesce(string_agg(body->>'m', ',' ORDER BY id), '') || '|' || (SELECT count(*) FROM a) FROM d});
}

# low_water and the claims left
sub claims
{
	my ($n, $t) = @_;
	return $n->safe_psql('postgres', qq{
SELECT g.low_water || '|' || coalesce(string_agg(c.lo || '-' || c.hi, ',' ORDER BY c.lo), '')
FROM courier.group_meta g JOIN courier.topic_meta tm USING (topic_id)
LEFT JOIN courier.claim c ON c.group_id = g.group_id
WHERE tm.name = '$t' AND g.name = 'g' GROUP BY g.low_water});
}

# after the restart or promotion: $how is COMMIT or ROLLBACK
sub after_restart
{
	my ($n, $t, $gid, $how, $what) = @_;
	my $l = "$what, $how PREPARED";

	# anything that rebuilds the position without walking it: a peek
	my ($rc, $peek, $err) = $n->psql('postgres',
		"SET lock_timeout = '2s'; SELECT coalesce(string_agg(body->>'m', ',' ORDER BY id), '') "
		  . "FROM courier.peek('$t', 'g', 10)");
	is($rc, 0, "$l: the peek beside the prepared compaction does not wait for it") or diag($err);
	is($peek, '4', "$l: the peek lists the unreceived message only");
	is(groups($n, $t), '1|0|0|1',
		"$l: courier.groups beside the prepared compaction: backlog 1, nothing in flight or retrying, 1 dead letter");
	is($n->safe_psql('postgres', "SELECT courier.redrive('$t', 'g')"), '1',
		"$l: the redrive beside the prepared compaction gives the dead letter back");
	is(groups($n, $t), '2|0|0|0', "$l: the redriven message is backlog again");

	$n->safe_psql('postgres', "$how PREPARED '$gid'");
	is(groups($n, $t), '2|0|0|0',
		"$l: after $how PREPARED courier.groups counts the unreceived and the redriven message, nothing else");
	is(claims($n, $t), $how eq 'COMMIT' ? '3|' : '0|1-1,2-2,3-3',
		"$l: low_water and the claims are the compaction's ($how)");
	is(receive_all($n, $t), '2,4|2',
		"$l: the redriven and the unreceived message are handed out once, nothing acked comes again");
	is(groups($n, $t), '0|0|0|0', "$l: courier.groups after the acks: nothing left");
	is($n->safe_psql('postgres', "SELECT courier.run_maintenance()->>'compacted'"),
		$how eq 'COMMIT' ? '1' : '4', "$l: the next compaction folds what is left");
	# (at 4, or past it after the promotion: the ids a sequence skips after
	# a crash are passed over too)
	is($n->safe_psql('postgres', qq{
SELECT (g.low_water >= 4) || '|' || count(c.*)
FROM courier.group_meta g JOIN courier.topic_meta tm USING (topic_id)
LEFT JOIN courier.claim c ON c.group_id = g.group_id
WHERE tm.name = '$t' AND g.name = 'g' GROUP BY g.low_water}), 'true|0',
		"$l: low_water at 4 or past it, no claim left");
	is(receive_all($n, $t), '|0', "$l: nothing more is handed out");
}

# One prepared compaction at a time: run_maintenance() takes every topic's
# maintenance lock, and a prepared one keeps them, so a second one would
# wait for it.

# --- restart --------------------------------------------------------------
for my $how ('COMMIT', 'ROLLBACK')
{
	my $t = 'r' . lc(substr($how, 0, 1));
	is(setup($node, $t, "p$t"), '3', "restart, $how: the prepared compaction deleted 3 claims");
	$node->restart;
	after_restart($node, $t, "p$t", $how, 'restart');
}

# --- promotion ------------------------------------------------------------
my @nodes = ($node);
my $primary = $node;
for my $how ('COMMIT', 'ROLLBACK')
{
	my $t = 'p' . lc(substr($how, 0, 1));
	$primary->backup("b$t");
	my $standby = PostgreSQL::Test::Cluster->new("prepcompact_standby_$t");
	$standby->init_from_backup($primary, "b$t", has_streaming => 1);
	$standby->start;
	push @nodes, $standby;
	is(setup($primary, $t, "p$t"), '3', "promotion, $how: the prepared compaction deleted 3 claims");
	$primary->wait_for_catchup($standby);
	$primary->stop('immediate');
	$standby->promote;
	after_restart($standby, $t, "p$t", $how, 'promotion');
	$primary = $standby;
}

my $log = join('', map { slurp_file($_->logfile) } @nodes);
unlike($log, qr/terminated by signal|XX000/, 'no server process crashed, no XX000');
done_testing();
