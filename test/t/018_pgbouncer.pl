# pg_courier behind pgbouncer in transaction pooling mode: 50 client
# connections (25 producers, 25 consumers) over 5 server connections.
# Producers send and send_batch inside and outside explicit transactions
# (and roll some back); consumers receive with wait, ack and nack, inside
# and outside explicit transactions.  Every committed message is received
# and acked (nothing lost), no rolled-back message ever shows up, and the
# server connections are left clean: no open transaction, no lock of
# pg_courier's, the default search_path and role.
use strict;
use warnings FATAL => 'all';
use IO::Socket::INET;
use IPC::Run;
use POSIX ':sys_wait_h';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use CourierTest;
use Test::More;

my $pgbouncer = '/usr/sbin/pgbouncer';
plan skip_all => "$pgbouncer is not installed" unless -x $pgbouncer;

my $PRODUCERS = 25;
my $CONSUMERS = 25;
my $ROUNDS = 10;			# per producer: 5 committed messages a round
my $ITERATIONS = 40;		# per consumer

sub free_port
{
	my $base = $ENV{COURIER_PORT_BASE} // 56800;
	for my $p ($base + 20 .. $base + 99)
	{
		my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1', LocalPort => $p, ReuseAddr => 0);
		next unless $s;
		close $s;
		return $p;
	}
	die "no free port";
}

my $node = courier_node('bouncer', conf => qq{
log_line_prefix = '%m [%p] %e '
});
sql("SELECT courier.create_topic('pool')");
sql("CREATE TABLE seen (id bigint, client int, how text)");
my $user = sql("SELECT current_user");

# pgbouncer, transaction pooling, 5 server connections for everyone
my $port = free_port();
my $dir = $node->basedir . '/pgbouncer';
mkdir $dir;
open(my $fh, '>', "$dir/userlist.txt");
print $fh "\"$user\" \"\"\n";
close $fh;
open($fh, '>', "$dir/pgbouncer.ini");
print $fh <<"EOF";
[databases]
courier = host=${\$node->host} port=${\$node->port} dbname=postgres
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = trust
auth_file = $dir/userlist.txt
admin_users = $user
pool_mode = transaction
default_pool_size = 5
max_db_connections = 5
max_client_conn = 200
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
ignore_startup_parameters = extra_float_digits
EOF
close $fh;
my $bouncer = IPC::Run::start([ $pgbouncer, "$dir/pgbouncer.ini" ], '>', "$dir/stdout", '2>&1');
my $up = 0;
for (1 .. 100)
{
	my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port);
	if ($s) { close $s; $up = 1; last; }
	select(undef, undef, undef, 0.1);
}
ok($up, 'pgbouncer listens');

my @psql = ('psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-h', '127.0.0.1', '-p', $port, '-U', $user);

# producers: 5 committed messages and 1 rolled back per round
sub producer_script
{
	my ($p) = @_;
	my $s = "\\! sleep 2\n";	# every client connected before the traffic starts
	for my $r (1 .. $ROUNDS)
	{
		my $i = $r * 10;
		$s .= "SELECT courier.send('pool', jsonb_build_object('p', $p, 'i', $i + 1)) AS x \\gset\n";
		$s .= "BEGIN;\nSELECT courier.send('pool', jsonb_build_object('p', $p, 'i', $i + 2)) AS x \\gset\n"
		  . "SELECT count(*) FROM courier.send_batch('pool', ARRAY[jsonb_build_object('p', $p, 'i', $i + 3), "
		  . "jsonb_build_object('p', $p, 'i', $i + 4)]) \\gset\nCOMMIT;\n";
		$s .= "BEGIN;\nSELECT courier.send('pool', jsonb_build_object('p', $p, 'rolled_back', true)) AS x \\gset\n"
		  . "ROLLBACK;\n";
		$s .= "SELECT count(*) FROM courier.send_batch('pool', ARRAY[jsonb_build_object('p', $p, 'i', $i + 5)]) \\gset\n";
	}
	return $s;
}

# consumers: receive with wait, then ack (or nack the first one)
sub consumer_script
{
	my ($c) = @_;
	my $s = '';
	for my $k (1 .. $ITERATIONS)
	{
		my $recv = "SELECT coalesce(string_agg(id::text, ','), '') AS ids FROM courier.receive('pool', 'default', 5, "
		  . "'1 minute', wait => '0.2 seconds') \\gset\n";
		my $arr = "('{' || :'ids' || '}')::bigint[]";
		if ($k % 7 == 0)
		{
			# nack the first one (it comes back), ack the rest
			$s .= $recv;
			$s .= "SELECT count(courier.nack('pool', 'default', x, delay => '0')) FROM unnest(($arr)[1:1]) x "
			  . "\\gset\n";
			$s .= "BEGIN;\nINSERT INTO seen SELECT i, $c, 'ack' FROM unnest(($arr)[2:]) i;\n"
			  . "SELECT courier.ack('pool', 'default', ($arr)[2:]) \\gset\nCOMMIT;\n";
		}
		elsif ($k % 2 == 0)
		{
			# receive, record and ack in one explicit transaction
			$s .= "BEGIN;\n$recv";
			$s .= "INSERT INTO seen SELECT i, $c, 'tx' FROM unnest($arr) i;\n";
			$s .= "SELECT courier.ack('pool', 'default', $arr) \\gset\nCOMMIT;\n";
		}
		else
		{
			# every statement on its own
			$s .= $recv;
			$s .= "INSERT INTO seen SELECT i, $c, 'auto' FROM unnest($arr) i;\n";
			$s .= "SELECT courier.ack('pool', 'default', $arr) \\gset\n";
		}
	}
	return $s;
}

# start a client; its pid
sub spawn
{
	my ($out, @cmd) = @_;
	my $pid = fork();
	die "fork: $!" unless defined $pid;
	if ($pid == 0)
	{
		open(STDOUT, '>', $out);
		open(STDERR, '>&', \*STDOUT);
		exec(@cmd);
		die "exec: $!";
	}
	return $pid;
}

my @clients;
my %status;
for my $p (1 .. $PRODUCERS)
{
	my $f = "$dir/producer_$p.sql";
	open($fh, '>', $f);
	print $fh "\\! while [ ! -e $dir/go ]; do sleep 0.05; done\n" . producer_script($p);
	close $fh;
	push @clients, spawn("$dir/producer_$p.out", @psql, '-d', 'courier', '-f', $f);
}
for my $c (1 .. $CONSUMERS)
{
	my $f = "$dir/consumer_$c.sql";
	open($fh, '>', $f);
	print $fh "\\! while [ ! -e $dir/go ]; do sleep 0.05; done\n\\! sleep 2\n" . consumer_script($c);
	close $fh;
	push @clients, spawn("$dir/consumer_$c.out", @psql, '-d', 'courier', '-f', $f);
}

# watch the pools while the clients run; every client connects, then waits
# for the file "go" before its first statement (without that barrier, under
# load the first clients could finish before the last connected, and the
# count of clients at once measured the machine's speed)
my ($max_clients, $max_servers) = (0, 0);
my $deadline = time() + 600;
while (time() < $deadline)
{
	my $clients = `psql -X -At -h 127.0.0.1 -p $port -U $user -d pgbouncer -c 'SHOW CLIENTS' 2>/dev/null`;
	my $nc = grep { /\|courier\|/ } split /\n/, $clients;
	$max_clients = $nc if $nc > $max_clients;
	last if $nc >= scalar(@clients);
	select(undef, undef, undef, 0.2);
}
open($fh, '>', "$dir/go");
close $fh;
while (scalar(keys %status) < scalar(@clients) && time() < $deadline)
{
	for my $pid (@clients)
	{
		next if exists $status{$pid};
		my $r = waitpid($pid, WNOHANG);
		$status{$pid} = $? if $r == $pid;
	}
	my $clients = `psql -X -At -h 127.0.0.1 -p $port -U $user -d pgbouncer -c 'SHOW CLIENTS' 2>/dev/null`;
	my $servers = `psql -X -At -h 127.0.0.1 -p $port -U $user -d pgbouncer -c 'SHOW SERVERS' 2>/dev/null`;
	my $nc = grep { /\|courier\|/ } split /\n/, $clients;
	my $ns = grep { /\|postgres\|/ } split /\n/, $servers;
	$max_clients = $nc if $nc > $max_clients;
	$max_servers = $ns if $ns > $max_servers;
	select(undef, undef, undef, 0.2);
}
my $failed = 0;
for my $pid (@clients)
{
	unless (exists $status{$pid})
	{
		kill 'KILL', $pid;
		waitpid($pid, 0);
		$status{$pid} = -1;
	}
	$failed++ if $status{$pid} != 0;
}
is($failed, 0, 'every client ran without an error');
if ($failed)
{
	for my $f (glob("$dir/*.out"))
	{
		my $t = slurp_file($f);
		diag("$f: $t") if $t ne '';
	}
}
is($max_clients, $PRODUCERS + $CONSUMERS, "$max_clients client connections at once");
ok($max_servers > 0 && $max_servers <= 5, "over at most 5 server connections ($max_servers)");

# the server connections pgbouncer keeps are clean
my $server_state = sql("SELECT count(*) FILTER (WHERE state <> 'idle'), "
	  . "count(*) FILTER (WHERE backend_xid IS NOT NULL OR backend_xmin IS NOT NULL) "
	  . "FROM pg_stat_activity WHERE datname = 'postgres' AND pid <> pg_backend_pid() "
	  . "AND backend_type = 'client backend'");
is($server_state, '0|0', 'no server connection is left in a transaction');
is(sql("SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
	  . "WHERE a.pid <> pg_backend_pid() AND l.locktype = 'advisory'"), '0',
	'no server connection holds a lock of pg_courier\'s');
my $session = `psql -X -At -h 127.0.0.1 -p $port -U $user -d courier -c "SELECT current_setting('search_path') || '|' || current_user || '|' || current_setting('role')"`;
chomp $session;
is($session, "\"\$user\", public|$user|none", 'search_path and role are the defaults after the traffic');

# drain what is left (nacked messages that came back late), then count
sql("INSERT INTO seen SELECT id, 0, 'drain' FROM courier.receive('pool', 'default', 10000)");
sql("SELECT courier.ack('pool', 'default', ARRAY(SELECT id FROM seen WHERE how = 'drain'))");
my $committed = $PRODUCERS * $ROUNDS * 5;
is(sql("SELECT count(DISTINCT body) FROM courier.peek('pool', 'default', 10)"), '0', 'nothing left to receive');
my $log = sql("SELECT string_agg(relid::text, ' UNION ALL SELECT id, body FROM ') FROM courier.segment");
is(sql("SELECT count(*) FROM (SELECT id, body FROM $log) m WHERE m.body ? 'rolled_back'"), '0',
	'no rolled-back message is in the log');
is(sql("SELECT count(*) FROM (SELECT id, body FROM $log) m"), $committed, "$committed messages committed");
is(sql("SELECT count(*) FROM (SELECT id FROM $log) m WHERE m.id NOT IN (SELECT id FROM seen)"), '0',
	'every committed message was received and acked (nothing lost)');
is(sql("SELECT count(*) FROM seen WHERE id NOT IN (SELECT id FROM $log)"), '0', 'and nothing else');
is(sql("SELECT in_flight + retrying + backlog FROM courier.groups WHERE topic = 'pool'"), '0',
	'nothing in flight or retrying');

$bouncer->signal('TERM');
$bouncer->finish;
unlike(slurp_file($node->logfile), qr/\bXX000\b/, 'no XX000 in the server log');
$node->stop;
done_testing();
