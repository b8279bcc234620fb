# Review of issue 9: a topic whose owner role was dropped, dumped and
# restored into another cluster.
#
# courier.topic_meta.owner is a regrole with no shared dependency, so DROP
# ROLE of a topic's owner succeeds (REASSIGN OWNED / DROP OWNED do not see
# topics either) and leaves the bare OID.  pg_dump writes it as a number and
# regrolein accepts a number without checking it, so the restore makes
# whatever role has that OID in the new cluster the topic's owner -- with
# every privilege on it, bodies included.  Both clusters here are fresh from
# initdb and create one role first, so the OIDs line up deterministically.
#
# Expected: DROP ROLE is refused while the role owns topics (as for tables),
# or the restored topic has no owner that was never granted anything;
# mallory must not read the topic.
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use CourierTest;
use Test::More;

my $conf = "courier.worker = off\nlog_line_prefix = '%m [%p] %e '\n";
# no extension yet: each cluster's first role comes first
my ($old, $new) = map { courier_node($_, extension => 0, conf => $conf) } ('old', 'new');

# the first role of each cluster
$old->safe_psql('postgres', "CREATE ROLE team_lead");
$new->safe_psql('postgres', "CREATE ROLE mallory LOGIN");
my $oid_old = $old->safe_psql('postgres', "SELECT 'team_lead'::regrole::oid");
my $oid_new = $new->safe_psql('postgres', "SELECT 'mallory'::regrole::oid");
is($oid_new, $oid_old, 'precondition: the first roles of two fresh clusters share an OID');

$old->safe_psql('postgres', "CREATE EXTENSION pg_courier CASCADE");
$old->safe_psql('postgres', "GRANT courier_admin TO team_lead");
$old->safe_psql('postgres', "SET ROLE team_lead; SELECT courier.create_topic('payroll')");
$old->safe_psql('postgres', "SELECT courier.send('payroll', '{\"salary\": 1}')");

my ($rc, $out, $err) = $old->psql('postgres', "DROP ROLE team_lead");
if ($rc != 0)
{
	like($err, qr/depend|own/, 'DROP ROLE refused while the role owns a topic');
	done_testing();
	exit 0;
}
is($old->safe_psql('postgres', "SELECT count(*) FROM courier.topic_meta WHERE owner::text ~ '^[0-9]+\$'"), '0',
	'a dropped owner leaves no bare OID behind');

my $dump = $old->basedir . '/plain.sql';
command_ok([ 'pg_dump', '-d', $old->connstr('postgres'), '-f', $dump ], 'pg_dump');
$new->safe_psql('postgres', "CREATE ROLE courier_consumer NOLOGIN; GRANT courier_consumer TO mallory");
$new->psql('postgres', undef, extra_params => [ '-f', $dump ]);

# mallory never held anything on payroll
my ($mrc, $mout, $merr) = $new->psql('postgres',
	"SET ROLE mallory; SELECT body FROM courier.receive('payroll', 'default')");
isnt($mout, '{"salary": 1}', 'a role that was never granted anything does not read the restored topic');
is($new->safe_psql('postgres', "SELECT count(*) FROM courier.topic_meta WHERE owner = 'mallory'::regrole"),
	'0', 'mallory does not own the restored topic');

done_testing();
