#!/usr/bin/env bash
# The examples suite: examples/ run against a private cluster, briefly and
# bounded, with their results checked.  Runs as the server user with the
# PostgreSQL bin directory first in PATH (test/run.sh does both).
#
#   test/examples/run.sh WORKDIR
#
# outbox.py places ORDERS orders (every fifth fails its first attempt in the
# workers) and one that rolls back; the Python and the Node.js worker (npm
# "pg", installed in WORKDIR/node) ship every order once, retry the failed
# ones (attempt 2), and stop on SIGTERM; oncall.sql shows a dead letter with
# its reason, redrives it and replays a group with seek.  Ends with
# "examples tests: N passed, N failed".
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
EX=$(cd "$HERE/../../examples" && pwd)
WORK=${1:?usage: run.sh WORKDIR}
ORDERS=${EXAMPLE_ORDERS:-40}
PY=/usr/bin/python3
passed=0
failed=0
ok() { echo "ok - $*"; passed=$((passed + 1)); }
notok() { echo "not ok - $*"; failed=$((failed + 1)); }
check() { local what=$1; shift; if "$@"; then ok "$what"; else notok "$what"; fi; }

mkdir -p "$WORK"
C="$WORK/cluster"
rm -rf "$C"
mkdir -p "$C"
initdb -D "$C/data" -A trust -U postgres >"$C/initdb.log" 2>&1 || { cat "$C/initdb.log"; echo "examples tests: 0 passed, 1 failed"; exit 1; }
cat >>"$C/data/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$C'
port = 5432
shared_preload_libraries = 'pg_courier'
log_line_prefix = '%m [%p] %e '
fsync = off
CONF
pg_ctl -D "$C/data" -l "$C/server.log" -w start >/dev/null || { tail -20 "$C/server.log"; echo "examples tests: 0 passed, 1 failed"; exit 1; }
trap 'pg_ctl -D "$C/data" -m fast -w stop >/dev/null 2>&1' EXIT
export PGHOST=$C PGPORT=5432 PGUSER=postgres PGDATABASE=postgres
export COURIER_DSN="host=$C port=5432 user=postgres dbname=postgres" COURIER_WAIT=1
q() { psql -X -qAt -v ON_ERROR_STOP=1 -c "$1"; }

echo "== example schema.sql"
psql -X -q -v ON_ERROR_STOP=1 -f "$EX/schema.sql" >"$WORK/schema.log" 2>&1
check "examples/schema.sql sets up the topic, the groups and the tables" test $? -eq 0

echo "== example node: npm install pg"
rm -rf "$WORK/node"
mkdir -p "$WORK/node"
cp "$EX/node/package.json" "$EX/node/worker.js" "$WORK/node/"
(cd "$WORK/node" && HOME=$WORK timeout 300 npm install --no-audit --no-fund --loglevel=error) >"$WORK/npm.log" 2>&1
rc=$?
tail -5 "$WORK/npm.log"
check "npm installs pg for the Node.js worker" test "$rc" -eq 0

echo "== example python/worker.py and node/worker.js, started before the orders"
"$PY" "$EX/python/worker.py" >"$WORK/python-worker.out" 2>"$WORK/python-worker.err" &
pyw=$!
(cd "$WORK/node" && exec env -u COURIER_DSN node worker.js) >"$WORK/node-worker.out" 2>"$WORK/node-worker.err" &
nodew=$!

echo "== example python/outbox.py $ORDERS"
ids=$("$PY" "$EX/python/outbox.py" "$ORDERS" 2>"$WORK/outbox.err")
rc=$?
cat "$WORK/outbox.err"
check "outbox.py places $ORDERS orders, each with its message in the same transaction" \
	test "$rc" -eq 0 -a "$(wc -w <<<"$ids")" -eq "$ORDERS"
check "the rolled-back order left neither a row nor a message" \
	test "$(q "SELECT count(*) FROM orders")" = "$ORDERS" -a \
	"$(q "SELECT messages FROM courier.topics WHERE topic = 'orders'")" = "$ORDERS"
check "every order has exactly one message (find by its key)" \
	test "$(q "SELECT count(*) FROM orders o, courier.find('orders', key => 'order-' || o.id) f WHERE f.grp = 'shipping'")" = "$ORDERS"

# wait (bounded) until both workers shipped everything
want=$((ORDERS * 2))
for _ in $(seq 1 120); do
	[ "$(q "SELECT count(*) FROM shipments")" -ge "$want" ] && break
	sleep 0.5
done
fails=$(q "SELECT count(*) FROM orders WHERE id % 5 = (SELECT min(id) FROM orders) % 5")
for w in python node; do
	check "$w worker shipped every order exactly once" \
		test "$(q "SELECT count(*) FROM orders o JOIN shipments s ON s.order_id = o.id AND s.worker = '$w'")" = "$ORDERS"
	check "$w worker: the $fails orders that failed once were nacked and shipped on attempt 2" \
		test "$(q "SELECT count(*) FROM shipments WHERE worker = '$w' AND attempt = 2")" = "$fails"
done
check "nothing lost or left: both groups have no backlog, nothing in flight, retrying or dead" \
	test "$(q "SELECT count(*) FROM courier.groups WHERE topic = 'orders' AND grp IN ('shipping', 'shipping_node')
		AND backlog = 0 AND in_flight = 0 AND retrying = 0 AND dead_letters = 0")" = 2

# SIGTERM: both stop by themselves within a few seconds, exit 0, and say what they did
kill -TERM "$pyw" "$nodew"
for _ in $(seq 1 20); do
	kill -0 "$pyw" 2>/dev/null || kill -0 "$nodew" 2>/dev/null || break
	sleep 0.5
done
for w in python node; do
	if [ "$w" = python ]; then pid=$pyw; else pid=$nodew; fi
	if kill -0 "$pid" 2>/dev/null; then
		notok "$w worker stops on SIGTERM within 10 s"
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		continue
	fi
	wait "$pid"
	rc=$?
	echo "  $w worker: $(tail -1 "$WORK/$w-worker.out")"
	sed 's/^/  stderr: /' "$WORK/$w-worker.err" | head -5
	check "$w worker stops on SIGTERM, exit status 0 ($rc)" test "$rc" -eq 0
	check "$w worker reports $ORDERS acked and $fails nacked" \
		grep -qx "{\"worker\": *\"$w\", *\"acked\": *$ORDERS, *\"nacked\": *$fails, *\"lease_lost\": *0}" "$WORK/$w-worker.out"
done
check "no worker session left" test "$(q "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'courier-worker-%'")" = 0

echo "== example oncall.sql"
# a group whose consumer gives up: one dead letter with a reason
q "SELECT courier.create_group('orders', 'audit', max_attempts => 1)" >/dev/null
q "SELECT courier.nack('orders', 'audit', id, reason => 'audit service said 503') FROM courier.receive('orders', 'audit', 1)" >/dev/null
psql -X -v topic=orders -v grp=audit -f "$EX/oncall.sql" >"$WORK/oncall-look.out" 2>&1
rc=$?
check "oncall.sql (looking only) runs" test "$rc" -eq 0
check "oncall.sql shows the dead letter and why" grep -q 'audit service said 503' "$WORK/oncall-look.out"
check "oncall.sql shows the group's backlog" grep -qE '^ orders +\| audit +\| +'"$((ORDERS - 1))"' ' "$WORK/oncall-look.out"
check "looking changed nothing" test "$(q "SELECT dead_letters FROM courier.groups WHERE grp = 'audit'")" = 1
psql -X -v topic=orders -v grp=audit -v key="order-$(q "SELECT min(id) FROM orders")" -v redrive=1 \
	-f "$EX/oncall.sql" >"$WORK/oncall-redrive.out" 2>&1
check "oncall.sql -v redrive=1 redrives the dead letter" \
	test $? -eq 0 -a "$(q "SELECT dead_letters FROM courier.groups WHERE grp = 'audit'")" = 0 -a \
	"$(q "SELECT count(*) FROM courier.receive('orders', 'audit', 1, '0') WHERE attempt = 1")" = 1
check "oncall.sql -v key=... tells the first order's story in every group" \
	grep -qE '^ +[0-9]+ \| shipping_node +\| acked' "$WORK/oncall-redrive.out"
q "SELECT count(*) FROM courier.receive('orders', 'shipping', 100)" >/dev/null	# nothing: all acked
psql -X -v topic=orders -v grp=shipping -v since=-infinity -f "$EX/oncall.sql" >"$WORK/oncall-seek.out" 2>&1
check "oncall.sql -v since=-infinity replays every retained order to the group" \
	test $? -eq 0 -a "$(q "SELECT backlog FROM courier.groups WHERE grp = 'shipping'")" = "$ORDERS"

echo "== example worker whose lease runs out mid-work"
COURIER_EXAMPLES="$EX/python" $PY "$HERE/stale_ack.py" >"$WORK/stale-ack.out" 2>&1
rc=$?
sed 's/^/  /' "$WORK/stale-ack.out" | tail -3
check "the Python worker rolls back its work when its ack finds the delivery taken over (order shipped once)" test "$rc" -eq 0

if grep -qE '^\S+ \S+ \S+ \[[0-9]+\] XX[0-9]{3} |PANIC:|TRAP:|terminated by signal' "$C/server.log"; then
	grep -E '^\S+ \S+ \S+ \[[0-9]+\] XX[0-9]{3} |PANIC:|TRAP:|terminated by signal' "$C/server.log" | head -5
	notok "the server log is clean"
else
	ok "the server log is clean (no internal error, no crash)"
fi
echo "examples tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
