-- courier.find (query by key or id, with the state per group) and
-- courier.peek (what comes next, changing nothing).
\set VERBOSITY terse
SET client_min_messages = warning;

SELECT courier.create_topic('orders');
SELECT courier.create_group('orders', 'billing', max_attempts => 2, retry_backoff => '{0s}');
SELECT courier.create_group('orders', 'eu', filter => 'region = ''eu''');
SELECT courier.send('orders', '{"order": 42, "step": 1}', keys => ARRAY['order-42', 'customer-7'],
                    headers => '{"region": "eu"}') AS m1,
       courier.send('orders', '{"order": 42, "step": 2}', keys => ARRAY['order-42'],
                    headers => '{"region": "us"}') AS m2,
       courier.send('orders', '{"order": 43}', keys => ARRAY['order-43']) AS m3,
       courier.send('orders', '{"order": 42, "step": 3}', keys => ARRAY['order-42'],
                    delay => '1 hour') AS m4;

-- every message with a key, per group, before anything was delivered
SELECT id, body->>'step' AS step, grp, state, attempt FROM courier.find('orders', key => 'order-42');
SELECT id, grp, state FROM courier.find('orders', key => 'customer-7');
SELECT count(*) FROM courier.find('orders', key => 'nobody');

-- peek shows what would come next and changes nothing
SELECT id, attempt, lease_until FROM courier.peek('orders', 'billing', 10);
SELECT id, attempt, lease_until FROM courier.peek('orders', 'billing', 10);
SELECT grp, backlog, in_flight FROM courier.groups WHERE grp = 'billing';

-- deliveries change the states: in flight, acked, retrying, dead
SELECT id, attempt FROM courier.receive('orders', 'billing', 2);
SELECT courier.ack('orders', 'billing', 1);
SELECT id, grp, state, attempt, lease_until > now() AS leased FROM courier.find('orders', id => 2);
SELECT courier.nack('orders', 'billing', 2, reason => 'boom');
SELECT id, grp, state, attempt, last_error FROM courier.find('orders', id => 2) WHERE grp = 'billing';
SELECT courier.set_visibility('orders', 'billing', 2, '1 hour') AS extended_while_not_leased;
SELECT id, attempt FROM courier.receive('orders', 'billing', 1);
SELECT id, grp, state, attempt, last_error FROM courier.find('orders', id => 2) WHERE grp = 'billing';
SELECT courier.nack('orders', 'billing', 2, reason => 'boom again');
SELECT id, grp, state, attempt, last_error FROM courier.find('orders', id => 2);
SELECT id, grp, state FROM courier.find('orders', id => 1);
-- peek after deliveries: the delayed one is not next, nothing leased shows
SELECT id FROM courier.peek('orders', 'billing', 10);

-- bad input
SELECT * FROM courier.find('orders');
SELECT * FROM courier.find('orders', key => 'x', id => 1);
SELECT * FROM courier.find('nope', key => 'x');
SELECT * FROM courier.peek('orders', 'billing', 0);
SELECT * FROM courier.peek('orders', 'nope', 1);

SELECT courier.drop_topic('orders');
