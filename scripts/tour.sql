-- A tour of pg_courier (run by make demo; about 5 seconds of waiting).
-- Every step can be pasted into psql on its own.
\set ON_ERROR_STOP 1
\set QUIET 1
\pset footer off
\pset null '-'
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_courier CASCADE;
SELECT courier.drop_topic(topic) FROM courier.topics WHERE topic = 'orders' \g /dev/null
DROP TABLE IF EXISTS shop_orders;

\echo
\echo '== 1. A topic and its consumer groups. Every group gets its own copy of every'
\echo '      message its filter matches; inside a group each message goes to one receiver.'
SELECT courier.create_topic('orders') \g /dev/null
SELECT courier.create_group('orders', 'billing') \g /dev/null
SELECT courier.create_group('orders', 'audit', filter => 'created || cancelled') \g /dev/null
SELECT courier.create_group('orders', 'eu_big', filter => $$ region = 'eu' AND amount >= 100 $$) \g /dev/null
SELECT courier.create_group('orders', 'mailer', filter => 'paid', max_attempts => 2,
                            retry_backoff => '{1 second}') \g /dev/null
SELECT courier.create_group('orders', 'fulfil', ordered => true) \g /dev/null
SELECT courier.create_group('orders', 'reminders', filter => 'reminder') \g /dev/null
SELECT grp, filter, ordered, max_attempts FROM courier.groups WHERE topic = 'orders' ORDER BY grp;

\echo '== 2. The transactional outbox: an order row and its message commit together,'
\echo '      or not at all.'
CREATE TABLE shop_orders (id int PRIMARY KEY, region text, amount int);
BEGIN;
INSERT INTO shop_orders VALUES (42, 'eu', 30);
SELECT courier.send('orders', '{"order": 42}', tag => 'created', keys => ARRAY['order-42'],
                    headers => '{"region": "eu", "amount": 30}') AS id_42 \gset
COMMIT;
BEGIN;
INSERT INTO shop_orders VALUES (43, 'eu', 99);
SELECT courier.send('orders', '{"order": 43}', tag => 'created', keys => ARRAY['order-43']) \g /dev/null
ROLLBACK;
SELECT courier.send('orders', '{"order": 44}', tag => 'created', keys => ARRAY['order-44'],
                    headers => '{"region": "eu", "amount": 250}') \g /dev/null
SELECT courier.send('orders', '{"order": 42, "paid": 30}', tag => 'paid', keys => ARRAY['order-42'],
                    headers => '{"region": "eu", "amount": 30}') AS paid_42 \gset
SELECT courier.send('orders', '{"order": 45}', tag => 'created', keys => ARRAY['order-45'],
                    headers => '{"region": "us", "amount": 500}') \g /dev/null
SELECT id, tag, keys, headers, body FROM courier.peek('orders', 'billing', 10);
\echo '   (order 43 rolled back: its message never existed)'

\echo
\echo '== 3. Filters. audit takes tags created || cancelled; eu_big takes an SQL92'
\echo '      selector over the headers: region = ''eu'' AND amount >= 100.'
SELECT 'audit' AS grp, id, tag, body FROM courier.receive('orders', 'audit', 10);
SELECT 'eu_big' AS grp, id, tag, headers, body FROM courier.receive('orders', 'eu_big', 10);

\echo '== 4. receive leases messages (30 s here); ack finishes them. Until the'
\echo '      lease ends, no other receiver of the group sees them.'
CREATE TEMP TABLE got AS
  SELECT * FROM courier.receive('orders', 'billing', max_messages => 2, visibility_timeout => '30 seconds');
SELECT id, attempt, tag, body, lease_until > now() AS leased FROM got;
SELECT courier.ack('orders', 'billing', array_agg(id)) AS acked FROM got;

\echo
\echo '== 5. A delayed message is not receivable before its time. A waiting receive'
\echo '      sleeps (no polling) and is woken when it comes due, 2 seconds later.'
SELECT courier.send('orders', '{"remind": 42}', tag => 'reminder', delay => '2 seconds') AS reminder_id \gset
SELECT count(*) AS receivable_now FROM courier.receive('orders', 'reminders', 10);
SELECT clock_timestamp() AS t0 \gset
SELECT id, tag, body, round(extract(epoch FROM clock_timestamp() - :'t0'::timestamptz)::numeric, 1) AS waited_s
  FROM courier.receive('orders', 'reminders', 10, wait => '10 seconds');

\echo
\echo '== 6. nack: the mailer (it takes tag paid) fails and says why. The message comes'
\echo '      back after the group''s backoff (1 second here) with attempt 2.'
SELECT id, attempt, body FROM courier.receive('orders', 'mailer', 1);
SELECT courier.nack('orders', 'mailer', :paid_42, reason => 'smtp timeout') AS nacked;
SELECT id, attempt, body FROM courier.receive('orders', 'mailer', 1, wait => '10 seconds');

\echo
\echo '== 7. Attempt 2 was the last (max_attempts 2): this nack makes it a dead letter.'
SELECT courier.nack('orders', 'mailer', :paid_42, reason => 'smtp still down') AS nacked;
SELECT grp, id, attempts, last_error, body FROM courier.dead_letters WHERE topic = 'orders';
\echo '   Fixed the mail server: redrive, and it is delivered again from attempt 1.'
SELECT courier.redrive('orders', 'mailer') AS redriven;
SELECT id, attempt, body FROM courier.receive('orders', 'mailer', 1);
SELECT courier.ack('orders', 'mailer', :paid_42) AS acked;

\echo
\echo '== 8. An ordered group hands out one message per key at a time, in send order:'
\echo '      order-42 was created, then paid; "paid" waits until "created" is acked,'
\echo '      while other keys go on.'
SELECT id, keys, tag FROM courier.receive('orders', 'fulfil', 10);
SELECT courier.ack('orders', 'fulfil', :id_42) AS acked_created;
\echo '   order-42 "created" is acked: now its "paid" is handed out.'
SELECT id, keys, tag FROM courier.receive('orders', 'fulfil', 10);

\echo
\echo '== 9. find: where is each message of key order-42, in every group?'
SELECT grp, id, tag, state, attempt FROM courier.find('orders', key => 'order-42') ORDER BY id, grp;

\echo '== 10. The groups at a glance (what an operator watches).'
SELECT grp, backlog, in_flight, delayed, retrying, dead_letters FROM courier.groups
 WHERE topic = 'orders' ORDER BY grp;
\echo 'tour done'
