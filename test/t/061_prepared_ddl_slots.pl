# A prepared transaction that creates a group (or topic) and is rolled back,
# or that drops one and is committed, gave its shared-memory slot back only
# at the next restart: no callback of ours runs at COMMIT PREPARED or
# ROLLBACK PREPARED.  Rolled back in a loop, prepared creations used up
# courier.max_groups, and every new group of every database then failed
# with 53400 at its first receive.  Now the worker's round gives back the
# entries of objects that no longer exist (src/shmem.c,
# CourierForgetStaleEntries), and keeps those a prepared or open
# transaction still holds.  (Review 54: doing it inside COMMIT PREPARED
# could make that statement fail or wait after its commit.)
#
# Counted from a second database with courier._entries_elsewhere(), which
# counts the entries other databases hold.  Without the worker's step the
# loop below fails at its 16th creation (53400).
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use CourierTest;
use Test::More;

my $node = courier_node('prepddl', init => { allows_streaming => 1 }, conf => qq{
courier.worker_naptime = 50
courier.max_topics = 16
courier.max_groups = 16
max_prepared_transactions = 4
log_line_prefix = '%m [%p] %e '
});

sql(q{
CREATE DATABASE other;
SELECT courier.create_topic('t');
SELECT count(*) FROM courier.peek('t', 'default', 1);
});
$node->safe_psql('other', 'CREATE EXTENSION pg_courier');

sub entries
{
	return $node->safe_psql('other', 'SELECT topics || \'|\' || groups FROM courier._entries_elsewhere()');
}

sub entries_become
{
	my ($want) = @_;
	return $node->poll_query_until('other',
		"SELECT topics || '|' || groups FROM courier._entries_elsewhere()", $want);
}

# wait for a whole worker round of database postgres that started after now
sub full_round
{
	my $t0 = sql('SELECT clock_timestamp()');
	return $node->poll_query_until('postgres',
		"SELECT last_started > '$t0' AND last_finished > last_started FROM courier._maintenance_status()",
		't');
}

is(entries(), '1|1', 'one topic and its group hold one slot each');

# 20 prepared creations of a group, each used (a peek loads its entry) and
# rolled back: with 16 slots, the old code ran out at the 16th
my $ok = 1;
for my $i (1 .. 20)
{
	sql(qq{
BEGIN;
SELECT courier.create_group('t', 'g$i');
SELECT count(*) FROM courier.peek('t', 'g$i', 1);
PREPARE TRANSACTION 'cg$i';
});
	sql(qq{ROLLBACK PREPARED 'cg$i'});
	$ok &&= entries_become('1|1');
}
ok($ok, 'the worker gives back the slot of each rolled-back prepared create_group');
sql(q{SELECT courier.create_group('t', 'after')});
is(sql(q{SELECT count(*) FROM courier.receive('t', 'after', 1, '1 hour')}), '0',
	'a new group can still be created and received from');
is(entries(), '1|2', 'its slot is taken');

# a prepared drop: the slot stays while the transaction is prepared (the
# worker's rounds go on), and is given back after COMMIT PREPARED
sql(q{
BEGIN;
SELECT courier.drop_group('t', 'after');
PREPARE TRANSACTION 'dg';
});
ok(full_round(), 'a worker round ran beside the prepared drop');
is(entries(), '1|2', 'a prepared drop_group keeps the slot');
sql(q{COMMIT PREPARED 'dg'});
ok(entries_become('1|1'), 'after COMMIT PREPARED of drop_group the worker gives it back');

# the same for a topic (and its default group)
sql(q{
BEGIN;
SELECT courier.create_topic('pt');
SELECT count(*) FROM courier.peek('pt', 'default', 1);
PREPARE TRANSACTION 'ct';
});
ok(full_round(), 'a worker round ran beside the prepared create_topic');
is(entries(), '2|2', 'a prepared create_topic keeps its slots');
sql(q{ROLLBACK PREPARED 'ct'});
ok(entries_become('1|1'), 'after ROLLBACK PREPARED of create_topic the worker gives both back');

# an open (not prepared) transaction's new group keeps its slot through
# the worker's rounds, and is usable after its commit
my $open = $node->background_psql('postgres');
$open->query_safe(q{BEGIN; SELECT courier.create_group('t', 'live'); SELECT count(*) FROM courier.peek('t', 'live', 1);});
ok(full_round(), 'a worker round ran beside the open creation');
is(entries(), '1|2', 'an open transaction\'s new group keeps its slot');
sql(q{SELECT courier.send('t', '{}'); SELECT courier.send('t', '{}');});
$open->query_safe('COMMIT');
$open->quit;
is(sql(q{SELECT count(*) FROM courier.receive('t', 'live', 10, '1 hour')}), '2',
	'the group created beside it receives both messages');
ok(full_round(), 'another worker round');
is(entries(), '1|2', 'a committed group keeps its slot');

# a group that is in use (its existence lock held in share mode by an open
# transaction) whose drop committed meanwhile cannot happen: the drop waits
# for the lock.  A plain drop gives its slot back itself, at commit.
sql(q{SELECT courier.drop_group('t', 'live')});
is(entries(), '1|1', 'a plain drop_group gives its slot back at commit');

# review 56: the prepared claims of a group dropped after its prepared
# receive was committed stayed in the prepared-claims table (only the
# group's own walks settled them) until 4 * 8 + 16 = 48 such groups had
# filled it, and every prepared receive of every database then failed with
# 53400.  The worker forgets them with the group.
my $prepared_ok = 1;
my $received = 0;
for my $i (1 .. 52)
{
	eval {
		sql(qq{SELECT courier.create_group('t', 'pr$i')});
		sql(q{SELECT courier.send('t', '{}')});
		$received += sql(qq{BEGIN; SELECT count(*) FROM courier.receive('t', 'pr$i', 1, '1 hour'); PREPARE TRANSACTION 'pr$i';});
		sql(qq{COMMIT PREPARED 'pr$i'});
		sql(qq{SELECT courier.drop_group('t', 'pr$i')});
		1;
	} or do { diag("iteration $i: $@"); $prepared_ok = 0; last; };
	$prepared_ok &&= full_round();
}
is($received, 52, 'each prepared receive held a message');
ok($prepared_ok, '52 groups received from in prepared transactions and dropped: no 53400');
is(sql(q{SELECT count(*) FROM courier.receive('t', 'default', 100, '1 hour')}) > 0 ? 't' : 'f', 't',
	'the default group still receives');

# review 56: a standby's readers make entries, replayed drops never remove
# them (no callback runs on a standby), and after a promotion the slots
# stayed taken until a restart.  The promoted server's worker gives them back.
$node->backup('base');
my $standby = PostgreSQL::Test::Cluster->new('prepddl_standby');
$standby->init_from_backup($node, 'base', has_streaming => 1);
$standby->start;
sql(q{SELECT courier.create_group('t', 's' || i, 'latest') FROM generate_series(1, 8) i});
$node->wait_for_catchup($standby);
is($standby->safe_psql('postgres',
	q{SELECT sum(n) FROM (SELECT count(*) AS n FROM generate_series(1, 8) i, courier.peek('t', 's' || i, 1)) x}),
	'0', 'the standby peeks the new groups (their entries are made there)');
is($standby->safe_psql('other', 'SELECT groups FROM courier._entries_elsewhere()'), '8',
	'the standby holds their slots');
sql(q{SELECT courier.drop_group('t', 's' || i) FROM generate_series(1, 8) i});
$node->wait_for_catchup($standby);
is($standby->safe_psql('other', 'SELECT groups FROM courier._entries_elsewhere()'), '8',
	'replayed drops leave them on the standby');
$standby->promote;
# the promoted server's worker gives back the 8 dropped ones: what is left
# are entries of groups that exist
my $existing = $standby->safe_psql('postgres', 'SELECT count(*) FROM courier.group_meta');
ok($standby->poll_query_until('other', "SELECT groups <= $existing FROM courier._entries_elsewhere()", 't'),
	"after the promotion the worker gives them back ($existing groups exist)");
$standby->stop;

is(sql(q{SELECT last_error IS NULL FROM courier._maintenance_status()}), 't',
	'the worker\'s rounds had no error');
my $log = slurp_file($node->logfile);
unlike($log, qr/ XX000 /, 'no XX000 in the server log');
done_testing();
