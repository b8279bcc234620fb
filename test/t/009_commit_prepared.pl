# COMMIT PREPARED wakes waiting receivers (issue 7 section 4): a prepared
# transaction's commit runs none of the sending backend's commit callbacks,
# so src/guard.c wakes every topic of the database after COMMIT PREPARED.
# A receive waiting for 10 seconds must come back with the message well
# before its wait ends; PREPARE alone must not hand it out.
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use CourierTest;
use Test::More;

my $node = courier_node('prepared', conf => qq{
max_prepared_transactions = 4
log_line_prefix = '%m [%p] %e '
});
sql("SELECT courier.create_topic('tp')");

my $waiting = "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%receive(''tp''%' "
  . "AND state = 'active' AND wait_event_type = 'Extension'";

for my $round (1 .. 2)
{
	# the waiter reports what it got and how long its statement took
	my $waiter = $node->background_psql('postgres', on_error_stop => 0);
	$waiter->query_until(qr/started/,
		"\\echo started\n"
		  . "SELECT 'got ' || string_agg(body->>'n', ',') || ' after ' || "
		  . "round(extract(epoch FROM clock_timestamp() - statement_timestamp())::numeric, 1) "
		  . "FROM courier.receive('tp', 'default', 10, wait => '10 seconds');\n"
		  . "\\echo done\n");
	ok($node->poll_query_until('postgres', $waiting, '1'), "round $round: the receive is waiting");

	# send in a transaction and prepare it: nothing is receivable yet
	my $sender = $node->background_psql('postgres');
	$sender->query_safe("BEGIN");
	$sender->query_safe("SELECT courier.send('tp', '{\"n\": $round}')");
	$sender->query_safe("PREPARE TRANSACTION 'courier_tp_$round'");
	$sender->quit;
	sleep(1);
	is(sql($waiting), '1', "round $round: still waiting after PREPARE TRANSACTION");

	# a third session commits it: the waiter wakes up with the message
	sql("COMMIT PREPARED 'courier_tp_$round'");
	my $out = $waiter->query_until(qr/done/, "");
	like($out, qr/got $round after/, "round $round: the waiter got the prepared transaction's message");
	my ($secs) = $out =~ /after ([0-9.]+)/;
	ok(defined $secs && $secs < 8, "round $round: it returned well before its 10 s wait ended (after "
		  . ($secs // '?') . " s)");
	$waiter->quit;
}

# ROLLBACK PREPARED leaves nothing to receive, and COMMIT PREPARED of a
# transaction that sent nothing is harmless
my $sender = $node->background_psql('postgres');
$sender->query_safe("BEGIN");
$sender->query_safe("SELECT courier.send('tp', '{\"n\": 99}')");
$sender->query_safe("PREPARE TRANSACTION 'courier_tp_rb'");
$sender->query_safe("BEGIN");
$sender->query_safe("CREATE TABLE unrelated (x int)");
$sender->query_safe("PREPARE TRANSACTION 'courier_tp_other'");
$sender->quit;
sql("ROLLBACK PREPARED 'courier_tp_rb'");
sql("COMMIT PREPARED 'courier_tp_other'");
is(sql("SELECT count(*) FROM courier.receive('tp', 'default', 10)"), '0', 'a rolled-back prepared send is never received');

unlike(slurp_file($node->logfile), qr/\bXX000\b/, 'no XX000 in the server log');
$node->stop;
done_testing();
