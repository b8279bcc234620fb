-- What the examples expect: a topic "orders", a consumer group for each
-- worker, and the shop's own tables.  psql -f examples/schema.sql
CREATE EXTENSION IF NOT EXISTS pg_courier CASCADE;
SELECT courier.create_topic('orders') WHERE NOT EXISTS (SELECT FROM courier.topics WHERE topic = 'orders');
-- a failed message is retried after 1 second, then 5, then 30; after 5
-- attempts it is a dead letter (see examples/oncall.sql)
SELECT courier.create_group('orders', g, max_attempts => 5, retry_backoff => '{1s,5s,30s}')
  FROM unnest(ARRAY['shipping', 'shipping_node']) g
 WHERE NOT EXISTS (SELECT FROM courier.groups WHERE topic = 'orders' AND grp = g);

CREATE TABLE IF NOT EXISTS orders (
	id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	customer text NOT NULL,
	amount numeric NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now()
);
-- what the workers do with an order: one shipment per order and worker
CREATE TABLE IF NOT EXISTS shipments (
	order_id bigint NOT NULL,
	worker text NOT NULL,
	attempt int NOT NULL,
	message_id bigint NOT NULL,
	shipped_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (order_id, worker)
);
