# Issue 13, defect 1 (the part that needs a cancel): a REINDEX TABLE
# CONCURRENTLY on a segment that is cancelled leaves invalid *_ccnew
# indexes behind.  They are never trusted: receives in new sessions neither
# fail (the not-yet-built index has no blocks: XX001 on 0.1.0) nor lose the
# messages missing from an index built but never validated; sends keep
# working; and the leftovers can be cleaned up the way PostgreSQL's
# documentation says (DROP INDEX, then REINDEX again).
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use CourierTest;
use Test::More;

my $node = courier_node('reindex_cancel', conf => qq{
courier.worker = off
log_line_prefix = '%m [%p] %e '
});

sql("SELECT courier.create_topic('rc')");
sql("SELECT courier.send('rc', '{\"m\": 1}', keys => ARRAY['m1'])");
my $seg = sql("SELECT relid FROM courier.segment ORDER BY seg_no DESC LIMIT 1");
is($seg, 'courier.log_1_1', 'the segment');

my $reindex_waits = "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'REINDEX TABLE CONCURRENTLY%' "
  . "AND wait_event_type = 'Lock'";
my $cancel_reindex = "SELECT pg_cancel_backend(pid) FROM pg_stat_activity "
  . "WHERE query LIKE 'REINDEX TABLE CONCURRENTLY%' AND pid <> pg_backend_pid()";
my $ccnew = "SELECT string_agg(c.relname || ':' || i.indisready || ':' || i.indisvalid, ',' ORDER BY c.relname) "
  . "FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = '$seg'::regclass "
  . "AND c.relname LIKE '%ccnew%'";

# a fresh session each time: it has never looked at the segment's indexes
sub receive_ms
{
	my ($n) = @_;
	return sql("SELECT coalesce(string_agg(body->>'m', ',' ORDER BY id), '') "
		  . "FROM courier.receive('rc', 'default', $n, '1 hour')");
}

# ---- a reindex cancelled after the new indexes were built (ready, not valid)
my $s1 = $node->background_psql('postgres');
$s1->query_safe("BEGIN");
$s1->query_safe("SELECT courier.send('rc', '{\"m\": 2}', keys => ARRAY['m2'])");

my $ri = $node->background_psql('postgres', on_error_stop => 0);
$ri->query_until(qr/started/, "\\echo started\nREINDEX TABLE CONCURRENTLY $seg;\n\\echo reindex-ended\n");
ok($node->poll_query_until('postgres', $reindex_waits, '1'), 'the reindex waits for the open sender');

# m3 is sent after the reindex started waiting: the new index is built
# without it (its sender is still open when the index is built)
my $s3 = $node->background_psql('postgres');
$s3->query_safe("BEGIN");
$s3->query_safe("SELECT courier.send('rc', '{\"m\": 3}', keys => ARRAY['m3'])");
$s1->query_safe("COMMIT");
ok( $node->poll_query_until('postgres',
		"SELECT ($ccnew) = 'log_1_1_id_ccnew:true:false,log_1_1_keys_ccnew:true:false' AND ($reindex_waits) = 1"),
	'the new indexes are built and ready, and the reindex waits for m3\'s sender');
sql($cancel_reindex);
my $out = $ri->query_until(qr/reindex-ended/, "");
ok($node->poll_query_until('postgres', $reindex_waits, '0'), 'the reindex was cancelled');
is(sql($ccnew), 'log_1_1_id_ccnew:true:false,log_1_1_keys_ccnew:true:false',
	'it left invalid indexes behind');

is(receive_ms(10), '1,2', 'a new session receives the committed messages');
$s3->query_safe("COMMIT");
is(receive_ms(10), '3', 'and m3, missing from the invalid index, once its sender commits');
is(sql("SELECT string_agg(grp || ':' || state, ',') FROM courier.find('rc', key => 'm3')"),
	'default:in_flight', 'find says m3 is in flight, not acked');

# sends and receives go on with the leftovers in place
sql("SELECT courier.send('rc', jsonb_build_object('m', 3 + g)) FROM generate_series(1, 50) g");
sql("SELECT count(*) FROM courier.send_batch('rc', "
	  . "(SELECT array_agg(jsonb_build_object('m', 53 + g)) FROM generate_series(1, 50) g))");
is(receive_ms(1000), join(',', 4 .. 103), 'sends and receives work, nothing is lost');

# ---- a reindex cancelled while its new indexes are not even built
$s1->query_safe("BEGIN");
$s1->query_safe("SELECT courier.send('rc', '{\"m\": 104}')");
$ri->query_until(qr/started/, "\\echo started\nREINDEX TABLE CONCURRENTLY $seg;\n\\echo reindex-ended\n");
ok($node->poll_query_until('postgres', $reindex_waits, '1'), 'a second reindex waits for the open sender');
like(sql($ccnew), qr/ccnew1:false:false/, 'its new indexes exist, not ready');
sql($cancel_reindex);
$ri->query_until(qr/reindex-ended/, "");
ok($node->poll_query_until('postgres', $reindex_waits, '0'), 'the second reindex was cancelled');
is(receive_ms(10), '', 'a new session receives (no "could not read block 0")');
$s1->query_safe("COMMIT");
sql("SELECT courier.send('rc', '{\"m\": 105}')");
is(receive_ms(10), '104,105', 'and gets every message once committed');

# ---- cleaning up as the documentation of REINDEX CONCURRENTLY says: drop
# the invalid *_ccnew indexes (the segment's, and its TOAST table's), then
# reindex again
my @invalid = split /\n/, sql("SELECT i.indexrelid::regclass FROM pg_index i "
	  . "WHERE i.indrelid IN ('$seg'::regclass, (SELECT reltoastrelid FROM pg_class WHERE oid = '$seg'::regclass)) "
	  . "AND NOT i.indisvalid ORDER BY 1");
is(scalar(grep { /^courier\./ } @invalid), 4, 'four invalid indexes on the segment left by the two cancelled reindexes');
foreach my $idx (@invalid)
{
	my ($ret, $stdout, $stderr) = $node->psql('postgres', "DROP INDEX $idx");
	is($stderr, '', "DROP INDEX $idx (an invalid leftover of REINDEX CONCURRENTLY)");
}
sql("REINDEX TABLE CONCURRENTLY $seg");
is(sql("SELECT string_agg(c.relname || ':' || i.indisvalid, ',' ORDER BY c.relname) FROM pg_index i "
	  . "JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = '$seg'::regclass"),
	'log_1_1_id:true,log_1_1_keys:true', 'a completed reindex leaves the two indexes of a segment');
sql("SELECT courier.send('rc', '{\"m\": 106}')");
is(receive_ms(10), '106', 'and the topic works');

# ---- REINDEX CONCURRENTLY of the claim and lease tables, under warm
# sessions that keep receiving, acking and nacking around it
$s1->query_safe("SELECT courier.create_group('rc', 'ord', ordered => true, start_from => 'latest')");
$s1->query_safe("SELECT courier.send('rc', jsonb_build_object('m', 200 + g), keys => ARRAY['k' || (g % 3)]) "
	  . "FROM generate_series(1, 30) g");
$s1->query_safe("SELECT count(*) FROM courier.receive('rc', 'ord', 2, '1 hour')");
sql("REINDEX TABLE CONCURRENTLY courier.claim");
sql("REINDEX TABLE CONCURRENTLY courier.lease");
$s1->query_safe("SELECT courier.ack('rc', 'ord', id) FROM courier.find('rc', key => 'k1') WHERE grp = 'ord' AND state = 'in_flight'");
$s1->query_safe("SELECT courier.nack('rc', 'ord', id, delay => '0') FROM courier.find('rc', key => 'k2') WHERE grp = 'ord' AND state = 'in_flight'");
sql("REINDEX TABLE CONCURRENTLY courier.lease");
my $got = '';
for (1 .. 40)
{
	my $batch = $s1->query_safe("SELECT coalesce(string_agg(id::text, ','), '') FROM "
		  . "(SELECT id, courier.ack('rc', 'ord', id) FROM courier.receive('rc', 'ord', 10, '1 hour')) r");
	$got .= ",$batch" if $batch ne '';
}
my %seen = map { $_ => 1 } grep { $_ ne '' } split /,/, $got;
is(scalar(keys %seen), 29, 'the ordered group gets its remaining messages through the reindexes of claim and lease');
is($s1->query_safe("SELECT count(*) FROM courier.receive('rc', 'default', 100)"), '30',
	'and the default group gets the 30 new messages');

$s1->quit;
$s3->quit;
$ri->quit;
my $log = slurp_file($node->logfile);
unlike($log, qr/\b(XX000|XX001)\b/, 'no XX000 or XX001 in the server log');
$node->stop;
done_testing();
