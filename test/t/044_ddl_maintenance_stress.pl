# Issue 13, defects 7 and 9 under load: no deadlock (40P01) between
# alter_group / drop_group and the worker's compaction, nor between
# drop_topic and reclaim; and maintenance rounds that run at the same time
# (the worker every 20 ms, and run_maintenance() in a loop) never fail with
# 'relation "log_N_M" already exists' (42P07, 23505, 42710).  For about 20
# seconds: a producer, a consumer, a loop of group DDL (alter_group, and
# create_group / receive / ack / drop_group), two loops of short-lived
# topics that rotate and get reclaimed while drop_topic comes for them, and
# a loop of run_maintenance().  Every loop catches its errors and logs them
# as warnings ("i13 error SQLSTATE: message"); the server log must show no
# deadlock, no duplicate relation and no internal error.
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use CourierTest;
use Test::More;

my $SECONDS = 20;

my $node = courier_node('ddl_stress', conf => qq{
courier.worker_naptime = '20ms'
log_line_prefix = '%m [%p] %e '
deadlock_timeout = '100ms'
max_connections = 30
});

sql("SELECT courier.create_topic('st', retention => '2 seconds')");
sql("SELECT courier.create_group('st', 'g1')");

# each loop: a procedure that runs its body, catching and logging errors,
# and commits, until the end time
my %loops = (
	producer => q{
		PERFORM courier.send_batch('st', array_fill('{"p": 1}'::jsonb, ARRAY[20]));
	},
	consumer => q{
		PERFORM courier.ack('st', 'default', coalesce(array_agg(id), '{}'))
		   FROM courier.receive('st', 'default', 50);
		PERFORM courier.ack('st', 'g1', coalesce(array_agg(id), '{}'))
		   FROM courier.receive('st', 'g1', 50);
	},
	group_ddl => q{
		PERFORM courier.alter_group('st', 'g1', max_attempts => 5 + i % 3);
		COMMIT;
		PERFORM courier.create_group('st', 'g2');
		COMMIT;
		PERFORM courier.ack('st', 'g2', coalesce(array_agg(id), '{}'))
		   FROM courier.receive('st', 'g2', 200);
		COMMIT;
		PERFORM pg_sleep(0.05);
		PERFORM courier.alter_group('st', 'g2', filter => 'p > 0');
		COMMIT;
		PERFORM pg_sleep(0.05);
		PERFORM courier.drop_group('st', 'g2');
	},
	maintenance => q{
		PERFORM courier.run_maintenance();
		COMMIT;
		PERFORM pg_sleep(0.01);
	},
);
# short-lived topics: created, fed, rotated and reclaimed by the worker,
# dropped at a time that walks across the rotation and the reclaim
foreach my $n (1, 2)
{
	$loops{"topic_ddl_$n"} = qq{
		PERFORM courier.create_topic('t${n}_' || i, retention => '1 second');
		COMMIT;
		PERFORM courier.send('t${n}_' || i, '{"t": 1}');
		COMMIT;
		PERFORM courier.ack('t${n}_' || i, 'default', array_agg(id))
		   FROM courier.receive('t${n}_' || i, 'default', 10);
		COMMIT;
		PERFORM pg_sleep(1.1);
		PERFORM courier.send('t${n}_' || i, '{"t": 2}');
		COMMIT;
		PERFORM courier.ack('t${n}_' || i, 'default', array_agg(id))
		   FROM courier.receive('t${n}_' || i, 'default', 10);
		COMMIT;
		PERFORM pg_sleep(0.5 + ($n - 1) * 0.4 + (i % 5) * 0.3);
		PERFORM courier.drop_topic('t${n}_' || i);
	};
}

my @sessions;
foreach my $name (sort keys %loops)
{
	# a body with COMMITs inside it cannot catch errors around them: the
	# body's statements are split at COMMIT, each part caught on its own
	my @parts = split /COMMIT;/, $loops{$name};
	my $part = 0;
	my $body = join("\n\t\tCOMMIT;\n",
		map {
			$part++;
			"\t\tBEGIN\n$_\n\t\tEXCEPTION WHEN OTHERS THEN\n"
			  . "\t\t\tGET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL, context = PG_EXCEPTION_CONTEXT;\n"
			  . "\t\t\tRAISE WARNING 'i13 error %: % (loop $name, part $part, round %)', SQLSTATE, SQLERRM, i\n"
			  . "\t\t\t\tUSING DETAIL = detail || E'\\n' || context;\n\t\tEND;"
		} @parts);
	sql(qq{CREATE PROCEDURE loop_$name(seconds float8) LANGUAGE plpgsql AS \$\$
DECLARE
	stop timestamptz := clock_timestamp() + seconds * interval '1 second';
	i integer := 0;
	detail text;
	context text;
BEGIN
	WHILE clock_timestamp() < stop LOOP
		i := i + 1;
$body
		COMMIT;
	END LOOP;
	RAISE NOTICE 'loop $name: % rounds', i;
END;
\$\$});
	my $s = $node->background_psql('postgres', on_error_stop => 0);
	$s->query_until(qr/started/, "\\echo started\nCALL loop_$name($SECONDS);\n\\echo loop-done\n");
	push @sessions, [ $name, $s ];
}

foreach my $entry (@sessions)
{
	my ($name, $s) = @$entry;
	$s->query_until(qr/loop-done/, "");
	like($s->{stderr}, qr/loop $name: \d+ rounds/, "loop $name ran to its end");
	my ($rounds) = $s->{stderr} =~ /loop $name: (\d+) rounds/;
	note("loop $name: " . ($rounds // '?') . " rounds");
	$s->quit;
}

# the queue still works
sql("SELECT courier.create_group('st', 'after', start_from => 'latest')");
sql("SELECT courier.send('st', '{\"last\": true}')");
is(sql("SELECT string_agg(body::text, ',') FROM courier.receive('st', 'after', 10)"), '{"last": true}',
	'the topic still delivers');

my $log = slurp_file($node->logfile);
my @deadlocks = $log =~ /^.*\b40P01\b.*$/mg;
note($_) foreach ($log =~ /^.*(?:i13 error|40P01).*\n(?:.*(?:DETAIL|CONTEXT|PL\/pgSQL|SQL statement|^\s).*\n)*/mg);
is(scalar(@deadlocks), 0, 'no deadlock (40P01)') or diag(join("\n", @deadlocks[0 .. ($#deadlocks < 9 ? $#deadlocks : 9)]));
my @duplicates = $log =~ /^.*(?:\b(?:42P07|23505|42710)\b|already exists).*$/mg;
is(scalar(@duplicates), 0, 'no "already exists" (42P07, 23505, 42710)')
  or diag(join("\n", @duplicates[0 .. ($#duplicates < 9 ? $#duplicates : 9)]));
my @internal = $log =~ /^.*\bXX\d\d\d\b.*$/mg;
is(scalar(@internal), 0, 'no internal error') or diag(join("\n", @internal[0 .. ($#internal < 9 ? $#internal : 9)]));
my @other = grep { !/\b(40P01|42P07|23505|42710|XX\d\d\d)\b/ } ($log =~ /^.*WARNING:  i13 error .*$/mg);
is(scalar(@other), 0, 'no other error in the loops') or diag(join("\n", @other[0 .. ($#other < 9 ? $#other : 9)]));
$node->stop;
done_testing();
