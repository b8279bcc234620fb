# Restart (clean and crash) keeps topics, messages, group positions and
# leases; transactions in flight at a crash are gone, nothing else is.
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use CourierTest;
use Test::More;

my $node = courier_node('restart', conf => qq{
courier.worker = off
});

sql("SELECT courier.create_topic('orders')");
sql("SELECT courier.create_group('orders', 'billing')");
sql("SELECT courier.send_batch('orders', (SELECT array_agg(jsonb_build_object('n', g)) FROM generate_series(1, 10) g))");

# default: 1..3 acked, 4..5 leased for an hour; billing: nothing received yet
is(sql("SELECT string_agg(id::text, ',' ORDER BY id) FROM courier.receive('orders', 'default', 3)"), '1,2,3');
sql("SELECT courier.ack('orders', 'default', ARRAY[1,2,3])");
is(sql("SELECT string_agg(id::text, ',' ORDER BY id) FROM courier.receive('orders', 'default', 2, '1 hour')"), '4,5');

my $state = "SELECT grp, backlog, in_flight FROM courier.groups ORDER BY grp";
my $before = sql($state);
is($before, "billing|10|0\ndefault|5|2", 'state before restart');

$node->restart;
is(sql($state), $before, 'clean restart keeps positions and leases');
is(sql("SELECT count(*) FROM courier.peek('orders', 'default', 100)"), '5', 'peek after restart');

$node->stop('immediate');
$node->start;
is(sql($state), $before, 'crash restart keeps positions and leases');
is(sql("SELECT messages FROM courier.topics"), '10', 'messages survive the crash');

# the leased messages stay leased; the others come in order, once
is(sql("SELECT string_agg(id::text, ',' ORDER BY id) FROM courier.receive('orders', 'default', 100)"),
	'6,7,8,9,10', 'default resumes after its leases and acks');
is(sql("SELECT string_agg(id::text, ',' ORDER BY id) FROM courier.receive('orders', 'billing', 100)"),
	'1,2,3,4,5,6,7,8,9,10', 'billing gets everything');
# releasing the surviving leases redelivers them with attempt 2
sql("SELECT courier.set_visibility('orders', 'default', id, '0') FROM unnest(ARRAY[4,5]) id");
is(sql("SELECT string_agg(id || ':' || attempt, ',' ORDER BY id) FROM courier.receive('orders', 'default', 100)"),
	'4:2,5:2', 'surviving leases come back with attempt 2');

# transactions open at a crash: an uncommitted send is gone, an
# uncommitted receive gives its messages back
sql("SELECT courier.send('orders', '{\"committed\": true}')");
my $sender = $node->background_psql('postgres');
$sender->query_safe("BEGIN");
$sender->query_safe("SELECT courier.send('orders', '{\"committed\": false}')");
my $receiver = $node->background_psql('postgres');
$receiver->query_safe("BEGIN");
is($receiver->query_safe("SELECT count(*) FROM courier.receive('orders', 'billing', 100)"), '1',
	'a receiver holds the committed message in an open transaction');
$node->stop('immediate');
$sender->quit;
$receiver->quit;
$node->start;
is(sql("SELECT string_agg(body::text, ',') FROM courier.receive('orders', 'billing', 100)"),
	'{"committed": true}', 'after the crash: the committed message is back, the uncommitted one never came');
is(sql("SELECT count(*) FROM courier.receive('orders', 'default', 100)"), '1',
	'the other group gets it too');

# ids keep increasing after a crash
my $id = sql("SELECT courier.send('orders', '{}')");
cmp_ok($id, '>', 11, 'ids are not reused after a crash');

$node->stop;
done_testing();
