# Failover under the chaos load (issue 8 section 2), twice there and back,
# once with a synchronous standby and once with an asynchronous one.
#
# Node a is the primary, node b its standby.  test/chaos/chaos.py runs the
# chaos load (every client-side fault: rotations, run_maintenance, group DDL,
# pg_terminate_backend of sessions and of the worker) through a libpq
# connection string naming both nodes with target_session_attrs=read-write, so
# its sessions follow the primary; two more of its sessions are opened on the
# standby, read the views, find() and peek() there, live through the
# promotion and then produce and consume on the same backend.  The test kills
# the primary, promotes the standby, rewinds the old primary with pg_rewind
# and restarts it as a standby, then fails over back the same way.  At the
# end chaos.py drains and runs the same checker as the chaos suite (one
# definition of the rules: test/chaos/checker.py).
#
# sync:  synchronous_commit = on with the standby in synchronous_standby_names
#        (a failover happens only while the standby is synchronous and caught
#        up): nothing the client saw commit may be missing.
# async: no synchronous standby.  What may be lost is exactly the transactions
#        whose COMMIT returned on the old primary but had not reached the
#        standby: their messages (never delivered), their deliveries and their
#        acks (so a message acked there is delivered again).  The checker counts
#        those from the client's records (async_lost_commits) and every other
#        rule still holds on what the new primary has.
#
# The test asserts behaviour only: the checker's verdict, the standby sessions
# surviving promotion on their backend, the worker running only on the
# primary.  It waits for progress (rows), never for a time.
use strict;
use warnings FATAL => 'all';
use File::Basename qw(dirname);
use File::Copy;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;

my $root = $ENV{COURIER_ROOT} // dirname(__FILE__) . '/../..';
my $chaos = "$root/test/chaos/chaos.py";
my $python = -x '/usr/bin/python3' ? '/usr/bin/python3' : 'python3';

# the load of the running mode: never leave it behind if the test dies
my $load;
END { $load->kill_kill if $load && $load->pumpable; }

foreach my $mode ('sync', 'async')
{
	run_mode($mode);
}
done_testing();

# rows of chaos.sent on a node (optionally only those sent by the standby sessions)
sub sent_count
{
	my ($node, $standby_only) = @_;
	my $where = $standby_only ? "WHERE (headers->>'p')::int >= 100" : '';
	my ($rc, $out) = $node->psql('postgres', "SELECT count(*) FROM chaos.sent $where");
	return $rc == 0 ? $out : -1;
}

# wait until a node has $more rows more than it had
sub wait_for_traffic
{
	my ($node, $more, $standby_only, $what) = @_;
	my $base = sent_count($node, $standby_only);
	$base = 0 if $base < 0;
	my $target = $base + $more;
	my $where = $standby_only ? "WHERE (headers->>'p')::int >= 100" : '';
	ok($node->poll_query_until('postgres', "SELECT count(*) >= $target FROM chaos.sent $where"),
		"$what");
}

# the worker runs on the primary and not on the standby
sub check_worker
{
	my ($primary, $standby, $what) = @_;
	ok($primary->poll_query_until('postgres',
			"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'pg_courier worker'"),
		"$what: the worker runs on the primary");
	is($standby->safe_psql('postgres',
			"SELECT count(*) FROM pg_stat_activity WHERE backend_type LIKE 'pg_courier%'"),
		'0', "$what: no pg_courier worker or launcher on the standby");
}

# the standby is streaming (and synchronous when asked) and has replayed everything
sub wait_standby
{
	my ($primary, $standby, $mode) = @_;
	my $state = $mode eq 'sync' ? 'sync' : 'async';
	ok($primary->poll_query_until('postgres',
			"SELECT count(*) = 1 FROM pg_stat_replication WHERE state = 'streaming' AND sync_state = '$state'"),
		"$mode: standby " . $standby->name . " streams ($state)");
	$primary->wait_for_catchup($standby);
}

# kill the primary, promote the standby
sub failover
{
	my ($old, $new, $mode) = @_;
	$old->stop('immediate');
	$new->promote;
	ok($new->poll_query_until('postgres', "SELECT NOT pg_is_in_recovery()"),
		"$mode: " . $new->name . " promoted");
	# no synchronous standby until the old primary rejoins (or commits would
	# wait for it): what an HA manager does without strict synchronous mode
	$new->append_conf('postgresql.conf', "synchronous_standby_names = ''");
	$new->reload;
}

# rewind the old primary from the new one and start it as a standby
sub rejoin
{
	my ($old, $new, $mode) = @_;
	my $conf = $old->data_dir . '/postgresql.conf';
	# pg_rewind copies the source's configuration (and removes files the
	# source lacks): keep our own (port, role) outside the data directory
	my $keep = PostgreSQL::Test::Utils::tempdir . '/postgresql.conf';
	copy($conf, $keep) or die "copy: $!";
	# the promoted node's control file names its new timeline only after a
	# checkpoint; without it pg_rewind sees one timeline and does nothing
	$new->safe_psql('postgres', 'CHECKPOINT');
	command_ok(['pg_rewind', '--target-pgdata=' . $old->data_dir,
			'--source-server=' . $new->connstr('postgres')],
		"$mode: pg_rewind " . $old->name . " from " . $new->name);
	copy($keep, $conf) or die "copy: $!";
	unlink($old->data_dir . '/postgresql.auto.conf');
	$old->enable_streaming($new);
	$old->start;
	if ($mode eq 'sync')
	{
		$new->append_conf('postgresql.conf', "synchronous_standby_names = '*'");
		$new->reload;
	}
}

sub run_mode
{
	my ($mode) = @_;
	my $a = PostgreSQL::Test::Cluster->new("${mode}_a");
	$a->init(allows_streaming => 1);
	$a->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'pg_courier'
log_line_prefix = '%m [%p] %e '
max_connections = 80
max_prepared_transactions = 20
wal_log_hints = on
# pg_rewind reads the old primary's WAL back to the last common checkpoint
wal_keep_size = '1GB'
courier.segment_size = 1000
courier.worker_naptime = 20
courier.maintenance_batch = 200
log_statement = none
});
	$a->start;
	system_or_bail($python, $chaos, 'setup', '--dsn', $a->connstr('postgres'));
	$a->backup('base');
	my $b = PostgreSQL::Test::Cluster->new("${mode}_b");
	$b->init_from_backup($a, 'base', has_streaming => 1);
	$b->start;
	if ($mode eq 'sync')
	{
		$a->append_conf('postgresql.conf', "synchronous_standby_names = '*'\nsynchronous_commit = on");
		$a->reload;
	}
	wait_standby($a, $b, $mode);
	check_worker($a, $b, "$mode, start");

	# the load: sessions that follow the primary, and two sessions on b
	my $dir = PostgreSQL::Test::Utils::tempdir;
	my $both = sprintf("host=%s,%s port=%d,%d dbname=postgres target_session_attrs=read-write",
		$a->host, $b->host, $a->port, $b->port);
	my @cmd = ($python, $chaos, 'run', '--no-setup', '--dsn', $both,
		'--standby-dsn', $b->connstr('postgres'), '--stop-file', "$dir/stop",
		'--records', "$dir/records.jsonl", '--report', "$dir/report.txt",
		'--log', $a->logfile, '--log', $b->logfile, '--scenario', "failover-$mode",
		'--producers', '3', '--consumers', '8');
	push @cmd, '--async-failover' if $mode eq 'async';
	push @cmd, '--seed', $ENV{CHAOS_SEED} if $ENV{CHAOS_SEED};
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start(\@cmd, '>', \$out, '2>', \$err);
	$load = $h;

	wait_for_traffic($a, 300, 0, "$mode: traffic on a");
	wait_standby($a, $b, $mode);
	failover($a, $b, $mode);
	wait_for_traffic($b, 300, 0, "$mode: traffic on b after the failover");
	wait_for_traffic($b, 20, 1, "$mode: the sessions opened on standby b produce after its promotion");
	rejoin($a, $b, $mode);
	wait_standby($b, $a, $mode);
	check_worker($b, $a, "$mode, after the first failover");
	wait_for_traffic($b, 300, 0, "$mode: traffic on b with a as its standby");

	failover($b, $a, $mode);
	wait_for_traffic($a, 300, 0, "$mode: traffic on a after failing back");
	rejoin($b, $a, $mode);
	wait_standby($a, $b, $mode);
	check_worker($a, $b, "$mode, after failing back");
	wait_for_traffic($a, 200, 0, "$mode: traffic on a with b as its standby again");

	# stop the load; chaos.py drains with the faults off and runs the checker
	open(my $fh, '>', "$dir/stop") or die;
	close $fh;
	$h->finish;
	my $rc = $? >> 8;
	$load = undef;
	note $out;
	note $err if $err ne '';
	my ($summary) = $out =~ /^(chaos summary: .*)$/m;
	ok(defined $summary, "$mode: the checker printed its summary");
	diag($summary // 'no summary');
	is($rc, 0, "$mode: the checker found nothing (report: $dir/report.txt)")
	  or diag(slurp_file("$dir/report.txt"));
	like($out, qr/chaos: standby session chaos-s0: first backend (\d+), \d+ read rounds in recovery, [1-9]\d* produce\+consume rounds after promotion on backends \[[^]]*\b\1\b/,
		"$mode: a session opened on the standby lived through the promotion and then produced and consumed on the same backend");
	if ($mode eq 'sync')
	{
		like($summary // '', qr/ lost=0 /, 'sync: nothing committed was lost');
	}
	else
	{
		like($summary // '', qr/ async_lost_commits=\d+/, 'async: the commits lost with the old primary are counted');
	}
	$a->stop;
	$b->stop;
}
