# A waiting receive sleeps until something becomes receivable: it is woken
# by a commit that sent to its topic, not by a rolled-back send, and it can
# be cancelled while it waits.  (Isolation specs only see lock waits, so
# this lives here.)
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use CourierTest;
use Test::More;

my $node = courier_node('wait');
sql("SELECT courier.create_topic('wake')");

my $waiting_query = "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%receive(''wake''%' "
  . "AND state = 'active' AND wait_event_type = 'Extension'";

my $waiter = $node->background_psql('postgres', on_error_stop => 0);
$waiter->query_until(qr/started/, "\\echo started\nSELECT 'got ' || (body->>'n') FROM courier.receive('wake', 'default', 10, wait => '10 minutes');\n\\echo done\n");
ok($node->poll_query_until('postgres', $waiting_query, '1'), 'the receive is asleep (wait event Extension)');

# a send that rolls back does not end the wait
my $sender = $node->background_psql('postgres');
$sender->query_safe("BEGIN");
$sender->query_safe("SELECT courier.send('wake', '{\"n\": 1}')");
$sender->query_safe("ROLLBACK");
sleep(1);
is(sql($waiting_query), '1', 'still asleep after a rolled-back send');

# an open transaction's send does not either, until it commits
$sender->query_safe("BEGIN");
$sender->query_safe("SELECT courier.send('wake', '{\"n\": 2}')");
sleep(1);
is(sql($waiting_query), '1', 'still asleep while the sender is open');
$sender->query_safe("COMMIT");
my $out = $waiter->query_until(qr/done/, "");
like($out, qr/got 2/, 'woken by the commit, with the committed message');
is(sql($waiting_query), '0', 'no longer waiting');

# a waiting receive can be cancelled
$waiter->query_until(qr/started/, "\\echo started\nSELECT count(*) FROM courier.receive('wake', 'default', 10, wait => '10 minutes');\n");
ok($node->poll_query_until('postgres', $waiting_query, '1'), 'asleep again');
sql("SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query LIKE '%receive(''wake''%' AND state = 'active' AND pid <> pg_backend_pid()");
ok($node->poll_query_until('postgres', $waiting_query, '0'), 'pg_cancel_backend ends the wait');
$waiter->quit;

# statement_timeout ends it too
my ($ret, $stdout, $stderr) = $node->psql('postgres',
	"SET statement_timeout = '300ms'; SELECT count(*) FROM courier.receive('wake', 'default', 10, wait => '10 minutes')");
like($stderr, qr/canceling statement due to statement timeout/, 'statement_timeout cancels a waiting receive');

# a nack from another session that makes a message due wakes the waiter
sql("SELECT courier.send('wake', '{\"n\": 3}')");
is(sql("SELECT body->>'n' FROM courier.receive('wake', 'default', 10, '1 hour')"), '3', 'leased');
$waiter = $node->background_psql('postgres', on_error_stop => 0);
$waiter->query_until(qr/started/, "\\echo started\nSELECT 'again ' || (body->>'n') || ' attempt ' || attempt FROM courier.receive('wake', 'default', 10, wait => '10 minutes');\n\\echo done\n");
ok($node->poll_query_until('postgres', $waiting_query, '1'), 'waiting for the leased message');
sql("SELECT courier.nack('wake', 'default', 3, delay => '0')");
$out = $waiter->query_until(qr/done/, "");
like($out, qr/again 3 attempt 2/, 'a nack wakes the waiter, which gets attempt 2');
$waiter->quit;
$sender->quit;

$node->stop;
done_testing();
