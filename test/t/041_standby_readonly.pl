# Issue 13, defect 4: send on a standby returned XX000 ("cannot assign
# TransactionIds during recovery").  Every call that writes must fail there
# with 25006 (read_only_sql_transaction), as an INSERT does -- send,
# send_batch, receive, ack, nack, set_visibility, the administration
# functions -- and calls that only read must not fail with an internal
# error.  The same holds in a read-only transaction on the primary.
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use CourierTest;
use Test::More;

my $primary = courier_node('primary', init => { allows_streaming => 1 }, conf => qq{
log_line_prefix = '%m [%p] %e '
});

sub p { return $primary->safe_psql('postgres', $_[0]); }
p("SELECT courier.create_topic('ro')");
p("SELECT courier.create_group('ro', 'ordered', ordered => true)");
p("SELECT courier.create_group('ro', 'dlq', max_attempts => 1)");
p("SELECT courier.send('ro', jsonb_build_object('n', g), keys => ARRAY['k' || g]) FROM generate_series(1, 5) g");
# a message in flight, one dead letter
p("SELECT count(*) FROM courier.receive('ro', 'default', 1, '1 hour')");
p("SELECT courier.nack('ro', 'dlq', id, reason => 'x') FROM courier.receive('ro', 'dlq', 1)");

$primary->backup('base');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'base', has_streaming => 1);
$standby->start;
p("SELECT courier.send('ro', '{\"after\": \"backup\"}')");
$primary->wait_for_catchup($standby);

# 'ok', or the SQLSTATE of the error (and the message, for the test log)
sub sqlstate_of
{
	my ($node, $sql, $setup) = @_;
	$setup //= '';
	my ($ret, $stdout, $stderr) =
	  $node->psql('postgres', "$setup\n\\set VERBOSITY verbose\n$sql", on_error_stop => 1);
	return 'ok' if $ret == 0 && $stderr !~ /ERROR/;
	return $1 if $stderr =~ /ERROR:\s+([0-9A-Z]{5}):/;
	return "no SQLSTATE (exit $ret): $stderr";
}

my @writers = (
	"SELECT courier.send('ro', '{\"n\": 9}')",
	"SELECT courier.send('ro', '{\"n\": 9}', keys => ARRAY['k'], delay => '1 minute')",
	"SELECT courier.send_batch('ro', ARRAY['{\"n\": 9}', '{\"n\": 10}']::jsonb[])",
	"SELECT * FROM courier.receive('ro')",
	"SELECT * FROM courier.receive('ro', 'ordered', 10)",
	"SELECT * FROM courier.receive('ro', 'default', 10, wait => '1 second')",
	"SELECT courier.ack('ro', 'default', 1)",
	"SELECT courier.ack('ro', 'default', ARRAY[1, 2]::bigint[])",
	"SELECT * FROM courier.ack_and_receive('ro', 'default', ARRAY[1, 2]::bigint[])",
	"SELECT * FROM courier.ack_and_receive('ro', 'default', NULL, max_messages => 10)",
	"SELECT courier.nack('ro', 'default', 1)",
	"SELECT courier.set_visibility('ro', 'default', 1, '0')",
	"SELECT courier.redrive('ro', 'dlq')",
	"SELECT courier.purge_dead_letters('ro', 'dlq')",
	"SELECT courier.run_maintenance()",
	"SELECT courier.create_topic('ro2')",
	"SELECT courier.drop_topic('ro')",
	"SELECT courier.create_group('ro', 'g2')",
	"SELECT courier.alter_group('ro', 'default', max_attempts => 3)",
	"SELECT courier.drop_group('ro', 'ordered')");
my @readers = (
	"SELECT count(*) FROM courier.peek('ro', 'default', 10)",
	"SELECT count(*) FROM courier.peek('ro', 'ordered', 10)",
	"SELECT count(*) FROM courier.find('ro', key => 'k1')",
	"SELECT count(*) FROM courier.topics",
	"SELECT count(*) FROM courier.groups",
	"SELECT count(*) FROM courier.dead_letters");

foreach my $sql (@writers)
{
	is(sqlstate_of($standby, $sql), '25006', "standby: $sql");
}
foreach my $sql (@readers)
{
	is(sqlstate_of($standby, $sql), 'ok', "standby, reading: $sql");
}

# a warm session on the standby (it has looked the topic up) that then sends
my $warm = $standby->background_psql('postgres', on_error_stop => 0);
$warm->query_safe("SELECT count(*) FROM courier.peek('ro', 'default', 10)");
$warm->query_safe("\\set VERBOSITY verbose");
my ($out, $ret) = $warm->query("SELECT courier.send('ro', '{\"warm\": true}')");
like($warm->{stderr}, qr/ERROR:\s+25006:/, 'standby, warm session: send fails with 25006');
$warm->quit;

# DDL replayed while a standby session lives: still 25006, never XX000
my $live = $standby->background_psql('postgres', on_error_stop => 0);
$live->query_safe("SELECT count(*) FROM courier.peek('ro', 'default', 10)");
p("SELECT courier.create_topic('later')");
p("SELECT courier.send('later', '{\"n\": 1}')");
$primary->wait_for_catchup($standby);
$live->query_safe("\\set VERBOSITY verbose");
$live->query("SELECT courier.send('later', '{\"n\": 2}')");
like($live->{stderr}, qr/ERROR:\s+25006:/, 'standby, after replayed DDL: send to the new topic fails with 25006');
$live->query("SELECT * FROM courier.receive('later')");
like($live->{stderr}, qr/ERROR:\s+25006:/, 'and receive too');
$live->quit;

# read-only transactions on the primary
my $ro = "SET default_transaction_read_only = on;";
foreach my $sql (@writers[0 .. 12])
{
	is(sqlstate_of($primary, $sql, $ro), '25006', "primary, read-only transaction: $sql");
}
is(sqlstate_of($primary, "BEGIN READ ONLY; SELECT courier.send('ro', '{\"n\": 9}'); COMMIT;"),
	'25006', 'primary: BEGIN READ ONLY; send');

# the primary still works, nothing was sent by the refused calls
is(p("SELECT count(*) FROM courier.receive('ro', 'default', 100)"), '5', 'the primary delivers what was sent');

foreach my $node ($primary, $standby)
{
	my $log = slurp_file($node->logfile);
	my @internal = $log =~ /^.*\b(XX\d\d\d)\b.*$/mg;
	is(scalar(@internal), 0, $node->name . ': no XX000-class error in the server log');
}
$standby->stop;
$primary->stop;
done_testing();
