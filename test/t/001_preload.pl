# The extension refuses to be created (with an error and a hint) when the
# library was not loaded through shared_preload_libraries, and leaves
# nothing behind.
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use CourierTest;
use Test::More;

my $node = courier_node('nopreload', preload => 0, extension => 0);

my ($ret, $out, $err) = $node->psql('postgres', 'CREATE EXTENSION pg_courier CASCADE');
isnt($ret, 0, 'CREATE EXTENSION fails without preloading');
like($err, qr/pg_courier must be loaded via shared_preload_libraries/, 'the error says why');
like($err, qr/HINT:\s+Add pg_courier to the shared_preload_libraries/, 'and hints at the fix');
is($node->safe_psql('postgres',
	"SELECT count(*) FROM pg_namespace WHERE nspname = 'courier'"), '0', 'no schema left behind');
is($node->safe_psql('postgres',
	"SELECT count(*) FROM pg_extension WHERE extname = 'pg_courier'"), '0', 'no extension left behind');

# LOAD is refused the same way
($ret, $out, $err) = $node->psql('postgres', "LOAD 'pg_courier'");
like($err, qr/must be loaded via shared_preload_libraries/, 'LOAD is refused too');

# with the library preloaded it works
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'pg_courier'");
$node->restart;
$node->safe_psql('postgres', 'CREATE EXTENSION pg_courier CASCADE');
is($node->safe_psql('postgres', "SELECT courier.send('t', '{}') FROM (SELECT courier.create_topic('t')) x"),
	'1', 'preloaded: the extension works');

$node->stop;
done_testing();
