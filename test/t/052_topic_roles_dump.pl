# A topic's owner and grants are its sequence's (src/acl.c), so pg_dump
# writes them by role name, never by OID:
#  - restored into another cluster where another role has the owner's OID
#    (mallory) and the owner exists under a different OID, the topic goes to
#    the owner by name, mallory gets nothing;
#  - restored with --no-owner --no-acl into a cluster that lacks the roles,
#    with ON_ERROR_STOP, every topic comes back (owned by the restoring
#    role), and keeps delivering.
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use CourierTest;
use Test::More;

my $conf = "courier.worker = off\nlog_line_prefix = '%m [%p] %e '\n";
# no extension yet: each cluster's first role comes first, and the restores
# create it where they go
my ($old, $new, $bare) = map { courier_node($_, extension => 0, conf => $conf) } ('old', 'new', 'bare');

$old->safe_psql('postgres', "CREATE ROLE team_lead; CREATE ROLE reader");
$new->safe_psql('postgres', "CREATE ROLE mallory LOGIN");
is($new->safe_psql('postgres', "SELECT 'mallory'::regrole::oid"),
	$old->safe_psql('postgres', "SELECT 'team_lead'::regrole::oid"),
	'precondition: mallory has team_lead\'s OID in the new cluster');
$new->safe_psql('postgres', "CREATE ROLE team_lead; CREATE ROLE reader");

$old->safe_psql('postgres', "CREATE EXTENSION pg_courier CASCADE");
$old->safe_psql('postgres', "GRANT courier_admin TO team_lead");
$old->safe_psql('postgres', "SET ROLE team_lead; SELECT courier.create_topic('payroll')");
$old->safe_psql('postgres', "SET ROLE team_lead; SELECT courier.grant('payroll', 'reader', 'receive')");
$old->safe_psql('postgres', "SELECT courier.send('payroll', '{\"salary\": 1}')");
$old->safe_psql('postgres', "SELECT courier.create_topic('plain')");
$old->safe_psql('postgres', "SELECT courier.send('plain', '{\"n\": 1}')");

my $dump = $old->basedir . '/plain.sql';
command_ok([ 'pg_dump', '-d', $old->connstr('postgres'), '-f', $dump ], 'pg_dump');
my $text = slurp_file($dump);
unlike($text, qr/OWNER TO "?\d+"?;/, 'no owner is dumped as a number');

# into a cluster with the roles (and mallory on team_lead's old OID)
$new->safe_psql('postgres', "CREATE ROLE courier_consumer NOLOGIN; GRANT courier_consumer TO mallory, team_lead");
my ($rc, $out, $err) = $new->psql('postgres', undef,
	extra_params => [ '-v', 'ON_ERROR_STOP=1', '-f', $dump ]);
is($rc, 0, 'restored with ON_ERROR_STOP') or diag($err);
is($new->safe_psql('postgres', "SELECT string_agg(topic || ':' || owner, ',' ORDER BY topic) FROM courier.topics"),
	'payroll:team_lead,plain:postgres', 'each topic belongs to its owner by name');
is($new->safe_psql('postgres', "SELECT string_agg(grantee || ':' || privilege, ',') FROM courier.privileges"),
	'reader:receive', 'the grant is restored by name');
is($new->safe_psql('postgres', "SELECT courier.has_topic_privilege('payroll', 'receive', 'mallory')"), 'f',
	'mallory holds nothing on payroll');
($rc, $out, $err) = $new->psql('postgres',
	"SET ROLE mallory; SELECT body FROM courier.receive('payroll', 'default')");
like($err, qr/permission denied for topic "payroll"/, 'mallory cannot read payroll');
is($new->safe_psql('postgres', "SET ROLE team_lead; SELECT body FROM courier.receive('payroll', 'default')"),
	'{"salary": 1}', 'its owner can');

# into a cluster that lacks the roles: --no-owner --no-acl
$bare->safe_psql('postgres', "CREATE DATABASE restored");
my $noowner = $old->basedir . '/noowner.sql';
command_ok([ 'pg_dump', '--no-owner', '--no-acl', '-d', $old->connstr('postgres'), '-f', $noowner ],
	'pg_dump --no-owner --no-acl');
($rc, $out, $err) = $bare->psql('restored', undef,
	extra_params => [ '-v', 'ON_ERROR_STOP=1', '-f', $noowner ]);
is($rc, 0, 'restored without the roles, with ON_ERROR_STOP') or diag($err);
is($bare->safe_psql('restored', "SELECT string_agg(topic || ':' || owner, ',' ORDER BY topic) FROM courier.topics"),
	'payroll:postgres,plain:postgres', 'every topic is there, owned by the restoring role');
is($bare->safe_psql('restored', "SELECT count(*) FROM courier.privileges"), '0', 'without grants');
is($bare->safe_psql('restored', "SELECT string_agg(body::text, ',') FROM courier.receive('payroll', 'default', 10)"),
	'{"salary": 1}', 'and the topics deliver');

# in the running cluster, the roles cannot go while they own or hold a topic
($rc, $out, $err) = $old->psql('postgres', "DROP ROLE reader");
like($err, qr/privileges for sequence courier\.seq_\d+/, 'DROP ROLE of a grantee is refused');
($rc, $out, $err) = $old->psql('postgres', "DROP ROLE team_lead");
like($err, qr/owner of sequence courier\.seq_\d+/, 'DROP ROLE of an owner is refused');
$old->safe_psql('postgres', "REASSIGN OWNED BY team_lead TO postgres; DROP OWNED BY team_lead; DROP OWNED BY reader");
$old->safe_psql('postgres', "DROP ROLE reader; DROP ROLE team_lead");
is($old->safe_psql('postgres', "SELECT string_agg(topic || ':' || owner, ',' ORDER BY topic) FROM courier.topics"),
	'payroll:postgres,plain:postgres', 'REASSIGN OWNED kept the topic, now the new owner\'s');

done_testing();
