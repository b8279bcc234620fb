# Review of issue 9: a topic grant to a role that is later dropped.
#
# Topic ACLs live in courier.topic_meta.acl (aclitem[]) and the owner in a
# regrole column, but nothing records a shared dependency (pg_shdepend), so
# DROP ROLE of a grantee (or of a topic's owner) succeeds and leaves the OID
# behind.  aclitemout prints a dangling grantee as a bare number, and
# aclitemin refuses it on restore ('role "NNN" does not exist'): the COPY of
# courier.topic_meta fails as a whole, so `pg_dump | psql` of a database in
# which any role that ever held a topic privilege was dropped restores no
# topic at all -- while their groups and segments come back orphaned.
#
# Expected: DROP ROLE is refused while the role holds topic privileges or
# owns topics (as for tables), or the dump stays restorable; in any case
# the restored database has its topics.
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use CourierTest;
use Test::More;

my $node = courier_node('dropped_role', conf => qq{
courier.worker = off
log_line_prefix = '%m [%p] %e '
});

sql("CREATE ROLE temp_reader");
sql("SELECT courier.create_topic('orders')");
sql("SELECT courier.create_group('orders', 'billing')");
sql("SELECT courier.send('orders', jsonb_build_object('n', g)) FROM generate_series(1, 3) g");
sql("SELECT courier.grant('orders', 'temp_reader', 'receive')");

# A DBA drops a role that once read the topic.
my ($rc, $out, $err) = $node->psql('postgres', "DROP ROLE temp_reader");
# Either the drop is refused (the role holds a topic privilege) ...
if ($rc != 0)
{
	like($err, qr/depend|privilege/, 'DROP ROLE refused while the role holds a topic privilege');
	done_testing();
	exit 0;
}
# ... or nothing may point at the dropped role any more.
is(sql("SELECT count(*) FROM courier.privileges WHERE grantee ~ '^[0-9]+\$'"), '0',
	'no privilege of a dropped role is left behind (shown as a bare OID)');

my $dump = $node->basedir . '/plain.sql';
command_ok([ 'pg_dump', '-d', $node->connstr('postgres'), '-f', $dump ], 'pg_dump');
sql("CREATE DATABASE restored");
my ($rrc, $rout, $rerr) = $node->psql('restored', undef,
	extra_params => [ '-v', 'ON_ERROR_STOP=1', '-f', $dump ]);
is($rrc, 0, 'the dump restores with ON_ERROR_STOP') or diag($rerr);
is(sql("SELECT string_agg(name, ',') FROM courier.topic_meta", 'restored'), 'orders',
	'the restored database has the topic');
my ($drc, $delivered) = $node->psql('restored',
	"SELECT count(*) FROM courier.receive('orders', 'billing', 10)");
is($delivered, '3', 'and delivers its messages');

done_testing();
