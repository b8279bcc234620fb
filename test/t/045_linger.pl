# receive(..., linger): once a round found a message, the call keeps
# collecting until max_messages are in hand or linger has passed since that
# first round (issue 11: a consumer-side batching knob, like Kafka's
# fetch.max.wait.ms).  Bounds are generous: the test checks which messages
# one call returns, and that it does not wait out a linger it no longer
# needs, never how fast it is.
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use CourierTest;
use Test::More;
use Time::HiRes qw(time);

my $node = courier_node('linger');
sql("SELECT courier.create_topic('lg')");

my $sleeping = "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%receive(''lg''%' "
  . "AND state = 'active' AND wait_event_type = 'Extension'";

# start a receive in the background; returns the session
sub start_receive
{
	my ($args) = @_;
	my $s = $node->background_psql('postgres', on_error_stop => 0);
	$s->query_until(qr/started/,
		"\\echo started\nSELECT 'got ' || string_agg(body->>'m', ',' ORDER BY id) "
		  . "FROM courier.receive('lg', 'default', $args);\n\\echo done\n");
	return $s;
}

# ---- the batch fills up: three sends in three transactions, one call
my $t0 = time();
my $r = start_receive("3, '1 minute', wait => '1 minute', linger => '40 seconds'");
ok($node->poll_query_until('postgres', $sleeping, '1'), 'an empty receive sleeps');
sql("SELECT courier.send('lg', '{\"m\": \"a\"}')");
ok($node->poll_query_until('postgres', $sleeping, '1'), 'after the first message it lingers for more');
sql("SELECT courier.send('lg', '{\"m\": \"b\"}')");
sql("SELECT courier.send('lg', '{\"m\": \"c\"}')");
my $out = $r->query_until(qr/done/, "");
like($out, qr/got a,b,c\n/, 'one call returns the three messages sent one by one');
cmp_ok(time() - $t0, '<', 30, 'and returns once max_messages are in hand, not at the end of linger');
$r->quit;
is(sql("SELECT count(*) FROM courier.receive('lg', 'default', 10)"), '0', 'all three are leased');

# ---- linger passes: the call returns what it has
$r = start_receive("5, '1 minute', wait => '1 minute', linger => '1 second'");
ok($node->poll_query_until('postgres', $sleeping, '1'), 'sleeping again');
sql("SELECT courier.send('lg', '{\"m\": \"d\"}')");
$out = $r->query_until(qr/done/, "");
like($out, qr/got d\n/, 'after linger it returns the one message it has');
$r->quit;

# ---- a message already there and linger without wait: more are collected
sql("SELECT courier.send('lg', '{\"m\": \"e\"}')");
$r = start_receive("2, '1 minute', linger => '40 seconds'");
ok($node->poll_query_until('postgres', $sleeping, '1'), 'a receive with linger and no wait lingers after a hit');
sql("SELECT courier.send('lg', '{\"m\": \"f\"}')");
$out = $r->query_until(qr/done/, "");
like($out, qr/got e,f\n/, 'and returns the second message with the first');
$r->quit;

# ---- without a hit, linger does not make a receive wait
$t0 = time();
is(sql("SELECT count(*) FROM courier.receive('lg', 'default', 5, linger => '40 seconds')"), '0',
	'an empty receive without wait returns at once');
cmp_ok(time() - $t0, '<', 30, '(it did not linger)');

# ---- a rolled-back lingering receive gives everything back
$r = $node->background_psql('postgres', on_error_stop => 0);
$r->query_safe("BEGIN");
$r->query_until(qr/started/,
	"\\echo started\nSELECT count(*) FROM courier.receive('lg', 'default', 2, '1 minute', wait => '1 minute', linger => '40 seconds');\n\\echo done\n");
ok($node->poll_query_until('postgres', $sleeping, '1'), 'sleeping in a transaction');
sql("SELECT courier.send('lg', '{\"m\": \"g\"}')");
sql("SELECT courier.send('lg', '{\"m\": \"h\"}')");
$out = $r->query_until(qr/done/, "");
like($out, qr/^2$/m, 'two in one call');
$r->query_safe("ROLLBACK");
$r->quit;
is(sql("SELECT string_agg(body->>'m', ',' ORDER BY id) FROM courier.receive('lg', 'default', 10)"), 'g,h',
	'after ROLLBACK both are receivable again');

# ---- messages that become receivable by a nack fill a lingering batch at once
# (a lingering receive woken by a commit walks only when its batch may fill:
# lease rows due now count, not only new ids)
sql("SELECT courier.ack('lg', 'default', ARRAY(SELECT id FROM courier.receive('lg', 'default', 10)))");
sql("SELECT courier.send('lg', '{\"m\": \"i\"}')");
sql("SELECT courier.send('lg', '{\"m\": \"j\"}')");
my ($i, $j) = split /\n/, sql("SELECT id FROM courier.receive('lg', 'default', 2, '1 hour') ORDER BY id");
sql("SELECT courier.send('lg', '{\"m\": \"k\"}')");
$t0 = time();
$r = start_receive("3, '1 minute', wait => '1 minute', linger => '40 seconds'");
ok($node->poll_query_until('postgres', $sleeping, '1'), 'lingering after the first message');
sql("SELECT courier.nack('lg', 'default', $i, '0 seconds'), courier.nack('lg', 'default', $j, '0 seconds')");
$out = $r->query_until(qr/done/, "");
like($out, qr/got i,j,k\n/, 'the two nacked messages join the lingering batch');
cmp_ok(time() - $t0, '<', 30, 'as soon as they are receivable, not at the end of linger');
$r->quit;

# ---- linger's end after a wake-up that could not fill the batch: one more look
sql("SELECT courier.send('lg', '{\"m\": \"l\"}')");
$r = start_receive("50, '1 minute', wait => '1 minute', linger => '2 seconds'");
ok($node->poll_query_until('postgres', $sleeping, '1'), 'lingering with room for 50');
sql("SELECT courier.send('lg', '{\"m\": \"m\"}')");
$out = $r->query_until(qr/done/, "");
like($out, qr/got l,m\n/, 'at linger\'s end the call collects what a commit brought meanwhile');
$r->quit;

# ---- commits that cannot fill the batch do not wake a lingering receive
# (wait.c, "Lingering receives"): it publishes the first id whose send may
# fill its batch, and a commit of lower ids leaves it asleep until linger's
# end.  Every time the receive wakes up it says so at DEBUG2.
$r = $node->background_psql('postgres', on_error_stop => 0);
$r->query_safe("SET client_min_messages = debug2");
$r->query_until(qr/started/,
	"\\echo started\nSELECT 'got ' || string_agg(body->>'m', ',' ORDER BY id) "
	  . "FROM courier.receive('lg', 'default', 100, '1 minute', wait => '1 minute', linger => '4 seconds');\n\\echo done\n");
ok($node->poll_query_until('postgres', $sleeping, '1'), 'an empty receive sleeps');
sql("SELECT courier.send('lg', '{\"m\": \"n1\"}')");
ok($node->poll_query_until('postgres', $sleeping, '1'), 'it lingers with one of 100 in hand');
sql("SELECT courier.send('lg', jsonb_build_object('m', 'n' || g)) FROM generate_series(2, 3) g");
for my $g (4 .. 9)
{
	sql("SELECT courier.send('lg', '{\"m\": \"n$g\"}')");
}
$out = $r->query_until(qr/done/, "");
like($out, qr/got n1,n2,n3,n4,n5,n6,n7,n8,n9\n/, 'at linger\'s end it returns all nine');
my $wakes = () = $r->{stderr} =~ /pg_courier receive: awake again, [1-9]\d* in hand/g;
cmp_ok($wakes, '<=', 2,
	"the seven commits of ids it could not fill its batch with did not wake it ($wakes wake-ups in hand)");
$r->quit;

# ---- a low-id transaction that commits after a high-id one fills a lingering
# batch at once (review 29): the receive steps over the open transaction's
# ids (a hole below its frontier), takes the later ids, and then the hole
# alone can fill its batch -- the commit of the hole's transaction, all of
# whose ids lie below the point a new send must reach, still wakes it.
sql("SELECT courier.create_topic('lh')");
my $sleeping_lh = "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%receive(''lh''%' "
  . "AND state = 'active' AND wait_event_type = 'Extension'";
sql("SELECT courier.send('lh', '{\"m\": \"o1\"}')");
my $low = $node->background_psql('postgres', on_error_stop => 0);
$low->query_safe("BEGIN");
$low->query_safe("SELECT count(*) FROM courier.send_batch('lh', ARRAY(SELECT jsonb_build_object('m', 'o' || g) FROM generate_series(2, 6) g))");
$r = $node->background_psql('postgres', on_error_stop => 0);
$r->query_until(qr/started/,
	"\\echo started\nSELECT 'got ' || string_agg(body->>'m', ',' ORDER BY id) "
	  . "FROM courier.receive('lh', 'default', 10, '1 minute', wait => '1 minute', linger => '40 seconds');\n\\echo done\n");
ok($node->poll_query_until('postgres', $sleeping_lh, '1'), 'it lingers with o1, o2..o6 still being sent');
sql("SELECT count(*) FROM courier.send_batch('lh', ARRAY(SELECT jsonb_build_object('m', 'o' || g) FROM generate_series(7, 10) g))");
# let it take o7..o10 and sleep again (if it has not yet, the test proves less, never fails)
Time::HiRes::sleep(2);
ok($node->poll_query_until('postgres', $sleeping_lh, '1'), 'it lingers with five in hand, the hole holds five');
$t0 = time();
$low->query_safe("COMMIT");
$out = $r->query_until(qr/done/, "");
like($out, qr/got o1,o2,o3,o4,o5,o6,o7,o8,o9,o10\n/, 'the hole\'s commit fills the batch');
cmp_ok(time() - $t0, '<', 30, 'and wakes it: it does not wait out its linger');
$r->quit;
$low->quit;

unlike(slurp_file($node->logfile), qr/\b(XX\d\d\d|40P01)\b|terminated by signal/, 'no internal error, deadlock or crash');
$node->stop;
done_testing();
