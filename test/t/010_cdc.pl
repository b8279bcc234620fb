# Change data capture on pg_courier's log (docs/cdc.md).  Segment inserts
# bypass triggers, so trigger-based CDC sees nothing (and the DDL guard
# refuses CREATE TRIGGER on them anyway); logical decoding sees every
# message: test_decoding shows each send as an INSERT into its segment,
# TOASTed bodies included, and nothing of a rolled-back send.  A FOR ALL
# TABLES publication includes each new segment at rotation; a subscriber
# that lacks the new table stops applying (every table of the subscription)
# until the table exists and the subscription is refreshed.  A publication
# that lists segments explicitly misses new ones.  A publication that
# publishes updates and deletes does not disturb the extension: the tables
# it updates have primary keys, the segments are insert-only.
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use CourierTest;
use Test::More;

my $pub = courier_node('publisher', init => { allows_streaming => 'logical' }, conf => qq{
courier.worker = off
log_line_prefix = '%m [%p] %e '
});

sql("SELECT courier.create_topic('cdc', retention => '4 seconds')");
sql("SELECT courier.create_topic('other')");

# ---- trigger-based CDC is not possible
my ($ret, $out, $err) = $pub->psql('postgres',
	"CREATE TRIGGER audit AFTER INSERT ON courier.log_1_1 FOR EACH ROW "
	  . "EXECUTE FUNCTION suppress_redundant_updates_trigger()");
like($err, qr/CREATE TRIGGER is not allowed on relation "courier.log_1_1"/,
	'no trigger can be put on a segment');

# ---- logical decoding sees every message
sql("SELECT pg_create_logical_replication_slot('td', 'test_decoding')");
# a FOR ALL TABLES publication that publishes everything, and others
sql("CREATE PUBLICATION courier_all FOR ALL TABLES");
sql("CREATE PUBLICATION courier_ins FOR ALL TABLES WITH (publish = 'insert')");
sql("CREATE PUBLICATION courier_list FOR TABLE courier.log_1_1");
sql("CREATE PUBLICATION courier_schema FOR TABLES IN SCHEMA courier");

sql("SELECT courier.send('cdc', '{\"n\": 1}', tag => 'a', keys => ARRAY['k1'])");
sql("BEGIN; SELECT courier.send('cdc', '{\"n\": 2}'); ROLLBACK");
sql("SELECT courier.send('cdc', jsonb_build_object('n', 3, 'big', "
	  . "(SELECT string_agg(md5(g::text), '') FROM generate_series(1, 4000) g)))");
sql("SELECT count(*) FROM courier.send_batch('cdc', ARRAY['{\"n\": 4}', '{\"n\": 5}']::jsonb[])");

my $changes = sql("SELECT data FROM pg_logical_slot_get_changes('td', NULL, NULL, "
	  . "'include-xids', '0', 'skip-empty-xacts', '1')");
like($changes, qr/^table courier\.log_1_1: INSERT: id\[bigint\]:1 .* tag\[text\]:'a' keys\[text\[\]\]:'\{k1\}' .*body\[jsonb\]:'\{"n": 1\}'$/m,
	'a send is an INSERT into its segment, with every column');
unlike($changes, qr/id\[bigint\]:2 /, 'a rolled-back send is not decoded');
my ($big) = $changes =~ /^table courier\.log_1_1: INSERT: id\[bigint\]:3 .*body\[jsonb\]:'\{"n": 3, "big": "([0-9a-f]+)"\}'$/m;
is(length($big // ''), 128000, 'a TOASTed body is decoded in full');
like($changes, qr/id\[bigint\]:4 .*\n.*id\[bigint\]:5 /, 'send_batch: one INSERT per message');

# ---- a subscriber of the FOR ALL TABLES publication (inserts only)
my $sub = PostgreSQL::Test::Cluster->new('subscriber');
$sub->init;
$sub->append_conf('postgresql.conf', "log_line_prefix = '%m [%p] %e '");
$sub->start;
# the subscriber has the same tables (columns as text: the apply worker
# converts from text); no pg_courier there
my $ddl = sql(q{
	SELECT string_agg(format('CREATE TABLE courier.%I (%s);', c.relname,
		(SELECT string_agg(format('%I text', a.attname), ', ' ORDER BY a.attnum)
		   FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped)), ' ')
	  FROM pg_class c WHERE c.relnamespace = 'courier'::regnamespace AND c.relkind = 'r'});
$sub->safe_psql('postgres', "CREATE SCHEMA courier; $ddl");
my $connstr = $pub->connstr . ' dbname=postgres';
$sub->safe_psql('postgres', "CREATE SUBSCRIPTION courier_sub CONNECTION '$connstr' PUBLICATION courier_ins");
$sub->wait_for_subscription_sync($pub, 'courier_sub');
is($sub->safe_psql('postgres', "SELECT string_agg(id, ',' ORDER BY id::int) FROM courier.log_1_1"),
	'1,3,4,5', 'the subscriber has the first segment');
sql("SELECT courier.send('cdc', '{\"n\": 6}')");
$pub->wait_for_catchup('courier_sub');
is($sub->safe_psql('postgres', "SELECT count(*) FROM courier.log_1_1 WHERE id = '6'"), '1',
	'new messages are replicated');

# ---- the first rotation
sleep(1.2);
is(sql("SELECT courier.run_maintenance()->>'segments_created'"), '1', 'the topic rotated');
sql("SELECT courier.send('cdc', '{\"n\": 7}')");
is(sql("SELECT relid FROM courier.segment WHERE topic_id = 1 ORDER BY seg_no DESC LIMIT 1"),
	'courier.log_1_2', 'message 7 went to the new segment');
like(sql("SELECT data FROM pg_logical_slot_get_changes('td', NULL, NULL, 'include-xids', '0', 'skip-empty-xacts', '1')"),
	qr/^table courier\.log_1_2: INSERT: id\[bigint\]:7 /m, 'logical decoding follows the rotation');

my $in_pub = "SELECT string_agg(pubname, ',' ORDER BY pubname) FROM pg_publication_tables "
  . "WHERE schemaname = 'courier' AND tablename = 'log_1_2'";
is(sql($in_pub), 'courier_all,courier_ins,courier_schema',
	'FOR ALL TABLES and FOR TABLES IN SCHEMA include the new segment; an explicit list does not');

# the subscriber lacks courier.log_1_2: its apply worker stops with an error,
# and nothing after it is applied, whatever table it is for
sql("SELECT courier.send('other', '{\"after\": true}')");
ok($sub->wait_for_log(qr/logical replication target relation "courier\.log_1_2" does not exist/),
	'the subscriber stops: the new segment does not exist there');
is($sub->safe_psql('postgres', "SELECT count(*) FROM courier.log_2_1"), '0',
	'and applies nothing after it, other tables included');

# creating the table lets apply go on, but the table is not part of the
# subscription yet: its rows are skipped until REFRESH PUBLICATION copies them
$sub->safe_psql('postgres', "CREATE TABLE courier.log_1_2 (id text, sent_at text, deliver_at text, "
	  . "tag text, keys text, headers text, body text)");
$pub->wait_for_catchup('courier_sub');
is($sub->safe_psql('postgres', "SELECT count(*) FROM courier.log_2_1"), '1', 'apply goes on');
is($sub->safe_psql('postgres', "SELECT count(*) FROM courier.log_1_2"), '0',
	'but the rows of the new segment were skipped');
$sub->safe_psql('postgres', "ALTER SUBSCRIPTION courier_sub REFRESH PUBLICATION");
$sub->wait_for_subscription_sync($pub, 'courier_sub');
is($sub->safe_psql('postgres', "SELECT string_agg(id, ',') FROM courier.log_1_2"), '7',
	'REFRESH PUBLICATION copies the new segment');
sql("SELECT courier.send('cdc', '{\"n\": 8}')");
$pub->wait_for_catchup('courier_sub');
is($sub->safe_psql('postgres', "SELECT string_agg(id, ',' ORDER BY id::int) FROM courier.log_1_2"), '7,8',
	'and later messages are replicated again');

# ---- the extension works under a publication of updates and deletes
sql("SELECT courier.create_group('cdc', 'g2')");
my $ids = sql("SELECT string_agg(id::text, ',' ORDER BY id) FROM courier.receive('cdc', 'default', 100)");
is($ids, '1,3,4,5,6,7,8', 'receive works');
sql("SELECT courier.ack('cdc', 'default', ARRAY[$ids])");
sql("SELECT courier.nack('cdc', 'g2', id, '0') FROM courier.receive('cdc', 'g2', 1)");
sql("SELECT courier.run_maintenance()");
sleep(4.2);
sql("SELECT courier.ack('cdc', 'g2', array_agg(id)) FROM courier.receive('cdc', 'g2', 100)");
my $maint = sql("SELECT courier.run_maintenance()");
like($maint, qr/"segments_dropped": 1/, 'maintenance updates, deletes and drops a segment');
sql("SELECT courier.drop_topic('other')");

# the segment drop is DDL: not replicated, the subscriber keeps its copy
is($sub->safe_psql('postgres', "SELECT count(*) FROM pg_class WHERE relname = 'log_1_1'"), '1',
	'a dropped segment stays on the subscriber');

unlike(slurp_file($pub->logfile), qr/\bXX000\b/, 'no XX000 on the publisher');
$sub->stop;
$pub->stop;
done_testing();
