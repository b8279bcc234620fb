# Ordered groups, two-phase commit and a server crash: a key must never be
# left without a head (contract lines 2 and 5, DESIGN.md).
#
# A transaction acks (or nacks) the head of key k and is PREPARED.  A later
# message of k is then walked: its receive queues it behind the head, which
# the prepared transaction is deleting, and asks for a promotion once that
# transaction has ended (walk.c, key_entry -> CourierPromoteLater).  That
# request lives in shared memory only; COMMIT / ROLLBACK PREPARED run no
# callback of ours.  After a crash (pg_ctl stop -m immediate) or a
# promotion of a standby, the first use of the group rebuilds its position,
# which asks for the scan for keys without a head; the next call runs it
# (lease.c, CourierRunPromotions).  Under its MVCC snapshot the head the
# prepared transaction is deleting is still there, so the key was not
# listed, and nothing looked at it again after COMMIT PREPARED: the next
# message stayed queued for good (on main d16c44d: cases a, w, m, q, k and
# standby below).  Now the scan runs again once each transaction prepared
# when it ran has ended.
#
# Cases (topic = case); "used" = two receives after the restart, while the
# transaction is still prepared (the first rebuilds, the second scans):
#   a   ack prepared, crash, used, COMMIT PREPARED: plain receives must get
#       the next message
#   w   the same; a waiting receive started before COMMIT PREPARED must get it
#   m   five keys acked in one prepared transaction, as a
#   q   the next message queued by a receive in a transaction left prepared,
#       then the head acked (committed), crash, used, COMMIT PREPARED
#   u   as a, but nothing touches the group between the restart and COMMIT
#       PREPARED (the scan runs after it)
#   s   the next message was queued before the ack: the prepared transaction
#       promotes it itself
#   b   COMMIT PREPARED before the crash, nothing received in between
#   r   ROLLBACK PREPARED after the crash: the head comes back when its lease
#       ends, attempt 2, and the next message only after it is acked
#   n   a nack (delay 1 s) prepared, COMMIT PREPARED after the crash: the head
#       comes back, attempt 2, then the next message
#   k   the worker on: a receive after the restart, then worker rounds (which
#       run the scan), then COMMIT PREPARED; the next message must become
#       receivable with no receive at all (peek), then be received
#   standby: as a, on a streaming standby promoted after the primary is
#       killed (prepared transactions replicate)
#
# Every bound is generous (60 s); nothing asserts a timing.
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use CourierTest;
use Test::More;
use Time::HiRes qw(sleep time);

my $BOUND = 60;

my $node = courier_node('crashprep', conf => qq{
courier.worker = off
courier.worker_naptime = 200
max_prepared_transactions = 10
log_line_prefix = '%m [%p] %e '
}, init => { allows_streaming => 1 });

# labels of what a receive returns, "label/attempt", in id order
sub recv_labels
{
	my ($n, $t, $vt) = @_;
	$vt //= '1 minute';
	return $n->safe_psql('postgres',
		"SELECT coalesce(string_agg((body->>'m') || '/' || attempt, ',' ORDER BY id), '') "
		  . "FROM courier.receive('$t', 'o', 10, '$vt')");
}

sub id_of
{
	my ($n, $t, $label) = @_;
	return $n->safe_psql('postgres',
		"SELECT id FROM courier.find('$t', key => '" . (split /-/, $label)[0] . "') "
		  . "WHERE body->>'m' = '$label' AND grp = 'o'");
}

sub send_msg
{
	my ($n, $t, $key, $label) = @_;
	$n->safe_psql('postgres', "SELECT courier.send('$t', '{\"m\": \"$label\"}', keys => ARRAY['$key'])");
}

# head of key received; then a prepared transaction $gid that acks (or
# nacks) it; then the key's next message sent and walked (queued behind the
# head the prepared transaction is finishing)
sub prepared_finish
{
	my ($n, $t, $keys, $gid, %opt) = @_;
	my $verb = $opt{nack} ? 'nack' : 'ack';
	my $vt = $opt{vt} // '1 minute';
	$n->safe_psql('postgres', "SELECT courier.create_topic('$t')");
	$n->safe_psql('postgres', "SELECT courier.create_group('$t', 'o', ordered => true)");
	send_msg($n, $t, $_, "$_-1") for @$keys;
	send_msg($n, $t, $_, "$_-2") for ($opt{queued_first} ? @$keys : ());
	is(recv_labels($n, $t, $vt), join(',', map { "$_-1/1" } @$keys), "$t: the head of each key received");
	my $s = $n->background_psql('postgres');
	$s->query_safe("BEGIN");
	for my $k (@$keys)
	{
		my $id = id_of($n, $t, "$k-1");
		my $call = $opt{nack} ? "courier.nack('$t', 'o', $id, '1 second')" : "courier.ack('$t', 'o', $id)";
		is($s->query_safe("SELECT $call"), 't', "$t: $verb of $k-1 in transaction $gid");
	}
	$s->query_safe("PREPARE TRANSACTION '$gid'");
	$s->quit;
	send_msg($n, $t, $_, "$_-2") for ($opt{queued_first} ? () : @$keys);
	is(recv_labels($n, $t), '', "$t: with $gid prepared, nothing of the keys is receivable");
}

# head of key received; the next message queued behind it by a receive in
# transaction $gid, left prepared; then the head acked (committed): the
# promotion waits for $gid, whose queued row it must see committed
sub prepared_queue
{
	my ($n, $t, $key, $gid) = @_;
	$n->safe_psql('postgres', "SELECT courier.create_topic('$t')");
	$n->safe_psql('postgres', "SELECT courier.create_group('$t', 'o', ordered => true)");
	send_msg($n, $t, $key, "$key-1");
	is(recv_labels($n, $t), "$key-1/1", "$t: the head received");
	send_msg($n, $t, $key, "$key-2");
	my $s = $n->background_psql('postgres');
	$s->query_safe("BEGIN");
	is($s->query_safe("SELECT count(*) FROM courier.receive('$t', 'o', 10, '1 minute')"), '0',
		"$t: a receive in $gid queues $key-2 behind the head");
	$s->query_safe("PREPARE TRANSACTION '$gid'");
	$s->quit;
	is($n->safe_psql('postgres', "SELECT courier.ack('$t', 'o', " . id_of($n, $t, "$key-1") . ")"), 't',
		"$t: $key-1 acked while $gid is prepared");
	is(recv_labels($n, $t), '', "$t: with $gid prepared, nothing receivable");
}

# receive from each topic until it has returned what is expected (in
# order, acking as it goes) or $BOUND seconds have passed; returns
# topic => labels received
sub drain
{
	my ($n, %want) = @_;
	my %got = map { $_ => [] } keys %want;
	my $deadline = time() + $BOUND;
	while (time() < $deadline)
	{
		my $left = 0;
		for my $t (sort keys %want)
		{
			next if @{ $got{$t} } >= @{ $want{$t} };
			$left++;
			my $r = $n->safe_psql('postgres',
				"SELECT coalesce(string_agg((body->>'m') || '/' || attempt, ',' ORDER BY id), '') "
				  . "FROM (SELECT m.*, courier.ack('$t', 'o', m.id) FROM courier.receive('$t', 'o', 10, '1 minute') m) x");
			push @{ $got{$t} }, split /,/, $r;
		}
		last unless $left;
		sleep(0.5);
	}
	return map { $_ => join(',', @{ $got{$_} }) } keys %got;
}

# --- before the crash ---------------------------------------------------
prepared_finish($node, 'a', ['a1'], 'pa');
prepared_finish($node, 'w', ['w1'], 'pw');
prepared_finish($node, 'm', [map { "m$_" } 1 .. 5], 'pm');
prepared_finish($node, 'u', ['u1'], 'pu');
prepared_finish($node, 's', ['s1'], 'ps', queued_first => 1);
prepared_finish($node, 'b', ['b1'], 'pb');
prepared_finish($node, 'r', ['r1'], 'pr', vt => '3 seconds');
prepared_finish($node, 'n', ['n1'], 'pn', nack => 1);
prepared_queue($node, 'q', 'q1', 'pq');
sql("COMMIT PREPARED 'pb'");

$node->stop('immediate');
$node->start;

# every group but u is used before its transaction is finished: the first
# receive rebuilds the group's position, which asks for the scan for keys
# without a head; the second runs that scan
for my $t (qw(a w m s r n q))
{
	is(recv_labels($node, $t) . recv_labels($node, $t), '',
		"$t: after the crash, still nothing receivable while prepared");
}

my $waiter = $node->background_psql('postgres', on_error_stop => 0);
$waiter->query_until(qr/started/,
	"\\echo started\n"
	  . "SELECT 'got ' || coalesce(string_agg((body->>'m') || '/' || attempt, ','), 'nothing') "
	  . "FROM courier.receive('w', 'o', 10, '1 minute', wait => '$BOUND seconds');\n"
	  . "\\echo done\n");
ok($node->poll_query_until('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%receive(''w''%' "
		  . "AND state = 'active' AND wait_event_type = 'Extension'", '1'),
	'w: a receive is waiting');

sql("COMMIT PREPARED '$_'") for qw(pa pw pm pu ps pn pq);
sql("ROLLBACK PREPARED 'pr'");

like($waiter->query_until(qr/done/, ""), qr/got w1-2\/1/,
	'w: the waiting receive gets the next message after COMMIT PREPARED');
$waiter->quit;

my %got = drain($node,
	a => ['a1-2/1'],
	m => [map { "m$_-2/1" } 1 .. 5],
	u => ['u1-2/1'],
	s => ['s1-2/1'],
	b => ['b1-2/1'],
	r => ['r1-1/2', 'r1-2/1'],
	n => ['n1-1/2', 'n1-2/1'],
	q => ['q1-2/1']);
# a, m, q (and w above, k and standby below) failed before the scan ran
# again after the prepared transactions (see the top of this file)
is($got{a}, 'a1-2/1', 'a: COMMIT PREPARED after the crash: the next message is delivered');
is($got{m}, join(',', map { "m$_-2/1" } 1 .. 5), 'm: several keys: every next message is delivered');
is($got{u}, 'u1-2/1', 'u: group untouched until COMMIT PREPARED: the next message is delivered');
is($got{s}, 's1-2/1', 's: promoted by the prepared transaction itself: delivered');
is($got{b}, 'b1-2/1', 'b: COMMIT PREPARED before the crash: delivered');
is($got{r}, 'r1-1/2,r1-2/1', 'r: ROLLBACK PREPARED: the head again (attempt 2), then the next message');
is($got{n}, 'n1-1/2,n1-2/1', 'n: nack committed after the crash: the head again (attempt 2), then the next');
is($got{q}, 'q1-2/1', 'q: queued by a prepared receive, committed after the crash: delivered');

# --- the worker -----------------------------------------------------------
prepared_finish($node, 'k', ['k1'], 'pk');
$node->stop('immediate');
$node->append_conf('postgresql.conf', "courier.worker = on\n");
$node->start;
# a receive rebuilds the position (and asks for the scan); the worker's
# rounds run the scan while pk is still prepared
is(recv_labels($node, 'k'), '', 'k: after the crash, nothing receivable while prepared');
my $t_k = sql("SELECT clock_timestamp()");
ok($node->poll_query_until('postgres',
		"SELECT last_started > '$t_k' AND last_finished > last_started "
		  . "FROM courier._maintenance_status()"),
	'k: the worker maintained the database after that');
sql("COMMIT PREPARED 'pk'");
{
	local $PostgreSQL::Test::Utils::timeout_default = $BOUND;
	ok($node->poll_query_until('postgres',
			"SELECT coalesce(string_agg(body->>'m', ','), '') FROM courier.peek('k', 'o', 10)", 'k1-2'),
		'k: the worker makes the next message receivable (peek, no receive)');
}
%got = drain($node, k => ['k1-2/1']);
is($got{k}, 'k1-2/1', 'k: then a receive gets it');

# --- a promoted standby ---------------------------------------------------
$node->append_conf('postgresql.conf', "courier.worker = off\n");
$node->reload;
$node->backup('b1');
my $standby = PostgreSQL::Test::Cluster->new('crashprep_standby');
$standby->init_from_backup($node, 'b1', has_streaming => 1);
$standby->start;
prepared_finish($node, 'p', ['p1'], 'pp');
$node->wait_for_catchup($standby);
$node->stop('immediate');
$standby->promote;
is(recv_labels($standby, 'p') . recv_labels($standby, 'p'), '', 'standby: promoted, nothing receivable while prepared');
$standby->safe_psql('postgres', "COMMIT PREPARED 'pp'");
courier_use($standby);
%got = drain($standby, p => ['p1-2/1']);
is($got{p}, 'p1-2/1', 'standby: COMMIT PREPARED after the promotion: the next message is delivered');

my $log = slurp_file($node->logfile) . slurp_file($standby->logfile);
unlike($log, qr/terminated by signal|XX000/, 'no server process crashed, no XX000');
done_testing();
