# Issue 13, defect 6: group DDL behind a long poll stalled the whole group.
# The waiting receive held the group's lock while it slept; alter_group and
# drop_group queued for it, every later ack and receive queued behind them
# (an ack took 13 s), and with a 5 s lease the long poll woke at the lease's
# expiry and took the message again while its ack was blocked.
#
# Now: DDL on a group completes promptly while a receive waits (bounds are
# generous: well under the 30 s the receive waits), acks and receives do not
# queue, a short lease is not taken twice, and the long poll sees the change
# when it wakes up (a new filter; a dropped group or topic is a clean
# 42704).
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use CourierTest;
use Test::More;
use Time::HiRes qw(time);

my $node = courier_node('group_ddl', conf => qq{
log_line_prefix = '%m [%p] %e '
}, extension => 0);

# run a statement, return (its output, seconds it took)
sub timed
{
	my ($sql) = @_;
	my $t0 = time();
	my $out = sql($sql);
	return ($out, time() - $t0);
}

my $PROMPT = 10;	# seconds; the long polls wait 30

sql("CREATE EXTENSION pg_courier CASCADE");
sql("SELECT courier.create_topic('gd')");

# a long poll that prints what it got, or its error with the SQLSTATE
sub long_poll
{
	my ($topic, $grp) = @_;
	my $s = $node->background_psql('postgres', on_error_stop => 0);
	$s->query_safe("\\set VERBOSITY verbose");
	my $pid = $s->query_safe("SELECT pg_backend_pid()");
	$s->query_until(qr/started/,
		"\\echo started\nSELECT 'got ' || coalesce(string_agg(body->>'m', ',' ORDER BY id), 'nothing') "
		  . "FROM courier.receive('$topic', '$grp', 10, '1 hour', wait => '30 seconds');\n\\echo done\n");
	ok( $node->poll_query_until('postgres',
			"SELECT count(*) FROM pg_stat_activity WHERE pid = $pid AND wait_event_type = 'Extension'", '1'),
		"a long poll on $topic/$grp sleeps");
	return $s;
}

# DDL in a session of its own, in the background; returns a sub that waits
# for it to end and returns the seconds it took
sub ddl_in_background
{
	my ($sql) = @_;
	my $s = $node->background_psql('postgres', on_error_stop => 0);
	my $t0 = time();
	my $out = $s->query_until(qr/started/, "\\echo started\n$sql;\n\\echo ddl-done\n");
	my $took = $out =~ /ddl-done/ ? time() - $t0 : undef;
	return sub {
		if (!defined $took)
		{
			$s->query_until(qr/ddl-done/, "");
			$took = time() - $t0;
		}
		$s->quit;
		return $took;
	};
}

# ---- alter_group while a receive waits: it completes promptly, and acks
# and receives of the group do not queue behind it
sql("SELECT courier.send('gd', '{\"m\": \"m0\"}')");
is(sql("SELECT body->>'m' FROM courier.receive('gd', 'default', 1, '1 hour')"), 'm0', 'm0 is leased');
my $w = long_poll('gd', 'default');
my $ddl = ddl_in_background("SELECT courier.alter_group('gd', 'default', max_attempts => 5)");
my ($out, $secs) = timed("SELECT courier.ack('gd', 'default', id) FROM courier.find('gd', id => 1)");
is($out, 't', 'm0 is acked');
cmp_ok($secs, '<', $PROMPT, "the ack does not queue (${\ sprintf('%.2f', $secs)} s)");
($out, $secs) = timed("SELECT count(*) FROM courier.receive('gd', 'default', 10)");
cmp_ok($secs, '<', $PROMPT, "nor does another receive (${\ sprintf('%.2f', $secs)} s)");
$secs = $ddl->();
cmp_ok($secs, '<', $PROMPT, "alter_group completes promptly (${\ sprintf('%.2f', $secs)} s)");
is(sql("SELECT max_attempts FROM courier.groups WHERE topic = 'gd' AND grp = 'default'"), '5',
	'the change is in place');
sql("SELECT courier.send('gd', '{\"m\": \"w1\"}')");
like($w->query_until(qr/done/, ""), qr/got w1\n/, 'the long poll gets the next message');

# ---- the issue's case: a short lease, the long poll, alter_group, then the
# ack of the leased message: the long poll must not take it again when the
# lease would have run out.  (The issue had a 5 s lease; 15 s here, so that
# the ack comes before the expiry also on a loaded machine: starting the
# long poll and the DDL's session took 5.6 s once with four TAP scripts at
# a time on 2 cores, and the long poll then rightly took the expired lease.)
my $LEASE = 15;
sql("SELECT courier.send('gd', '{\"m\": \"m1\"}')");
my $t_leased = time();
my $m1 = sql("SELECT id FROM courier.receive('gd', 'default', 1, '$LEASE seconds')");
$w = long_poll('gd', 'default');
$ddl = ddl_in_background("SELECT courier.alter_group('gd', 'default', max_attempts => 6)");
($out, $secs) = timed("SELECT courier.ack('gd', 'default', $m1)");
my $t_acked = time();
is($out, 't', 'm1 is acked');
cmp_ok($secs, '<', $PROMPT, "the ack does not queue (${\ sprintf('%.2f', $secs)} s)");
$secs = $ddl->();
cmp_ok($secs, '<', $PROMPT, "alter_group completes promptly (${\ sprintf('%.2f', $secs)} s)");
cmp_ok($t_acked - $t_leased, '<', $LEASE, 'the ack came before the lease ran out (else the test proves nothing)');
sleep(1) while time() < $t_leased + $LEASE + 1.5;
sql("SELECT courier.send('gd', '{\"m\": \"m2\"}')");
like($w->query_until(qr/done/, ""), qr/got m2\n/, 'the long poll gets m2 only: m1 was not leased twice');
is(sql("SELECT state FROM courier.find('gd', id => $m1)"), 'acked', 'm1 is acked');

# ---- a new filter applies to a long poll that was waiting
$w = long_poll('gd', 'default');
($out, $secs) = timed("SELECT courier.alter_group('gd', 'default', filter => \$\$region = 'eu'\$\$)");
cmp_ok($secs, '<', $PROMPT, "alter_group (filter) completes promptly (${\ sprintf('%.2f', $secs)} s)");
sql("SELECT courier.send('gd', '{\"m\": \"us\"}', headers => '{\"region\": \"us\"}')");
sql("SELECT courier.send('gd', '{\"m\": \"eu\"}', headers => '{\"region\": \"eu\"}')");
like($w->query_until(qr/done/, ""), qr/got eu\n/, 'the long poll applies the new filter');

# ---- VACUUM FULL and REINDEX of pg_courier's tables while a receive waits
# (review 42): the sleeper gave back only its topic and group locks and kept
# AccessShareLock on courier.claim, courier.lease, the catalog tables and
# their indexes, so the DDL queued for the whole wait and every send and
# receive of the database queued behind the DDL.  Now it sleeps holding no
# relation lock: with lock_timeout, "queued" would be an error (55P03).
$w = long_poll('gd', 'default');
is( sql("SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
	  . "WHERE a.wait_event_type = 'Extension' AND l.locktype = 'relation'"),
	'0', 'the sleeping receive holds no relation lock');
is( sql("SET lock_timeout = '10s';\nVACUUM FULL courier.claim;\nREINDEX TABLE courier.lease;\n"
	  . "VACUUM FULL courier.group_meta;\nREINDEX TABLE courier.topic_meta;\nSELECT 'done'"),
	'done', 'VACUUM FULL and REINDEX TABLE do not queue behind it');
sql("SELECT courier.send('gd', '{\"m\": \"v1\"}', headers => '{\"region\": \"eu\"}')");
like($w->query_until(qr/done/, ""), qr/got v1\n/, 'the long poll gets the next message after them');

# ---- drop_group while a receive waits on it
sql("SELECT courier.create_group('gd', 'doomed', start_from => 'latest')");
$w = long_poll('gd', 'doomed');
($out, $secs) = timed("SELECT courier.drop_group('gd', 'doomed')");
cmp_ok($secs, '<', $PROMPT, "drop_group completes promptly (${\ sprintf('%.2f', $secs)} s)");
# (drop_group wakes the topic's sleepers at commit: no message needed, review 41)
my $t0 = time();
$w->query_until(qr/done/, "");
like($w->{stderr}, qr/ERROR:\s+42704: group "doomed" of topic "gd" does not exist/,
	'the long poll wakes up to a clean 42704');
cmp_ok(time() - $t0, '<', $PROMPT, 'at once, not at the end of its 30 s wait');
is(sql("SELECT count(*) FROM courier.claim c WHERE NOT EXISTS "
	  . "(SELECT 1 FROM courier.group_meta g WHERE g.group_id = c.group_id)"), '0',
	'it leaves no claims of the dropped group behind');

# ---- drop_topic while a receive waits on it
sql("SELECT courier.create_topic('gone')");
$w = long_poll('gone', 'default');
($out, $secs) = timed("SELECT courier.drop_topic('gone')");
cmp_ok($secs, '<', $PROMPT, "drop_topic completes promptly (${\ sprintf('%.2f', $secs)} s)");
# (query_until returns what the session printed and clears it from {stdout})
$t0 = time();
my $printed = $w->query_until(qr/done/, "");
like($w->{stderr} . $printed, qr/ERROR:\s+42704: (topic|group) .*does not exist/,
	'the long poll wakes up to a clean 42704');
cmp_ok(time() - $t0, '<', $PROMPT, 'at once, without a message to wake it');
$w->quit;

# the group works as before
sql("SELECT courier.send('gd', '{\"m\": \"m5\"}', headers => '{\"region\": \"eu\"}')");
is(sql("SELECT string_agg(body->>'m', ',') FROM courier.receive('gd', 'default', 10)"), 'm5',
	'receives go on');
unlike(slurp_file($node->logfile), qr/\b(XX\d\d\d|40P01)\b/, 'no internal error or deadlock in the server log');
$node->stop;
done_testing();
