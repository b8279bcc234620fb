# CourierTest: the cluster set-up that pg_courier's TAP scripts share.
#
#   use lib ...;                    # prove -I test/perl (make test and
#   use CourierTest;                # make prove_installcheck pass it)
#
#   my $node = courier_node('wait');                 # init, preload, start,
#                                                    # CREATE EXTENSION pg_courier CASCADE
#   my $node = courier_node('worker', conf => "courier.worker_naptime = 100\n",
#                           init => { allows_streaming => 1 });
#   sql("SELECT courier.create_topic('t')");         # safe_psql on the first node, db postgres
#   sql("SELECT 1", 'otherdb');
#   courier_root()                                   # the checkout (chaos scripts, contrib/)
#
# Options of courier_node: init (hash of PostgreSQL::Test::Cluster::init
# options), conf (more postgresql.conf lines, after
# shared_preload_libraries = 'pg_courier'), preload (0: leave it out),
# start (0: do not start, nor create the extension), extension (0: do not
# create it), db (where to create it, postgres).  The first node made is the
# one sql() talks to; courier_use($node) changes that.
package CourierTest;

use strict;
use warnings FATAL => 'all';
use Exporter 'import';
use Cwd 'abs_path';
use File::Basename 'dirname';
use PostgreSQL::Test::Cluster;
use IPC::Run;
use Test::More ();
use Time::HiRes ();

our @EXPORT = qw(courier_node courier_use sql courier_root courier_databases);

# One initdb per test run: test/run.sh makes a data directory with the
# options PostgreSQL::Test::Cluster::init gives initdb (-A trust -N) and
# names it in COURIER_INITDB_TEMPLATE; a node's init then copies it instead
# of running initdb again (about 1.2 s each on a 2-core machine; PostgreSQL
# 17's Cluster.pm does the same).  Any other initdb call runs as before.
{
	no warnings 'redefine';
	my $real = \&PostgreSQL::Test::Utils::system_or_bail;
	*PostgreSQL::Test::Utils::system_or_bail = sub {
		my $tpl = $ENV{COURIER_INITDB_TEMPLATE};
		if (defined $tpl && -f "$tpl/PG_VERSION" && @_ == 6
			&& $_[0] eq 'initdb' && $_[1] eq '-D' && $_[3] eq '-A' && $_[4] eq 'trust' && $_[5] eq '-N'
			&& !-e $_[2])
		{
			system('cp', '-a', $tpl, $_[2]) == 0
			  or die "could not copy the initdb template $tpl to $_[2]";
			return;
		}
		return $real->(@_);
	};
}

# poll_query_until with a widening interval.  PostgreSQL's polls every 0.1
# s, each time with a new psql and a new backend: on a 2-core virtual machine
# that is about 0.1 s of CPU an attempt (two process starts), so a test
# waiting on a worker round kept most of a core busy polling, and three
# scripts waiting side by side starved the servers they wait on.  Here the
# first attempts still come 0.1 s apart; the interval then grows by half up
# to 0.5 s.  The deadline is what Cluster.pm documents, timeout_default
# seconds (by the clock rather than by counting attempts), with one last
# attempt after it.  Same arguments, same result, same diagnostics.
{
	no warnings 'redefine';
	*PostgreSQL::Test::Cluster::poll_query_until = sub {
		my ($self, $dbname, $query, $expected) = @_;
		local %ENV = $self->_get_env();
		$expected = 't' unless defined($expected);
		my $cmd = [ $self->installed_command('psql'), '-XAt', '-d', $self->connstr($dbname) ];
		my ($stdout, $stderr);
		my $deadline = Time::HiRes::time() + $PostgreSQL::Test::Utils::timeout_default;
		my $pause = 0.1;
		for (;;)
		{
			IPC::Run::run($cmd, '<', \$query, '>', \$stdout, '2>', \$stderr);
			chomp($stdout);
			chomp($stderr);
			return 1 if $stdout eq $expected && $stderr eq '';
			last if Time::HiRes::time() >= $deadline;
			Time::HiRes::usleep(int($pause * 1_000_000));
			$pause = $pause * 1.5 > 0.5 ? 0.5 : $pause * 1.5;
		}
		my $msg_query = defined $query ? $query : '(connection attempt only)';
		Test::More::diag("poll_query_until timed out executing this query:\n$msg_query\n"
			  . "expecting this output:\n$expected\nlast actual query output:\n$stdout\n"
			  . "with stderr:\n$stderr");
		return 0;
	};
}

my $current;

sub courier_node
{
	my ($name, %opt) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init(%{ $opt{init} // {} });
	my $conf = '';
	$conf .= "shared_preload_libraries = 'pg_courier'\n" unless defined $opt{preload} && !$opt{preload};
	$conf .= $opt{conf} if defined $opt{conf};
	$node->append_conf('postgresql.conf', $conf) if $conf ne '';
	$current //= $node;
	return $node if defined $opt{start} && !$opt{start};
	$node->start;
	$node->safe_psql($opt{db} // 'postgres', 'CREATE EXTENSION pg_courier CASCADE')
	  unless defined $opt{extension} && !$opt{extension};
	return $node;
}

sub courier_use { $current = $_[0]; return $current; }

# sql(QUERY [, DB]): safe_psql on the current node
sub sql
{
	my ($query, $db) = @_;
	die "CourierTest::sql: no node yet" unless $current;
	return $current->safe_psql($db // 'postgres', $query);
}

# courier_databases(NODE, NAME...): create each database with pg_courier and
# a topic 't', then wait until a worker round has finished in each (an
# assertion "NAME is maintained" per database), for the worker pool's tests
sub courier_databases
{
	my ($node, @dbs) = @_;
	for my $db (@dbs)
	{
		$node->safe_psql('postgres', "CREATE DATABASE $db");
		$node->safe_psql($db, "CREATE EXTENSION pg_courier CASCADE;\nSELECT courier.create_topic('t');");
	}
	for my $db (@dbs)
	{
		Test::More::ok($node->poll_query_until($db,
			'SELECT last_finished IS NOT NULL FROM courier._maintenance_status()', 't'), "$db is maintained");
	}
}

# the checkout (or make test's copy of it): $COURIER_ROOT, or two levels up from here
sub courier_root
{
	return $ENV{COURIER_ROOT} // abs_path(dirname(__FILE__) . '/../..');
}

1;
