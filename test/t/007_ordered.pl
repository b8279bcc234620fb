# Ordered groups: 4 concurrent receivers, 50 keys, random nacks and lease
# expiries.  Each key's acked sequence must be exactly its send order, and a
# key whose head always fails must hold up only itself until it is
# dead-lettered.
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use CourierTest;
use Test::More;
use IPC::Run;

my $node = courier_node('ordered', conf => qq{
courier.worker_naptime = 200
}, extension => 0);

sql(q{
CREATE EXTENSION pg_courier CASCADE;
SELECT courier.create_topic('fifo');
SELECT courier.create_group('fifo', 'ord', ordered => true, max_attempts => 1000,
                            retry_backoff => '{100ms}');
CREATE TABLE acked (seq bigserial PRIMARY KEY, key text, id bigint);
CREATE TABLE sent (key text, id bigint);
-- one producer, keys interleaved: per key, id order is send order
INSERT INTO sent
SELECT 'k' || k, courier.send('fifo', jsonb_build_object('k', k, 'n', n), keys => ARRAY['k' || k, 'extra'])
  FROM generate_series(1, 20) n, generate_series(1, 50) k ORDER BY n, k;
-- a key whose first message always fails
INSERT INTO sent
SELECT 'poison', courier.send('fifo', jsonb_build_object('poison', n), keys => ARRAY['poison'])
  FROM generate_series(1, 5) n;
-- the consumer: one receive, then per message: ack (recording it), nack,
-- or nothing at all (the lease runs out)
CREATE FUNCTION consume() RETURNS int LANGUAGE plpgsql AS $$
DECLARE
	m record;
	n int := 0;
BEGIN
	FOR m IN SELECT * FROM courier.receive('fifo', 'ord', 5, '300 milliseconds') LOOP
		IF m.body->>'poison' = '1' OR random() < 0.1 THEN
			PERFORM courier.nack('fifo', 'ord', m.id, reason => 'failed');
		ELSIF random() < 0.05 THEN
			NULL;	-- forget it: the lease expires
		ELSIF courier.ack('fifo', 'ord', m.id) THEN
			INSERT INTO acked (key, id) VALUES (m.keys[1], m.id);
		END IF;
		n := n + 1;
	END LOOP;
	RETURN n;
END;
$$;
});

my $dir = PostgreSQL::Test::Utils::tempdir;
open(my $fh, '>', "$dir/consume.sql") or die;
print $fh "SELECT consume();\n";
close $fh;
my $h = IPC::Run::start(['pgbench', '-n', '-c', '4', '-T', '300', '-f', "$dir/consume.sql",
	$node->connstr('postgres')], '>', "$dir/consume.out", '2>&1');

# every other key finishes while the poison head keeps failing
ok($node->poll_query_until('postgres',
	"SELECT count(*) = 1000 FROM (SELECT DISTINCT id FROM acked WHERE key <> 'poison') a"),
	'all 1000 messages of the 50 healthy keys were acked');
is(sql("SELECT count(*) FROM acked WHERE key = 'poison'"), '0',
	'nothing after the failing head of its key was delivered');
cmp_ok(sql("SELECT attempt FROM courier.lease WHERE okey = 'poison' AND state <> 'q'"), '>', 1,
	'the poison head is still being retried');

# now let it die: the rest of its key follows, in order
sql("SELECT courier.alter_group('fifo', 'ord', max_attempts => 3)");
ok($node->poll_query_until('postgres', "SELECT count(*) = 4 FROM acked WHERE key = 'poison'"),
	'after the head is dead-lettered, the rest of its key is delivered');
is(sql("SELECT body->>'poison' FROM courier.dead_letters"), '1', 'the failing head is the dead letter');

$h->kill_kill;
note slurp_file("$dir/consume.out");

# each key's acks are exactly its send order, with nothing missing or doubled
is(sql(q{
	SELECT count(*) FROM (
		SELECT s.key, array_agg(s.id ORDER BY s.id) AS sent_order,
		       (SELECT array_agg(a.id ORDER BY a.seq) FROM acked a WHERE a.key = s.key) AS acked_order
		  FROM sent s WHERE NOT (s.key = 'poison' AND s.id = (SELECT min(id) FROM sent WHERE key = 'poison'))
		 GROUP BY s.key) x
	WHERE sent_order IS DISTINCT FROM acked_order}), '0', 'every key was acked in exactly its send order');
is(sql("SELECT count(*) FROM (SELECT id FROM acked GROUP BY id HAVING count(*) > 1) d"), '0',
	'no message was acked twice');
is(sql("SELECT count(*) FROM courier.lease"), '0', 'nothing left in flight or queued');

$node->stop;
done_testing();
