-- Subscription filters: tag expressions and SQL92 selectors, checked,
-- evaluated, and applied to consumer groups.
\set VERBOSITY terse
SET client_min_messages = warning;

-- validation and the normalized form
SELECT courier.check_filter('*');
SELECT courier.check_filter(' created ||cancelled ');
SELECT courier.check_filter($$ a > 1 AND (b = 'x' OR c IS NULL) $$);
SELECT courier.check_filter($$ region = 'eu' and amount >= 100 and TAGS in ('created', 'paid') $$);
SELECT courier.check_filter($$ NOT a = 'x' -- comment
  AND "user-id" BETWEEN 1 AND 10 /* block */ $$);
-- syntax errors carry the position and what was expected
SELECT courier.check_filter($$ region = $$);
\echo :LAST_ERROR_SQLSTATE
SELECT courier.check_filter($$ a = 'x' AND $$);
SELECT courier.check_filter($$ a LIKE 'x%' $$);
SELECT courier.check_filter($$ a = 'unterminated $$);
SELECT courier.check_filter('');
SELECT courier.check_filter('a || || b');
SELECT courier.check_filter(repeat('(', 100000) || 'a = 1' || repeat(')', 100000));
SELECT courier.check_filter(repeat('NOT ', 1000) || 'a = 1');
SELECT courier.check_filter(repeat('a = 1 OR ', 2000) || 'a = 2');

-- evaluation: three-valued, numeric strings compared by value
SELECT courier.match_filter('price > 10', '{"price": "15"}') AS numeric_string,
       courier.match_filter('a = 3', '{"a": "3.0"}') AS by_value,
       courier.match_filter('a > 5', '{"a": "abc"}') AS incomparable_is_unknown,
       courier.match_filter('a = ''x''', '{}') AS missing_is_unknown,
       courier.match_filter('a = ''x'' OR TRUE', '{}') AS kleene_or,
       courier.match_filter('x = TRUE', '{"x": "True"}') AS bool_string;
SELECT courier.match_filter('created || paid', NULL, 'paid') AS tag_hit,
       courier.match_filter('created || paid', NULL, NULL) AS untagged,
       courier.match_filter('*', NULL, NULL) AS star_takes_all,
       courier.match_filter('TAGS = ''paid''', '{}', 'paid') AS tags_in_sql;
SELECT courier.match_filter('a = 1', '[1]');

-- every RocketMQ compatibility vector gives pg_courier's documented result
\getenv abs_srcdir PG_ABS_SRCDIR
\set vectors_file :abs_srcdir '/compat/rocketmq-filter-vectors.json'
CREATE FUNCTION try_match(f text, h jsonb, t text) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
	RETURN coalesce(to_jsonb(courier.match_filter(f, h, t)), 'null'::jsonb);
EXCEPTION WHEN syntax_error THEN
	RETURN '"syntax_error"'::jsonb;
END;
$$;
CREATE TEMP TABLE vectors AS
	SELECT v->>'id' AS id, v->>'expr' AS expr, v->'headers' AS headers, v->>'tag' AS tag,
	       v->'courier' AS expected
	  FROM jsonb_array_elements(pg_read_file(:'vectors_file')::jsonb) v;
SELECT count(*) AS vectors FROM vectors;
SELECT id, expr, headers, tag, expected, try_match(expr, headers, tag) AS got
  FROM vectors WHERE try_match(expr, headers, tag) IS DISTINCT FROM expected;
SELECT expected, count(*) FROM vectors GROUP BY expected ORDER BY expected::text;

-- groups see only matching messages; the rest is not leased and not backlog
SELECT courier.create_topic('orders');
SELECT courier.create_group('orders', 'eu-billing',
       filter => $$ region = 'eu' AND amount >= 100 AND TAGS IN ('created', 'paid') $$);
SELECT courier.create_group('orders', 'audit', filter => 'created || cancelled');
SELECT grp, filter FROM courier.groups WHERE topic = 'orders' ORDER BY grp;
SELECT courier.send('orders', jsonb_build_object('n', n), tag => t, headers => h) AS id
  FROM (VALUES (1, 'created', '{"region": "eu", "amount": 150}'::jsonb),
               (2, 'created', '{"region": "us", "amount": 150}'),
               (3, 'paid',    '{"region": "eu", "amount": "120"}'),
               (4, 'cancelled', '{"region": "eu", "amount": 500}'),
               (5, NULL,      '{"region": "eu", "amount": 500}'),
               (6, 'created', '{"region": "eu", "amount": 99}'),
               (7, 'created', NULL)) m(n, t, h) ORDER BY n;
SELECT grp, backlog FROM courier.groups WHERE topic = 'orders' ORDER BY grp;
SELECT id, tag, body FROM courier.peek('orders', 'eu-billing', 10);
SELECT id, tag FROM courier.receive('orders', 'eu-billing', 10) ORDER BY id;
SELECT id, tag FROM courier.receive('orders', 'audit', 10) ORDER BY id;
SELECT count(*) AS everything FROM courier.receive('orders', 'default', 10);
SELECT grp, backlog, in_flight FROM courier.groups WHERE topic = 'orders' ORDER BY grp;

-- alter_group: the new filter applies to messages not yet delivered
SELECT courier.send('orders', '{"n": 8}', tag => 'paid', headers => '{"region": "us", "amount": 1}') AS id8;
SELECT courier.alter_group('orders', 'eu-billing', filter => 'region = ''us''');
SELECT grp, filter, backlog FROM courier.groups WHERE grp = 'eu-billing';
SELECT id, tag FROM courier.receive('orders', 'eu-billing', 10) ORDER BY id;
SELECT courier.alter_group('orders', 'eu-billing', filter => '*');
SELECT grp, filter FROM courier.groups WHERE grp = 'eu-billing';

-- a bad filter is refused and leaves the group as it was
SELECT courier.alter_group('orders', 'audit', filter => 'region = ');
SELECT courier.create_group('orders', 'bad', filter => 'a = ''x'' AND');
SELECT grp, filter FROM courier.groups WHERE topic = 'orders' ORDER BY grp;
-- filter text never reaches SQL
SELECT courier.create_group('orders', 'sneaky', filter => $$ a = 'x''; DROP TABLE vectors; --' $$);
SELECT count(*) > 0 AS vectors_still_there FROM vectors;

-- a selective filter drains its matches without walking the log again
SELECT count(*) FROM courier.send_batch('orders',
  (SELECT array_agg(jsonb_build_object('n', g)) FROM generate_series(1, 2000) g),
  headers => '{"kind": "noise"}');
SELECT courier.send('orders', '{"needle": 1}', headers => '{"kind": "needle"}') AS needle1 \gset
SELECT count(*) FROM courier.send_batch('orders',
  (SELECT array_agg(jsonb_build_object('n', g)) FROM generate_series(1, 2000) g),
  headers => '{"kind": "noise"}');
SELECT courier.send('orders', '{"needle": 2}', headers => '{"kind": "needle"}') AS needle2 \gset
SELECT courier.create_group('orders', 'needles', filter => 'kind = ''needle''');
SELECT body FROM courier.receive('orders', 'needles', 10) ORDER BY id;
SELECT count(*) FROM courier.receive('orders', 'needles', 10);
SELECT count(*) AS claims FROM courier.claim c JOIN courier.group_meta g USING (group_id) WHERE g.name = 'needles';

SELECT courier.drop_topic('orders');
