# Issue 7 section 2: a database owner who is not a superuser must not get
# code run by the background worker (which connects as the bootstrap
# superuser).
#
# The owner of a database plants, in public and in a schema named like the
# worker's role, exact-type overloads of every function, aggregate and
# operator that the extension's SPI statements (src/*.c) and PL/pgSQL
# (sql/pg_courier.sql) use, and moves public ahead of pg_catalog in the
# database's search_path, so that even overloads with pg_catalog's exact
# signature would win name resolution.  Each plant records itself (a
# sequence, which no rollback undoes, a log row and a WARNING) and tries to
# make the owner superuser.  A positive control shows that every plant does
# fire in an ordinary session of that database.  Then the worker runs full
# cycles -- catalog reload, lease expiry, dead-lettering, compaction,
# promotions of an ordered group, segment rotation by size and by age,
# reclaim, and a max_retention drop -- and the test proves that nothing
# planted ever ran and the owner is still not superuser.
#
# (coalesce, greatest, least and ARRAY(...) are SQL syntax, not function
# calls, and cannot be overloaded; EXTRACT(field FROM x) is grammar that
# always calls pg_catalog.extract.  They are listed here so nobody looks for
# them.)
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use CourierTest qw(courier_node);
use Test::More;
use Time::HiRes qw(sleep);

my $node = courier_node('search_path', conf => qq{
courier.worker_naptime = 50
courier.segment_size = 1000
max_worker_processes = 16
log_line_prefix = '%m [%p] %e %b '
}, extension => 0);

# Every session of this test pins its own search_path: the database's
# setting below would otherwise hand the test's own queries to the plants.
$ENV{PGOPTIONS} = '-c search_path=pg_catalog,pg_temp -c lock_timeout=0 '
  . '-c default_transaction_isolation=read\\ committed';

my $worker_role = $node->safe_psql('postgres', "SELECT rolname FROM pg_roles WHERE oid = 10");
$node->safe_psql('postgres', "CREATE ROLE courier_owner LOGIN");
$node->safe_psql('postgres', "CREATE DATABASE owned OWNER courier_owner");
$node->safe_psql('owned', "CREATE EXTENSION pg_courier CASCADE");

sub owner_sql
{
	my ($sql, %opts) = @_;
	return $node->safe_psql('owned', "SET ROLE courier_owner;\n$sql", %opts);
}
sub sql { return $node->safe_psql('owned', $_[0]); }

# ---- the plants --------------------------------------------------------
owner_sql(q{
CREATE SEQUENCE public.planted_calls;
CREATE TABLE public.planted_log (what text, who text, at timestamptz DEFAULT pg_catalog.now());
GRANT ALL ON public.planted_log TO PUBLIC;
GRANT ALL ON SEQUENCE public.planted_calls TO PUBLIC;
CREATE FUNCTION public.planted(what text) RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	PERFORM pg_catalog.nextval('public.planted_calls'::pg_catalog.regclass);
	INSERT INTO public.planted_log (what, who) VALUES (what, current_user);
	RAISE WARNING 'PLANTED % ran as %', what, current_user;
	BEGIN
		EXECUTE 'ALTER ROLE courier_owner SUPERUSER';
	EXCEPTION WHEN insufficient_privilege THEN
		NULL;
	END;
END $$;
});

# [name, argument types, return type, body] of plpgsql functions
my @functions = (
	['unnest', 'bigint[]', 'SETOF bigint', 'RETURN QUERY SELECT pg_catalog.unnest($1);'],
	['unnest', 'interval[]', 'SETOF interval', 'RETURN QUERY SELECT pg_catalog.unnest($1);'],
	['unnest', 'text[]', 'SETOF text', 'RETURN QUERY SELECT pg_catalog.unnest($1);'],
	['cardinality', 'bigint[]', 'integer', 'RETURN pg_catalog.cardinality($1);'],
	['cardinality', 'interval[]', 'integer', 'RETURN pg_catalog.cardinality($1);'],
	['now', '', 'timestamptz', 'RETURN pg_catalog.now();'],
	['clock_timestamp', '', 'timestamptz', 'RETURN pg_catalog.clock_timestamp();'],
	['array_ndims', 'interval[]', 'integer', 'RETURN pg_catalog.array_ndims($1);'],
	['hashtext', 'text', 'integer', 'RETURN pg_catalog.hashtext($1);'],
	['quote_literal', 'text', 'text', 'RETURN pg_catalog.quote_literal($1);'],
	['nextval', 'regclass', 'bigint', 'RETURN pg_catalog.nextval($1);'],
	['array_append', 'bigint[], bigint', 'bigint[]', 'RETURN pg_catalog.array_append($1, $2);'],
	['array_position', 'bigint[], bigint', 'integer', 'RETURN pg_catalog.array_position($1, $2);'],
	['array_remove', 'bigint[], bigint', 'bigint[]', 'RETURN pg_catalog.array_remove($1, $2);'],
	['array_length', 'bigint[], integer', 'integer', 'RETURN pg_catalog.array_length($1, $2);'],
	['jsonb_build_object', 'text, bigint', 'jsonb', 'RETURN pg_catalog.jsonb_build_object($1, $2);'],
	['format', 'text, text', 'text', 'RETURN pg_catalog.format($1, $2);'],
	['format', 'text, integer, integer', 'text', 'RETURN pg_catalog.format($1, $2, $3);'],
	['lower', 'text', 'text', 'RETURN pg_catalog.lower($1);'],
	['length', 'text', 'integer', 'RETURN pg_catalog.length($1);'],
);

# [name, argument type, state type, transition body, initial state]
my @aggregates = (
	['count', '*', 'bigint', 'RETURN $1 OPERATOR(pg_catalog.+) 1;', "'0'"],
	['count', 'bigint', 'bigint', 'RETURN $1 OPERATOR(pg_catalog.+) (CASE WHEN $2 IS NULL THEN 0 ELSE 1 END);', "'0'"],
	['count', 'integer', 'bigint', 'RETURN $1 OPERATOR(pg_catalog.+) (CASE WHEN $2 IS NULL THEN 0 ELSE 1 END);', "'0'"],
	['sum', 'integer', 'bigint',
		'RETURN CASE WHEN $2 IS NULL THEN $1 ELSE COALESCE($1, 0) OPERATOR(pg_catalog.+) $2 END;', undef],
	['min', 'timestamptz', 'timestamptz', 'RETURN CASE WHEN $1 IS NULL THEN $2 WHEN $2 IS NULL THEN $1 ELSE LEAST($1, $2) END;', undef],
	['max', 'bigint', 'bigint', 'RETURN CASE WHEN $1 IS NULL THEN $2 WHEN $2 IS NULL THEN $1 ELSE GREATEST($1, $2) END;', undef],
	['min', 'bigint', 'bigint', 'RETURN CASE WHEN $1 IS NULL THEN $2 WHEN $2 IS NULL THEN $1 ELSE LEAST($1, $2) END;', undef],
	['array_agg', 'integer', 'integer[]', 'RETURN pg_catalog.array_append($1, $2);', undef],
	['array_agg', 'bigint', 'bigint[]', 'RETURN pg_catalog.array_append($1, $2);', undef],
	['array_agg', 'oid', 'oid[]', 'RETURN pg_catalog.array_append($1, $2);', undef],
	['array_agg', 'timestamptz', 'timestamptz[]', 'RETURN pg_catalog.array_append($1, $2);', undef],
	['array_agg', 'regclass', 'regclass[]', 'RETURN pg_catalog.array_append($1, $2);', undef],
);

# [operator, left type, right type, result type]
my @operators = (
	['=', 'integer', 'integer', 'boolean'],
	['=', 'bigint', 'bigint', 'boolean'],
	['=', 'bigint', 'integer', 'boolean'],
	['=', '"char"', '"char"', 'boolean'],
	['=', 'text', 'text', 'boolean'],
	['=', 'oid', 'oid', 'boolean'],
	['<>', '"char"', '"char"', 'boolean'],
	['<>', 'integer', 'integer', 'boolean'],
	['<', 'bigint', 'bigint', 'boolean'],
	['<=', 'bigint', 'bigint', 'boolean'],
	['>', 'bigint', 'bigint', 'boolean'],
	['>=', 'bigint', 'bigint', 'boolean'],
	['<', 'integer', 'integer', 'boolean'],
	['>', 'integer', 'integer', 'boolean'],
	['>=', 'integer', 'integer', 'boolean'],
	['<=', 'timestamptz', 'timestamptz', 'boolean'],
	['>', 'timestamptz', 'timestamptz', 'boolean'],
	['<', 'timestamptz', 'timestamptz', 'boolean'],
	['<=', 'interval', 'interval', 'boolean'],
	['>', 'interval', 'interval', 'boolean'],
	['<', 'interval', 'interval', 'boolean'],
	['+', 'integer', 'integer', 'integer'],
	['+', 'bigint', 'bigint', 'bigint'],
	['+', 'bigint', 'integer', 'bigint'],
	['-', 'bigint', 'integer', 'bigint'],
	['-', 'integer', 'integer', 'integer'],
	['+', 'timestamptz', 'interval', 'timestamptz'],
	['-', 'timestamptz', 'interval', 'timestamptz'],
	['*', 'numeric', 'integer', 'numeric'],
	['/', 'interval', 'integer', 'interval'],
	['@>', 'text[]', 'text[]', 'boolean'],
	['@>', 'bigint[]', 'bigint[]', 'boolean'],
	['&&', 'bigint[]', 'bigint[]', 'boolean'],
	['||', 'text', 'text', 'text'],
	['||', 'bigint[]', 'bigint', 'bigint[]'],
	['||', 'bigint[]', 'bigint[]', 'bigint[]'],
);

my $n = 0;
my @ddl;
for my $schema ('public', qq{"$worker_role"})
{
	my $where = $schema eq 'public' ? 'public' : 'role';
	for my $f (@functions)
	{
		my ($name, $args, $ret, $body) = @$f;
		my $label = "$name($args)";
		push @ddl, qq{CREATE FUNCTION $schema.$name($args) RETURNS $ret LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp AS \$f\$ BEGIN PERFORM public.planted('$where: $label'); $body END \$f\$;};
	}
	for my $a (@aggregates)
	{
		my ($name, $arg, $stype, $body, $init) = @$a;
		my $fn = "$schema.planted_sfunc_" . $n++;
		my $sargs = $arg eq '*' ? $stype : "$stype, $arg";
		push @ddl, qq{CREATE FUNCTION $fn($sargs) RETURNS $stype LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp AS \$f\$ BEGIN PERFORM public.planted('$where: aggregate $name($arg)'); $body END \$f\$;};
		push @ddl, "CREATE AGGREGATE $schema.$name($arg) (SFUNC = $fn, STYPE = $stype"
		  . (defined $init ? ", INITCOND = $init" : '') . ");";
	}
	for my $o (@operators)
	{
		my ($op, $l, $r, $ret) = @$o;
		my $fn = "$schema.planted_op_" . $n++;
		push @ddl, qq{CREATE FUNCTION $fn(a $l, b $r) RETURNS $ret LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp AS \$f\$ BEGIN PERFORM public.planted('$where: operator $op($l, $r)'); RETURN a OPERATOR(pg_catalog.$op) b; END \$f\$;};
		push @ddl, "CREATE OPERATOR $schema.$op (LEFTARG = $l, RIGHTARG = $r, FUNCTION = $fn);";
	}
}
owner_sql(qq{CREATE SCHEMA "$worker_role";\n} . join("\n", @ddl));
# public (and the schema named like the worker's role) ahead of pg_catalog
owner_sql(qq{ALTER DATABASE owned SET search_path = "\$user", public, pg_catalog});
# and other per-database settings that must not change how the worker runs
owner_sql(q{ALTER DATABASE owned SET default_transaction_isolation = 'serializable'});
owner_sql(q{ALTER DATABASE owned SET lock_timeout = '1ms'});

# ---- positive control: in an ordinary session every plant fires ---------
# The owner's session resolves to the plants in public, a superuser's (whose
# "$user" schema comes first) to those in the schema named like the worker's
# role; the superuser's run is rolled back, so its ALTER ROLE leaves no trace.
my @probes = (
	"SELECT pg_catalog.count(*) FROM unnest('{1}'::bigint[])",
	"SELECT pg_catalog.count(*) FROM unnest('{1s}'::interval[])",
	"SELECT pg_catalog.count(*) FROM unnest('{a}'::text[])",
	"SELECT cardinality('{1}'::bigint[]), cardinality('{1s}'::interval[])",
	"SELECT now(), clock_timestamp()",
	"SELECT count(*), count(1::bigint), count(1), sum(1), min(pg_catalog.now()), max(1::bigint), min(1::bigint) FROM (VALUES (1)) v",
	"SELECT array_agg(1), array_agg(1::bigint), array_agg(1::oid), array_agg(pg_catalog.now()), array_agg('pg_class'::regclass) FROM (VALUES (1)) v",
	"SELECT 1 = 1, 1::bigint = 1::bigint, 1::bigint = 1, 'a'::\"char\" = 'a', 'a'::text = 'a'::text, 1::oid = 1::oid",
	"SELECT 'a'::\"char\" <> 'b', 1 <> 2, 1::bigint < 2::bigint, 1::bigint <= 2::bigint, 1::bigint > 2::bigint, 1::bigint >= 2::bigint",
	"SELECT 1 < 2, 1 > 2, 1 >= 2, pg_catalog.now() <= pg_catalog.now(), pg_catalog.now() > pg_catalog.now(), pg_catalog.now() < pg_catalog.now()",
	"SELECT interval '1s' <= interval '2s', interval '1s' > interval '2s', interval '1s' < interval '2s'",
	"SELECT 1 + 1, 1::bigint + 1::bigint, 1::bigint + 1, 1::bigint - 1, 1 - 1, pg_catalog.now() + interval '1s', pg_catalog.now() - interval '1s'",
	"SELECT 1.5 * 2, interval '1s' / 2, '{a}'::text[] @> '{a}'::text[], '{1}'::bigint[] @> '{1}'::bigint[], '{1}'::bigint[] && '{1}'::bigint[]",
	"SELECT 'a'::text || 'b'::text, '{1}'::bigint[] || 2::bigint, '{1}'::bigint[] || '{2}'::bigint[]",
	"SELECT array_ndims('{1s}'::interval[]), hashtext('a'), quote_literal('a'::text), array_append('{1}'::bigint[], 2::bigint)",
	"SELECT array_position('{1}'::bigint[], 1::bigint), array_remove('{1}'::bigint[], 1::bigint), array_length('{1}'::bigint[], 1)",
	"SELECT jsonb_build_object('a'::text, 1::bigint), format('%s'::text, 'a'::text), format('%s %s'::text, 1, 2), lower('A'::text), length('a'::text)",
	"SELECT nextval('public.planted_calls'::regclass)",
);
my @labels = ((map { "$_->[0]($_->[1])" } @functions),
	(map { "aggregate $_->[0]($_->[1])" } @aggregates),
	(map { "operator $_->[0]($_->[1], $_->[2])" } @operators));
for my $who ('owner', 'superuser')
{
	local $ENV{PGOPTIONS} = '';
	my $where = $who eq 'owner' ? 'public' : 'role';
	my $script = $who eq 'owner'
	  ? "SET ROLE courier_owner;\n" . join(";\n", @probes) . ";\n"
	  : "BEGIN;\n" . join(";\n", @probes) . ";\nROLLBACK;\n";
	my ($out, $err) = ('', '');
	$node->psql('owned', $script, stdout => \$out, stderr => \$err, on_error_stop => 1);
	my %seen = map { $_ => 1 } ($err =~ /PLANTED $where: (.*?) ran as/g);
	my @missing = grep { !$seen{$_} } @labels;
	is(join(', ', @missing), '', "positive control ($who): every plant in $where fires (" . scalar(keys %seen) . ")");
}
is($node->safe_psql('postgres', "SELECT rolsuper FROM pg_roles WHERE rolname = 'courier_owner'"),
	'f', 'the plants cannot escalate on their own');
owner_sql("TRUNCATE public.planted_log; ALTER SEQUENCE public.planted_calls RESTART");
my $log_start = -s $node->logfile;

# A worker that connected before the ALTER DATABASE settings would not see
# them: make sure every worker of this database connects from now on.
# (And the owner also tries to make superuser sessions run as herself.)
owner_sql(q{ALTER DATABASE owned SET role = courier_owner});
$ENV{PGOPTIONS} .= ' -c role=none';
# A worker that had started but not yet connected has no datname in
# pg_stat_activity: end every worker that started before $t0, until none is
# left (each SIGTERM only asks; a worker may still be on its way out).
my $t0 = $node->safe_psql('owned', 'SELECT pg_catalog.clock_timestamp()');
$node->poll_query_until('owned',
	"SELECT pg_catalog.count(pg_catalog.pg_terminate_backend(pid)) = 0 FROM pg_catalog.pg_stat_activity "
	. "WHERE backend_type = 'pg_courier worker' AND backend_start <= '$t0'", 't')
  or die "workers that started before the settings did not go";

# ---- full worker cycles, nobody calls run_maintenance -------------------
# catalog reload: every topic and group is created while the worker runs
sql("SELECT courier.create_topic('warm')");
ok($node->poll_query_until('owned',
	"SELECT pg_catalog.count(*) > 0 FROM pg_catalog.pg_stat_activity WHERE backend_type = 'pg_courier worker' AND datname = 'owned'"),
	'a worker serves the database');

sql("SELECT courier.create_topic('jobs', retention => '2 seconds')");
sql("SELECT courier.create_group('jobs', 'once', max_attempts => 1)");
sql("SELECT courier.create_group('jobs', 'twice', max_attempts => 2)");
sql("SELECT courier.create_group('jobs', 'keyed', ordered => true)");
sql("SELECT courier.create_topic('forced', retention => '1 second', max_retention => '2 seconds')");
sql("SELECT courier.create_group('forced', 'lagging')");
sql("SELECT courier.create_topic('big', retention => '1 day')");

# lease expiry and dead-lettering
sql("SELECT courier.send('jobs', '{\"n\": 1}', keys => ARRAY['k1'])");
sql("SELECT courier.send('jobs', '{\"n\": 2}', keys => ARRAY['k1'])");
is(sql("SELECT pg_catalog.count(*) FROM courier.receive('jobs', 'once', 10, '0')"), '2', 'received with a lease that ends at once');
is(sql("SELECT pg_catalog.count(*) FROM courier.receive('jobs', 'twice', 10, '0')"), '2', 'received (twice)');
is(sql("SELECT pg_catalog.count(*) FROM courier.receive('jobs', 'keyed', 10, '0')"), '1', 'ordered: one message of the key');
ok($node->poll_query_until('owned', "SELECT pg_catalog.count(*) FROM courier.dead_letters WHERE grp = 'once'", '2'),
	'the worker expires the leases and dead-letters them');
ok($node->poll_query_until('owned',
	"SELECT pg_catalog.count(*) FROM courier.receive('jobs', 'twice', 10, '1 hour') r "
	. "WHERE r.attempt = 2 AND courier.ack('jobs', 'twice', r.id)", '2'),
	'expired leases come back with attempt 2');
ok($node->poll_query_until('owned',
	"SELECT pg_catalog.count(*) FROM courier.receive('jobs', 'keyed', 10, '1 hour') r "
	. "WHERE r.attempt = 2 AND courier.ack('jobs', 'keyed', r.id)", '1'),
	'the ordered head comes back after its lease expired');

# compaction, rotation by age and reclaim: send, receive and ack until two
# segments were dropped.  (This traffic is not what the test is about: a
# client error here -- a receive racing a segment drop -- is the core's
# business, and does not stop the test.)
sub traffic { my ($q) = @_; $node->psql('owned', $q); }
for my $i (1 .. 200)
{
	traffic("SELECT courier.send('jobs', '{\"loop\": $i}')");
	for my $g ('once', 'twice', 'keyed', 'default')
	{
		traffic("SELECT courier.ack('jobs', '$g', COALESCE((SELECT pg_catalog.array_agg(id) FROM courier.receive('jobs', '$g', 100, '1 hour')), '{}'))");
	}
	last if sql("SELECT reclaimed >= 2 FROM courier.topic_meta WHERE name = 'jobs'") eq 't';
	sleep(0.2);
}
is(sql("SELECT reclaimed >= 2 FROM courier.topic_meta WHERE name = 'jobs'"), 't', 'segments were rotated and dropped');
ok($node->poll_query_until('owned',
	"SELECT pg_catalog.count(*) FROM courier.claim c JOIN courier.group_meta g USING (group_id) "
	. "JOIN courier.topic_meta t USING (topic_id) WHERE t.name = 'jobs' AND g.name = 'default'", '0'),
	'finished claims are compacted');

# max_retention drops behind a lagging group
sql("SELECT courier.send('forced', '{\"f\": 1}')");
ok($node->poll_query_until('owned',
	"SELECT g.dropped > 0 FROM courier.group_meta g JOIN courier.topic_meta t USING (topic_id) "
	. "WHERE t.name = 'forced' AND g.name = 'lagging'", 't'),
	'max_retention dropped a segment behind a lagging group');

# rotation by size (courier.segment_size = 1000)
sql("SELECT pg_catalog.count(*) FROM courier.send_batch('big', (SELECT pg_catalog.array_agg(pg_catalog.jsonb_build_object('n', g)) FROM pg_catalog.generate_series(1, 1100) g))");
ok($node->poll_query_until('owned', "SELECT segments >= 2 FROM courier.topics WHERE topic = 'big'", 't'),
	'a full segment is rotated');

# a group created now is picked up (catalog reload) and maintained
sql("SELECT courier.create_group('big', 'late', max_attempts => 1)");
is(sql("SELECT pg_catalog.count(*) FROM courier.receive('big', 'late', 5, '0')"), '5', 'received in a new group');
ok($node->poll_query_until('owned', "SELECT pg_catalog.count(*) FROM courier.dead_letters WHERE grp = 'late'", '5'),
	'the new group is maintained');

# every round went well (the worker ran as itself, with its own settings)
ok($node->poll_query_until('owned',
	"SELECT last_finished > '$t0' AND last_error IS NULL FROM courier._maintenance_status()", 't'),
	'the last maintenance round had no error');
my $worker_started = $node->safe_psql('owned',
	"SELECT pg_catalog.min(backend_start) > '$t0' FROM pg_catalog.pg_stat_activity "
	. "WHERE backend_type = 'pg_courier worker' AND datname = 'owned'");
is($worker_started, 't', 'the worker connected after the database settings were made');

# ---- nothing planted ever ran -------------------------------------------
is(sql("SELECT is_called FROM public.planted_calls"), 'f', 'no planted function, aggregate or operator was ever called');
is(sql("SELECT pg_catalog.count(*) FROM public.planted_log"), '0', 'nothing was logged by a plant');
my $log = slurp_file($node->logfile, $log_start);
unlike($log, qr/PLANTED/, 'no plant raised its warning in the server log');
is($node->safe_psql('postgres', "SELECT rolsuper FROM pg_roles WHERE rolname = 'courier_owner'"),
	'f', 'the database owner is not superuser');
unlike($log, qr/ XX000 pg_courier worker /, 'the worker logged no internal error (XX000)');

$node->stop;
done_testing();
