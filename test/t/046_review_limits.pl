# Review of 0.2.0, findings 4 and 5:
# - shared-memory entries of topics and groups created by a transaction (or
#   savepoint) that rolls back are given back: courier.max_topics and
#   max_groups are not used up by rolled-back creations;
# - the limits hold over all databases: create_topic counts the entries
#   other databases use, and refuses at create time, not at first use;
# - run_maintenance() maintains only the topics the caller administers, so
#   an admin of one topic holding it open cannot block another topic.
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use CourierTest;
use Test::More;

my $node = courier_node('rlimits', conf => "courier.max_topics = 16\ncourier.max_groups = 64\n");

# ---- rolled-back creations give their entries back
for my $i (1 .. 12)
{
	sql("BEGIN; SELECT courier.create_topic('tmp$i'); SELECT courier.send('tmp$i', '{}'); "
		  . "SELECT count(*) FROM courier.receive('tmp$i', 'default', 1); ROLLBACK;");
	sql("BEGIN; SAVEPOINT s; SELECT courier.create_topic('sp$i'); SELECT courier.create_group('sp$i', 'g'); "
		  . "SELECT courier.send('sp$i', '{}'); SELECT count(*) FROM courier.receive('sp$i', 'g', 1); "
		  . "ROLLBACK TO s; COMMIT;");
}
sql("SELECT courier.create_topic('real')");
is(sql("SELECT courier.send('real', '{\"ok\": 1}') > 0"), 't', 'after 24 rolled-back creations a new topic can send');
is(sql("SELECT body->>'ok' FROM courier.receive('real', 'default', 1)"), '1', 'and receive');
is(sql("SELECT topics FROM courier._entries_elsewhere()"), '0', 'no entry of another database');

# ---- the limit is over all databases
sql("CREATE DATABASE other");
sql("CREATE EXTENSION pg_courier CASCADE", 'other');
for my $i (1 .. 13)
{
	sql("SELECT courier.create_topic('o$i'); SELECT courier.send('o$i', '{}'); "
		  . "SELECT count(*) FROM courier.receive('o$i', 'default', 1)", 'other');
}
is(sql("SELECT topics FROM courier._entries_elsewhere()"), '13', 'the other database uses 13 topic entries');
# 1 topic here + 13 there + 2 = 16 = courier.max_topics (its minimum)
sql("SELECT courier.create_topic('two')");
sql("SELECT courier.create_topic('three')");
my ($ret, $out, $err) = $node->psql('postgres', "SELECT courier.create_topic('four')");
like($err, qr/too many topics/, 'a topic beyond the cluster-wide limit is refused at create time');
like($err, qr/other databases use 13/, 'naming what the other databases use');
is(sql("SELECT count(*) FROM courier.receive('two', 'default', 1)"), '0', 'the topics created within the limit work');

# ---- run_maintenance() touches only the caller's topics
sql("CREATE ROLE ops_a LOGIN IN ROLE courier_admin");
sql("CREATE ROLE app LOGIN IN ROLE courier_consumer");
sql("SELECT courier.drop_topic('two')");
sql("SELECT courier.create_topic('secret')");
sql("SELECT courier.grant('secret', 'app', 'all')");
sql("SELECT courier.send('secret', '{\"s\": 1}')");
sql("SELECT courier.ack('secret', 'default', ARRAY(SELECT id FROM courier.receive('secret', 'default', 10)))");
sql("SELECT courier.send('secret', '{\"s\": 2}')");
my $ops = $node->background_psql('postgres', on_error_stop => 1, extra_params => [ '-U', 'ops_a' ]);
$ops->query_safe("BEGIN");
$ops->query_safe("SELECT courier.run_maintenance()");
($ret, $out, $err) = $node->psql('postgres',
	"SET lock_timeout = '3s'; SELECT body->>'s' FROM courier.receive('secret', 'default', 1)",
	extra_params => [ '-U', 'app' ]);
is($out, '2', "a receive on a topic the maintainer does not administer is not held up ($err)");
$ops->query_safe("COMMIT");
$ops->quit;

unlike(slurp_file($node->logfile), qr/\b(XX\d\d\d|40P01)\b|terminated by signal/, 'no internal error, deadlock or crash');
$node->stop;
done_testing();
