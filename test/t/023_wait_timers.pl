# Issue 7 section 4: waiting receives must not sleep past something that
# became receivable.
#  (a) A lease taken inside a transaction that commits after a waiter went
#      to sleep: the waiter computed its timer without that lease, so 0.1.0
#      noticed the expiry only at the end of its wait.  Here it must get the
#      expired message within a few seconds of the expiry, well before its
#      20 s wait ends.  (The same for a lease shortened by set_visibility and
#      for a delayed message, whose transactions also commit while the waiter
#      sleeps.)
#  (b) Ordered group: a long poll's own uncommitted queued row must not hide
#      the next message of a key whose head was just acked -- another
#      consumer or the long poll itself gets it before the long poll's wait
#      ends.
#  (c) Due-time floors (wait.c): a waiting receive sleeps to its group's
#      shared floor instead of scanning the claims when the floor is ahead of
#      it.  A lease committed when nobody sleeps must lower the floor for the
#      next waiter; one committed with COMMIT PREPARED (no callback of ours
#      runs) must invalidate it; and a transaction's own uncommitted lease is
#      in no floor.
#  (d) ... and a waiting receive whose scan may not show the committed state
#      (its own uncommitted ack, a REPEATABLE READ or SERIALIZABLE snapshot)
#      leaves the floor alone.
#  (e) An expired claim held by another transaction (an ack held open).
#  (f) ... and a lease row (a redelivery) held by an ack, nack or
#      set_visibility across its end and rolled back; (g) a claim released by
#      the rollback of a savepoint when the transaction already had a wake-up
#      entry for the topic.
# The worker is off: nothing but the wake-up machinery can help.
# (COMMIT PREPARED wake-ups: 009_commit_prepared.pl.)
use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use CourierTest;
use Test::More;
use Time::HiRes qw(sleep time);
use List::Util ();

my $node = courier_node('timers', conf => qq{
courier.worker = off
max_prepared_transactions = 5
log_line_prefix = '%m [%p] %e '
}, extension => 0);
# the last line of a script's output
sub last_line { my @l = split /\n/, sql($_[0]); return $l[-1]; }
sql("CREATE EXTENSION pg_courier CASCADE");

sub waiting
{
	my ($topic) = @_;
	return "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%courier.receive(''$topic''%wait%' "
	  . "AND state = 'active' AND wait_event_type = 'Extension'";
}

# Starts a waiting receive; its output line is "got <ids> at <epoch>".
sub start_waiter
{
	my ($topic, $group, $wait) = @_;
	my $w = $node->background_psql('postgres', on_error_stop => 0);
	$w->query_until(qr/started/,
		"\\echo started\n"
		  . "SELECT 'got ' || coalesce(string_agg(id || '/' || attempt, ',' ORDER BY id), 'nothing') "
		  . "|| ' at ' || extract(epoch FROM clock_timestamp()) "
		  . "FROM courier.receive('$topic', '$group', 10, '1 hour', wait => '$wait');\n"
		  . "\\echo done\n");
	# The receive may be over before the first poll sees it asleep, on a
	# loaded machine where psql takes a second to start: a 1 s wait that
	# finds nothing, or a 20 s wait for a lease that had a second left (CI
	# once: the poll then waited 600 s for a sleep that had ended).  Having
	# returned counts too; each caller checks what it returned, and when.
	my $seen = 0;
	my $until = time() + $PostgreSQL::Test::Utils::timeout_default;
	while (time() < $until)
	{
		$seen = 1, last if sql(waiting($topic)) eq '1';
		$w->{run}->pump_nb;
		$seen = 1, last if $w->{stdout} =~ /done/;
		sleep(0.1);
	}
	ok($seen, "$topic: the receive is waiting, or has returned");
	return $w;
}

sub finish_waiter
{
	my ($w) = @_;
	my $out = $w->query_until(qr/done/, "");
	$w->quit;
	my ($got, $at) = $out =~ /got (\S+) at ([0-9.]+)/;
	return ($got // 'error: ' . $out, $at // 0);
}

# ---- (a) a lease committed after the waiter went to sleep -----------------
sql("SELECT courier.create_topic('tm')");
sql("SELECT courier.send('tm', '{\"n\": 1}')");
my $holder = $node->background_psql('postgres');
$holder->query_safe("BEGIN");
my $lease_until = $holder->query_safe(
	"SELECT extract(epoch FROM lease_until) FROM courier.receive('tm', 'default', 1, '3 seconds')");
ok($lease_until > 0, 'a receiver leases the message for 3 seconds, in a transaction still open');
my $w = start_waiter('tm', 'default', '20 seconds');
my $committed = $holder->query_safe("COMMIT; SELECT extract(epoch FROM clock_timestamp())");
$holder->quit;
cmp_ok($committed, '<', $lease_until, 'the lease was committed while the waiter slept, before it expired');
my ($got, $at) = finish_waiter($w);
is($got, '1/2', 'the waiter gets the message once the lease expires (attempt 2)');
cmp_ok($at - $lease_until, '<', 3,
	sprintf('... %.1f s after the expiry, well before its 20 s wait ends', $at - $lease_until));

# ---- a lease shortened by set_visibility while the waiter sleeps ----------
sql("SELECT courier.send('tm', '{\"n\": 2}')");
is(sql("SELECT id FROM courier.receive('tm', 'default', 1, '1 hour')"), '2', 'message 2 leased for an hour');
$w = start_waiter('tm', 'default', '20 seconds');
my $short = last_line("SELECT courier.set_visibility('tm', 'default', 2, '2 seconds'); "
	  . "SELECT extract(epoch FROM clock_timestamp() + interval '2 seconds')");
($got, $at) = finish_waiter($w);
is($got, '2/2', 'set_visibility: the waiter gets the message when the shortened lease ends');
cmp_ok($at - $short, '<', 3, sprintf('... %.1f s after the new end of the lease', $at - $short));

# ---- a delayed message committed while the waiter sleeps ------------------
$w = start_waiter('tm', 'default', '20 seconds');
my $due = last_line("SELECT courier.send('tm', '{\"n\": 3}', delay => '2 seconds'); "
	  . "SELECT extract(epoch FROM clock_timestamp() + interval '2 seconds')");
($got, $at) = finish_waiter($w);
is($got, '3/1', 'delay: the waiter gets the delayed message when it comes due');
cmp_ok($at - $due, '<', 3, sprintf('... %.1f s after it came due', $at - $due));
cmp_ok($at - $due, '>', -0.5, '... and not before');

# ---- (b) ordered group: the long poll's own queued row --------------------
sql("SELECT courier.create_topic('ord')");
sql("SELECT courier.create_group('ord', 'og', ordered => true)");
sql("SELECT courier.send('ord', '{\"n\": 1}', keys => ARRAY['K'])");
my $c1 = $node->background_psql('postgres');
is($c1->query_safe("SELECT id || '/' || attempt FROM courier.receive('ord', 'og', 1, '1 hour')"), '1/1',
	'the head of key K is in flight');
sql("SELECT courier.send('ord', '{\"n\": 2}', keys => ARRAY['K'])");
# the long poll walks message 2, queues it behind message 1 in its own
# (uncommitted) transaction, finds nothing receivable and sleeps
my $lp_start = time();
my $lp = start_waiter('ord', 'og', '20 seconds');
is(sql("SELECT state FROM courier.find('ord', id => 2) WHERE grp = 'og'"), 'pending',
	'message 2 is pending behind the head');
my $acked_at = time();
is($c1->query_safe("SELECT courier.ack('ord', 'og', 1)"), 't', 'the head is acked');
$c1->quit;

# within 10 s (half the long poll's wait), message 2 reaches the long poll
# or another consumer
my ($who, $when) = ('nobody', 0);
while (time() - $acked_at < 10)
{
	$lp->{run}->pump_nb();
	if ($lp->{stdout} =~ /done/)
	{
		my ($lgot) = $lp->{stdout} =~ /got (\S+) at/;
		if (defined $lgot && $lgot ne 'nothing')
		{
			($who, $when) = ("long poll: $lgot", time() - $acked_at);
			last;
		}
	}
	my $other = sql("SELECT string_agg(id || '/' || attempt, ',') FROM courier.receive('ord', 'og', 10, '1 hour')");
	if ($other ne '')
	{
		($who, $when) = ("other consumer: $other", time() - $acked_at);
		last;
	}
	sleep(0.2);
}
ok($who =~ m{: 2/1$} && $when < 10,
	sprintf("message 2 reached a receiver within 10 s of the ack, before the long poll's 20 s wait ended (%s%s)",
		$who, $who eq 'nobody' ? '' : sprintf(', after %.1f s', $when)));
my ($lgot, $lat) = finish_waiter($lp);
note sprintf("the long poll returned %s, %.1f s after the ack", $lgot, $lat - $acked_at);
my $deliveries = ($who =~ /^other consumer/ ? 1 : 0) + ($lgot =~ m{^2/} ? 1 : 0);
is($deliveries, 1, 'message 2 was delivered once');
is(sql("SELECT string_agg(state, ',') FROM courier.find('ord', id => 2) WHERE grp = 'og'"), 'in_flight',
	'message 2 is in flight, once');

# ---- (c) due-time floors ----------------------------------------------------
sql("SELECT courier.create_topic('fl')");
# a first waiter finds nothing due and leaves the floor at "never"
$w = start_waiter('fl', 'default', '1 second');
($got) = finish_waiter($w);
is($got, 'nothing', 'floors: a first waiter finds nothing and stores the floor "never"');

# a lease committed while nobody sleeps lowers it
sql("SELECT courier.send('fl', '{\"n\": 1}')");
$lease_until = sql("SELECT extract(epoch FROM lease_until) FROM courier.receive('fl', 'default', 1, '3 seconds')");
$w = start_waiter('fl', 'default', '20 seconds');
($got, $at) = finish_waiter($w);
is($got, '1/2', 'floors: the next waiter gets the message of a lease committed before it slept');
cmp_ok($at - $lease_until, '<', 3,
	sprintf('... %.1f s after the expiry, well before its 20 s wait ends', $at - $lease_until));
sql("SELECT courier.ack('fl', 'default', 1)");

# COMMIT PREPARED runs no callback of ours: it must invalidate every floor
$w = start_waiter('fl', 'default', '1 second');
($got) = finish_waiter($w);
is($got, 'nothing', 'floors: the floor is "never" again');
sql("SELECT courier.send('fl', '{\"n\": 2}')");
$lease_until = last_line("BEGIN; SELECT extract(epoch FROM lease_until) FROM courier.receive('fl', 'default', 1, '3 seconds'); "
	  . "PREPARE TRANSACTION 'fl'");
sql("COMMIT PREPARED 'fl'");
$w = start_waiter('fl', 'default', '20 seconds');
($got, $at) = finish_waiter($w);
is($got, '2/2', 'floors: after COMMIT PREPARED of a lease, the next waiter gets the message when it expires');
cmp_ok($at - $lease_until, '<', 3,
	sprintf('... %.1f s after the expiry, well before its 20 s wait ends', $at - $lease_until));
sql("SELECT courier.ack('fl', 'default', 2)");

# a transaction's own lease: its own waiting receive gets the message back
$w = start_waiter('fl', 'default', '1 second');
($got) = finish_waiter($w);
is($got, 'nothing', 'floors: the floor is "never" once more');
sql("SELECT courier.send('fl', '{\"n\": 3}')");
my $out = sql("BEGIN; SELECT id FROM courier.receive('fl', 'default', 1, '2 seconds'); "
	  . "SELECT string_agg(id || '/' || attempt, ',') || ' after ' || round(extract(epoch FROM clock_timestamp() - now()))::int "
	  . "FROM courier.receive('fl', 'default', 1, '1 hour', wait => '20 seconds'); COMMIT");
my ($own, $after) = $out =~ m{(\S+) after (\d+)};
is($own, '3/2', "floors: a waiting receive gets its own transaction's expired lease back");
cmp_ok($after, '<', 10, "... within its lease's 2 s (${after} s after the transaction began), not at the wait's end");

# ---- (d) floors computed from a view that is not the committed state -------
# A waiting receive whose scan may not see the committed state must not store
# what it found as the group's floor: the next waiter would sleep past a
# lease that expires (0.2 review: to the end of its 20 s wait).
#  - its transaction acked the message itself and rolls back: the ack hid
#    the lease from its scan, and the rollback lowers no floor;
#  - REPEATABLE READ / SERIALIZABLE: its snapshot predates the commit of the
#    lease, which found no floor to lower.
sql("SELECT courier.create_topic('fa')");
sql("SELECT courier.send('fa', '{\"n\": 1}')");
$lease_until = sql("SELECT extract(epoch FROM lease_until) FROM courier.receive('fa', 'default', 1, '3 seconds')");
sql("BEGIN; SELECT courier.ack('fa', 'default', 1); "
	  . "SELECT count(*) FROM courier.receive('fa', 'default', 1, '1 hour', wait => '0.5 seconds'); ROLLBACK");
$w = start_waiter('fa', 'default', '20 seconds');
($got, $at) = finish_waiter($w);
is($got, '1/2', 'floors: after a waiting receive behind its own ack rolled back, the next waiter gets the message');
cmp_ok($at - $lease_until, '<', 3,
	sprintf('... %.1f s after the expiry, well before its 20 s wait ends', $at - $lease_until));

for my $iso ('REPEATABLE READ', 'SERIALIZABLE')
{
	my $t = $iso eq 'SERIALIZABLE' ? 'fs' : 'fr';
	sql("SELECT courier.create_topic('$t')");
	sql("SELECT courier.send('$t', '{\"n\": 1}')");
	my $x = $node->background_psql('postgres');
	$x->query_safe("BEGIN ISOLATION LEVEL $iso");
	$x->query_safe("SELECT count(*) FROM courier.topic_meta");	# its snapshot
	$lease_until = sql("SELECT extract(epoch FROM lease_until) FROM courier.receive('$t', 'default', 1, '3 seconds')");
	is($x->query_safe("SELECT count(*) FROM courier.receive('$t', 'default', 1, '1 hour', wait => '0.5 seconds')"),
		'0', "floors: a $iso waiting receive finds the message leased");
	$x->query_safe("COMMIT");
	$x->quit;
	$w = start_waiter($t, 'default', '20 seconds');
	($got, $at) = finish_waiter($w);
	is($got, '1/2', "floors: after a $iso waiting receive, the next waiter gets the message when its lease expires");
	cmp_ok($at - $lease_until, '<', 3,
		sprintf('... %.1f s after the expiry, well before its 20 s wait ends', $at - $lease_until));
}

# ---- (e) an expired claim held by another transaction ----------------------
# A receiver's expiry scan skips a claim another transaction holds (SKIP
# LOCKED), and its next due time (after now) no longer counts the claim: the
# holder must wake the topic when it ends (review: an ack held open across the
# lease's end left the waiter asleep to the end of its 20 s wait).
sql("SELECT courier.create_topic('ex')");
sql("SELECT courier.send('ex', '{\"n\": 1}'); SELECT courier.send('ex', '{\"n\": 2}')");
$lease_until = sql("SELECT max(extract(epoch FROM lease_until)) FROM courier.receive('ex', 'default', 2, '2 seconds')");
my $acker = $node->background_psql('postgres');
$acker->query_safe("BEGIN");
is($acker->query_safe("SELECT courier.ack('ex', 'default', 1)"), 't', 'expired claim: message 1 acked in a transaction left open');
$w = start_waiter('ex', 'default', '20 seconds');
sleep(List::Util::max(0, $lease_until - time()) + 1.5);
my $released = $acker->query_safe("COMMIT; SELECT extract(epoch FROM clock_timestamp())");
$acker->quit;
($got, $at) = finish_waiter($w);
is($got, '2/2', 'expired claim: the waiter gets message 2 again once the ack that held its claim commits');
cmp_ok($at - $released, '<', 3,
	sprintf('... %.1f s after that commit, well before its 20 s wait ends', $at - $released));

# the same when the holder rolls back: both messages come back
sql("SELECT courier.send('ex', '{\"n\": 3}'); SELECT courier.send('ex', '{\"n\": 4}')");
$lease_until = sql("SELECT max(extract(epoch FROM lease_until)) FROM courier.receive('ex', 'default', 2, '2 seconds')");
$acker = $node->background_psql('postgres');
$acker->query_safe("BEGIN");
$acker->query_safe("SELECT courier.ack('ex', 'default', 3)");
$w = start_waiter('ex', 'default', '20 seconds');
sleep(List::Util::max(0, $lease_until - time()) + 1.5);
$released = $acker->query_safe("ROLLBACK; SELECT extract(epoch FROM clock_timestamp())");
$acker->quit;
($got, $at) = finish_waiter($w);
is($got, '3/2,4/2', 'expired claim, holder rolled back: the waiter gets both messages again');
cmp_ok($at - $released, '<', 3, sprintf('... %.1f s after the rollback', $at - $released));

# ---- (f) a lease row held by another transaction -------------------------
# The same for a redelivery, whose lease is a row of courier.lease: the due
# scan skips the row while an ack, nack or set_visibility holds it, and its
# visible_at is then behind the waiter's next due time.  Held open across the
# lease's end and rolled back, the row is due again: the holder must wake the
# topic (review 28: the waiter slept to the end of its 20 s wait).
for my $op ('ack', 'nack', 'set_visibility')
{
	my $t = "lr_$op";
	my $call = {
		ack => "courier.ack('$t', 'default', 1::bigint)",
		nack => "courier.nack('$t', 'default', 1::bigint, delay => '1 hour')",
		set_visibility => "courier.set_visibility('$t', 'default', 1::bigint, '1 hour')" }->{$op};
	sql("SELECT courier.create_topic('$t')");
	sql("SELECT courier.send('$t', '{\"n\": 1}')");
	# the first delivery's lease ends; the second is a row of courier.lease
	sql("SELECT count(*) FROM courier.receive('$t', 'default', 1, '1 second')");
	sleep(1.2);
	$lease_until = sql("SELECT extract(epoch FROM lease_until) FROM courier.receive('$t', 'default', 1, '2 seconds') WHERE attempt = 2");
	ok($lease_until > 0, "lease row ($op): message 1 delivered again");
	my $h = $node->background_psql('postgres');
	$h->query_safe("BEGIN");
	$h->query_safe("SELECT $call");
	$w = start_waiter($t, 'default', '20 seconds');
	sleep(List::Util::max(0, $lease_until - time()) + 1.5);
	$released = $h->query_safe("ROLLBACK; SELECT extract(epoch FROM clock_timestamp())");
	$h->quit;
	($got, $at) = finish_waiter($w);
	is($got, '1/3', "lease row held by $op across its end, rolled back: the waiter gets it again");
	cmp_ok($at - $released, '<', 3, sprintf('... %.1f s after the rollback', $at - $released));
}

# ---- (g) ... released by the rollback of a savepoint ------------------------
# One wake-up entry per topic: an ack at the top level (a claim whose lease
# has not ended) and one under a savepoint (a claim whose lease ended) share
# it.  Rolling the savepoint back frees the expired claim: wake then, not only
# when the transaction ends (here: after the waiter's wait).
sql("SELECT courier.create_topic('sv')");
sql("SELECT courier.send('sv', '{\"n\": 1}'); SELECT courier.send('sv', '{\"n\": 2}')");
sql("SELECT count(*) FROM courier.receive('sv', 'default', 1, '1 hour')");
$lease_until = sql("SELECT extract(epoch FROM lease_until) FROM courier.receive('sv', 'default', 1, '2 seconds')");
my $sp = $node->background_psql('postgres');
$sp->query_safe("BEGIN");
$sp->query_safe("SELECT courier.ack('sv', 'default', 1::bigint)");
$sp->query_safe("SAVEPOINT s");
$sp->query_safe("SELECT courier.ack('sv', 'default', 2::bigint)");
$w = start_waiter('sv', 'default', '15 seconds');
sleep(List::Util::max(0, $lease_until - time()) + 1.5);
$released = $sp->query_safe("ROLLBACK TO SAVEPOINT s; SELECT extract(epoch FROM clock_timestamp())");
($got, $at) = finish_waiter($w);
$sp->query_safe("COMMIT");
$sp->quit;
is($got, '2/2', 'savepoint rolled back: the waiter gets the message of the expired claim again');
cmp_ok($at - $released, '<', 3, sprintf('... %.1f s after the savepoint rolled back', $at - $released));

unlike(slurp_file($node->logfile), qr/\bXX000\b/, 'no XX000 in the server log');
$node->stop;
done_testing();
