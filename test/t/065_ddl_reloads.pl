# Creating or dropping N groups (or topics) in one transaction reloaded the
# session's whole catalog cache once per call, each reload reading every
# topic and group: O(N^2) time (3,200 groups in one transaction: 8 s of
# backend CPU, 800 drop_topic calls: 6 s).  Now the first change of a
# transaction queues the invalidation and reloads once; later changes of
# the same transaction re-read only what they changed (catalog.c).  This
# counts the reloads (a DEBUG1 line each) instead of timing anything, and
# checks that the objects are there for this session, and for another one
# after the commit.
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use CourierTest;
use Test::More;

my $node = courier_node('ddl_reloads', conf => "courier.worker = off\n");
sql("SELECT courier.create_topic('r')");
sql("SELECT courier.send('r', '{}')");

# another session, its cache loaded before the DDL
my $other = $node->background_psql('postgres');
$other->query_safe("SELECT count(*) FROM courier.peek('r', 'default')");

# the reloads of one session, counted in the server log
sub reloads
{
	my ($sqltext) = @_;
	my $offset = -s $node->logfile;
	my $out = $node->safe_psql('postgres',
		"SET log_min_messages = debug1;\nSELECT pg_backend_pid();\n$sqltext");
	my ($pid) = split /\n/, $out;
	my $log = slurp_file($node->logfile, $offset);
	my $n = () = $log =~ /\[\Q$pid\E\][^\n]*pg_courier: catalog cache reloaded/g;
	return ($n, $out);
}

my ($n, $out) = reloads(q{
BEGIN;
SELECT count(courier.create_group('r', 'g' || i)) FROM generate_series(1, 300) i;
SELECT count(*) FROM generate_series(1, 300) i, courier.receive('r', 'g' || i, 10, '0');
SELECT count(courier.drop_group('r', 'g' || i)) FROM generate_series(1, 100) i;
COMMIT;
});
like($out, qr/\n300\n300\n100$/, '300 groups created, each received the message, 100 dropped');
# (at least one: the first change of the transaction reloads, which also
# shows that the log line this test counts still exists)
ok($n >= 1 && $n <= 3, "300 creates, 300 receives and 100 drops in one transaction: $n reloads");

($n, $out) = reloads(q{
BEGIN;
SELECT count(courier.create_topic('t' || i)) FROM generate_series(1, 60) i;
SELECT count(courier.send('t' || i, '{}')) FROM generate_series(1, 60) i;
SELECT count(*) FROM generate_series(1, 60) i, courier.peek('t' || i, 'default', 10);
SELECT count(courier.drop_topic('t' || i)) FROM generate_series(1, 30) i;
COMMIT;
});
# (peek sees no message sent by a transaction still open)
like($out, qr/\n60\n60\n0\n30$/, '60 topics created, sent to, peeked at, 30 dropped');
ok($n >= 1 && $n <= 3, "60 topics created and 30 dropped in one transaction: $n reloads");

is($other->query_safe(q{
SELECT count(*) FROM generate_series(101, 300) i, courier.receive('r', 'g' || i, 10)}),
	'200', 'the other session receives from the groups created and kept');
is($other->query_safe(q{
SELECT count(*) FROM generate_series(31, 60) i, courier.receive('t' || i, 'default', 10)}),
	'30', 'and from the topics kept');

# a savepoint rolled back after the first change discards the queued
# invalidation: the later changes queue it again, or other sessions would
# never hear of them
($n, $out) = reloads(q{
BEGIN;
SAVEPOINT a;
SELECT courier.create_group('r', 'lost');
ROLLBACK TO a;
SELECT count(courier.create_group('r', 'k' || i)) FROM generate_series(1, 50) i;
COMMIT;
});
ok($n >= 1 && $n <= 4, "a rolled-back savepoint, then 50 creates: $n reloads");

is($other->query_safe(q{
SELECT count(*) FROM generate_series(1, 50) i, courier.receive('r', 'k' || i, 10)}),
	'50', 'the other session receives from the groups created after the rolled-back savepoint');
my ($ret, $stdout, $stderr) = $node->psql('postgres', "SELECT courier.peek('r', 'g1')");
like($stderr, qr/group "g1" of topic "r" does not exist/, 'a dropped group is gone');
is($other->query_safe(q{
DO $$
BEGIN
	PERFORM courier.peek('r', 'lost');
	RAISE EXCEPTION 'group "lost" exists';
EXCEPTION WHEN undefined_object THEN
	NULL;
END
$$;
SELECT 'gone'}), 'gone', 'the group of the rolled-back savepoint does not exist for the other session');

$other->quit;
done_testing();
