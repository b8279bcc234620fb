SELECT coalesce(array_agg(id), '{}') AS ids, string_agg(body::text, '') IS NOT NULL AS b FROM courier.receive('bench', 'default', 100) \gset
SELECT courier.ack('bench', 'default', :ids::bigint[]);
