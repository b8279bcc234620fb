# Issue 13, defect 5: the memory of a long-poll receive grew with every
# wake-up (the walk's allocations lived until the call returned, some in
# TopMemoryContext): a filtered long poll during 252k non-matching sends
# grew from 20 MB to 188 MB, an ordered group's long poll on a busy held
# key to 640 MB.  Each round must run in memory that is reset before the
# next one.  We measure the waiting backend's memory contexts (the "Grand
# total" that pg_log_backend_memory_contexts writes to the server log)
# before and after 100,000 non-matching sends, each committed on its own
# (as many wake-ups), and before and after 120,000 sends to a held key, and
# allow generous bounds.  Then the long poll still returns the right
# message.  (RssAnon is noted too, for information.)
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use CourierTest;
use Test::More;

my $node = courier_node('longpoll_memory', conf => qq{
courier.worker = off
log_line_prefix = '%m [%p] %e '
}, extension => 0);

my $MB = 1024 * 1024;
# 0.1.0 leaked about 170 bytes per wake-up of a filtered long poll (17 MB
# for 100,000 single-message commits) and about 1.5 kB per message queued
# behind a held key (190 MB for 120,000 messages); this code stays within
# 0.2 MB in both cases
my $FILTERED_COMMITS = 100000;
my $ORDERED_COMMITS = 2000;
my $ORDERED_PER = 60;

sql("CREATE EXTENSION pg_courier CASCADE");
sql("SELECT courier.create_topic('mem')");
sql("SELECT courier.create_group('mem', 'eu', filter => \$\$region = 'eu'\$\$)");
# many small transactions: each commit wakes the waiting receivers
sql(q{CREATE PROCEDURE pump(batches integer, per integer, hdr jsonb, k text[]) LANGUAGE plpgsql AS $$
BEGIN
	FOR i IN 1 .. batches LOOP
		PERFORM courier.send_batch('mem', array_fill('{"x": 1}'::jsonb, ARRAY[per]),
								   headers => hdr, keys => k);
		COMMIT;
	END LOOP;
END;
$$});

# the memory contexts' grand total of a backend, in bytes
sub memory_of
{
	my ($pid) = @_;
	my $offset = -s $node->logfile;
	sql("SELECT pg_log_backend_memory_contexts($pid)");
	$node->wait_for_log(qr/\[$pid\] \S+ LOG:  Grand total: \d+ bytes/, $offset)
	  or die "no memory report from $pid";
	my $log = substr(slurp_file($node->logfile), $offset);
	my ($total) = $log =~ /\[$pid\] \S+ LOG:  Grand total: (\d+) bytes/;
	my $status = slurp_file("/proc/$pid/status");
	my ($anon) = $status =~ /RssAnon:\s+(\d+) kB/;
	note(sprintf("pid %d: contexts %.1f MB, RssAnon %.1f MB", $pid, $total / $MB, $anon / 1024));
	return $total;
}

my $asleep = "SELECT count(*) FROM pg_stat_activity WHERE pid = %d AND state = 'active' "
  . "AND wait_event_type = 'Extension'";

# start a long poll, return (session, pid) once it sleeps
sub long_poll
{
	my ($grp) = @_;
	my $s = $node->background_psql('postgres', on_error_stop => 0);
	my $pid = $s->query_safe("SELECT pg_backend_pid()");
	$s->query_until(qr/started/,
		"\\echo started\nSELECT 'got ' || string_agg(coalesce(headers->>'region', '-') || ':' || "
		  . "coalesce(keys[1], '-') || ':' || (body->>'x'), ',') FROM courier.receive('mem', '$grp', 10, "
		  . "wait => '1 hour');\n\\echo done\n");
	ok($node->poll_query_until('postgres', sprintf($asleep, $pid), '1'), "the long poll of $grp sleeps");
	return ($s, $pid);
}

# wait until the long poll has caught up and sleeps again
sub settled
{
	my ($pid) = @_;
	for (1 .. 3)
	{
		$node->poll_query_until('postgres', sprintf($asleep, $pid), '1') or return 0;
		sleep(1);
	}
	return 1;
}

# ---- a filtered long poll while non-matching messages pour in
my ($eu, $eu_pid) = long_poll('eu');
sql("CALL pump(1000, 1, '{\"region\": \"us\"}', NULL)");
ok(settled($eu_pid), 'warm-up done');
my $before = memory_of($eu_pid);
sql("CALL pump($FILTERED_COMMITS, 1, '{\"region\": \"us\"}', NULL)");
ok(settled($eu_pid), "still waiting after $FILTERED_COMMITS non-matching sends, each committed on its own");
my $after = memory_of($eu_pid);
note(sprintf("filtered long poll: %.1f MB before, %.1f MB after", $before / $MB, $after / $MB));
cmp_ok($after - $before, '<', 5 * $MB, 'its memory stays flat (growth under 5 MB)');
sql("SELECT courier.send('mem', '{\"x\": 2}', headers => '{\"region\": \"eu\"}')");
like($eu->query_until(qr/done/, ""), qr/got eu:-:2\n/, 'and it returns the matching message');
$eu->quit;

# ---- an ordered group's long poll on a busy key whose head is in flight
sql("SELECT courier.create_group('mem', 'ord', ordered => true, start_from => 'latest')");
sql("SELECT courier.send('mem', '{\"x\": 3}', keys => ARRAY['hot'])");
is(sql("SELECT string_agg(keys[1] || ':' || (body->>'x'), ',') FROM courier.receive('mem', 'ord', 100, '1 hour')"),
	'hot:3', 'the head of key hot is in flight');
my ($ord, $ord_pid) = long_poll('ord');
sql("CALL pump(50, $ORDERED_PER, NULL, ARRAY['hot'])");
ok(settled($ord_pid), 'warm-up done');
$before = memory_of($ord_pid);
sql("CALL pump($ORDERED_COMMITS, $ORDERED_PER, NULL, ARRAY['hot'])");
ok(settled($ord_pid), 'still waiting after ' . ($ORDERED_COMMITS * $ORDERED_PER) . ' sends to the held key');
$after = memory_of($ord_pid);
note(sprintf("ordered long poll: %.1f MB before, %.1f MB after", $before / $MB, $after / $MB));
cmp_ok($after - $before, '<', 20 * $MB, 'its memory stays flat (growth under 20 MB)');
sql("SELECT courier.send('mem', '{\"x\": 4}', keys => ARRAY['cold'])");
like($ord->query_until(qr/done/, ""), qr/got -:cold:4\n/, 'and it returns the message of a free key');
$ord->quit;

unlike(slurp_file($node->logfile), qr/\bXX\d\d\d\b/, 'no internal error in the server log');
$node->stop;
done_testing();
