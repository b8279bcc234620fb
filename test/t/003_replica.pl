# A streaming standby built with pg_basebackup holds the same queue state as
# its primary (messages, group positions, leases), and after a failover the
# promoted standby carries on without losing or repeating acked messages.
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use CourierTest;
use Test::More;

# The worker stays off: it would compact claims on the primary after the
# standby caught up and before the two are compared (a finished claim still
# on the standby, already folded on the primary).  Receiving never depends
# on it, on the primary or on the promoted standby.
my $primary = courier_node('primary', init => { allows_streaming => 1 }, conf => "courier.worker = off\n");

sub p { return $primary->safe_psql('postgres', $_[0]); }
p("SELECT courier.create_topic('orders')");
p("SELECT courier.create_group('orders', 'billing')");
p("SELECT courier.send('orders', jsonb_build_object('n', g)) FROM generate_series(1, 5) g");

$primary->backup('base');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'base', has_streaming => 1);
$standby->start;

# more traffic after the base backup
p("SELECT courier.send_batch('orders', (SELECT array_agg(jsonb_build_object('n', g)) FROM generate_series(6, 20) g))");
p("SELECT courier.ack('orders', 'default', array_agg(id)) FROM courier.receive('orders', 'default', 8)");
p("SELECT count(*) FROM courier.receive('orders', 'default', 2, '1 hour')");
p("SELECT count(*) FROM courier.receive('orders', 'billing', 5, '1 hour')");
$primary->wait_for_catchup($standby);

my @same = (
	"SELECT topic, messages, segments FROM courier.topics ORDER BY topic",
	"SELECT grp, backlog, in_flight FROM courier.groups ORDER BY grp",
	"SELECT string_agg(id || ':' || body::text, ',' ORDER BY id) FROM courier.log_1_1",
	"SELECT string_agg(lo || '-' || hi || ':' || pending::text, ',' ORDER BY group_id, lo) FROM courier.claim",
);
foreach my $query (@same)
{
	is($standby->safe_psql('postgres', $query), p($query), "standby matches primary: $query");
}
is($standby->safe_psql('postgres', "SELECT messages FROM courier.topics"), '20', 'all 20 messages on the standby');

# failover: the primary dies, the standby is promoted
$primary->stop('immediate');
$standby->promote;
$standby->poll_query_until('postgres', "SELECT NOT pg_is_in_recovery()") or die "promotion failed";

sub st { return $standby->safe_psql('postgres', $_[0]); }
# default: 1..8 acked, 9..10 leased; billing: 1..5 leased
is(st("SELECT string_agg(id::text, ',' ORDER BY id) FROM courier.receive('orders', 'default', 100)"),
	join(',', 11 .. 20), 'default resumes after its acks and leases on the promoted standby');
is(st("SELECT string_agg(id::text, ',' ORDER BY id) FROM courier.receive('orders', 'billing', 100)"),
	join(',', 6 .. 20), 'billing resumes too');
st("SELECT courier.set_visibility('orders', 'billing', id, '0') FROM generate_series(1, 5) id");
is(st("SELECT string_agg(id || ':' || attempt, ',' ORDER BY id) FROM courier.receive('orders', 'billing', 100)"),
	'1:2,2:2,3:2,4:2,5:2', 'leases taken on the old primary survive the failover');
my $id = st("SELECT courier.send('orders', '{\"after\": \"failover\"}')");
cmp_ok($id, '>', 20, 'new ids after failover are above the old ones');
is(st("SELECT count(*) FROM courier.receive('orders', 'default', 100)"), '1', 'and are delivered');

$standby->stop;
done_testing();
