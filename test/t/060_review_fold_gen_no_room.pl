# Review of b82e8da (fold_gen per group): fold_gen_of() (src/walk.c) reads
# CourierState->fold_gen when the reader's group has no shared entry (the
# table is full) and the group's own gs->fold_gen once it has one.  The two
# counters count different things, so a reader whose group got an entry
# between its two reads compares a global count with a per-group count.
# When they are equal by accident, a fold that happened under the reader
# goes unnoticed, and courier.groups counts acked messages as backlog (a
# peek lists them).  init_group() does not reset fold_gen either, so the new
# entry starts from whatever the reused element held.
#
# The shared table is full although every create_group passed
# _check_limits: that check counts other databases' *entries*, and after a
# restart the other database (o2) has none until its groups are touched.
# courier.max_groups = 16: postgres has f1, ty, tz and tz/z (4 groups), o2
# has 13; after the restart o2's 13 groups, f1, tz and tz/z take the 16
# entries, and ty (acked 1-3, claims not compacted; 4-6 never received)
# has none.
#
# Each case, on a fresh shared memory (global counter 0, fresh elements):
#   - `prior` folds of f1 (as role mf, admin of f1 only)
#   - reader x (courier.test_pauses) reads ty: no entry, so its first
#     fold_gen_of() returns the global counter (= prior); it walks a
#     private position rebuilt from the tables (recheck [1,3]) and stops
#   - drop_group('tz', 'z') frees z's element
#   - run_maintenance() as role my (admin of ty only) creates ty's entry in
#     that element (fold_gen 0) and folds 1-3: ty's counter is now 1
#   - x resumes, finds no claims for 1-3, and compares: 1 == prior?
# prior 0: 0 != 1, x walks again: backlog 3 (right).
# prior 1: 1 == 1, x keeps its walk: backlog 6, peek 1..6 (wrong).
# With d6f0944 (one global counter) both cases are right.
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use CourierTest;
use Test::More;

my $node = courier_node('foldnoroom', conf => qq{
courier.worker = off
courier.max_groups = 16
log_line_prefix = '%m [%p] %e '
});

sql(q{
CREATE ROLE mf LOGIN IN ROLE courier_admin;
CREATE ROLE my LOGIN IN ROLE courier_admin;
SET ROLE mf; SELECT courier.create_topic('f1'); RESET ROLE;
SET ROLE my; SELECT courier.create_topic('ty'); RESET ROLE;
SELECT courier.create_topic('tz');
CREATE DATABASE o2;
});
$node->safe_psql('o2', q{
CREATE EXTENSION pg_courier;
SELECT courier.create_topic('o' || i) FROM generate_series(1, 13) i;
});

sub as
{
	my ($role, $query) = @_;
	return $node->safe_psql('postgres', $query, extra_params => ['-U', $role]);
}

# fresh shared memory, then: tz/z exists, ty has 3 acked messages whose
# claims are not compacted and 3 never received, f1 has 1 acked
sub prepare
{
	$node->restart;
	sql(q{
SELECT courier.create_group('tz', 'z') WHERE NOT EXISTS (SELECT 1 FROM courier.group_meta WHERE name = 'z');
SELECT courier.ack('ty', 'default', s.got) FROM (SELECT array_agg(id) AS got FROM courier.receive('ty', 'default', 100, '1 hour')) s WHERE s.got IS NOT NULL;
SELECT courier.run_maintenance();
SELECT courier.send('ty', jsonb_build_object('n', n)) FROM generate_series(1, 6) n;
SELECT courier.ack('ty', 'default', s.got) FROM (SELECT array_agg(id) AS got FROM courier.receive('ty', 'default', 3, '1 hour')) s;
SELECT courier.send('f1', '{}');
SELECT courier.ack('f1', 'default', s.got) FROM (SELECT array_agg(id) AS got FROM courier.receive('f1', 'default', 1, '1 hour')) s;
});
	$node->restart;
	$node->safe_psql('o2', "SELECT count(*) FROM generate_series(1, 13) i, LATERAL courier.peek('o' || i, 'default', 1)");
	sql("SELECT count(*) FROM courier.peek('f1', 'default', 1)");
	sql("SELECT count(*) FROM courier.peek('tz', 'default', 1)");
	sql("SELECT count(*) FROM courier.peek('tz', 'z', 1)");
	return $node->safe_psql('o2', "SELECT groups FROM courier._entries_elsewhere()");
}

sub run_case
{
	my ($prior, $reader_query) = @_;
	is(prepare(), '3', "prior $prior: postgres holds 3 entries, o2 13: the table is full, ty has none");
	as('mf', "SELECT courier.run_maintenance()") for 1 .. $prior;

	my $h = $node->background_psql('postgres');
	$h->query_safe("SELECT pg_advisory_lock(7321, 1)");
	my $x = $node->background_psql('postgres', on_error_stop => 0);
	$x->query_until(qr/started/, "SET courier.test_pauses = on;\n\\echo started\n$reader_query;\n\\echo done\n");
	ok($node->poll_query_until('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'advisory' AND query LIKE '%''ty''%'", '1'),
		"prior $prior: the reader stopped after reading the position");
	sql("SELECT courier.drop_group('tz', 'z')");
	is(as('my', "SELECT (courier.run_maintenance()->>'compacted')::int > 0"), 't', "prior $prior: ty folded 1-3");
	$h->query_safe("SELECT pg_advisory_unlock(7321, 1)");
	my $out = $x->query_until(qr/done/, "");
	$x->quit;
	$h->quit;
	return $out;
}

my $count = "SELECT 'backlog=' || backlog FROM courier.groups WHERE topic = 'ty'";
my $peek = "SELECT 'peek=' || array_agg(id ORDER BY id)::text FROM courier.peek('ty', 'default', 10)";

like(run_case(0, $count), qr/backlog=3\b/, 'no fold before: the reader saw the counter move and walked again');
# fails on b82e8da (backlog=6): global counter 1 == ty's counter 1
like(run_case(1, $count), qr/backlog=3\b/, 'one fold of f1 before: the reader still sees the fold of ty and walks again');
is(sql("SELECT backlog FROM courier.groups WHERE topic = 'ty'"), '3', 'afterwards the count is right');
my $p = run_case(1, $peek);
# fails on b82e8da (peek 1..6 of this round: acked messages listed)
unlike($p, qr/peek=\{[0-9]+,[0-9]+,[0-9]+,[0-9]+/, 'the peek lists only the three unreceived messages');
note("peek: $p");

$node->stop;
done_testing();
