# Concurrent stress: producers that commit or roll back at random, with
# random delays inside their transactions, against receivers of three
# groups that also roll back at random or let leases expire.  At the end,
# every committed message has reached every group and no message of an
# aborted transaction has reached any.
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use CourierTest;
use Test::More;
use IPC::Run;

my $node = courier_node('stress', conf => qq{
max_connections = 50
courier.worker_naptime = 200
}, extension => 0);

sql(q{
CREATE EXTENSION pg_courier CASCADE;
SELECT courier.create_topic('stress');
SELECT courier.create_group('stress', 'g1');
SELECT courier.create_group('stress', 'g2');
CREATE TABLE sent (id bigint PRIMARY KEY);
CREATE TABLE got (grp text, id bigint);
CREATE INDEX ON got (grp, id);
});

my $dir = PostgreSQL::Test::Utils::tempdir;
open(my $fh, '>', "$dir/produce.sql") or die;
print $fh q{
\set r random(0, 9)
\set d random(0, 5)
\set n random(1, 3)
BEGIN;
SELECT courier.send('stress', jsonb_build_object('r', :r)) AS id \gset
INSERT INTO sent VALUES (:id);
SELECT pg_sleep(:d / 1000.0);
\if :n = 3
SELECT count(*) FROM courier.send_batch('stress', ARRAY['{"b": 1}', '{"b": 2}']::jsonb[]);
\endif
\if :r < 3
ROLLBACK;
\else
COMMIT;
\endif
};
close $fh;
# batch messages are recorded separately: they commit with the transaction
open($fh, '>', "$dir/produce_batch.sql") or die;
print $fh q{
\set r random(0, 9)
BEGIN;
INSERT INTO sent SELECT id FROM courier.send_batch('stress', ARRAY['{"b": 1}', '{"b": 2}', '{"b": 3}']::jsonb[]) id;
SELECT pg_sleep(random() / 500);
\if :r < 3
ROLLBACK;
\else
COMMIT;
\endif
};
close $fh;
foreach my $g (qw(default g1 g2))
{
	open($fh, '>', "$dir/consume_$g.sql") or die;
	print $fh qq{
\\set r random(0, 9)
BEGIN;
SELECT coalesce(array_agg(id), '{}') AS ids FROM courier.receive('stress', '$g', 7, '2 seconds') \\gset
INSERT INTO got SELECT '$g', unnest(:ids::bigint[]);
\\if :r = 0
ROLLBACK;
\\elif :r = 1
COMMIT;
\\else
SELECT courier.ack('stress', '$g', :ids::bigint[]);
COMMIT;
\\endif
};
	close $fh;
}

my $connstr = $node->connstr('postgres');
my @procs;
push @procs, IPC::Run::start(['pgbench', '-n', '-c', '4', '-j', '2', '-T', '8', '-f', "$dir/produce.sql",
	'-f', "$dir/produce_batch.sql", $connstr], '>', "$dir/produce.out", '2>&1');
foreach my $g (qw(default g1 g2))
{
	push @procs, IPC::Run::start(['pgbench', '-n', '-M', 'prepared', '-c', '2', '-T', '8', '-f', "$dir/consume_$g.sql", $connstr],
		'>', "$dir/consume_$g.out", '2>&1');
}
foreach my $p (@procs)
{
	$p->finish;
}
note slurp_file("$dir/produce.out");
foreach my $g (qw(default g1 g2))
{
	my $out = slurp_file("$dir/consume_$g.out");
	note $out;
	like($out, qr/number of failed transactions: 0 /, "consumers of $g ran without errors");
}
sql("ANALYZE sent; ANALYZE got");

# the batch messages of produce.sql were not recorded in sent: remove them from the picture
my $batch_bodies = q{(SELECT id FROM courier.log_1_1 WHERE body ? 'b')};
my $committed = sql("SELECT count(*) FROM sent");
cmp_ok($committed, '>', 100, "producers committed $committed recorded messages");

# drain: keep receiving (and acking) until every group has everything committed
foreach my $g (qw(default g1 g2))
{
	my $ok = $node->poll_query_until('postgres', qq{
		WITH r AS (SELECT id FROM courier.receive('stress', '$g', 1000, '1 hour')),
		     i AS (INSERT INTO got SELECT '$g', id FROM r RETURNING id)
		SELECT courier.ack('stress', '$g', coalesce((SELECT array_agg(id) FROM i), '{}')) >= 0
		   AND NOT EXISTS (SELECT 1 FROM sent s WHERE NOT EXISTS
		                   (SELECT 1 FROM got g WHERE g.grp = '$g' AND g.id = s.id))});
	ok($ok, "group $g received every committed message");
	is(sql(qq{SELECT count(*) FROM sent s WHERE NOT EXISTS (SELECT 1 FROM got g WHERE g.grp = '$g' AND g.id = s.id)}),
		'0', "nothing committed is missing from $g");
}

# nothing from rolled-back transactions: every delivered id was committed
# (as a recorded message or as a batch message of produce.sql)
is(sql(qq{SELECT count(*) FROM got g WHERE NOT EXISTS (SELECT 1 FROM sent s WHERE s.id = g.id)
          AND g.id NOT IN $batch_bodies}), '0', 'no message of a rolled-back transaction was delivered');
is(sql(qq{SELECT count(*) FROM (SELECT DISTINCT id FROM got) d}),
	sql(qq{SELECT count(*) FROM (SELECT id FROM sent UNION SELECT id FROM courier.log_1_1 WHERE body ? 'b') x}),
	'every committed message was delivered, and only those');

# the maintenance jobs leave the groups consistent
sql("SELECT courier.run_maintenance()");
is(sql("SELECT string_agg(grp || ':' || backlog, ',' ORDER BY grp) FROM courier.groups"),
	'default:0,g1:0,g2:0', 'no backlog left');

$node->stop;
done_testing();
