/*
 * pg_courier install script (built into pg_courier--<version>.sql by the Makefile).
 *
 * Administration (topics, groups, dead letters) is PL/pgSQL; the hot path
 * (send, receive, ack, nack) and the filter engine are C.  Every function runs
 * as the extension owner with a pinned search_path; EXECUTE is revoked from
 * PUBLIC at the end of this file (grant it to your application roles).
 */
\echo Use "CREATE EXTENSION pg_courier" to load this file. \quit

-- The extension creates schema courier and owns it (it is an extension
-- member, so DROP EXTENSION drops it).  A schema of that name that already
-- exists belongs to someone else: refuse to move into it.  (The control file
-- says schema = pg_catalog, as pg_cron's does: the extension object itself
-- lives there, so it depends on no schema a user could drop.)
DO $$
BEGIN
	IF EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname OPERATOR(pg_catalog.=) 'courier') THEN
		RAISE EXCEPTION 'schema "courier" already exists'
			USING ERRCODE = 'duplicate_schema',
				  DETAIL = 'pg_courier creates schema courier itself and keeps all of its objects there.',
				  HINT = 'Drop or rename the existing schema courier, then create the extension again.';
	END IF;
END;
$$;
CREATE SCHEMA courier;

-- Loading the library runs _PG_init, which refuses to go on unless the
-- library was preloaded through shared_preload_libraries.
CREATE FUNCTION courier._check_preloaded() RETURNS void
	AS 'MODULE_PATHNAME', 'courier_check_preloaded' LANGUAGE C STRICT;
SELECT courier._check_preloaded();
DROP FUNCTION courier._check_preloaded();

------------------------------------------------------------------------------
-- Catalog
------------------------------------------------------------------------------

CREATE SEQUENCE courier.topic_id_seq;
CREATE SEQUENCE courier.group_id_seq;

-- One row per topic.  A topic's messages live in its segment tables
-- courier.log_<topic_id>_<seg_no>; ids come from the sequence in seq.
CREATE TABLE courier.topic_meta (
	topic_id		integer PRIMARY KEY,
	name			text NOT NULL UNIQUE,
	retention		interval NOT NULL,
	max_retention	interval,
	seq				regclass NOT NULL,
	floor_id		bigint NOT NULL DEFAULT 0,	-- every id <= floor_id has been reclaimed
	reclaimed		bigint NOT NULL DEFAULT 0,	-- segments dropped so far
	created_at		timestamptz NOT NULL DEFAULT now()
	-- A topic's owner and privileges are those of its sequence (seq):
	-- pg_class.relowner and pg_class.relacl (src/acl.c), so that PostgreSQL
	-- tracks them (DROP ROLE, DROP OWNED, REASSIGN OWNED, pg_dump).
);

-- The segments of each topic's log, oldest first.  Senders insert into the
-- newest one; whole segments are dropped once retention has passed and every
-- group is past them.
CREATE TABLE courier.segment (
	topic_id		integer NOT NULL,
	seg_no			integer NOT NULL,
	relid			regclass NOT NULL,
	created_at		timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (topic_id, seg_no)
);

-- One row per consumer group.  low_water: every id <= low_water is finished
-- for the group (acked, dead-lettered, filtered out or never committed).
CREATE TABLE courier.group_meta (
	group_id		integer PRIMARY KEY,
	topic_id		integer NOT NULL,
	name			text NOT NULL,
	filter			text,				-- normalized filter; NULL means '*'
	ordered			boolean NOT NULL DEFAULT false,
	max_attempts	integer NOT NULL DEFAULT 16,
	retry_backoff	interval[] NOT NULL,
	low_water		bigint NOT NULL,
	dropped			bigint NOT NULL DEFAULT 0,	-- undelivered messages lost to max_retention
	created_at		timestamptz NOT NULL DEFAULT now(),
	paused			boolean NOT NULL DEFAULT false,	-- 0.2.0: pause_group / resume_group
	UNIQUE (topic_id, name)
);

-- Batches of first deliveries.  A claim covers the ids [lo, hi] of its
-- group's log: each was either delivered (listed in pending until acked, at
-- most 128 per row) or passed over.  Claims of one group never overlap:
-- every claim is checked before it is written (src/walk.c,
-- claim_overlap_check, as an exclusion constraint would but without its GiST
-- index), so an attempt is an error instead of a message handed out twice.
CREATE TABLE courier.claim (
	group_id		integer NOT NULL,
	lo				bigint NOT NULL,
	hi				bigint NOT NULL,
	lease_until		timestamptz,		-- when the first delivery's lease ends
	delivered_at	timestamptz NOT NULL,
	pending			bigint[] NOT NULL,
	PRIMARY KEY (group_id, lo),
	CHECK (lo <= hi)
);
CREATE INDEX claim_expiry ON courier.claim (group_id, lease_until);

-- Per-message delivery state for everything off the happy path: redeliveries
-- after a lease expired or a nack, delayed messages, redriven dead letters and
-- the messages of ordered groups.
--   state 'l' leased until visible_at; 'w' waiting until visible_at;
--         'q' queued behind the head of its ordering key (the key's one row
--         in another state)
CREATE TABLE courier.lease (
	group_id		integer NOT NULL,
	msg_id			bigint NOT NULL,
	state			"char" NOT NULL,
	visible_at		timestamptz NOT NULL,
	attempt			integer NOT NULL,
	first_delivered_at timestamptz,
	last_delivered_at timestamptz,
	last_error		text,
	okey			text,
	-- a copy of the message, kept only for redriven dead letters (whose log
	-- segment may be gone); NULL otherwise
	body			jsonb,
	tag				text,
	keys			text[],
	headers			jsonb,
	sent_at			timestamptz,
	PRIMARY KEY (group_id, msg_id)
);
-- msg_id too: due rows are read in (visible_at, msg_id) order, and the scan
-- stops at the batch instead of sorting every due row (W7, BENCHMARKS.md)
CREATE INDEX lease_due ON courier.lease (group_id, visible_at, msg_id);
CREATE INDEX lease_key ON courier.lease (group_id, okey, msg_id) WHERE okey IS NOT NULL;
-- an ordering key has one head at most: a key's messages are in flight one at a time
CREATE UNIQUE INDEX lease_head ON courier.lease (group_id, okey)
	WHERE okey IS NOT NULL AND state OPERATOR(pg_catalog.<>) 'q';

-- Dead letters keep a copy of the message, so they outlive the log segment.
CREATE TABLE courier.dead_letter (
	group_id		integer NOT NULL,
	msg_id			bigint NOT NULL,
	attempts		integer NOT NULL,
	first_delivered_at timestamptz,
	last_delivered_at timestamptz,
	died_at			timestamptz NOT NULL,
	last_error		text,
	tag				text,
	keys			text[],
	headers			jsonb,
	body			jsonb NOT NULL,
	sent_at			timestamptz NOT NULL,
	PRIMARY KEY (group_id, msg_id)
);

-- Queue data is user data: let pg_dump keep it.
SELECT pg_catalog.pg_extension_config_dump('courier.topic_meta', '');
SELECT pg_catalog.pg_extension_config_dump('courier.segment', '');
SELECT pg_catalog.pg_extension_config_dump('courier.group_meta', '');
SELECT pg_catalog.pg_extension_config_dump('courier.claim', '');
SELECT pg_catalog.pg_extension_config_dump('courier.lease', '');
SELECT pg_catalog.pg_extension_config_dump('courier.dead_letter', '');
SELECT pg_catalog.pg_extension_config_dump('courier.topic_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('courier.group_id_seq', '');

CREATE TYPE courier.message AS (
	id				bigint,
	attempt			integer,
	tag				text,
	keys			text[],
	headers			jsonb,
	body			jsonb,
	sent_at			timestamptz,
	lease_until		timestamptz,
	receipt			text
);

------------------------------------------------------------------------------
-- Internal C helpers used by the administration functions
------------------------------------------------------------------------------

CREATE FUNCTION courier._validate_name(what text, name text) RETURNS void
	AS 'MODULE_PATHNAME', 'courier_validate_name' LANGUAGE C;
-- This transaction changed a topic (its row, segments or groups; group_id
-- NULL) or a group (topic_id NULL): every session's catalog cache follows
-- (src/catalog.c).
CREATE FUNCTION courier._ddl_changed(topic_id integer, group_id integer) RETURNS void
	AS 'MODULE_PATHNAME', 'courier_ddl_changed' LANGUAGE C SET search_path = pg_catalog, pg_temp;
CREATE FUNCTION courier._forget(topic_id integer, group_id integer) RETURNS void
	AS 'MODULE_PATHNAME', 'courier_forget' LANGUAGE C SET search_path = pg_catalog, pg_temp;
-- A topic or group created by this transaction: its shared-memory entry goes
-- if the transaction (or savepoint) rolls back.
CREATE FUNCTION courier._created(topic_id integer, group_id integer) RETURNS void
	AS 'MODULE_PATHNAME', 'courier_created' LANGUAGE C SET search_path = pg_catalog, pg_temp;
CREATE FUNCTION courier._next_id(topic_id integer) RETURNS bigint
	AS 'MODULE_PATHNAME', 'courier_next_id' LANGUAGE C STRICT;
-- Takes one of pg_courier's own locks (admin.c, courier_lock) and says
-- whether the topic or group still exists once it is held, as the
-- catalog has it now: under REPEATABLE READ a row read before the wait
-- outlives a drop that committed during it.
CREATE FUNCTION courier._lock(kind integer, id integer) RETURNS boolean
	AS 'MODULE_PATHNAME', 'courier_lock' LANGUAGE C STRICT;
-- The ordering key of a message: the first element of keys, whatever the
-- array's lower bound (C uses the same definition).
CREATE FUNCTION courier._ordering_key(keys text[]) RETURNS text
	AS 'MODULE_PATHNAME', 'courier_ordering_key' LANGUAGE C IMMUTABLE STRICT;
-- Per-topic privileges (src/acl.c): checked for the role in effect outside
-- SECURITY DEFINER functions (GetOuterUserId).
CREATE FUNCTION courier._check_privilege(topic_id integer, privilege text) RETURNS void
	AS 'MODULE_PATHNAME', 'courier_check_privilege' LANGUAGE C STRICT;
CREATE FUNCTION courier._outer_user() RETURNS regrole
	AS 'MODULE_PATHNAME', 'courier_outer_user' LANGUAGE C STABLE;
CREATE FUNCTION courier._invalidate_group(group_id integer) RETURNS void
	AS 'MODULE_PATHNAME', 'courier_invalidate_group' LANGUAGE C STRICT SET search_path = pg_catalog, pg_temp;
CREATE FUNCTION courier._first_id_since(topic_id integer, since timestamptz) RETURNS bigint
	AS 'MODULE_PATHNAME', 'courier_first_id_since' LANGUAGE C STRICT SET search_path = pg_catalog, pg_temp;
-- the first id a seek to since hands out again, counting messages still
-- being sent (seek never passes over one)
CREATE FUNCTION courier._seek_start(topic_id integer, since timestamptz) RETURNS bigint
	AS 'MODULE_PATHNAME', 'courier_seek_start' LANGUAGE C STRICT SET search_path = pg_catalog, pg_temp;
-- delete a group's claims and lease rows (and dead letters) under the latest
-- snapshot; the caller holds the group's locks (seek, purge, drops)
CREATE FUNCTION courier._group_reset(group_id integer, upto bigint, dead boolean,
	OUT old_top bigint, OUT dropped bigint)
	AS 'MODULE_PATHNAME', 'courier_group_reset' LANGUAGE C STRICT SET search_path = pg_catalog, pg_temp;
CREATE FUNCTION courier._count_messages(topic_id integer, above bigint, upto bigint) RETURNS bigint
	AS 'MODULE_PATHNAME', 'courier_count_messages' LANGUAGE C STRICT SET search_path = pg_catalog, pg_temp;
-- The extension's own DDL on schema courier goes through here: the DDL guard
-- (src/guard.c) refuses DDL on pg_courier's relations from everyone else.
-- EXECUTE is granted to nobody.
CREATE FUNCTION courier._ddl(sql text) RETURNS void
	AS 'MODULE_PATHNAME', 'courier_ddl' LANGUAGE C STRICT VOLATILE SET search_path = pg_catalog, pg_temp;
-- Revoke every privilege on a relation the extension just created from all
-- but its owner.  The creating role's default privileges (ALTER DEFAULT
-- PRIVILEGES ... GRANT SELECT ON TABLES / SEQUENCES, a common DBA setting)
-- apply to what a SECURITY DEFINER function creates: they must not give
-- anyone a topic's privileges (its sequence's ACL) or its bodies (a segment).
CREATE FUNCTION courier._clear_acl(rel regclass) RETURNS void
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	r record;
BEGIN
	FOR r IN SELECT DISTINCT a.grantee, c.relkind
			   FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) a
			  WHERE c.oid = rel AND a.grantee OPERATOR(pg_catalog.<>) c.relowner LOOP
		PERFORM courier._ddl(format('REVOKE ALL ON %s %s FROM %s CASCADE',
									CASE WHEN r.relkind = 'S' THEN 'SEQUENCE' ELSE 'TABLE' END, rel,
									CASE WHEN r.grantee = 0 THEN 'PUBLIC'
										 ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(r.grantee)) END));
	END LOOP;
END;
$$;

-- Keep this table and its indexes in step with segment_columns[] and
-- segment_indexes[] in src/guard.c (what a restore may recreate).
CREATE FUNCTION courier._create_segment(topic_id integer, seg_no integer) RETURNS regclass
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	tab text := format('log_%s_%s', topic_id, seg_no);
BEGIN
	-- fillfactor 100: rows are never updated.  The unique index on id is the
	-- log's only access path besides the key index used by courier.find.
	PERFORM courier._ddl(format('CREATE TABLE courier.%I (
			id bigint NOT NULL, sent_at timestamptz NOT NULL, deliver_at timestamptz,
			tag text, keys text[], headers jsonb, body jsonb NOT NULL)
			WITH (fillfactor = 100)', tab));
	PERFORM courier._clear_acl(format('courier.%I', tab)::regclass);
	PERFORM courier._ddl(format('CREATE UNIQUE INDEX %I ON courier.%I (id)', tab || '_id', tab));
	PERFORM courier._ddl(format('CREATE INDEX %I ON courier.%I USING gin (keys) WHERE keys IS NOT NULL',
								tab || '_keys', tab));
	INSERT INTO courier.segment (topic_id, seg_no, relid)
		VALUES (topic_id, seg_no, format('courier.%I', tab)::regclass);
	RETURN format('courier.%I', tab)::regclass;
END;
$$;

------------------------------------------------------------------------------
-- Topics and groups
------------------------------------------------------------------------------

CREATE FUNCTION courier.create_topic(topic text, retention interval DEFAULT '3 days',
									 max_retention interval DEFAULT NULL)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	tid integer;
	gid integer;
	seqname text;
BEGIN
	PERFORM courier._validate_name('topic', topic);
	IF retention IS NULL OR retention <= interval '0' THEN
		RAISE EXCEPTION 'retention must be a positive interval'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF retention > interval '10 years' THEN
		RAISE EXCEPTION 'retention must not exceed 10 years'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF max_retention IS NOT NULL AND max_retention < retention THEN
		RAISE EXCEPTION 'max_retention must not be shorter than retention'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF max_retention > interval '10 years' THEN
		RAISE EXCEPTION 'max_retention must not exceed 10 years'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	-- serialise creators of the same name (the UNIQUE constraint would also
	-- catch it, with a less helpful error)
	PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('courier.topic:' || topic));
	PERFORM courier._check_limits(1, 1);
	IF EXISTS (SELECT 1 FROM courier.topic_meta t WHERE t.name = topic) THEN
		RAISE EXCEPTION 'topic "%" already exists', topic
			USING ERRCODE = 'duplicate_object';
	END IF;
	tid := pg_catalog.nextval('courier.topic_id_seq');
	seqname := format('seq_%s', tid);
	PERFORM courier._ddl(format('CREATE SEQUENCE courier.%I NO CYCLE', seqname));
	PERFORM courier._clear_acl(format('courier.%I', seqname)::regclass);
	-- the topic's owner is its sequence's owner (src/acl.c)
	PERFORM courier._ddl(format('ALTER SEQUENCE courier.%I OWNER TO %s', seqname,
								courier._outer_user()));
	INSERT INTO courier.topic_meta (topic_id, name, retention, max_retention, seq)
		VALUES (tid, topic, retention, max_retention, format('courier.%I', seqname)::regclass);
	PERFORM courier._create_segment(tid, 1);
	INSERT INTO courier.group_meta (group_id, topic_id, name, retry_backoff, low_water)
		VALUES (pg_catalog.nextval('courier.group_id_seq'), tid, 'default',
				courier._default_backoff(), 0)
		RETURNING group_id INTO gid;
	PERFORM courier._created(tid, gid);
	PERFORM courier._ddl_changed(tid, NULL);
END;
$$;

CREATE FUNCTION courier.drop_topic(topic text)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	t courier.topic_meta;
	g record;
	s record;
BEGIN
	PERFORM courier._validate_name('topic', topic);
	-- Lock order (docs/design.md): the existence lock first, then catalog rows.
	SELECT * INTO t FROM courier.topic_meta m WHERE m.name = topic;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'topic "%" does not exist', topic USING ERRCODE = 'undefined_object';
	END IF;
	PERFORM courier._check_privilege(t.topic_id, 'owner');
	-- wait for receivers, senders and maintenance of this topic to finish
	IF NOT courier._lock(3, t.topic_id) THEN
		RAISE EXCEPTION 'topic "%" does not exist', topic USING ERRCODE = 'undefined_object';
	END IF;
	SELECT * INTO t FROM courier.topic_meta m WHERE m.topic_id = t.topic_id FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'topic "%" does not exist', topic USING ERRCODE = 'undefined_object';
	END IF;
	FOR g IN SELECT group_id FROM courier.group_meta WHERE topic_id = t.topic_id ORDER BY group_id LOOP
		PERFORM courier._lock(1, g.group_id);
		PERFORM courier._lock(2, g.group_id);
		PERFORM courier._group_reset(g.group_id, 0, true);
		PERFORM courier._forget(NULL, g.group_id);
	END LOOP;
	DELETE FROM courier.group_meta WHERE topic_id = t.topic_id;
	FOR s IN SELECT relid FROM courier.segment WHERE topic_id = t.topic_id LOOP
		PERFORM courier._ddl(format('DROP TABLE %s', s.relid));
	END LOOP;
	DELETE FROM courier.segment WHERE topic_id = t.topic_id;
	PERFORM courier._ddl(format('DROP SEQUENCE %s', t.seq));
	DELETE FROM courier.topic_meta WHERE topic_id = t.topic_id;
	PERFORM courier._forget(t.topic_id, NULL);
	-- receives asleep on it wake up to a clean 42704 at commit, not at the
	-- end of their wait
	PERFORM courier._wake(t.topic_id);
	PERFORM courier._ddl_changed(t.topic_id, NULL);
END;
$$;

-- courier.max_topics and courier.max_groups size pg_courier's shared memory
-- (over all databases): refuse to create more topics or groups than this
-- database can ever use, with a clear error, instead of failing later.
CREATE FUNCTION courier._entries_elsewhere(OUT topics bigint, OUT groups bigint)
	AS 'MODULE_PATHNAME', 'courier_entries_elsewhere' LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp;
CREATE FUNCTION courier._check_limits(new_topics integer, new_groups integer) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	max_topics integer := pg_catalog.current_setting('courier.max_topics')::integer;
	max_groups integer := pg_catalog.current_setting('courier.max_groups')::integer;
	n bigint;
	other record := courier._entries_elsewhere();
BEGIN
	-- this database's topics, and those other databases have in use
	SELECT pg_catalog.count(*) INTO n FROM courier.topic_meta;
	IF n + other.topics + new_topics > max_topics THEN
		RAISE EXCEPTION 'too many topics'
			USING ERRCODE = 'configuration_limit_exceeded',
				  DETAIL = format('This database has %s topics, other databases use %s; courier.max_topics is %s, over all databases.',
								  n, other.topics, max_topics),
				  HINT = 'Drop unused topics, or raise courier.max_topics and restart the server.';
	END IF;
	SELECT pg_catalog.count(*) INTO n FROM courier.group_meta;
	IF n + other.groups + new_groups > max_groups THEN
		RAISE EXCEPTION 'too many consumer groups'
			USING ERRCODE = 'configuration_limit_exceeded',
				  DETAIL = format('This database has %s groups, other databases use %s; courier.max_groups is %s, over all databases.',
								  n, other.groups, max_groups),
				  HINT = 'Drop unused groups, or raise courier.max_groups and restart the server.';
	END IF;
END;
$$;

-- RocketMQ's 16-step retry ladder, the default for new groups.
CREATE FUNCTION courier._default_backoff() RETURNS interval[]
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS
$$ SELECT '{10s,30s,1min,2min,3min,4min,5min,6min,7min,8min,9min,10min,20min,30min,1h,2h}'::interval[] $$;

-- Validates a retry ladder: non-empty, positive, ascending, no NULLs.
CREATE FUNCTION courier._check_backoff(ladder interval[]) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	i integer;
	step interval;
	prev interval;
BEGIN
	IF ladder IS NULL OR pg_catalog.cardinality(ladder) = 0 THEN
		RAISE EXCEPTION 'retry_backoff must not be empty'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF pg_catalog.array_ndims(ladder) <> 1 THEN
		RAISE EXCEPTION 'retry_backoff must be a one-dimensional array'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	-- a step per retry at most: max_attempts is at most 1000
	IF pg_catalog.cardinality(ladder) > 1000 THEN
		RAISE EXCEPTION 'retry_backoff must not have more than 1000 steps'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	-- steps are numbered from 1 whatever the array's lower bound
	FOR i IN 1 .. pg_catalog.cardinality(ladder) LOOP
		step := ladder[pg_catalog.array_lower(ladder, 1) + i - 1];
		IF step IS NULL OR step < interval '0' THEN
			RAISE EXCEPTION 'retry_backoff step % must be a non-negative interval', i
				USING ERRCODE = 'invalid_parameter_value';
		END IF;
		IF i > 1 AND step < prev THEN
			RAISE EXCEPTION 'retry_backoff must be sorted in ascending order'
				USING ERRCODE = 'invalid_parameter_value',
					  DETAIL = format('Step %s (%s) is shorter than step %s (%s).',
									  i, step, i - 1, prev);
		END IF;
		IF step > interval '1 year' THEN
			RAISE EXCEPTION 'retry_backoff step % exceeds 1 year', i
				USING ERRCODE = 'invalid_parameter_value';
		END IF;
		prev := step;
	END LOOP;
END;
$$;

CREATE FUNCTION courier.create_group(topic text, grp text, start_from text DEFAULT 'earliest',
									 filter text DEFAULT '*', ordered boolean DEFAULT false,
									 max_attempts integer DEFAULT 16,
									 retry_backoff interval[] DEFAULT NULL)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	gid integer;
	t courier.topic_meta;
	lw bigint;
	norm text;
BEGIN
	PERFORM courier._validate_name('topic', topic);
	PERFORM courier._validate_name('group', grp);
	IF start_from IS NULL OR start_from NOT IN ('earliest', 'latest') THEN
		RAISE EXCEPTION 'invalid start_from: %', coalesce(pg_catalog.quote_literal(start_from), 'NULL')
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Use ''earliest'' (every retained message) or ''latest'' (only messages sent from now on).';
	END IF;
	IF ordered IS NULL THEN
		RAISE EXCEPTION 'ordered must not be NULL' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF max_attempts IS NULL OR max_attempts < 1 OR max_attempts > 1000 THEN
		RAISE EXCEPTION 'max_attempts must be between 1 and 1000'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF retry_backoff IS NOT NULL THEN
		PERFORM courier._check_backoff(retry_backoff);
	END IF;
	norm := courier.check_filter(coalesce(filter, '*'));
	-- Lock order (docs/design.md): the topic's existence lock in share mode,
	-- then its row.  The row (FOR SHARE: reclaim, which raises floor_id,
	-- either counts the new group or is seen to have raised it) alone let a
	-- transaction that went on to use the topic (pause_group, send, ...)
	-- wait for a drop_topic that waited for the row (40P01, spec
	-- create_group_drop_topic).
	-- _lock's answer, not the row, says whether a drop_topic we waited for
	-- committed: a REPEATABLE READ snapshot still shows its row.
	SELECT * INTO t FROM courier.topic_meta m WHERE m.name = topic;
	IF NOT FOUND OR NOT courier._lock(5, t.topic_id) THEN
		RAISE EXCEPTION 'topic "%" does not exist', topic USING ERRCODE = 'undefined_object';
	END IF;
	SELECT * INTO t FROM courier.topic_meta m WHERE m.topic_id = t.topic_id FOR SHARE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'topic "%" does not exist', topic USING ERRCODE = 'undefined_object';
	END IF;
	PERFORM courier._check_privilege(t.topic_id, 'admin');
	PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('courier.group:' || topic || '/' || grp));
	PERFORM courier._check_limits(0, 1);
	IF EXISTS (SELECT 1 FROM courier.group_meta g WHERE g.topic_id = t.topic_id AND g.name = grp) THEN
		RAISE EXCEPTION 'group "%" of topic "%" already exists', grp, topic
			USING ERRCODE = 'duplicate_object';
	END IF;
	IF start_from = 'latest' THEN
		lw := courier._next_id(t.topic_id) - 1;
	ELSE
		lw := t.floor_id;
	END IF;
	INSERT INTO courier.group_meta (group_id, topic_id, name, filter, ordered, max_attempts,
									retry_backoff, low_water)
		VALUES (pg_catalog.nextval('courier.group_id_seq'), t.topic_id, grp,
				CASE WHEN norm = '*' THEN NULL ELSE norm END, ordered, max_attempts,
				coalesce(retry_backoff, courier._default_backoff()),
				lw)
		RETURNING group_id INTO gid;
	PERFORM courier._created(NULL, gid);
	PERFORM courier._ddl_changed(NULL, gid);
END;
$$;

CREATE FUNCTION courier.alter_group(topic text, grp text, filter text DEFAULT NULL,
									max_attempts integer DEFAULT NULL,
									retry_backoff interval[] DEFAULT NULL)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	t courier.topic_meta;
	g courier.group_meta;
	norm text;
BEGIN
	PERFORM courier._validate_name('topic', topic);
	PERFORM courier._validate_name('group', grp);
	IF max_attempts IS NOT NULL AND (max_attempts < 1 OR max_attempts > 1000) THEN
		RAISE EXCEPTION 'max_attempts must be between 1 and 1000'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF retry_backoff IS NOT NULL THEN
		PERFORM courier._check_backoff(retry_backoff);
	END IF;
	IF filter IS NOT NULL THEN
		norm := courier.check_filter(filter);
	END IF;
	-- The topic's existence lock in share mode, not its row: reclaim updates
	-- the row while it holds group locks (docs/design.md, lock order).
	SELECT * INTO t FROM courier.topic_meta m WHERE m.name = topic;
	IF NOT FOUND OR NOT courier._lock(5, t.topic_id) THEN
		RAISE EXCEPTION 'topic "%" does not exist', topic USING ERRCODE = 'undefined_object';
	END IF;
	PERFORM courier._check_privilege(t.topic_id, 'admin');
	SELECT * INTO g FROM courier.group_meta m WHERE m.topic_id = t.topic_id AND m.name = grp;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'group "%" of topic "%" does not exist', grp, topic
			USING ERRCODE = 'undefined_object';
	END IF;
	-- lock order: existence lock, claim lock, then the row (docs/design.md);
	-- this waits until no receiver or maintenance of the group is in flight
	IF NOT courier._lock(1, g.group_id) THEN
		RAISE EXCEPTION 'group "%" of topic "%" does not exist', grp, topic
			USING ERRCODE = 'undefined_object';
	END IF;
	PERFORM courier._lock(2, g.group_id);
	PERFORM 1 FROM courier.group_meta m WHERE m.group_id = g.group_id FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'group "%" of topic "%" does not exist', grp, topic
			USING ERRCODE = 'undefined_object';
	END IF;
	UPDATE courier.group_meta m SET
		filter = CASE WHEN alter_group.filter IS NULL THEN m.filter
					  WHEN norm = '*' THEN NULL ELSE norm END,
		max_attempts = coalesce(alter_group.max_attempts, m.max_attempts),
		retry_backoff = coalesce(alter_group.retry_backoff, m.retry_backoff)
	WHERE m.group_id = g.group_id;
	PERFORM courier._ddl_changed(NULL, g.group_id);
END;
$$;

CREATE FUNCTION courier.drop_group(topic text, grp text)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	t courier.topic_meta;
	g courier.group_meta;
BEGIN
	PERFORM courier._validate_name('topic', topic);
	PERFORM courier._validate_name('group', grp);
	-- The topic's existence lock in share mode, not its row: reclaim updates
	-- the row while it holds group locks (docs/design.md, lock order).
	SELECT * INTO t FROM courier.topic_meta m WHERE m.name = topic;
	IF NOT FOUND OR NOT courier._lock(5, t.topic_id) THEN
		RAISE EXCEPTION 'topic "%" does not exist', topic USING ERRCODE = 'undefined_object';
	END IF;
	PERFORM courier._check_privilege(t.topic_id, 'admin');
	SELECT * INTO g FROM courier.group_meta m WHERE m.topic_id = t.topic_id AND m.name = grp;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'group "%" of topic "%" does not exist', grp, topic
			USING ERRCODE = 'undefined_object';
	END IF;
	-- lock order: existence lock, claim lock, then rows (docs/design.md)
	IF NOT courier._lock(1, g.group_id) THEN
		RAISE EXCEPTION 'group "%" of topic "%" does not exist', grp, topic
			USING ERRCODE = 'undefined_object';
	END IF;
	PERFORM courier._lock(2, g.group_id);
	PERFORM 1 FROM courier.group_meta m WHERE m.group_id = g.group_id FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'group "%" of topic "%" does not exist', grp, topic
			USING ERRCODE = 'undefined_object';
	END IF;
	PERFORM courier._group_reset(g.group_id, 0, true);
	DELETE FROM courier.group_meta WHERE group_id = g.group_id;
	PERFORM courier._forget(NULL, g.group_id);
	PERFORM courier._wake(g.topic_id);	-- as drop_topic
	PERFORM courier._ddl_changed(NULL, g.group_id);
END;
$$;

------------------------------------------------------------------------------
-- Sending, receiving, acknowledging (C)
--
-- These run as the extension owner with search_path pinned to pg_catalog,
-- pg_temp, like the SECURITY DEFINER functions, but switch in C
-- (CourierRunAsOwner, src/acl.c): fmgr's SECURITY DEFINER wrapper costs about
-- 8% of a one-message send's throughput.
------------------------------------------------------------------------------

CREATE FUNCTION courier.send(topic text, body jsonb, tag text DEFAULT NULL, keys text[] DEFAULT NULL,
							 headers jsonb DEFAULT NULL, delay interval DEFAULT NULL,
							 deliver_at timestamptz DEFAULT NULL)
RETURNS bigint AS 'MODULE_PATHNAME', 'courier_send'
LANGUAGE C VOLATILE;

CREATE FUNCTION courier.send_batch(topic text, bodies jsonb[], tag text DEFAULT NULL,
								   headers jsonb DEFAULT NULL, delay interval DEFAULT NULL,
								   deliver_at timestamptz DEFAULT NULL, keys text[] DEFAULT NULL)
RETURNS SETOF bigint AS 'MODULE_PATHNAME', 'courier_send_batch'
LANGUAGE C VOLATILE;

CREATE FUNCTION courier.receive(topic text, grp text DEFAULT 'default', max_messages integer DEFAULT 1,
								visibility_timeout interval DEFAULT '30 seconds',
								wait interval DEFAULT NULL, linger interval DEFAULT NULL)
RETURNS SETOF courier.message AS 'MODULE_PATHNAME', 'courier_receive'
LANGUAGE C VOLATILE;

-- ack_and_receive: ack(topic, grp, ids, receipts), then receive(...), in one
-- call and so in one transaction: a consumer's cycle commits once.  Given ids
-- to ack, it waits at most a second for a first message (its acks stay
-- uncommitted while it sleeps); linger still applies.
CREATE FUNCTION courier.ack_and_receive(topic text, grp text, ids bigint[], receipts text[] DEFAULT NULL,
										max_messages integer DEFAULT 1,
										visibility_timeout interval DEFAULT '30 seconds',
										wait interval DEFAULT NULL, linger interval DEFAULT NULL)
RETURNS SETOF courier.message AS 'MODULE_PATHNAME', 'courier_ack_and_receive'
LANGUAGE C VOLATILE;

-- receipt: the receipt column receive returned with the message.  Given, the
-- call acts only if that delivery is still the current one (else it changes
-- nothing and returns false); without it, on whatever delivery is current.
CREATE FUNCTION courier.ack(topic text, grp text, id bigint, receipt text DEFAULT NULL)
RETURNS boolean AS 'MODULE_PATHNAME', 'courier_ack'
LANGUAGE C VOLATILE;

CREATE FUNCTION courier.ack(topic text, grp text, ids bigint[], receipts text[] DEFAULT NULL)
RETURNS integer AS 'MODULE_PATHNAME', 'courier_ack_many'
LANGUAGE C VOLATILE;

CREATE FUNCTION courier.set_visibility(topic text, grp text, id bigint, visibility_timeout interval,
									   receipt text DEFAULT NULL)
RETURNS boolean AS 'MODULE_PATHNAME', 'courier_set_visibility'
LANGUAGE C VOLATILE;

CREATE FUNCTION courier.nack(topic text, grp text, id bigint, delay interval DEFAULT NULL,
							 reason text DEFAULT NULL, receipt text DEFAULT NULL)
RETURNS boolean AS 'MODULE_PATHNAME', 'courier_nack'
LANGUAGE C VOLATILE;

CREATE FUNCTION courier.peek(topic text, grp text DEFAULT 'default', max_messages integer DEFAULT 10)
RETURNS SETOF courier.message AS 'MODULE_PATHNAME', 'courier_peek'
LANGUAGE C VOLATILE;

------------------------------------------------------------------------------
-- Dead letters
------------------------------------------------------------------------------

-- May the caller see the topic in the views (with_bodies: message bodies,
-- which needs receive)?  Any privilege, or pg_monitor, shows counts.
CREATE FUNCTION courier._may_see(topic_id integer, with_bodies boolean) RETURNS boolean
	AS 'MODULE_PATHNAME', 'courier_may_see'
	LANGUAGE C STABLE STRICT SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

-- security_barrier: a caller's own leaky function in WHERE never sees rows
-- of topics the caller may not read.
CREATE VIEW courier.dead_letters WITH (security_barrier) AS
	SELECT t.name AS topic, g.name AS grp, d.msg_id AS id, d.attempts,
		   d.first_delivered_at, d.last_delivered_at, d.died_at, d.last_error,
		   d.tag, d.keys, d.headers, d.body, d.sent_at
	FROM courier.dead_letter d
	JOIN courier.group_meta g USING (group_id)
	JOIN courier.topic_meta t USING (topic_id)
	WHERE courier._may_see(t.topic_id, true);

CREATE FUNCTION courier._wake(topic_id integer) RETURNS void
	AS 'MODULE_PATHNAME', 'courier_wake' LANGUAGE C STRICT;

-- Ordered groups: give each of the keys a head if it has none (after a
-- redrive queued messages of them).
CREATE FUNCTION courier._promote_keys(topic_id integer, group_id integer, okeys text[]) RETURNS void
	AS 'MODULE_PATHNAME', 'courier_promote_keys' LANGUAGE C STRICT SET search_path = pg_catalog, pg_temp;

-- Looks up a group for the admin functions (errors as everywhere else) and
-- checks that the caller holds admin on its topic.
CREATE FUNCTION courier._group_of(topic text, grp text, OUT topic_id integer, OUT group_id integer)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	PERFORM courier._validate_name('topic', topic);
	PERFORM courier._validate_name('group', grp);
	SELECT t.topic_id INTO _group_of.topic_id FROM courier.topic_meta t WHERE t.name = topic;
	-- lock order (docs/design.md): the topic's existence lock in share
	-- mode before the caller takes its group's; pause_group took the
	-- group's first and deadlocked with drop_topic (review 55)
	IF NOT FOUND OR NOT courier._lock(5, _group_of.topic_id) THEN
		RAISE EXCEPTION 'topic "%" does not exist', topic USING ERRCODE = 'undefined_object';
	END IF;
	-- every caller is an admin function (redrive, purges, seek, pause)
	PERFORM courier._check_privilege(_group_of.topic_id, 'admin');
	SELECT g.group_id INTO _group_of.group_id FROM courier.group_meta g
	 WHERE g.topic_id = _group_of.topic_id AND g.name = grp;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'group "%" of topic "%" does not exist', grp, topic
			USING ERRCODE = 'undefined_object';
	END IF;
END;
$$;

-- Of the ids of dead letters redrive just deleted, those that need a lease
-- row to be handed out again: the group's walk has passed them and they are
-- not in flight (walk.c, redrive_rows; docs/design.md, "Redrive").
CREATE FUNCTION courier._redrive_rows(group_id integer, ids bigint[]) RETURNS bigint[]
	AS 'MODULE_PATHNAME', 'courier_redrive_rows' LANGUAGE C STRICT SET search_path = pg_catalog, pg_temp;

-- Gives dead letters (all, or the given ids) back to their group: each is
-- receivable again at once, with its attempt count starting over (in an
-- ordered group, once the messages of its key before it are finished: it
-- queues, and the key's next message is chosen as after an ack).  The
-- message travels with it, so a redrive works even after the log segment
-- that held it was reclaimed.  After a seek back the group may be handed
-- the message again by the log: a dead letter whose id the group's walk has
-- not reached yet is left to the walk (it hands the message out from the
-- log, as it does every message the seek replays), and one whose replay is
-- in flight is not handed out a second time; either way its dead letter
-- goes.  Returns how many dead letters were given back.
CREATE FUNCTION courier.redrive(topic text, grp text, ids bigint[] DEFAULT NULL)
RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	g record;
	dead courier.dead_letter[];
	give bigint[];
	okeys text[];
BEGIN
	g := courier._group_of(topic, grp);
	IF NOT courier._lock(4, g.group_id) THEN
		RAISE EXCEPTION 'group "%" of topic "%" does not exist', grp, topic
			USING ERRCODE = 'undefined_object';
	END IF;
	-- the dead letters first: nothing below waits for a row while holding
	-- the group's claim lock
	WITH d AS (
		DELETE FROM courier.dead_letter d
		 WHERE d.group_id = g.group_id AND (ids IS NULL OR d.msg_id = ANY (ids))
		RETURNING d.*
	)
	SELECT array_agg(d::courier.dead_letter) INTO dead FROM d;
	IF dead IS NULL THEN
		RETURN 0;
	END IF;
	give := courier._redrive_rows(g.group_id, ARRAY(SELECT x.msg_id FROM unnest(dead) x));
	WITH back AS (
		INSERT INTO courier.lease (group_id, msg_id, state, visible_at, attempt, okey,
								   body, tag, keys, headers, sent_at)
		SELECT x.group_id, x.msg_id,
			   CASE WHEN k.okey IS NULL THEN 'w' ELSE 'q' END,
			   CASE WHEN k.okey IS NULL THEN pg_catalog.clock_timestamp()
					ELSE 'infinity'::timestamptz END,
			   0, k.okey,
			   x.body, x.tag, x.keys, x.headers, x.sent_at
		FROM unnest(dead) x JOIN courier.group_meta m USING (group_id)
		CROSS JOIN LATERAL (SELECT CASE WHEN m.ordered THEN courier._ordering_key(x.keys) END AS okey) k
		WHERE x.msg_id = ANY (give)
		-- _redrive_rows found no row for these ids, and nobody else gives
		-- them one: a conflict is a logic error, and must not go unnoticed
		RETURNING okey
	)
	SELECT array_agg(DISTINCT back.okey) FILTER (WHERE back.okey IS NOT NULL)
	  INTO okeys FROM back;
	IF okeys IS NOT NULL THEN
		PERFORM courier._promote_keys(g.topic_id, g.group_id, okeys);
	END IF;
	PERFORM courier._wake(g.topic_id);
	RETURN pg_catalog.cardinality(dead);
END;
$$;

-- Deletes dead letters (all, or the given ids).  Returns how many.
CREATE FUNCTION courier.purge_dead_letters(topic text, grp text, ids bigint[] DEFAULT NULL)
RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	g record;
	n bigint;
BEGIN
	g := courier._group_of(topic, grp);
	DELETE FROM courier.dead_letter d
	 WHERE d.group_id = g.group_id AND (ids IS NULL OR d.msg_id = ANY (ids));
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN n;
END;
$$;

------------------------------------------------------------------------------
-- Lookup: RocketMQ's query by key and message trace, answered from the tables
------------------------------------------------------------------------------

-- The state of message m in group g (see courier.find).
CREATE FUNCTION courier._state(g integer, m bigint, h jsonb, tg text, due timestamptz,
							   f text, lw bigint,
							   OUT state text, OUT attempt integer, OUT lease_until timestamptz,
							   OUT last_error text)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	d courier.dead_letter;
	l courier.lease;
	c courier.claim;
	now_ timestamptz := pg_catalog.clock_timestamp();
	matches boolean := f IS NULL OR courier.match_filter(f, coalesce(h, '{}'), tg) IS TRUE;
BEGIN
	SELECT * INTO d FROM courier.dead_letter x WHERE x.group_id = g AND x.msg_id = m;
	IF FOUND THEN
		state := 'dead'; attempt := d.attempts; last_error := d.last_error;
		RETURN;
	END IF;
	SELECT * INTO l FROM courier.lease x WHERE x.group_id = g AND x.msg_id = m;
	IF FOUND THEN
		attempt := l.attempt; last_error := l.last_error;
		IF l.state = 'l' AND l.visible_at > now_ THEN
			state := 'in_flight'; lease_until := l.visible_at;
		ELSIF l.attempt > 0 THEN
			state := 'retrying';
		ELSIF l.state = 'w' AND l.visible_at > now_ THEN
			state := 'delayed';
		ELSE
			state := 'pending';
		END IF;
		RETURN;
	END IF;
	SELECT * INTO c FROM courier.claim x WHERE x.group_id = g AND x.lo <= m ORDER BY x.lo DESC LIMIT 1;
	IF (FOUND AND c.hi >= m) OR m <= lw THEN
		IF FOUND AND c.hi >= m AND m = ANY (c.pending) THEN
			attempt := 1;
			IF c.lease_until > now_ THEN
				state := 'in_flight'; lease_until := c.lease_until;
			ELSE
				state := 'retrying';
			END IF;
		ELSE
			state := CASE WHEN matches THEN 'acked' ELSE 'filtered' END;
		END IF;
		RETURN;
	END IF;
	state := CASE WHEN NOT matches THEN 'filtered'
				  WHEN due > now_ THEN 'delayed' ELSE 'pending' END;
END;
$$;

-- Every retained message with the given key (or the given id), once per
-- group of the topic, with its state in that group: pending, delayed,
-- in_flight (attempt, lease_until), retrying, acked, dead or filtered.
CREATE TYPE courier.found AS (
	id				bigint,
	tag				text,
	keys			text[],
	headers			jsonb,
	body			jsonb,
	sent_at			timestamptz,
	deliver_at		timestamptz,
	grp				text,
	state			text,
	attempt			integer,
	lease_until		timestamptz,
	last_error		text
);

CREATE FUNCTION courier.find(topic text, key text DEFAULT NULL, id bigint DEFAULT NULL)
RETURNS SETOF courier.found
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	t courier.topic_meta;
	q text;
BEGIN
	PERFORM courier._validate_name('topic', topic);
	IF (key IS NULL) = (id IS NULL) THEN
		RAISE EXCEPTION 'give either key or id'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	SELECT * INTO t FROM courier.topic_meta m WHERE m.name = topic;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'topic "%" does not exist', topic USING ERRCODE = 'undefined_object';
	END IF;
	PERFORM courier._check_privilege(t.topic_id, 'receive');
	-- A segment dropped (purge, retention) after this transaction's snapshot
	-- is still listed in courier.segment under it: only segments that exist
	-- now are read (has_table_privilege asks the catalog cache, not our
	-- snapshot, and is NULL for a dropped table).  One dropped between that
	-- look and the query (a standby replaying a drop) is 42P01: look again.
	FOR attempt IN 1 .. 3 LOOP
		SELECT string_agg(format('SELECT id, tag, keys, headers, body, sent_at, deliver_at FROM %s WHERE %s',
								 s.relid, CASE WHEN key IS NOT NULL THEN 'keys @> ARRAY[$1]' ELSE 'id = $2' END),
						  ' UNION ALL ' ORDER BY s.seg_no)
		  INTO q FROM courier.segment s
		 WHERE s.topic_id = t.topic_id AND has_table_privilege(s.relid, 'SELECT') IS NOT NULL;
		-- dead letters outlive the log: show those whose segment is gone too
		q := coalesce(q || ' UNION ALL ', '') ||
			 'SELECT DISTINCT ON (d.msg_id) d.msg_id, d.tag, d.keys, d.headers, d.body, d.sent_at, NULL::timestamptz '
			 'FROM courier.dead_letter d JOIN courier.group_meta g USING (group_id) '
			 'WHERE g.topic_id = $3 AND d.msg_id <= (SELECT floor_id FROM courier.topic_meta WHERE topic_id = $3) '
			 'AND ' || CASE WHEN key IS NOT NULL THEN 'd.keys @> ARRAY[$1]' ELSE 'd.msg_id = $2' END;
		BEGIN
			-- (a missing table fails when the query opens it, before any row)
			RETURN QUERY EXECUTE format(
				'SELECT m.id, m.tag, m.keys, m.headers, m.body, m.sent_at, m.deliver_at, g.name, '
				'       s.state, s.attempt, s.lease_until, s.last_error '
				'FROM (%s) m (id, tag, keys, headers, body, sent_at, deliver_at) '
				'JOIN courier.group_meta g ON g.topic_id = $3 '
				'CROSS JOIN LATERAL courier._state(g.group_id, m.id, m.headers, m.tag, m.deliver_at, '
				'                                  g.filter, g.low_water) s '
				'ORDER BY m.id, g.name', q)
			USING key, id, t.topic_id;
			RETURN;
		EXCEPTION WHEN undefined_table THEN
			IF attempt = 3 THEN
				RAISE;
			END IF;
		END;
	END LOOP;
END;
$$;

------------------------------------------------------------------------------
-- Filters (C)
------------------------------------------------------------------------------

CREATE FUNCTION courier.check_filter(filter text) RETURNS text
	AS 'MODULE_PATHNAME', 'courier_check_filter'
	LANGUAGE C IMMUTABLE STRICT SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION courier.match_filter(filter text, headers jsonb, tag text DEFAULT NULL) RETURNS boolean
	AS 'MODULE_PATHNAME', 'courier_match_filter'
	LANGUAGE C IMMUTABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

------------------------------------------------------------------------------
-- Maintenance and statistics (C)
------------------------------------------------------------------------------

CREATE FUNCTION courier.run_maintenance() RETURNS jsonb
	AS 'MODULE_PATHNAME', 'courier_run_maintenance'
	LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

-- When the background worker last maintained this database: last_error is
-- NULL when that round had no error (see docs/operations.md).
CREATE FUNCTION courier._maintenance_status(OUT last_started timestamptz,
											OUT last_finished timestamptz, OUT last_error text)
	AS 'MODULE_PATHNAME', 'courier_maintenance_status'
	LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

-- The group's position as shared memory caches it (frontier, the lowest id
-- not settled, recheck spans, holes): for operators and tests.
CREATE FUNCTION courier._group_position(group_id integer, OUT frontier bigint,
										OUT settled_below bigint, OUT rechecks text, OUT holes text)
	AS 'MODULE_PATHNAME', 'courier_group_position'
	LANGUAGE C VOLATILE STRICT SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

-- Statistics behind the views (src/ops.c): NULL for a topic the caller may
-- not see.  Counts are exact up to courier.stats_exact_limit ids, estimated
-- above (counts_exact / backlog_exact tell which).
CREATE FUNCTION courier._topic_info(topic_id integer, OUT messages bigint, OUT counts_exact boolean,
									OUT segments integer, OUT bytes bigint,
									OUT oldest_message timestamptz, OUT newest_message timestamptz,
									OUT sent_last_minute bigint, OUT next_id bigint)
	AS 'MODULE_PATHNAME', 'courier_topic_info'
	LANGUAGE C STABLE STRICT SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION courier._group_info(group_id integer, OUT backlog bigint, OUT backlog_exact boolean,
									OUT delayed bigint, OUT in_flight bigint, OUT retrying bigint,
									OUT oldest_undelivered timestamptz, OUT oldest_unacked timestamptz,
									OUT last_receive timestamptz, OUT last_ack timestamptz)
	AS 'MODULE_PATHNAME', 'courier_group_info'
	LANGUAGE C STABLE STRICT SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

-- When the worker last finished a round in this database (for the views).
CREATE FUNCTION courier._last_maintenance() RETURNS timestamptz
	LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
	AS $$ SELECT last_finished FROM courier._maintenance_status() $$;

CREATE VIEW courier.topics WITH (security_barrier) AS
	SELECT t.name AS topic, t.name, s.messages, s.segments, t.retention, t.max_retention,
		   t.created_at, s.counts_exact, s.bytes, s.oldest_message, s.newest_message,
		   s.sent_last_minute, courier._last_maintenance() AS last_maintenance,
		   c.relowner::pg_catalog.regrole AS owner
	FROM courier.topic_meta t
	JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) t.seq::pg_catalog.oid
	CROSS JOIN LATERAL courier._topic_info(t.topic_id) s
	WHERE courier._may_see(t.topic_id, false);

CREATE VIEW courier.groups WITH (security_barrier) AS
	SELECT t.name AS topic, g.name AS grp, s.backlog, s.in_flight, s.delayed, s.retrying,
		   (SELECT count(*) FROM courier.dead_letter d WHERE d.group_id = g.group_id) AS dead_letters,
		   g.dropped, coalesce(g.filter, '*') AS filter, g.ordered, g.max_attempts,
		   g.retry_backoff, g.created_at, s.backlog_exact,
		   pg_catalog.now() - s.oldest_undelivered AS undelivered_age,
		   pg_catalog.now() - s.oldest_unacked AS unacked_age,
		   s.last_receive, s.last_ack, g.paused
	FROM courier.group_meta g
	JOIN courier.topic_meta t USING (topic_id)
	CROSS JOIN LATERAL courier._group_info(g.group_id) s
	WHERE courier._may_see(t.topic_id, false);

-- Who holds what on which topic (owners hold everything and are not listed).
-- The ACL is the topic sequence's (src/acl.c): USAGE = send, SELECT =
-- receive, UPDATE = admin.
CREATE VIEW courier.privileges WITH (security_barrier) AS
	SELECT t.name AS topic,
		   CASE WHEN a.grantee OPERATOR(pg_catalog.=) 0 THEN 'public'
				ELSE a.grantee::pg_catalog.regrole::pg_catalog.text END AS grantee,
		   CASE a.privilege_type WHEN 'USAGE' THEN 'send' WHEN 'SELECT' THEN 'receive'
								 WHEN 'UPDATE' THEN 'admin' END AS privilege
	FROM courier.topic_meta t
	JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) t.seq::pg_catalog.oid
	CROSS JOIN LATERAL pg_catalog.aclexplode(c.relacl) a
	WHERE a.grantee OPERATOR(pg_catalog.<>) c.relowner
	  AND courier._may_see(t.topic_id, false);

-- One row per metric and label set, for Prometheus (prometheus-postgres-
-- exporter: see contrib/prometheus/queries.yaml).  kind is gauge or counter.
CREATE FUNCTION courier.metrics(OUT metric text, OUT topic text, OUT grp text,
								OUT value double precision, OUT kind text, OUT help text)
RETURNS SETOF record LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
	SELECT m.metric, t.topic, NULL::text, m.value, m.kind, m.help
	FROM courier.topics t, LATERAL (VALUES
		('messages', t.messages::float8, 'gauge', 'messages retained in the log (estimated above courier.stats_exact_limit)'),
		('counts_exact', t.counts_exact::int::float8, 'gauge', '1 if the topic''s counts are exact'),
		('segments', t.segments::float8, 'gauge', 'log segments'),
		('bytes', t.bytes::float8, 'gauge', 'bytes on disk of the log segments'),
		('oldest_message_age_seconds',
		 extract(epoch FROM now() - t.oldest_message)::float8, 'gauge', 'age of the oldest retained message'),
		('sent_last_minute', t.sent_last_minute::float8, 'gauge', 'messages sent in the last minute')
	) m (metric, value, kind, help)
	UNION ALL
	SELECT m.metric, g.topic, g.grp, m.value, m.kind, m.help
	FROM courier.groups g, LATERAL (VALUES
		('backlog', g.backlog::float8, 'gauge', 'messages never delivered yet and not delayed (in an ordered group also those waiting behind their key''s head; estimated above courier.stats_exact_limit)'),
		('backlog_exact', g.backlog_exact::int::float8, 'gauge', '1 if backlog is exact'),
		('in_flight', g.in_flight::float8, 'gauge', 'messages leased and not acked'),
		('delayed', g.delayed::float8, 'gauge', 'messages not due yet'),
		('retrying', g.retrying::float8, 'gauge', 'messages waiting for redelivery'),
		('dead_letters', g.dead_letters::float8, 'gauge', 'dead letters'),
		('dropped', g.dropped::float8, 'counter', 'undelivered messages lost to max_retention'),
		('undelivered_age_seconds', coalesce(extract(epoch FROM g.undelivered_age), 0)::float8, 'gauge',
		 'age of the oldest message not delivered yet (lag)'),
		('unacked_age_seconds', coalesce(extract(epoch FROM g.unacked_age), 0)::float8, 'gauge',
		 'age of the oldest delivered, unacked message'),
		('paused', g.paused::int::float8, 'gauge', '1 if the group is paused')
	) m (metric, value, kind, help)
	UNION ALL
	-- the clock, not now(): a round may finish after this transaction began
	SELECT 'maintenance_age_seconds', NULL, NULL,
		   greatest(extract(epoch FROM clock_timestamp() - l.finished), 0)::float8, 'gauge',
		   'seconds since the worker last finished a maintenance round here'
	FROM (SELECT courier._last_maintenance() AS finished) l
	WHERE l.finished IS NOT NULL
$$;

------------------------------------------------------------------------------
-- Privileges (src/acl.c): grant, revoke, check
------------------------------------------------------------------------------

CREATE FUNCTION courier.has_topic_privilege(topic text, privilege text, role regrole DEFAULT NULL)
RETURNS boolean AS 'MODULE_PATHNAME', 'courier_has_topic_privilege'
LANGUAGE C STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

-- Gives role (or 'public') a privilege on a topic: send, receive, admin or
-- all.  Needs admin on the topic.  Takes effect in every session at its next
-- call once the transaction commits.
CREATE FUNCTION courier.grant(topic text, role name, privilege text)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	PERFORM courier._change_acl(topic, role, privilege, true);
END;
$$;

CREATE FUNCTION courier.revoke(topic text, role name, privilege text)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	PERFORM courier._change_acl(topic, role, privilege, false);
END;
$$;

CREATE FUNCTION courier._change_acl(topic text, role name, privilege text, is_grant boolean)
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	t courier.topic_meta;
	grantee text;
	privs text;
BEGIN
	PERFORM courier._validate_name('topic', topic);
	IF role IS NULL OR privilege IS NULL THEN
		RAISE EXCEPTION 'role and privilege must not be NULL' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	SELECT * INTO t FROM courier.topic_meta m WHERE m.name = topic;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'topic "%" does not exist', topic USING ERRCODE = 'undefined_object';
	END IF;
	PERFORM courier._check_privilege(t.topic_id, 'admin');
	-- the topic's privileges are its sequence's (src/acl.c)
	privs := CASE lower(privilege) WHEN 'send' THEN 'USAGE' WHEN 'receive' THEN 'SELECT'
								   WHEN 'admin' THEN 'UPDATE' WHEN 'all' THEN 'ALL' END;
	IF privs IS NULL THEN
		RAISE EXCEPTION 'unknown topic privilege "%"', privilege
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Topic privileges are send, receive and admin (or all).';
	END IF;
	IF role = 'public' THEN
		grantee := 'PUBLIC';
	ELSE
		IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles r WHERE r.rolname = role) THEN
			RAISE EXCEPTION 'role "%" does not exist', role USING ERRCODE = 'undefined_object';
		END IF;
		grantee := format('%I', role);
	END IF;
	-- the row lock serialises grants with drop_topic; GRANT runs as the
	-- extension owner, a superuser, so the grantor is the topic's owner
	SELECT * INTO t FROM courier.topic_meta m WHERE m.topic_id = t.topic_id FOR UPDATE;
	IF is_grant THEN
		PERFORM courier._ddl(format('GRANT %s ON SEQUENCE %s TO %s', privs, t.seq, grantee));
	ELSE
		PERFORM courier._ddl(format('REVOKE %s ON SEQUENCE %s FROM %s', privs, t.seq, grantee));
	END IF;
	PERFORM courier._ddl_changed(t.topic_id, NULL);
END;
$$;

------------------------------------------------------------------------------
-- Operator functions: seek, pause, resume, alter_topic, purge
------------------------------------------------------------------------------

-- RocketMQ's reset-offset-by-time: the group's next receive starts at the
-- first retained message sent at or after since ('-infinity': everything
-- retained, 'infinity': skip everything sent so far).  Claims and lease rows
-- (in-flight messages, pending retries, delayed and queued messages,
-- redriven dead letters) of the group are discarded; dead letters stay.
-- Returns how many messages it affected: retained messages the group will
-- be handed again, messages it will never be handed, and messages it held
-- unfinished that the seek dropped (see docs/operations.md).
CREATE FUNCTION courier.seek(topic text, grp text, since timestamptz)
RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	g record;
	t courier.topic_meta;
	old_lw bigint;
	old_top bigint;
	new_lw bigint;
	affected bigint;
	reset record;
BEGIN
	IF since IS NULL THEN
		RAISE EXCEPTION 'since must not be NULL' USING ERRCODE = 'null_value_not_allowed',
			HINT = 'Use ''-infinity'' to replay everything retained, ''infinity'' to skip everything.';
	END IF;
	g := courier._group_of(topic, grp);
	-- lock order (docs/design.md): existence lock, claim lock, then rows; both
	-- held until commit, so no walk rebuilds the position from the old rows
	IF NOT courier._lock(1, g.group_id) THEN
		RAISE EXCEPTION 'group "%" of topic "%" does not exist', grp, topic
			USING ERRCODE = 'undefined_object';
	END IF;
	PERFORM courier._lock(2, g.group_id);
	SELECT m.low_water INTO old_lw FROM courier.group_meta m WHERE m.group_id = g.group_id FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'group "%" of topic "%" does not exist', grp, topic
			USING ERRCODE = 'undefined_object';
	END IF;
	SELECT * INTO t FROM courier.topic_meta m WHERE m.topic_id = g.topic_id;
	-- the log is read as walkers read it (dirty snapshot, senders' marks):
	-- a message sent at or after since whose transaction is still open is
	-- replayed when it commits, whatever this transaction's snapshot
	IF since = '-infinity' THEN
		new_lw := t.floor_id;
	ELSE
		new_lw := GREATEST(courier._seek_start(g.topic_id, since) - 1, t.floor_id);
	END IF;
	-- the group's claims and lease rows go (under the latest snapshot: see
	-- _group_reset); affected: what the group will be handed again
	-- (new_lw, old_top], what it will never be handed (old_top, new_lw],
	-- and what it held unfinished at or below new_lw (in flight, retrying,
	-- delayed, queued) and drops
	reset := courier._group_reset(g.group_id, new_lw, false);
	old_top := GREATEST(old_lw, reset.old_top);
	affected := courier._count_messages(g.topic_id, new_lw, old_top)
				+ courier._count_messages(g.topic_id, old_top, new_lw)
				+ reset.dropped;
	UPDATE courier.group_meta m SET low_water = new_lw WHERE m.group_id = g.group_id;
	PERFORM courier._invalidate_group(g.group_id);
	PERFORM courier._wake(g.topic_id);
	RETURN affected;
END;
$$;

-- A paused group receives nothing (receive returns no rows, waits sleep)
-- and keeps its backlog; acks, nacks and maintenance go on.  Both return
-- the group's backlog (what the pause holds back / the resume releases; 0
-- when nothing changed).
CREATE FUNCTION courier.pause_group(topic text, grp text)
RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	RETURN courier._set_paused(topic, grp, true);
END;
$$;

CREATE FUNCTION courier.resume_group(topic text, grp text)
RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	RETURN courier._set_paused(topic, grp, false);
END;
$$;

CREATE FUNCTION courier._set_paused(topic text, grp text, pause boolean)
RETURNS bigint LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	g record;
	was boolean;
	n bigint;
BEGIN
	g := courier._group_of(topic, grp);
	IF NOT courier._lock(1, g.group_id) THEN
		RAISE EXCEPTION 'group "%" of topic "%" does not exist', grp, topic
			USING ERRCODE = 'undefined_object';
	END IF;
	SELECT m.paused INTO was FROM courier.group_meta m WHERE m.group_id = g.group_id FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'group "%" of topic "%" does not exist', grp, topic
			USING ERRCODE = 'undefined_object';
	END IF;
	IF was = pause THEN
		RETURN 0;
	END IF;
	UPDATE courier.group_meta m SET paused = pause WHERE m.group_id = g.group_id;
	PERFORM courier._ddl_changed(NULL, g.group_id);
	IF NOT pause THEN
		PERFORM courier._wake(g.topic_id);
	END IF;
	SELECT s.backlog INTO n FROM courier._group_info(g.group_id) s;
	RETURN coalesce(n, 0);
END;
$$;

-- Changes a topic's retention and max_retention (NULL: unchanged;
-- max_retention '0': none).  Returns how many retained messages are older
-- than the new retention (they go once every group is past them).
CREATE FUNCTION courier.alter_topic(topic text, retention interval DEFAULT NULL,
									max_retention interval DEFAULT NULL)
RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	t courier.topic_meta;
	new_ret interval;
	new_max interval;
BEGIN
	PERFORM courier._validate_name('topic', topic);
	SELECT * INTO t FROM courier.topic_meta m WHERE m.name = topic;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'topic "%" does not exist', topic USING ERRCODE = 'undefined_object';
	END IF;
	PERFORM courier._check_privilege(t.topic_id, 'admin');
	IF NOT courier._lock(3, t.topic_id) THEN
		RAISE EXCEPTION 'topic "%" does not exist', topic USING ERRCODE = 'undefined_object';
	END IF;
	SELECT * INTO t FROM courier.topic_meta m WHERE m.topic_id = t.topic_id FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'topic "%" does not exist', topic USING ERRCODE = 'undefined_object';
	END IF;
	new_ret := coalesce(alter_topic.retention, t.retention);
	new_max := CASE WHEN alter_topic.max_retention IS NULL THEN t.max_retention
					WHEN alter_topic.max_retention = interval '0' THEN NULL
					ELSE alter_topic.max_retention END;
	IF new_ret <= interval '0' THEN
		RAISE EXCEPTION 'retention must be a positive interval'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF new_ret > interval '10 years' THEN
		RAISE EXCEPTION 'retention must not exceed 10 years'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF new_max IS NOT NULL AND new_max < new_ret THEN
		RAISE EXCEPTION 'max_retention must not be shorter than retention'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	-- (only a new one: a topic of 0.1.0 may have a longer one already)
	IF alter_topic.max_retention IS NOT NULL AND new_max > interval '10 years' THEN
		RAISE EXCEPTION 'max_retention must not exceed 10 years'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	UPDATE courier.topic_meta m SET retention = new_ret, max_retention = new_max
	 WHERE m.topic_id = t.topic_id;
	PERFORM courier._ddl_changed(t.topic_id, NULL);
	RETURN courier._count_messages(t.topic_id, t.floor_id,
								   courier._first_id_since(t.topic_id, pg_catalog.now() - new_ret) - 1);
END;
$$;

-- Hands a topic to another role, as ALTER TABLE ... OWNER TO does for a
-- table: the caller must own the topic (or be a superuser) and, unless a
-- superuser, be a member of the new owner.  The topic's owner is its
-- sequence's owner (src/acl.c), so REASSIGN OWNED moves topics too.
CREATE FUNCTION courier.alter_topic_owner(topic text, new_owner name)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	t courier.topic_meta;
	newid oid;
	me oid := courier._outer_user();
BEGIN
	PERFORM courier._validate_name('topic', topic);
	IF new_owner IS NULL THEN
		RAISE EXCEPTION 'new_owner must not be NULL' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	SELECT * INTO t FROM courier.topic_meta m WHERE m.name = topic;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'topic "%" does not exist', topic USING ERRCODE = 'undefined_object';
	END IF;
	PERFORM courier._check_privilege(t.topic_id, 'owner');
	SELECT r.oid INTO newid FROM pg_catalog.pg_roles r WHERE r.rolname = new_owner;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'role "%" does not exist', new_owner USING ERRCODE = 'undefined_object';
	END IF;
	IF NOT (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.oid = me)
	   AND NOT pg_catalog.pg_has_role(me, newid, 'MEMBER') THEN
		RAISE EXCEPTION 'permission denied for topic "%"', topic
			USING ERRCODE = 'insufficient_privilege',
				  DETAIL = format('Role %s is not a member of role %I.', me::regrole, new_owner),
				  HINT = 'Only a member of the new owner (or a superuser) may hand a topic to it.';
	END IF;
	SELECT * INTO t FROM courier.topic_meta m WHERE m.topic_id = t.topic_id FOR UPDATE;
	PERFORM courier._ddl(format('ALTER SEQUENCE %s OWNER TO %I', t.seq, new_owner));
	PERFORM courier._ddl_changed(t.topic_id, NULL);
END;
$$;

-- Deletes every message of the topic at once: its log segments are dropped
-- (a new, empty one takes over) and every group's position moves past
-- them, discarding claims, in-flight messages and pending retries.  Dead
-- letters stay (purge_dead_letters).  Returns how many messages went.
CREATE FUNCTION courier.purge(topic text)
RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	t courier.topic_meta;
	g record;
	s record;
	next_id bigint;
	last_seg integer;
	n bigint;
BEGIN
	PERFORM courier._validate_name('topic', topic);
	SELECT * INTO t FROM courier.topic_meta m WHERE m.name = topic;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'topic "%" does not exist', topic USING ERRCODE = 'undefined_object';
	END IF;
	PERFORM courier._check_privilege(t.topic_id, 'admin');
	-- no sender, receiver or maintainer of the topic is in flight after this
	IF NOT courier._lock(3, t.topic_id) THEN
		RAISE EXCEPTION 'topic "%" does not exist', topic USING ERRCODE = 'undefined_object';
	END IF;
	SELECT * INTO t FROM courier.topic_meta m WHERE m.topic_id = t.topic_id FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'topic "%" does not exist', topic USING ERRCODE = 'undefined_object';
	END IF;
	next_id := courier._next_id(t.topic_id);
	n := courier._count_messages(t.topic_id, t.floor_id, next_id - 1);
	FOR g IN SELECT group_id FROM courier.group_meta WHERE topic_id = t.topic_id ORDER BY group_id LOOP
		PERFORM courier._lock(1, g.group_id);
		PERFORM courier._lock(2, g.group_id);
		PERFORM courier._group_reset(g.group_id, 0, false);
		UPDATE courier.group_meta m SET low_water = GREATEST(m.low_water, next_id - 1)
		 WHERE m.group_id = g.group_id;
		PERFORM courier._invalidate_group(g.group_id);
	END LOOP;
	SELECT max(seg_no) INTO last_seg FROM courier.segment WHERE topic_id = t.topic_id;
	PERFORM courier._create_segment(t.topic_id, last_seg + 1);
	FOR s IN SELECT seg_no, relid FROM courier.segment
			  WHERE topic_id = t.topic_id AND seg_no <= last_seg ORDER BY seg_no LOOP
		PERFORM courier._ddl(format('DROP TABLE %s', s.relid));
		DELETE FROM courier.segment WHERE topic_id = t.topic_id AND seg_no = s.seg_no;
		UPDATE courier.topic_meta m SET reclaimed = m.reclaimed + 1 WHERE m.topic_id = t.topic_id;
	END LOOP;
	UPDATE courier.topic_meta m SET floor_id = GREATEST(m.floor_id, next_id - 1)
	 WHERE m.topic_id = t.topic_id;
	PERFORM courier._ddl_changed(t.topic_id, NULL);
	RETURN n;
END;
$$;

------------------------------------------------------------------------------
-- Privileges: nothing for PUBLIC but what checks the caller's topic
-- privileges itself; three roles with EXECUTE on what each kind of user
-- needs (per-topic privileges still apply: see courier.grant).
------------------------------------------------------------------------------

REVOKE ALL ON ALL FUNCTIONS IN SCHEMA courier FROM PUBLIC;
GRANT USAGE ON SCHEMA courier TO PUBLIC;
GRANT EXECUTE ON FUNCTION courier.check_filter(text), courier.match_filter(text, jsonb, text) TO PUBLIC;

-- The views filter by topic privilege (and need their helpers), so anyone
-- may read them; metrics() reads the views.
GRANT SELECT ON courier.topics, courier.groups, courier.dead_letters, courier.privileges TO PUBLIC;
GRANT EXECUTE ON FUNCTION courier._may_see(integer, boolean), courier._topic_info(integer),
	courier._group_info(integer), courier._last_maintenance(), courier.metrics(),
	courier.has_topic_privilege(text, text, regrole) TO PUBLIC;

-- Roles are cluster-wide: create them if this is the first database that
-- installs pg_courier.  DROP EXTENSION leaves them (and every other
-- database's grants to them) alone.
DO $$
DECLARE
	r text;
BEGIN
	FOREACH r IN ARRAY ARRAY['courier_admin', 'courier_producer', 'courier_consumer'] LOOP
		IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) r) THEN
			EXECUTE pg_catalog.format('CREATE ROLE %I NOLOGIN', r);
		END IF;
	END LOOP;
END;
$$;

GRANT EXECUTE ON FUNCTION
	courier.send(text, jsonb, text, text[], jsonb, interval, timestamptz),
	courier.send_batch(text, jsonb[], text, jsonb, interval, timestamptz, text[])
	TO courier_producer, courier_admin;
GRANT EXECUTE ON FUNCTION
	courier.receive(text, text, integer, interval, interval, interval),
	courier.ack_and_receive(text, text, bigint[], text[], integer, interval, interval, interval),
	courier.ack(text, text, bigint, text),
	courier.ack(text, text, bigint[], text[]),
	courier.nack(text, text, bigint, interval, text, text),
	courier.set_visibility(text, text, bigint, interval, text),
	courier.peek(text, text, integer),
	courier.find(text, text, bigint)
	TO courier_consumer, courier_admin;
GRANT EXECUTE ON FUNCTION
	courier.create_topic(text, interval, interval),
	courier.drop_topic(text),
	courier.alter_topic(text, interval, interval),
	courier.alter_topic_owner(text, name),
	courier.purge(text),
	courier.create_group(text, text, text, text, boolean, integer, interval[]),
	courier.alter_group(text, text, text, integer, interval[]),
	courier.drop_group(text, text),
	courier.redrive(text, text, bigint[]),
	courier.purge_dead_letters(text, text, bigint[]),
	courier.seek(text, text, timestamptz),
	courier.pause_group(text, text),
	courier.resume_group(text, text),
	courier.grant(text, name, text),
	courier.revoke(text, name, text),
	courier.run_maintenance(),
	courier._maintenance_status()
	TO courier_admin;

------------------------------------------------------------------------------
-- Citus (docs/citus.md): one topic per node, every call routed by topic.
-- The ownership guard and the refusal of shard moves are C (src/citus.c);
-- nothing here runs, and nothing changes, on a server without Citus.
------------------------------------------------------------------------------

-- Refuses with a clear hint when this database has no Citus.
CREATE FUNCTION courier._citus_require() RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname OPERATOR(pg_catalog.=) 'citus') THEN
		RAISE EXCEPTION 'Citus is not installed in this database'
			USING ERRCODE = 'feature_not_supported',
				  HINT = 'Put citus first in shared_preload_libraries (before pg_courier) on every node, '
					  || 'CREATE EXTENSION citus, add the worker nodes, then call courier.citus_distribute() '
					  || 'on the coordinator. See docs/citus.md.';
	END IF;
END;
$$;

-- The node ("host:port") that owns a topic: the one holding the anchor shard
-- its name hashes to.  NULL when pg_courier is not distributed.
CREATE FUNCTION courier.citus_owner(topic text) RETURNS text
	AS 'MODULE_PATHNAME', 'courier_citus_owner'
	LANGUAGE C STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

-- Makes every topic-keyed function (every overload whose first argument is
-- "topic text") a Citus distributed function on its first argument, colocated
-- with the anchor: colocate_with, a hash-distributed table on a text column,
-- or by default courier_citus.topics (created and distributed here).  With
-- force_delegation, Citus delegates a top-level SELECT courier.f('t', ...) to
-- the topic's node also inside BEGIN ... COMMIT.  Idempotent.  Returns how
-- many functions it registered.  Run it on the coordinator, as a user who may
-- call create_distributed_function on pg_courier's functions (a superuser).
CREATE FUNCTION courier.citus_distribute(colocate_with regclass DEFAULT NULL)
RETURNS integer LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	anchor regclass := colocate_with;
	coloc integer;
	old integer;
	f regprocedure;
	n integer := 0;
	strays bigint;
BEGIN
	PERFORM courier._citus_require();
	IF NOT pg_catalog.citus_is_coordinator() THEN
		RAISE EXCEPTION 'courier.citus_distribute() must run on the Citus coordinator'
			USING ERRCODE = 'object_not_in_prerequisite_state';
	END IF;
	IF anchor IS NULL THEN
		IF pg_catalog.to_regclass('courier_citus.topics') IS NULL THEN
			CREATE SCHEMA IF NOT EXISTS courier_citus;
			CREATE TABLE courier_citus.topics (topic text PRIMARY KEY);
			COMMENT ON TABLE courier_citus.topics IS
				'pg_courier anchor: a topic lives on the node of the shard its name hashes to (rows not needed)';
		END IF;
		anchor := 'courier_citus.topics'::regclass;
		IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_partition p
					    WHERE p.logicalrelid OPERATOR(pg_catalog.=) anchor) THEN
			PERFORM pg_catalog.create_distributed_table(anchor, 'topic', colocate_with => 'none');
		END IF;
	END IF;
	SELECT p.colocationid INTO coloc FROM pg_catalog.pg_dist_partition p
	 WHERE p.logicalrelid OPERATOR(pg_catalog.=) anchor AND p.partmethod OPERATOR(pg_catalog.=) 'h';
	IF NOT FOUND THEN
		RAISE EXCEPTION 'table % is not hash-distributed', anchor
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Distribute it first: SELECT create_distributed_table(''...'', ''<text column>'').';
	END IF;
	IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_colocation c
				    WHERE c.colocationid OPERATOR(pg_catalog.=) coloc
					  AND c.distributioncolumntype OPERATOR(pg_catalog.=) 'pg_catalog.text'::pg_catalog.regtype
					  AND c.replicationfactor OPERATOR(pg_catalog.=) 1) THEN
		RAISE EXCEPTION 'table % cannot anchor topics', anchor
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = 'The anchor must be distributed on a text column (topic names) with one placement per shard.';
	END IF;
	SELECT DISTINCT o.colocationid INTO old
	  FROM pg_catalog.pg_dist_object o JOIN pg_catalog.pg_proc p ON p.oid OPERATOR(pg_catalog.=) o.objid
	 WHERE o.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass
	   AND p.pronamespace OPERATOR(pg_catalog.=) 'courier'::pg_catalog.regnamespace
	   AND o.colocationid IS NOT NULL
	 LIMIT 1;
	-- (a group with no table left routes nothing: registering anew is safe)
	IF old IS NOT NULL AND old OPERATOR(pg_catalog.<>) coloc
	   AND EXISTS (SELECT 1 FROM pg_catalog.pg_dist_partition p
				    WHERE p.colocationid OPERATOR(pg_catalog.=) old) THEN
		RAISE EXCEPTION 'pg_courier is already distributed with colocation group %, not % (of %)', old, coloc, anchor
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  DETAIL = 'Another anchor would give most topics another owner node and leave their messages behind.',
				  HINT = 'Call courier.citus_distribute() with a table of colocation group ' || old || '.';
	END IF;
	FOR f IN SELECT p.oid::pg_catalog.regprocedure FROM pg_catalog.pg_proc p
			  WHERE p.pronamespace OPERATOR(pg_catalog.=) 'courier'::pg_catalog.regnamespace
				AND p.proname OPERATOR(pg_catalog.!~) '^_'
				AND p.pronargs OPERATOR(pg_catalog.>=) 1
				AND p.proargtypes[0] OPERATOR(pg_catalog.=) 'pg_catalog.text'::pg_catalog.regtype
				AND (p.proargnames)[1] OPERATOR(pg_catalog.=) 'topic'
				AND p.proname OPERATOR(pg_catalog.<>) 'citus_owner'
			  ORDER BY p.oid LOOP
		PERFORM pg_catalog.create_distributed_function(f, '$1', colocate_with => anchor::text,
													   force_delegation => true);
		n := n OPERATOR(pg_catalog.+) 1;
	END LOOP;
	SELECT pg_catalog.count(*) INTO strays FROM courier.topic_meta;
	IF strays OPERATOR(pg_catalog.>) 0 THEN
		RAISE WARNING '% topic(s) exist on the coordinator; they are not reachable through Citus', strays
			USING HINT = 'See courier.cluster_topics (owner differs from node) and docs/citus.md, "Stray topics".';
	END IF;
	RETURN n;
END;
$$;

-- One query of a fixed set on every node (run_command_on_all_nodes, as the
-- caller: each node's views apply the caller's privileges there).
CREATE FUNCTION courier._citus_fanout(what text, OUT nodename text, OUT nodeport integer, OUT rows jsonb)
RETURNS SETOF record LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	q text;
	r record;
BEGIN
	PERFORM courier._citus_require();
	q := CASE what
		 WHEN 'topics' THEN 'SELECT * FROM courier.topics'
		 WHEN 'groups' THEN 'SELECT * FROM courier.groups'
		 WHEN 'dead_letters' THEN 'SELECT * FROM courier.dead_letters'
		 END;
	IF q IS NULL THEN
		RAISE EXCEPTION 'unknown view %', what USING ERRCODE = 'invalid_parameter_value';
	END IF;
	FOR r IN EXECUTE
		'SELECT n.nodename, n.nodeport, c.success, c.result
		   FROM pg_catalog.run_command_on_all_nodes($1) c
		   JOIN pg_catalog.pg_dist_node n ON n.nodeid OPERATOR(pg_catalog.=) c.nodeid
		  ORDER BY n.groupid, n.nodeid'
		USING pg_catalog.format('SELECT COALESCE(pg_catalog.json_agg(t), ''[]''::pg_catalog.json) FROM (%s) t', q)
	LOOP
		IF NOT r.success THEN
			RAISE EXCEPTION 'node %:% did not answer for courier.cluster_%', r.nodename, r.nodeport, what
				USING ERRCODE = 'connection_failure', DETAIL = r.result;
		END IF;
		nodename := r.nodename;
		nodeport := r.nodeport;
		rows := r.result::jsonb;
		RETURN NEXT;
	END LOOP;
END;
$$;

-- The views of every node, on the coordinator: node, plus the columns of
-- courier.topics / groups / dead_letters there, plus (topics) the node that
-- owns the topic now (a row whose owner is not its node is a stray topic).
CREATE VIEW courier.cluster_topics AS
	SELECT f.nodename, f.nodeport, courier.citus_owner(t.topic) AS owner_node, t.*
	FROM courier._citus_fanout('topics') f,
		 LATERAL pg_catalog.jsonb_populate_recordset(NULL::courier.topics, f.rows) t;
CREATE VIEW courier.cluster_groups AS
	SELECT f.nodename, f.nodeport, g.*
	FROM courier._citus_fanout('groups') f,
		 LATERAL pg_catalog.jsonb_populate_recordset(NULL::courier.groups, f.rows) g;
CREATE VIEW courier.cluster_dead_letters AS
	SELECT f.nodename, f.nodeport, d.*
	FROM courier._citus_fanout('dead_letters') f,
		 LATERAL pg_catalog.jsonb_populate_recordset(NULL::courier.dead_letters, f.rows) d;

REVOKE ALL ON FUNCTION courier._citus_require(), courier.citus_distribute(regclass),
	courier._citus_fanout(text), courier.citus_owner(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION courier._citus_require(), courier._citus_fanout(text),
	courier.citus_owner(text) TO PUBLIC;
GRANT SELECT ON courier.cluster_topics, courier.cluster_groups, courier.cluster_dead_letters TO PUBLIC;
