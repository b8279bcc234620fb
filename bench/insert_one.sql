INSERT INTO bare (body) VALUES ('{"order": 42, "customer": "c-17", "amount": 30}');
