# Review 46, finding 1: ack(ids[]) and ack_and_receive ran one statement per
# id that no claim holds (stale ids, ids never delivered, redeliveries in
# the lease table) and kept each statement's result (8 kB) until the call
# ended: 100,000 such ids took about 800 MB of the backend, a million would
# have taken 8 GB, and any consumer role could send them.  The peak resident
# memory of one backend (VmHWM) must stay flat: we allow 100 MB of growth
# for 100,000 ids, acked twice (by ack and by ack_and_receive), with
# redeliveries among them.
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use CourierTest;
use Test::More;

my $node = courier_node('ack_memory', conf => qq{
courier.worker = off
}, extension => 0);

sql("CREATE EXTENSION pg_courier");
sql("SELECT courier.create_topic('mem')");
# 2,000 redeliveries in the lease table (a lease of 0 ends at once)
sql("SELECT count(*) FROM courier.send_batch('mem', array_fill('{}'::jsonb, ARRAY[2000]))");
sql("SELECT count(*) FROM courier.receive('mem', 'default', 2000, '0')");
is(sql("SELECT count(*) FROM courier.receive('mem', 'default', 2000, '1 hour')"), '2000',
	'2,000 messages redelivered, now held from the lease table');

my $s = $node->background_psql('postgres');
my $pid = $s->query_safe("SELECT pg_backend_pid()");
chomp $pid;

sub peak_kb
{
	my $status = slurp_file("/proc/$pid/status");
	my ($hwm) = $status =~ /VmHWM:\s+(\d+) kB/;
	return $hwm;
}

my $before = peak_kb();
my $acked = $s->query_safe(
	"SELECT courier.ack('mem', 'default', (SELECT array_agg(g) FROM generate_series(1, 100000) g))");
chomp $acked;
is($acked, '2000', 'ack of 100,000 ids: the 2,000 held ones acked');
my $got = $s->query_safe(
	"SELECT count(*) FROM courier.ack_and_receive('mem', 'default', (SELECT array_agg(g) FROM generate_series(100001, 200000) g))");
chomp $got;
is($got, '0', 'ack_and_receive of 100,000 unknown ids: nothing to receive');
my $after = peak_kb();
note(sprintf("peak resident memory %.1f MB before, %.1f MB after", $before / 1024, $after / 1024));
cmp_ok($after - $before, '<', 100 * 1024, 'peak memory grew by less than 100 MB');
$s->quit;

done_testing();
