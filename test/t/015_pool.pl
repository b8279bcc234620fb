# The worker pool (issue 7 section 6, issue 13 items 10 and 11): more
# databases than worker slots all get maintenance, round after round; the
# pool never runs more workers than courier.max_workers; the launcher's
# memory stays flat with courier.databases set to a list; killed workers and
# a killed launcher come back, and so does everything after a crash
# restart; databases can be created and dropped (also while a worker serves
# them, also as templates) many more times than there are slots or status
# entries, and a new database still gets maintenance; a worker error that
# repeats every round is logged once, not every round.
#
# Every wait is a poll with the harness's generous timeout: the test asserts
# what happens, never how fast.
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use CourierTest qw(courier_node);
use Test::More;
use Time::HiRes qw(sleep);

my $node = courier_node('pool', conf => qq{
courier.worker_naptime = 100
courier.max_workers = 2
courier.max_databases = 16
max_worker_processes = 16
restart_after_crash = on
log_line_prefix = '%m [%p] %e %b '
}, extension => 0);

sub sql { my ($db, $q) = @_; return $node->safe_psql($db, $q); }
sub now { return sql('postgres', 'SELECT clock_timestamp()'); }

# a database with the extension and one message whose lease ends at once in
# a group that allows one attempt: only the worker can dead-letter it
# (one psql for the statements in the new database: each psql and its
# backend cost about 0.1 s of CPU on a 2-core VM, and this runs 33 times; psql
# reads them from stdin, so each statement is still a transaction of its own)
sub setup_db
{
	my ($db, %opt) = @_;
	sql('postgres', "CREATE DATABASE $db" . ($opt{template} ? " TEMPLATE $opt{template}" : ''));
	my $out = sql($db, ($opt{template} ? '' : "CREATE EXTENSION pg_courier CASCADE;\n"
		  . "SELECT courier.create_topic('t');\n")
		. "SELECT courier.create_group('t', 'g$db', max_attempts => 1);\n"
		. "SELECT courier.send('t', '{}');\n"
		. "SELECT 'leased:' || count(*) FROM courier.receive('t', 'g$db', 1, '0');");
	is(($out =~ /^leased:(\d+)$/m)[0], '1', "$db: a message leased");
}

# wait until every database had a maintenance round that started after $t
# and ended without error
sub all_maintained_after
{
	my ($t, @dbs) = @_;
	for my $db (@dbs)
	{
		return 0 unless $node->poll_query_until($db,
			"SELECT last_started > '$t' AND last_finished >= last_started AND last_error IS NULL "
			. "FROM courier._maintenance_status()", 't');
	}
	return 1;
}

my $workers = "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_courier worker'";

# the most workers seen at once in $samples looks $pause seconds apart, from
# one session (pg_stat_clear_snapshot: a transaction keeps its first view of
# pg_stat_activity); a psql per look cost 0.1 s of CPU and came 0.3 s apart
sql('postgres', q{
CREATE FUNCTION most_workers(samples int, pause float8) RETURNS int LANGUAGE plpgsql AS $$
DECLARE
	most int := 0;
	n int;
BEGIN
	FOR i IN 1 .. samples LOOP
		PERFORM pg_stat_clear_snapshot();
		SELECT count(*) INTO n FROM pg_stat_activity WHERE backend_type = 'pg_courier worker';
		most := greatest(most, n);
		PERFORM pg_sleep(pause);
	END LOOP;
	RETURN most;
END;
$$});

# ---- 12 databases, 2 slots ------------------------------------------------
my @dbs = map { sprintf('db%02d', $_) } 1 .. 12;
setup_db($_) for @dbs;

# Each turn samples the number of workers and looks at the first database
# not yet seen done (a dead letter stays, so a database seen done stays done).
my $max_seen = 0;
my $done = 0;
my $next = 0;
for (1 .. 1800)
{
	my $n = sql('postgres', $workers);
	$max_seen = $n if $n > $max_seen;
	$next++ while $next < @dbs
	  && sql($dbs[$next], "SELECT count(*) FROM courier.dead_letters WHERE grp = 'g$dbs[$next]'") eq '1';
	$done = $next == @dbs;
	last if $done;
	sleep(0.1);
}
ok($done, 'every one of 12 databases got maintenance from 2 worker slots');
cmp_ok($max_seen, '<=', 2, "never more than courier.max_workers workers at once (saw $max_seen)");

# and they keep getting it, round after round: three full turns
for my $turn (1 .. 3)
{
	ok(all_maintained_after(now(), @dbs), "turn $turn: every database had another round");
}
cmp_ok(sql('postgres', $workers), '<=', 2, 'still at most 2 workers');

# courier.max_workers lowered by a reload: the pool shrinks, and still
# serves everyone
$node->append_conf('postgresql.conf', "courier.max_workers = 1\n");
$node->reload;
ok($node->poll_query_until('postgres', "SELECT ($workers) <= 1", 't'), 'the pool shrinks to 1 worker after a reload');
my $t1 = now();
$max_seen = sql('postgres', 'SELECT most_workers(100, 0.1)');
cmp_ok($max_seen, '<=', 1, "and stays there (saw $max_seen)");
ok(all_maintained_after($t1, @dbs), 'one worker still serves all 12 databases');
$node->append_conf('postgresql.conf', "courier.max_workers = 2\n");
$node->reload;

# a malformed courier.databases is refused
my ($rc, $out, $err) = $node->psql('postgres', "ALTER SYSTEM SET courier.databases = 'a,,b'");
like($err, qr/invalid value for parameter "courier.databases"/, 'a malformed courier.databases is refused');

# ---- the launcher's memory stays flat -----------------------------------
sub launcher_pid
{
	return sql('postgres', "SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_courier launcher'");
}
sub launcher_scans
{
	return sql('postgres', "SELECT coalesce(substring(query from '(\\d+) scans'), '0') "
		. "FROM pg_stat_activity WHERE backend_type = 'pg_courier launcher'");
}
sub launcher_memory
{
	my $pid = launcher_pid();
	my $off = -s $node->logfile;
	sql('postgres', "SELECT pg_log_backend_memory_contexts($pid)");
	for (1 .. 600)
	{
		my $log = slurp_file($node->logfile, $off);
		return $1 if $log =~ /\[$pid\] [^\n]*Grand total: (\d+) bytes/;
		sleep(0.1);
	}
	die "the launcher did not log its memory contexts";
}

# (with one slot: thirteen databases keep the pool turning over, a worker
# launched for every round, at half the CPU two slots take)
$node->append_conf('postgresql.conf',
	"courier.max_workers = 1\n"
	. "courier.databases = 'postgres, " . join(', ', @dbs) . ", nosuchdb1, nosuchdb2, \"Mixed Case\"'\n");
$node->reload;
my $scans0 = launcher_scans();
ok($node->poll_query_until('postgres',
	"SELECT coalesce(substring(query from '(\\d+) scans')::int, 0) > $scans0 + 50 "
	. "FROM pg_stat_activity WHERE backend_type = 'pg_courier launcher'", 't'),
	'the launcher reads pg_database again and again');
my $mem0 = launcher_memory();
$scans0 = launcher_scans();
# (150 scans and 32 kB: a leak of 220 bytes a scan or more fails, as with
# the 300 scans and 64 kB this section had; the memory did not move at all)
ok($node->poll_query_until('postgres',
	"SELECT coalesce(substring(query from '(\\d+) scans')::int, 0) > $scans0 + 150 "
	. "FROM pg_stat_activity WHERE backend_type = 'pg_courier launcher'", 't'),
	'150 more scans with courier.databases set to a list');
my $mem1 = launcher_memory();
note "launcher memory: $mem0 bytes, then $mem1 bytes after 150 scans";
cmp_ok($mem1 - $mem0, '<', 32 * 1024, "the launcher's memory stays flat ($mem0 -> $mem1 bytes)");
ok(all_maintained_after(now(), @dbs), 'listed databases are still maintained');
$node->append_conf('postgresql.conf', "courier.max_workers = 2\n");
$node->reload;

# ---- a reload that takes databases out of courier.databases stops their workers

# list only the first database, reload, and wait until no worker serves another
sub only_first_listed
{
	my ($name) = @_;
	$node->append_conf('postgresql.conf', "courier.databases = '$dbs[0]'\n");
	$node->reload;
	ok($node->poll_query_until('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_courier worker' AND datname <> '$dbs[0]'", '0'),
		$name);
}

# Two listed databases and two slots: each keeps its worker (nobody waits for
# a slot).  Then the list shrinks to one: the other database's worker must
# leave.  The launcher used to leave it serving its database until it had to
# make room for another one, which here never happens.
$node->append_conf('postgresql.conf', "courier.databases = '$dbs[0], $dbs[1]'\n");
$node->reload;
ok($node->poll_query_until('postgres',
	"SELECT count(DISTINCT datname) = 2 AND count(*) FILTER (WHERE datname NOT IN ('$dbs[0]', '$dbs[1]')) = 0 "
	. "FROM pg_stat_activity WHERE backend_type = 'pg_courier worker'", 't'),
	'two listed databases, two slots: one worker each, none elsewhere');
only_first_listed('after a reload, no worker serves a database no longer in courier.databases');
my $t_out = now();
ok(all_maintained_after($t_out, $dbs[0]) && all_maintained_after(now(), $dbs[0]),
	'the database still listed is maintained, round after round');
is(sql($dbs[1], "SELECT count(*) FROM courier._maintenance_status() WHERE last_started >= '$t_out'"), '0',
	'a database taken out of the list got no round since');

# The same after a restart of the launcher: the workers of its predecessor
# run on, and the new launcher must count them (it used to know only the
# workers it had started itself: a database got a second worker, and one
# taken out of the list kept its worker).  Four slots for two databases:
# the new launcher has free slots and nobody waits for one, so nothing makes
# the predecessor's workers leave on their own.
$node->append_conf('postgresql.conf', "courier.databases = '$dbs[0], $dbs[1]'\ncourier.max_workers = 4\n");
$node->reload;
ok($node->poll_query_until('postgres',
	"SELECT count(DISTINCT datname) = 2 FROM pg_stat_activity WHERE backend_type = 'pg_courier worker'", 't'),
	'two listed databases again, one worker each');
my $old_launcher = launcher_pid();
sql('postgres', "SELECT pg_terminate_backend($old_launcher)");
ok($node->poll_query_until('postgres',
	"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_courier launcher' AND pid <> $old_launcher", '1'),
	'a new launcher');
my $scans_new = launcher_scans();
my $twins = 0;
for (1 .. 600)
{
	$twins++ if sql('postgres', "SELECT count(*) > count(DISTINCT datname) FROM pg_stat_activity "
		. "WHERE backend_type = 'pg_courier worker'") eq 't';
	last if launcher_scans() > $scans_new + 20;
	sleep(0.05);
}
is($twins, 0, 'no database gets a second worker beside its predecessor\'s');
only_first_listed('after a restart of the launcher, too, a database taken out of the list loses its worker');

$node->append_conf('postgresql.conf',
	"courier.databases = 'postgres, " . join(', ', @dbs) . "'\ncourier.max_workers = 2\n");
$node->reload;
ok(all_maintained_after(now(), @dbs), 'listed again, every database is maintained again');

# ---- a killed worker comes back -------------------------------------------
# (workers come and go here: retry until one was caught alive.  A worker
# that was already leaving when the signal came exits normally, without the
# FATAL line: once the process is gone without it, try another.)
my $t = now();
my ($vpid, $vdb);
my $terminated = 0;
for (1 .. 600)
{
	my $victim = sql('postgres', "SELECT pid || ' ' || datname || ' ' || pg_terminate_backend(pid) "
		. "FROM pg_stat_activity WHERE backend_type = 'pg_courier worker' LIMIT 1");
	($vpid, $vdb, my $sent) = split / /, $victim;
	if (defined $sent && $sent eq 'true')
	{
		$node->poll_query_until('postgres', "SELECT count(*) FROM pg_stat_activity WHERE pid = $vpid", '0');
		$terminated = 1, last
		  if slurp_file($node->logfile) =~ /\[$vpid\] 57P01 pg_courier worker FATAL:  terminating background worker/;
	}
	sleep(0.05);
}
ok($terminated, "a worker serving $vdb was terminated");
ok(all_maintained_after($t, $vdb), "after SIGTERM of its worker, $vdb is maintained again");
ok(all_maintained_after(now(), @dbs), 'and so is every other database');

# ---- a killed launcher comes back -----------------------------------------
my $lpid = launcher_pid();
sql('postgres', "SELECT pg_terminate_backend($lpid)");
ok($node->poll_query_until('postgres',
	"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_courier launcher' AND pid <> $lpid", '1'),
	'a new launcher replaces a terminated one');
ok(all_maintained_after(now(), @dbs), 'and maintenance goes on in every database');
cmp_ok(sql('postgres', $workers), '<=', 2, 'still at most 2 workers');

# ---- crash restart ------------------------------------------------------
$lpid = launcher_pid();
# A worker may end its round (exit code 0) just as we pick it: the SIGKILL
# then hits a process already on its way out, and no crash follows.  Try
# again until the postmaster reports the kill.
my $killed = 0;
for (1 .. 600)
{
	my $off0 = -s $node->logfile;
	my $victim = sql('postgres', "SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_courier worker' LIMIT 1");
	if ($victim eq '' || kill('KILL', $victim) != 1)
	{
		sleep(0.05);
		next;
	}
	for (1 .. 100)
	{
		$killed = 1 if slurp_file($node->logfile, $off0) =~ /\(PID $victim\) was terminated by signal 9/;
		last if $killed;
		sleep(0.1);
	}
	last if $killed;
}
ok($killed, 'a worker was killed with SIGKILL');
ok($node->poll_query_until('postgres',
	"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_courier launcher' AND pid <> $lpid", '1'),
	'the launcher is back after a worker was killed with SIGKILL (crash restart)');
for my $db (@dbs)
{
	sql($db, "SELECT courier.send('t', '{}');\nSELECT count(*) FROM courier.receive('t', 'g$db', 1, '0');");
}
ok($node->poll_query_until('postgres',
	"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_courier launcher'", '1'), 'one launcher');
ok(all_maintained_after(now(), @dbs), 'every database is maintained again after the crash restart');
my $all_dl = 1;
for my $db (@dbs)
{
	$all_dl = 0 unless $node->poll_query_until($db, "SELECT count(*) FROM courier.dead_letters WHERE grp = 'g$db'", '2');
}
ok($all_dl, 'and the work done after the crash is there in every database');

# ---- create and drop, many more times than slots or status entries -------
$node->append_conf('postgresql.conf', "courier.databases = ''\n");
$node->reload;
sql('postgres', "DROP DATABASE $_") for @dbs;
pass('dropped 12 databases that the pool was serving');

sql('postgres', 'CREATE DATABASE tmpl');
sql('tmpl', "CREATE EXTENSION pg_courier CASCADE;\nSELECT courier.create_topic('t');");
ok($node->poll_query_until('tmpl', "SELECT last_finished IS NOT NULL FROM courier._maintenance_status()", 't'),
	'a worker serves the template database');
for my $i (1 .. 20)
{
	# courier.max_databases = 16 status entries, 2 slots: 20 cycles
	my $db = "cycle$i";
	if ($i % 2)
	{
		setup_db($db);		# CREATE EXTENSION there
	}
	else
	{
		setup_db($db, template => 'tmpl');	# copied while a worker serves tmpl
	}
	ok($node->poll_query_until($db, "SELECT count(*) FROM courier.dead_letters WHERE grp = 'g$db'", '1'),
		"$db: maintained");
	ok($node->poll_query_until($db,
		"SELECT last_finished IS NOT NULL AND last_error IS NULL FROM courier._maintenance_status()", 't'),
		"$db: its status is kept");
	sql('postgres', "DROP DATABASE $db");	# while its worker may be serving it
}
setup_db('last');
ok($node->poll_query_until('last', "SELECT count(*) FROM courier.dead_letters WHERE grp = 'glast'", '1'),
	'after 20 create/drop cycles a new database still gets maintenance');
ok($node->poll_query_until('last',
	"SELECT last_finished IS NOT NULL AND last_error IS NULL FROM courier._maintenance_status()", 't'),
	'and its status is kept');

# ---- a repeated error is logged once, not every round ---------------------
# An event trigger that refuses new tables makes every rotation of topic r
# fail (a user can no longer put a table in schema courier: the DDL guard).
# The message is sent once the trigger is there: a segment is sealed only
# when it holds a message, and one sent before could have been sealed (a
# second after the send) before the trigger existed, leaving an empty
# segment that no round tries to rotate.
sql('last', "SELECT courier.create_topic('r', retention => '1 second')");
my $tid = sql('last', "SELECT topic_id FROM courier.topic_meta WHERE name = 'r'");
sql('last', q{CREATE FUNCTION public.no_new_tables() RETURNS event_trigger LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'new tables are frozen' USING ERRCODE = 'object_not_in_prerequisite_state';
END $$});
sql('last', "CREATE EVENT TRIGGER no_new_tables ON ddl_command_start WHEN TAG IN ('CREATE TABLE') "
	  . "EXECUTE FUNCTION public.no_new_tables()");
my $off = -s $node->logfile;
sql('last', "SELECT courier.send('r', '{}')");
ok($node->poll_query_until('last', "SELECT last_error LIKE '%new tables are frozen%' FROM courier._maintenance_status()", 't'),
	'the failing rotation shows in the maintenance status') or diag("status in last, pool backends, segments: " . sql('last', "SELECT row(s.*)::text FROM courier._maintenance_status() s") . " | " . sql('postgres', "SELECT string_agg(pid || ':' || coalesce(datname,'-') || ':' || coalesce(wait_event_type,'') || ':' || coalesce(wait_event,'') || ':' || coalesce(left(query, 60),''), ' ; ') FROM pg_stat_activity WHERE backend_type LIKE 'pg_courier%'") . " | " . sql('last', "SELECT string_agg(row(s.*)::text, ';') FROM courier.segment s"));
$t = now();
ok($node->poll_query_until('last',
	"SELECT last_finished > '$t'::timestamptz + interval '3 seconds' FROM courier._maintenance_status()", 't'),
	'rounds go on for more than 3 seconds (30 naptimes)');
my $log = slurp_file($node->logfile, $off);
my $lines = () = $log =~ /ERROR:  new tables are frozen/g;
cmp_ok($lines, '>=', 1, 'the error was logged');
cmp_ok($lines, '<=', 2, "but not every round ($lines lines)");
like($log, qr/55000 pg_courier worker ERROR/, 'with its SQLSTATE');
like($log, qr/CONTEXT:  .*pg_courier maintenance of topic $tid/s, 'and which topic it was');
sql('last', "DROP EVENT TRIGGER no_new_tables");
ok($node->poll_query_until('last', "SELECT last_error IS NULL FROM courier._maintenance_status()", 't'),
	'the status clears once the cause is gone');

$log = slurp_file($node->logfile);
unlike($log, qr/ XX000 /, 'no internal error (XX000) was logged');
unlike($log, qr/is being accessed by other users/, 'no DROP or CREATE DATABASE failed because of a worker');

$node->stop;
done_testing();
