WITH r AS (SELECT id, sent_at FROM courier.receive('lat', 'default', 100, '30 seconds', wait => '1 second')),
     a AS (SELECT courier.ack('lat', 'default', coalesce((SELECT array_agg(id) FROM r), '{}')) AS n)
INSERT INTO lat SELECT extract(epoch FROM clock_timestamp() - r.sent_at) * 1000 FROM r, a;
