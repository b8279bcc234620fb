SELECT courier.send('lat', '{"order": 42}');
