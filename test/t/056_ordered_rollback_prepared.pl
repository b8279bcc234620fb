# Review 40, finding 1: ROLLBACK PREPARED of an ordered receive while
# another receive of the group walks.  A holds m1, the head of key k, with
# m2 queued behind it, in a prepared transaction.  B's walk settles the
# prepared claims when it starts (A is still prepared); A is then rolled
# back: its lease rows vanish and no callback of ours runs (ROLLBACK
# PREPARED runs none), so when B reached m3, the next message of k, the key
# looked empty and m3 went out before m1 and m2.  Now the walk asks the
# prepared-claims table too (walk.c, prepared_rolled_back_below) and queues
# m3 behind the ids the rollback gave back.
#
# The window is the rest of B's walk, so each round makes that walk long
# (3,000 keys of their own between m2 and m3) and rolls A back while it
# runs.  The reviewer's script hit in 5 of 12 tries on the code before the
# fix; this asserts the order of key k in each of three rounds, nothing
# about timing.
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use CourierTest;
use Test::More;

my $node = courier_node('ordrollprep', conf => qq{
courier.worker = off
max_prepared_transactions = 10
log_line_prefix = '%m [%p] %e '
});

# receive everything receivable in group o and ack it; the labels of key
# k's messages among it, in id order
sub drain_k
{
	my ($t) = @_;
	return sql("SELECT coalesce(string_agg(body->>'m', ',' ORDER BY id), '') FROM "
		  . "(SELECT id, body FROM courier.receive('$t', 'o', 10000, '1 hour')) r "
		  . "WHERE courier.ack('$t', 'o', id) AND body ? 'm'");
}

for my $round (1 .. 3)
{
	my $t = "orp$round";
	sql("SELECT courier.create_topic('$t')");
	sql("SELECT courier.create_group('$t', 'o', ordered => true)");
	sql("SELECT courier.send('$t', '{\"m\": \"1\"}', keys => ARRAY['k'])");
	sql("SELECT courier.send('$t', '{\"m\": \"2\"}', keys => ARRAY['k'])");
	is( sql("BEGIN;\nSELECT string_agg(body->>'m', ',') FROM courier.receive('$t', 'o', 10, '1 hour');\n"
		  . "PREPARE TRANSACTION 'orp$round';"),
		'1', "round $round: A holds m1 (m2 queued behind it), prepared");
	sql("SELECT count(courier.send('$t', jsonb_build_object('x', g), keys => ARRAY['x' || g])) "
		  . "FROM generate_series(1, 3000) g");
	sql("SELECT courier.send('$t', '{\"m\": \"3\"}', keys => ARRAY['k'])");

	# B walks all of it; A is rolled back meanwhile
	my $b = $node->background_psql('postgres');
	$b->query_until(qr/started/,
		"\\echo started\nSELECT 'B got ' || coalesce(string_agg(body->>'m', ','), 'no m') "
		  . "FROM courier.receive('$t', 'o', 10000, '1 hour') WHERE body ? 'm';\n\\echo done\n");
	sql("ROLLBACK PREPARED 'orp$round'");
	my $out = $b->query_until(qr/done/, "");
	$b->quit;
	like($out, qr/B got (no m|1)\n/, "round $round: B did not get m3 before m1 (or got m1 itself)");
	my $seen = $out =~ /B got 1\n/ ? '1' : '';
	if ($seen eq '1')
	{
		sql("SELECT courier.ack('$t', 'o', id) FROM courier.find('$t', key => 'k') "
			  . "WHERE grp = 'o' AND body->>'m' = '1'");
	}
	# then key k goes out in send order, one at a time: each round hands
	# out (and acks) at most one message of it
	my @order = ($seen eq '1') ? ('1') : ();
	for (1 .. 10)
	{
		my $got = drain_k($t);
		push @order, $got if $got ne '';
		last if @order >= 3;
	}
	is(join(' ', @order), '1 2 3', "round $round: key k went out as 1, 2, 3, one at a time");
	sql("SELECT courier.drop_topic('$t')");
}

unlike(slurp_file($node->logfile), qr/\bXX\d\d\d\b/, 'no internal error in the server log');
$node->stop;
done_testing();
