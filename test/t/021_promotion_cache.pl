# Issue 7 section 1: a session opened on a standby lives through its
# promotion.  0.1.0 invalidated its caches only from commit callbacks,
# which never run during replay: such a session kept the segment list and
# the groups it had read before, lost messages sent to a segment created
# before the failover (claimed as passed over, find said acked), and saw
# "topic does not exist" / XX000 for DDL replayed meanwhile.  Here the
# same session, after promotion, receives every message (old and new
# segment), sends, uses a group created meanwhile, and gets a clean
# undefined_object error for a topic dropped meanwhile.
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(sleep);

my $conf = qq{
shared_preload_libraries = 'pg_courier'
courier.worker = off
log_line_prefix = '%m [%p] %e '
};
my $primary = PostgreSQL::Test::Cluster->new('primary');
$primary->init(allows_streaming => 1);
$primary->append_conf('postgresql.conf', $conf);
$primary->start;

sub p { return $primary->safe_psql('postgres', $_[0]); }
p("CREATE EXTENSION pg_courier CASCADE");
# a segment is sealed after a quarter of the retention (at least 1 second)
p("SELECT courier.create_topic('fo', retention => '4 seconds')");
p("SELECT courier.create_topic('gone')");
p("SELECT courier.send('fo', jsonb_build_object('n', n), keys => ARRAY['k']) FROM generate_series(1, 2) n");
p("SELECT courier.send('gone', '{\"n\": 1}')");

$primary->backup('base');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'base', has_streaming => 1);
$standby->start;
$primary->wait_for_catchup($standby);

# a session on the standby that has read everything once; sq() returns a
# query's output, or its error
my $s = $standby->background_psql('postgres', on_error_stop => 0);
sub sq
{
	my ($out) = $s->query($_[0]);
	my $err = $s->{stderr};
	$s->{stderr} = '';
	$err =~ s/^psql:<stdin>:\d+: //;
	chomp $err;
	return $err ne '' ? $err : $out;
}
is(sq("SELECT pg_is_in_recovery()"), 't', 'the session is on a standby');
is(sq("SELECT string_agg(body->>'n', ',' ORDER BY id) FROM courier.peek('fo', 'default', 10)"),
	'1,2', 'on the standby, the session peeks at both messages of fo');
is(sq("SELECT count(*) FROM courier.peek('gone', 'default', 10)"), '1', 'and at the topic gone');
is(sq("SELECT string_agg(topic || '/' || grp || ':' || backlog, ',' ORDER BY topic, grp) FROM courier.groups"),
	'fo/default:2,gone/default:1', 'and lists the groups');

# on the primary: a rotation (segment 2 of fo, created before the
# failover), a message into it, a new group, a dropped topic
my $seg0 = p("SELECT max(seg_no) FROM courier.segment JOIN courier.topic_meta USING (topic_id) WHERE name = 'fo'");
p("SELECT courier.send('fo', jsonb_build_object('n', n), keys => ARRAY['k']) FROM generate_series(3, 12) n");
sleep(1.2);
p("SELECT courier.run_maintenance()");
is(p("SELECT max(seg_no) FROM courier.segment JOIN courier.topic_meta USING (topic_id) WHERE name = 'fo'"),
	$seg0 + 1, 'the primary started a new segment of fo');
p("SELECT courier.send('fo', jsonb_build_object('n', n), keys => ARRAY['k']) FROM generate_series(13, 14) n");
p("SELECT courier.create_group('fo', 'late')");
p("SELECT courier.drop_topic('gone')");
$primary->wait_for_catchup($standby);

# still a standby: the session sees the replayed state
is(sq("SELECT count(*) FROM courier.peek('fo', 'default', 100)"), '14',
	'on the standby, the session sees the messages of both segments');

# failover
$primary->stop('immediate');
$standby->promote;
ok($standby->poll_query_until('postgres', "SELECT NOT pg_is_in_recovery()"), 'the standby was promoted');

# the same session, now on a primary
is(sq("SELECT pg_is_in_recovery()"), 'f', 'the session lived through the promotion');
is(sq("SELECT string_agg(body->>'n', ',' ORDER BY id) FROM courier.receive('fo', 'default', 100)"),
	join(',', 1 .. 14), 'it receives every message, from both segments');
my $id = sq("SELECT courier.send('fo', '{\"n\": 15}', keys => ARRAY['k'])");
cmp_ok($id, '>', 14, 'it sends');
is(sq("SELECT string_agg(body->>'n', ',' ORDER BY id) FROM courier.receive('fo', 'default', 100)"),
	'15', 'and receives what it sent');
is(sq("SELECT string_agg(body->>'n', ',' ORDER BY id) FROM courier.receive('fo', 'late', 100)"),
	join(',', 1 .. 15), 'the group created before the failover works');
is(sq("SELECT courier.send('gone', '{\"n\": 2}')"), 'ERROR:  topic "gone" does not exist',
	'the dropped topic is gone: clean error');
is(sq("SELECT count(*) FROM courier.receive('gone', 'default', 10)"), 'ERROR:  topic "gone" does not exist',
	'for receive too');
is(sq("SELECT string_agg(DISTINCT grp || ':' || state, ',') FROM courier.find('fo', key => 'k')"),
	'default:in_flight,late:in_flight', 'find: every message is in flight in both groups');
$s->quit;

# a new session agrees
is($standby->safe_psql('postgres', "SELECT string_agg(grp || ':' || backlog || '/' || in_flight, ',' ORDER BY grp) FROM courier.groups"),
	'default:0/15,late:0/15', 'a new session sees the same');

my $log = slurp_file($standby->logfile);
unlike($log, qr/\bXX000\b/, 'no XX000 in the log of the promoted standby');
$standby->stop;
done_testing();
