SELECT courier.send('bench', '{"order": 42, "customer": "c-17", "amount": 30}');
