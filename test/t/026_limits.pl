# Issue 7 section 6: courier.max_topics and courier.max_groups.  0.1.0 did
# not enforce them: entries beyond them were taken from the server's spare
# shared memory (which the lock manager needs), and once that ran out the
# worker logged an error per topic per round (100k lines in 33 s).  Here,
# with small limits, topics and groups beyond them are refused with a clear
# error (SQLSTATE 53400, configuration_limit_exceeded) when they are created
# in one database, and when more exist than the server allows (over all
# databases, or after the limits were lowered) when they are used,
# the spare shared memory does not shrink, the worker does not flood the
# log, and dropping topics makes room again.
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use CourierTest;
use Test::More;
use Time::HiRes qw(sleep);

my $node = courier_node('limits', conf => qq{
courier.max_topics = 16
courier.max_groups = 32
courier.worker_naptime = 50
log_line_prefix = '%m [%p] %e '
});
sql(q{
CREATE FUNCTION try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE stmt;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ' ' || SQLERRM;
END;
$$;
});

my $free_sql = "SELECT size FROM pg_shmem_allocations WHERE name IS NULL";

# ---- churn: topics and groups created, used and dropped one at a time, each
# statement in a new session (as migrations, tests and admin tools do).  A
# dropped topic's or group's shared entry must be freed, or after max_topics
# such cycles no topic can be used any more until a restart.
my @refused;
for my $i (1 .. 20)
{
	sql("SELECT courier.create_topic('churn$i')");
	my $r = sql("SELECT try('SELECT courier.send(''churn$i'', ''{}'')')");
	push @refused, $i if $r ne 'ok';
	sql("SELECT try('SELECT count(*) FROM courier.receive(''churn$i'')')");
	sql("SELECT courier.drop_topic('churn$i')");
}
is(join(',', @refused), '', 'topic churn: every topic could be used while it existed');
sql("SELECT courier.create_topic('after_churn')");
is(sql("SELECT try('SELECT courier.send(''after_churn'', ''{}'')')"), 'ok',
	'after 20 topics were created, used and dropped (max_topics = 16), a new topic can be used');
sql("SELECT courier.drop_topic('after_churn')");
$node->restart;
sql("SELECT courier.create_topic('after_churn')");
@refused = ();
for my $i (1 .. 40)
{
	sql("SELECT courier.create_group('after_churn', 'g$i')");
	my $r = sql("SELECT try('SELECT count(*) FROM courier.receive(''after_churn'', ''g$i'')')");
	push @refused, $i if $r ne 'ok';
	sql("SELECT courier.drop_group('after_churn', 'g$i')");
}
is(join(',', @refused), '', 'group churn: every group could be used while it existed');
sql("SELECT courier.create_group('after_churn', 'last')");
is(sql("SELECT try('SELECT count(*) FROM courier.receive(''after_churn'', ''last'')')"), 'ok',
	'after 40 groups were created, used and dropped (max_groups = 32), a new group can be used');
sql("SELECT courier.drop_topic('after_churn')");
# whatever happened above, start the next part with empty tables
$node->restart;

my $free0 = sql($free_sql);
note "spare shared memory at start: $free0 bytes";

# creation beyond the limits is refused at once (53400), in this database
is(sql(q{SELECT try('SELECT courier.create_topic(''t'' || n) FROM generate_series(1, 40) n')}) =~ /^53400 too many topics/ ? 'refused' : 'accepted',
	'refused', 'creating more topics than courier.max_topics fails with 53400');
# ... but a database can still hold more than the server allows in use: the
# limits are over all databases, and an operator may lower them.  40 topics
# (and their 40 default groups: more than max_groups too), created with higher
# limits, then the server restarted with the low ones.
$node->append_conf('postgresql.conf', "courier.max_topics = 64\ncourier.max_groups = 64\n");
$node->restart;
sql("SELECT courier.create_topic('t' || n) FROM generate_series(1, 40) n");
is(sql("SELECT count(*) FROM courier.topic_meta"), '40', '40 topics created');
$node->append_conf('postgresql.conf', "courier.max_topics = 16\ncourier.max_groups = 32\n");
$node->restart;
$free0 = sql($free_sql);
# the monitoring views must keep working whatever the limits: they are how
# an operator finds out which topics there are
is(sql("SELECT try('SELECT count(*) FROM courier.topics')"), 'ok', 'the topics view works with more topics than max_topics');
is(sql("SELECT try('SELECT count(*) FROM courier.groups')"), 'ok', 'the groups view works with more groups than max_groups');

# use every one of them
my $out = sql(q{
SELECT r, count(*) FROM (
  SELECT CASE WHEN r = 'ok' THEN 'ok' ELSE left(r, 5) END AS r
    FROM generate_series(1, 40) n,
         LATERAL try(format('SELECT courier.send(%L, ''{}'')', 't' || n)) r) x
 GROUP BY r ORDER BY r});
note "sends: $out";
my %res = map { split /\|/ } split /\n/, $out;
cmp_ok($res{ok} // 0, '<=', 16, 'at most courier.max_topics topics can be used');
cmp_ok($res{ok} // 0, '>=', 1, 'some can');
is(($res{ok} // 0) + ($res{'53400'} // 0), 40, 'the others are refused with SQLSTATE 53400');
like(sql(q{SELECT r FROM generate_series(1, 40) n, LATERAL try(format('SELECT courier.send(%L, ''{}'')', 't' || n)) r
           WHERE r <> 'ok' LIMIT 1}),
	qr/^53400 too many topics in use/, 'with a clear message');
is(sql(q{SELECT count(*) FROM generate_series(1, 40) n,
         LATERAL try(format('SELECT count(*) FROM courier.receive(%L)', 't' || n)) r WHERE r NOT IN ('ok') AND r NOT LIKE '53400 %'}),
	'0', 'receives fail only with 53400 too');

# the worker runs rounds over all 40 topics for a while
my $log_start = -s $node->logfile;
sleep(3);
my $log = slurp_file($node->logfile, $log_start);
my $worker_errors = () = $log =~ /\b53400\b[^\n]*ERROR/g;
note "53400 errors logged in 3 s (about 60 worker rounds over 40 topics): $worker_errors";
cmp_ok($worker_errors, '<=', 40, 'the worker does not log an error per topic per round');

my $free1 = sql($free_sql);
note "spare shared memory now: $free1 bytes";
is($free1, $free0, 'the spare shared memory did not shrink');

# usable topics still work end to end
my $usable = sql(q{SELECT string_agg(n::text, ',' ORDER BY n) FROM generate_series(1, 40) n,
                   LATERAL try(format('SELECT courier.send(%L, ''{}'')', 't' || n)) r WHERE r = 'ok'});
my @usable = split /,/, $usable;
my $t = $usable[0];
cmp_ok(sql("SELECT count(*) FROM courier.receive('t$t', 'default', 100)"), '>=', 1, "a usable topic (t$t) delivers");

# dropping topics makes room: every topic becomes usable once enough are gone
# (the session loads its catalog cache first: the churn test above covers
# sessions that do not)
sql("SELECT courier.ack('t$t', 'default', 0); SELECT courier.drop_topic('t' || n) FROM unnest('{$usable}'::int[]) n");
my $left = sql("SELECT count(*) FROM courier.topic_meta");
is($left, 40 - scalar(@usable), 'the usable topics were dropped');
my $ok = 0;
for (1 .. 50)
{
	$out = sql(q{SELECT count(*) FROM courier.topic_meta m, LATERAL try(format('SELECT courier.send(%L, ''{}'')', m.name)) r
	             WHERE r = 'ok'});
	if ($out >= 16 || $out == $left) { $ok = 1; last; }
	sleep(0.1);
}
ok($ok, "after the drop, topics that were refused can be used ($out of $left)");
is(sql($free_sql), $free0, 'the spare shared memory still did not shrink');

# groups: the limit is enforced on use as well
sql("SELECT courier.ack(name, 'default', 0) FROM courier.topic_meta LIMIT 1; SELECT courier.drop_topic(name) FROM courier.topic_meta");
$node->restart;
sql("SELECT courier.create_topic('g')");
like(sql(q{SELECT try('SELECT courier.create_group(''g'', ''g'' || n) FROM generate_series(1, 40) n')}),
	qr/^53400 too many consumer groups/, 'creating more groups than courier.max_groups fails with 53400');
# more groups than the server allows in use, as above: created with higher limits
$node->append_conf('postgresql.conf', "courier.max_groups = 64\n");
$node->restart;
sql("SELECT courier.create_group('g', 'g' || n) FROM generate_series(1, 40) n");
$node->append_conf('postgresql.conf', "courier.max_groups = 32\n");
$node->restart;
$free0 = sql($free_sql);
sql("SELECT courier.send('g', '{}')");
$out = sql(q{
SELECT r, count(*) FROM (
  SELECT CASE WHEN r = 'ok' THEN 'ok' ELSE left(r, 5) END AS r
    FROM generate_series(1, 40) n,
         LATERAL try(format('SELECT count(*) FROM courier.receive(%L, %L)', 'g', 'g' || n)) r) x
 GROUP BY r ORDER BY r});
note "receives: $out";
%res = map { split /\|/ } split /\n/, $out;
cmp_ok($res{ok} // 0, '<=', 32, 'at most courier.max_groups groups can be used');
is(($res{ok} // 0) + ($res{'53400'} // 0), 40, 'the others are refused with SQLSTATE 53400');
like(sql(q{SELECT r FROM generate_series(1, 40) n, LATERAL try(format('SELECT count(*) FROM courier.receive(%L, %L)', 'g', 'g' || n)) r
           WHERE r <> 'ok' LIMIT 1}),
	qr/^53400 too many consumer groups in use/, 'with a clear message');
is(sql($free_sql), $free0, 'the spare shared memory did not shrink');

$log = slurp_file($node->logfile);
unlike($log, qr/\bXX000\b/, 'no XX000 in the server log');
unlike($log, qr/out of shared memory/, 'never out of shared memory');
$node->stop;
done_testing();
