# A transaction's commit is visible to other snapshots before it sends its
# invalidation messages (ProcArrayEndTransaction comes before
# AtEOXact_Inval).  In between, another session can read a group or topic
# that transaction created in its own snapshot while its catalog cache
# does not have it yet.  courier._lock (f94f997) asks that cache whether the
# object still exists, and the administration functions raised 42704
# 'group "g" of topic "t" does not exist' for a group that did exist
# (_check_privilege likewise said 'topic with id N does not exist').  Now a
# miss is read again under a fresh snapshot before it is believed
# (catalog.c, CourierGroupExistsNow; DESIGN.md 5).
#
# The window is microseconds wide: this test holds the creator's backend
# in it with gdb (a breakpoint on AtEOXact_Inval), and is skipped where gdb
# cannot attach to a backend.
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use CourierTest;
use IPC::Run;
use Test::More;

plan skip_all => 'gdb is not available'
  unless system('gdb --version >/dev/null 2>&1') == 0;

my $node = courier_node('cache_lag', conf => "courier.worker = off\n");
sql("SELECT courier.create_topic('lag')");

# gdb must be allowed to attach to a backend (ptrace may be forbidden, by
# Yama or a container's seccomp profile): try once on an idle session
{
	my $probe = $node->background_psql('postgres');
	my $ppid = $probe->query_safe('SELECT pg_backend_pid()');
	my $attached = system("gdb -nx -batch -p $ppid -ex detach >/dev/null 2>&1") == 0;
	$probe->quit;
	plan skip_all => 'gdb cannot attach to a backend here' unless $attached;
}

my $dir = PostgreSQL::Test::Utils::tempdir();
my $n = 0;

# Run $create in a session held between its commit becoming visible and its
# invalidations, then $admin in a session whose cache was loaded before:
# returns what $admin printed (or its error).  If $admin waits for a lock
# the creator holds (a new topic's relations), the creator is let go.
sub in_window
{
	my ($create, $admin) = @_;
	$n++;
	my $reader = $node->background_psql('postgres', on_error_stop => 0);
	$reader->query_safe("SELECT count(*) FROM courier.peek('lag', 'default')");
	my $rpid = $reader->query_safe('SELECT pg_backend_pid()');
	my $creator = $node->background_psql('postgres');
	my $pid = $creator->query_safe('SELECT pg_backend_pid()');
	my ($hit, $go) = ("$dir/hit$n", "$dir/go$n");
	my ($gout, $gerr) = ('', '');
	my $gdb = IPC::Run::start(
		[
			'gdb', '-nx', '-batch', '-p', $pid,
			'-ex', 'break AtEOXact_Inval',
			'-ex', 'continue',
			'-ex', "shell touch $hit; while [ ! -e $go ]; do sleep 0.1; done",
			'-ex', 'detach'
		],
		'<', \undef, '>', \$gout, '2>', \$gerr);
	my $release = sub {
		open my $fh, '>', $go or die;
		close $fh;
	};
	# the breakpoint is set once gdb says so; the commit below waits for it
	my $deadline = time() + $PostgreSQL::Test::Utils::timeout_default;
	while ($gout !~ /Breakpoint 1 at/ && time() < $deadline && $gdb->pumpable)
	{
		$gdb->pump_nb;
		select(undef, undef, undef, 0.1);
	}
	if ($gout !~ /Breakpoint 1 at/)
	{
		$gdb->kill_kill;
		return "gdb failed: $gout $gerr";
	}
	# the creator's statement commits and stops at the breakpoint
	$creator->{stdin} .= "$create;\n";
	$creator->{run}->pump_nb;
	while (!-e $hit && time() < $deadline)
	{
		$gdb->pump_nb if $gdb->pumpable;
		select(undef, undef, undef, 0.1);
	}
	if (!-e $hit)
	{
		$release->();
		$gdb->kill_kill;
		return "the breakpoint was not reached: $gout $gerr";
	}
	$reader->{stdout} = '';
	$reader->{stderr} = '';
	$reader->{stdin} .= "$admin;\n\\echo 'in_window done'\n\\warn 'in_window done'\n";
	# whatever happens, the creator is let go (a backend gdb holds stops
	# the server from shutting down)
	my $released = 0;
	eval {
		while (time() < $deadline)
		{
			$reader->{run}->pump_nb;
			last
			  if $reader->{stdout} =~ /in_window done/
			  && $reader->{stderr} =~ /in_window done/;
			if (!$released
				&& $node->safe_psql('postgres',
					"SELECT wait_event_type FROM pg_stat_activity WHERE pid = $rpid") eq 'Lock')
			{
				$release->();
				$released = 1;
			}
			select(undef, undef, undef, 0.1);
		}
	};
	my $err = $@;
	$release->();
	$gdb->finish;
	die $err if $err;
	my $out = $reader->{stderr} =~ /ERROR/ ? $reader->{stderr} : $reader->{stdout};
	$out =~ s/\n?in_window done\n//;
	$creator->quit;
	$reader->quit;
	return $out;
}

my $out = in_window("SELECT courier.create_group('lag', 'g1')",
	"SELECT courier.pause_group('lag', 'g1')");
plan skip_all => "gdb cannot hold a backend here ($out)" if $out =~ /^gdb failed/;
is($out, '0', 'pause_group of a group whose creation was committing');

is(in_window("SELECT courier.create_group('lag', 'g2')",
	"SELECT courier.alter_group('lag', 'g2', max_attempts => 3)"), '',
	'alter_group likewise');
is(in_window("SELECT courier.create_group('lag', 'g3')",
	"SELECT courier.drop_group('lag', 'g3')"), '',
	'drop_group likewise');
is(in_window("SELECT courier.create_group('lag', 'g4')",
	"SELECT courier.redrive('lag', 'g4')"), '0',
	'redrive likewise');
is(in_window("SELECT courier.create_topic('lag2')",
	"SELECT courier.alter_topic('lag2', retention => '1 day')"), '0',
	'alter_topic of a topic whose creation was committing (_check_privilege, then _lock)');
is(in_window("SELECT courier.create_topic('lag3')",
	"SELECT courier.drop_topic('lag3')"), '',
	'drop_topic likewise');

# a group that really is gone is still reported as such
my ($ret, $stdout, $stderr) = $node->psql('postgres', "SELECT courier.pause_group('lag', 'g3')");
like($stderr, qr/group "g3" of topic "lag" does not exist/, 'a dropped group does not exist');

done_testing();
