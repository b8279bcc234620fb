INSERT INTO bare (body) SELECT '{"order": 42, "customer": "c-17", "amount": 30}'::jsonb FROM generate_series(1, 100);
