# courier.metrics() through Debian's prometheus-postgres-exporter: the test
# starts the exporter on loopback with the queries file the repository
# ships (contrib/prometheus/queries.yaml), connected as a pg_monitor role,
# scrapes it over HTTP and finds pg_courier's numbers; then stops it.
use strict;
use warnings FATAL => 'all';
use HTTP::Tiny;
use IO::Socket::INET;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use CourierTest;
use Test::More;

my $exporter = '/usr/bin/prometheus-postgres-exporter';
plan skip_all => "$exporter is not installed" unless -x $exporter;

my $root = $ENV{COURIER_ROOT} // '.';
my $queries = "$root/contrib/prometheus/queries.yaml";
$queries = "$root/test/../contrib/prometheus/queries.yaml" unless -f $queries;
ok(-f $queries, 'the queries file is shipped');

# a free loopback port (56800-56899 unless COURIER_PORT_BASE says otherwise)
sub free_port
{
	my $base = $ENV{COURIER_PORT_BASE} // 56800;
	for my $p ($base + 10 .. $base + 99)
	{
		my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1', LocalPort => $p, ReuseAddr => 0);
		next unless $s;
		close $s;
		return $p;
	}
	die "no free port";
}

my $node = courier_node('metrics', conf => qq{
courier.worker_naptime = 1
log_line_prefix = '%m [%p] %e '
});

sql("SELECT courier.create_topic('orders')");
sql("SELECT courier.create_group('orders', 'billing')");
sql("SELECT courier.send('orders', jsonb_build_object('n', g)) FROM generate_series(1, 5) g");
sql("SELECT count(*) FROM courier.receive('orders', 'default', 2, '1 hour')");
sql("SELECT courier.pause_group('orders', 'billing')");
sql("CREATE ROLE exporter LOGIN IN ROLE pg_monitor");
ok($node->poll_query_until('postgres', "SELECT courier._last_maintenance() IS NOT NULL"),
	'the worker has run a round');

my $port = free_port();
my $dsn = sprintf("host=%s port=%d user=exporter dbname=postgres sslmode=disable",
	$node->host, $node->port);
my $log = $node->basedir . '/exporter.log';
my $pid = fork();
die "fork: $!" unless defined $pid;
if ($pid == 0)
{
	$ENV{DATA_SOURCE_NAME} = $dsn;
	open(STDOUT, '>', $log);
	open(STDERR, '>&', \*STDOUT);
	exec($exporter, "--web.listen-address=127.0.0.1:$port", "--extend.query-path=$queries",
		'--disable-default-metrics', '--disable-settings-metrics', '--log.level=warn');
	die "exec: $!";
}

my $body = '';
my $http = HTTP::Tiny->new(timeout => 5);
for (1 .. 300)
{
	my $res = $http->get("http://127.0.0.1:$port/metrics");
	if ($res->{success} && $res->{content} =~ /courier_group_backlog/)
	{
		$body = $res->{content};
		last;
	}
	select(undef, undef, undef, 0.1);
}
kill 'TERM', $pid;
waitpid($pid, 0);

sub metric
{
	my ($name, %labels) = @_;
	for my $line (split /\n/, $body)
	{
		next unless $line =~ /^\Q$name\E\{([^}]*)\}\s+(\S+)$/;
		my ($l, $v) = ($1, $2);
		my $all = 1;
		for my $k (keys %labels)
		{
			$all = 0 unless $l =~ /\b$k="\Q$labels{$k}\E"/;
		}
		return $v + 0 if $all;
	}
	return undef;
}

ok($body ne '', 'the exporter serves pg_courier metrics') or diag(slurp_file($log));
is(metric('courier_group_backlog', topic => 'orders', grp => 'default'), 3, 'backlog of a group');
is(metric('courier_group_in_flight', topic => 'orders', grp => 'default'), 2, 'in flight');
is(metric('courier_group_backlog', topic => 'orders', grp => 'billing'), 5, 'backlog of another group');
is(metric('courier_group_paused', topic => 'orders', grp => 'billing'), 1, 'paused');
is(metric('courier_group_backlog_exact', topic => 'orders', grp => 'billing'), 1, 'exact');
is(metric('courier_topic_messages', topic => 'orders'), 5, 'messages of the topic');
is(metric('courier_topic_segments', topic => 'orders'), 1, 'segments');
ok(metric('courier_topic_bytes', topic => 'orders') > 0, 'bytes on disk');
ok(metric('courier_group_unacked_age_seconds', topic => 'orders', grp => 'default') >= 0, 'lag as a time');
my $age = metric('courier_database_maintenance_age_seconds');
ok(defined $age && $age >= 0 && $age < 600, 'seconds since the last maintenance round');
like($body, qr/# HELP courier_group_backlog /, 'with help texts');
unlike(slurp_file($log), qr/level=error/, 'the exporter logged no error') or diag(slurp_file($log));

unlike(slurp_file($node->logfile), qr/\bXX000\b/, 'no XX000 in the server log');
$node->stop;
done_testing();
