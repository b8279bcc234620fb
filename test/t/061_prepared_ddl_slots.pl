# A prepared transaction that creates a group (or topic) and is rolled back,
# or that drops one and is committed, gave its shared-memory slot back only
# at the next restart: no callback of ours runs at COMMIT PREPARED or
# ROLLBACK PREPARED.  Rolled back in a loop, prepared creations used up
# courier.max_groups, and every new group of every database then failed
# with 53400 at its first receive.  Now COMMIT / ROLLBACK PREPARED removes
# the entries of objects that no longer exist (src/shmem.c,
# CourierForgetStaleEntries), and keeps those a prepared or open
# transaction still holds.
#
# Counted from a second database with courier._entries_elsewhere(), which
# counts the entries other databases hold.
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use CourierTest;
use Test::More;

my $node = courier_node('prepddl', conf => qq{
courier.worker = off
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

is(entries(), '1|1', 'one topic and its group hold one slot each');

# 20 prepared creations of a group, each used (a peek loads its entry) and
# rolled back: with 16 slots, the old code ran out after 15
for my $i (1 .. 20)
{
	sql(qq{
BEGIN;
SELECT courier.create_group('t', 'g$i');
SELECT count(*) FROM courier.peek('t', 'g$i', 1);
PREPARE TRANSACTION 'cg$i';
});
	sql(qq{ROLLBACK PREPARED 'cg$i'});
}
is(entries(), '1|1', 'rolled-back prepared create_group gives its slot back');
sql(q{SELECT courier.create_group('t', 'after')});
is(sql(q{SELECT count(*) FROM courier.receive('t', 'after', 1, '1 hour')}), '0',
	'a new group can still be created and received from');
is(entries(), '1|2', 'its slot is taken');

# a prepared drop: the slot stays while the transaction is prepared, and is
# given back by COMMIT PREPARED
sql(q{
BEGIN;
SELECT courier.drop_group('t', 'after');
PREPARE TRANSACTION 'dg';
});
is(entries(), '1|2', 'a prepared drop_group keeps the slot');
sql(q{COMMIT PREPARED 'dg'});
is(entries(), '1|1', 'COMMIT PREPARED of drop_group gives it back');

# the same for a topic (and its default group)
sql(q{
BEGIN;
SELECT courier.create_topic('pt');
SELECT count(*) FROM courier.peek('pt', 'default', 1);
PREPARE TRANSACTION 'ct';
});
is(entries(), '2|2', 'a prepared create_topic holds its slots');

# another prepared transaction finishing meanwhile does not take them: the
# prepared creator still holds the topic's and group's existence locks
sql(q{
BEGIN;
SELECT courier.send('t', '{}') > 0;
PREPARE TRANSACTION 'other';
});
sql(q{COMMIT PREPARED 'other'});
is(entries(), '2|2', 'COMMIT PREPARED of another transaction keeps the prepared creation\'s slots');
sql(q{ROLLBACK PREPARED 'ct'});
is(entries(), '1|1', 'ROLLBACK PREPARED of create_topic gives both back');

# an open (not prepared) transaction's new group survives a COMMIT PREPARED
# that runs meanwhile, and is usable after its commit
my $open = $node->background_psql('postgres');
$open->query_safe(q{BEGIN; SELECT courier.create_group('t', 'live'); SELECT count(*) FROM courier.peek('t', 'live', 1);});
sql(q{
BEGIN;
SELECT courier.send('t', '{}') > 0;
PREPARE TRANSACTION 'other2';
});
sql(q{COMMIT PREPARED 'other2'});
is(entries(), '1|2', 'an open transaction\'s new group keeps its slot');
$open->query_safe('COMMIT');
$open->quit;
is(sql(q{SELECT count(*) FROM courier.receive('t', 'live', 10, '1 hour')}), '2',
	'the group created beside it receives both messages');

my $log = slurp_file($node->logfile);
unlike($log, qr/ XX000 /, 'no XX000 in the server log');
done_testing();
