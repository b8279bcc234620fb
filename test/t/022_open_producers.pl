# Issue 7 section 3: open producer transactions must not make receives
# expensive.  64 producers each hold one uncommitted message open (32 from
# before the traffic, 32 more opened in the middle of it) while one session
# runs a send / receive / ack loop.  0.1.0 pinned its recheck position at the
# lowest open hole once more than 16 producers were open: every walk
# restarted there and stepped over every claim since, and compaction could
# not pass the hole, so the work per iteration grew with every iteration
# (~0.9 s -> 12 s per 1000 iterations at 17 producers).
#
# Tests assert work, never time: the buffer accesses and index tuples read
# on courier.claim and on the log per loop iteration, from the statistics
# views, must stay within 2x of the same loop with no producer open (plus a
# small constant), must not grow from batch to batch, and the claim table
# must stay small.  When the producers commit, every one of their messages is
# delivered, once.
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use CourierTest;
use Test::More;

my $node = courier_node('producers', conf => qq{
max_connections = 100
courier.worker = off
track_counts = on
log_line_prefix = '%m [%p] %e '
});
sql("SELECT courier.create_topic('busy')");
sql("CREATE TABLE got (id bigint, loop boolean)");

my $iterations = 150;

# Work counters of pg_courier's tables (summed over their indexes too):
# claim = courier.claim, log = the topic's segments.
my $counters = q{
SELECT sum(coalesce(heap_blks_hit, 0) + coalesce(heap_blks_read, 0) + coalesce(idx_blks_hit, 0)
           + coalesce(idx_blks_read, 0)) FILTER (WHERE relname = 'claim') || ' ' ||
       (SELECT sum(idx_tup_read) FROM pg_stat_user_indexes WHERE schemaname = 'courier' AND relname = 'claim') || ' ' ||
       sum(coalesce(heap_blks_hit, 0) + coalesce(heap_blks_read, 0) + coalesce(idx_blks_hit, 0)
           + coalesce(idx_blks_read, 0)) FILTER (WHERE relname LIKE 'log\_%') || ' ' ||
       (SELECT coalesce(sum(idx_tup_read), 0) FROM pg_stat_user_indexes WHERE schemaname = 'courier' AND relname LIKE 'log\_%')
  FROM pg_statio_user_tables WHERE schemaname = 'courier'};

# One batch of the loop in one session: send, commit, receive, ack, commit.
# The session flushes its statistics before it reads the counters.
# Returns the work per iteration: (claim buffers, claim index tuples,
# log buffers, log index tuples).
sub batch
{
	my ($label) = @_;
	my $out = sql(qq{
SELECT pg_stat_force_next_flush();
SELECT pg_stat_clear_snapshot();
$counters;
DO \$\$
DECLARE
	ids bigint[];
	n integer := 0;
BEGIN
	FOR i IN 1 .. $iterations LOOP
		PERFORM courier.send('busy', jsonb_build_object('loop', i));
		COMMIT;
		SELECT array_agg(id) INTO ids FROM courier.receive('busy', 'default', 10, '1 hour');
		INSERT INTO got SELECT unnest(ids), true;
		n := n + coalesce(courier.ack('busy', 'default', ids), 0);
		COMMIT;
	END LOOP;
	IF n <> $iterations THEN
		RAISE EXCEPTION 'the loop acked % messages, not $iterations', n;
	END IF;
END;
\$\$;
SELECT pg_stat_force_next_flush();
SELECT pg_stat_clear_snapshot();
$counters;
});
	my @lines = grep { /^\d+ \d+ \d+ \d+$/ } split /\n/, $out;
	die "no counters in: $out" unless @lines == 2;
	my @a = split / /, $lines[0];
	my @b = split / /, $lines[1];
	my @per = map { ($b[$_] - $a[$_]) / $iterations } 0 .. 3;
	note sprintf("%-28s per iteration: claim %.1f buffers, %.1f index tuples; log %.1f buffers, %.1f index tuples",
		$label, @per);
	return \@per;
}

my $claims = "SELECT count(*) FROM courier.claim";

# baseline: nothing open
my $base = batch('no producer open');
sql("SELECT courier.run_maintenance()");

# 32 producers, each with one message sent and not committed
my @producers;
my @pending;
sub open_producers
{
	my ($n) = @_;
	for (1 .. $n)
	{
		my $p = $node->background_psql('postgres');
		$p->query_safe("BEGIN");
		push @pending, $p->query_safe("SELECT courier.send('busy', '{\"producer\": true}')");
		push @producers, $p;
	}
}
open_producers(32);
is(scalar(@producers), 32, '32 producers hold a message open');

my @work;
push @work, batch('32 producers open');
sql("SELECT courier.run_maintenance()");
open_producers(32);
is(scalar(@producers), 64, '64 producers hold a message open');
for my $b (1 .. 3)
{
	push @work, batch("64 producers open, batch $b");
	sql("SELECT courier.run_maintenance()");
	cmp_ok(sql($claims), '<=', 40, "batch $b: the claim table stays small (" . sql($claims) . " rows)");
}

my @names = ('claim buffers', 'claim index tuples', 'log buffers', 'log index tuples');
for my $i (0 .. $#work)
{
	for my $c (0 .. 3)
	{
		cmp_ok($work[$i][$c], '<=', 2 * $base->[$c] + 5,
			"batch " . ($i + 1) . ": $names[$c] per iteration within 2x of the loop with no producer open");
	}
}
for my $c (0 .. 3)
{
	cmp_ok($work[-1][$c], '<=', 1.25 * $work[1][$c] + 2, "$names[$c] per iteration do not grow from batch to batch");
}
is(sql("SELECT count(*) FROM got WHERE loop"), 5 * $iterations, 'the loop received each of its own messages');

# the producers commit: every message is delivered, once
$_->query_safe("COMMIT") for @producers;
$_->quit for @producers;
sql("INSERT INTO got SELECT id, false FROM courier.receive('busy', 'default', 1000, '1 hour')");
is(sql("SELECT string_agg(id::text, ',' ORDER BY id) FROM got WHERE NOT loop"),
	join(',', sort { $a <=> $b } @pending), "the 64 producers' messages are delivered");
is(sql("SELECT count(*) FROM (SELECT id FROM got GROUP BY id HAVING count(*) > 1) d"), '0', 'nothing twice');
is(sql("SELECT backlog FROM courier.groups WHERE topic = 'busy'"), '0', 'no backlog');

unlike(slurp_file($node->logfile), qr/\bXX000\b/, 'no XX000 in the server log');
$node->stop;
done_testing();
