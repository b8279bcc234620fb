SELECT count(*) FROM courier.send_batch('bench', (SELECT array_agg('{"order": 42, "customer": "c-17", "amount": 30}'::jsonb) FROM generate_series(1, 100)));
