# pg_upgrade with pg_courier installed.  pg_upgrade starts both servers in
# binary-upgrade mode, where _PG_init installs nothing (no DDL guard, no
# shared memory, no worker: the worker must not rotate a segment while the
# schema is being dumped), and restores the run-time relations (segments,
# sequences) as ordinary tables.  The upgraded cluster delivers what was not
# delivered, and the guard is on again.
use strict;
use warnings FATAL => 'all';
use Cwd;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $conf = qq{
shared_preload_libraries = 'pg_courier'
courier.worker_naptime = 100
log_line_prefix = '%m [%p] %e '
};

my $old = PostgreSQL::Test::Cluster->new('old');
$old->init;
$old->append_conf('postgresql.conf', $conf);
$old->start;
$old->safe_psql('postgres', "CREATE EXTENSION pg_courier CASCADE");
$old->safe_psql('postgres', "SELECT courier.create_topic('orders', retention => '4 seconds')");
$old->safe_psql('postgres', "SELECT courier.send('orders', jsonb_build_object('n', g)) FROM generate_series(1, 3) g");
$old->safe_psql('postgres',
	"SELECT courier.ack('orders', 'default', ARRAY(SELECT id FROM courier.receive('orders', 'default', 1)))");
# let the worker rotate the topic, then send to the new segment
ok($old->poll_query_until('postgres', "SELECT count(*) >= 2 FROM courier.segment"), 'the worker rotated');
$old->safe_psql('postgres', "SELECT courier.send('orders', '{\"n\": 4}')");
my $segments = $old->safe_psql('postgres', "SELECT string_agg(relid::text, ',' ORDER BY seg_no) FROM courier.segment");
$old->stop;

my $new = PostgreSQL::Test::Cluster->new('new');
$new->init;
$new->append_conf('postgresql.conf', $conf);

my $bindir = $new->config_data('--bindir');
my $cwd = getcwd();
chdir $new->basedir;
command_ok(
	[
		'pg_upgrade', '--no-sync',
		'-d', $old->data_dir, '-D', $new->data_dir,
		'-b', $bindir, '-B', $bindir,
		'-s', $new->host,
		'-p', $old->port, '-P', $new->port
	],
	'pg_upgrade');
chdir $cwd;

$new->start;
sub sql { return $new->safe_psql('postgres', $_[0]); }
# (the worker may have rotated again since the start)
like(sql("SELECT string_agg(relid::text, ',' ORDER BY seg_no) FROM courier.segment"), qr/^\Q$segments\E/,
	'the segments came along');
is(sql("SELECT string_agg(id::text || ':' || (body->>'n'), ',' ORDER BY id) FROM courier.receive('orders', 'default', 10)"),
	'2:2,3:3,4:4', 'the upgraded cluster delivers what had not been delivered');
is(sql("SELECT courier.send('orders', '{\"n\": 5}')"), '5', 'ids go on');
my ($ret, $out, $err) = $new->psql('postgres', "ALTER TABLE courier.log_1_1 ADD COLUMN note text");
like($err, qr/ALTER TABLE is not allowed on relation "courier.log_1_1"/, 'the guard is on again');
# DROP EXTENSION while a session reads the catalog tables, in either order:
# a catalog-cache reload reads topic_meta, then segment, then group_meta;
# the views read group_meta before topic_meta.  pg_upgrade recreated the
# members in pg_dump's order, and the standard DROP, locking them in
# pg_depend's order, took group_meta before topic_meta: a deadlock with the
# worker's reload, once.  The guard takes the three without ever waiting
# for one while holding another (guard.c, lock_catalog_tables).  First the
# views' order, with a DROP that is rolled back; then the reload's order.
my $drop_waits = "SELECT count(*) > 0 FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
  . "WHERE NOT l.granted AND a.query LIKE '%DROP EXTENSION%'";
sub drop_beside_reader
{
	my ($first, $then, $drop, $what) = @_;
	my $reader = $new->background_psql('postgres');
	$reader->query_safe("BEGIN");
	$reader->query_safe("SELECT count(*) FROM courier.$first");
	my $dropper = $new->background_psql('postgres', on_error_stop => 0);
	$dropper->query_until(qr/started/, "\\echo started\n$drop\n\\echo drop-ended\n");
	ok($new->poll_query_until('postgres', $drop_waits), "$what: DROP EXTENSION waits for the reader");
	$reader->query_safe("SELECT count(*) FROM courier.$_") foreach @$then;
	$reader->query_safe("COMMIT");
	$dropper->query_until(qr/drop-ended/, "");
	my $err = $dropper->{stderr} // '';
	$dropper->quit;
	$reader->quit;
	unlike($err, qr/deadlock|ERROR/, "$what: and then drops, no deadlock");
}
drop_beside_reader('group_meta', ['topic_meta'], 'BEGIN; DROP EXTENSION pg_courier; ROLLBACK;',
	'group_meta, then topic_meta');
is(sql("SELECT courier.send('orders', '{\"n\": 6}')"), '6', 'the rolled-back drop left the extension working');
drop_beside_reader('topic_meta', ['segment', 'group_meta'], 'DROP EXTENSION pg_courier;',
	'topic_meta, segment, then group_meta');
is(sql("SELECT count(*) FROM pg_class WHERE relname ~ '^(log_|seq_)[0-9]'"), '0',
	'DROP EXTENSION drops the upgraded segments');

unlike(slurp_file($new->logfile), qr/\bXX000\b/, 'no XX000 in the server log');
$new->stop;
done_testing();
