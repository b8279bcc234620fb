-- A short tour of pg_courier (run by make demo).
\pset footer off
\echo
\echo '-- 1. a topic, and a second consumer group next to its default group'
CREATE EXTENSION IF NOT EXISTS pg_courier CASCADE;
SELECT courier.drop_topic(topic) FROM courier.topics WHERE topic = 'orders';
SELECT courier.create_topic('orders');
SELECT courier.create_group('orders', 'billing');

\echo '-- 2. the transactional outbox: the order row and its message commit together'
CREATE TABLE IF NOT EXISTS shop_orders (id int PRIMARY KEY, amount int);
TRUNCATE shop_orders;
BEGIN;
INSERT INTO shop_orders VALUES (42, 30);
SELECT courier.send('orders', '{"order": 42}', tag => 'created', keys => ARRAY['order-42'],
                    headers => '{"region": "eu", "amount": 30}') AS sent_id;
COMMIT;
BEGIN;
INSERT INTO shop_orders VALUES (43, 99);
SELECT courier.send('orders', '{"order": 43}', tag => 'created') AS rolled_back_id;
ROLLBACK;
SELECT courier.send('orders', '{"order": 44}', tag => 'paid') AS sent_id;

\echo '-- 3. billing receives both committed messages (not the rolled-back one), leased for 30 s'
SELECT id, attempt, tag, body, lease_until > now() AS leased
  FROM courier.receive('orders', 'billing', max_messages => 10, visibility_timeout => '30 seconds');
SELECT courier.ack('orders', 'billing', ARRAY[1, 3]) AS acked;

\echo '-- 4. the default group gets its own copy of every message'
SELECT id, tag, body FROM courier.receive('orders', 'default', 10);
SELECT courier.ack('orders', 'default', 1) AS acked;

\echo '-- 5. what is where: billing is done, default still holds message 3'
SELECT topic, grp, backlog, in_flight FROM courier.groups ORDER BY grp;
