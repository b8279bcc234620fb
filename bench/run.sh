#!/usr/bin/env bash
# pg_courier benchmarks: ratios against a bare-table baseline, measured in
# the same run on a private cluster.  Never part of "make test".
#
#   bash bench/run.sh [core]          send / send_batch / receive+ack (issue #2)
#   bash bench/run.sh latency         send -> receive latency at 1000 msg/s with waiting receives
#   bash bench/run.sh filter          draining 10k matches of a 1% filter over a 1M backlog
#   bash bench/run.sh all             all of the above
#
# Settings: a fresh cluster with PostgreSQL defaults (fsync and
# synchronous_commit on) except shared_buffers = 256MB and max_connections
# = 100; pgbench in prepared mode; DURATION seconds per measurement
# (default 15); ROUNDS rounds, each measuring the baseline and pg_courier
# back to back (default 2); the best round of each is reported.
set -eu
. "$(dirname "$0")/../scripts/common.sh"
cd "$ROOT"

DURATION=${DURATION:-15}
ROUNDS=${ROUNDS:-2}
PORT=${BENCH_PORT:-5477}
DIR=${BENCH_DIR:-/tmp/pg_courier-bench}
WHAT=${1:-core}
PGDATA="$DIR/data"
OUT="$ROOT/bench/results"
mkdir -p "$OUT"

ensure_build_deps
build_and_install

if [ -f "$PGDATA/postmaster.pid" ]; then
	run_as_pguser pg_ctl -D "$PGDATA" -m immediate stop >/dev/null 2>&1 || true
fi
make_pguser_dir "$DIR"
cp -r "$ROOT/bench" "$DIR/bench"
if [ "$(id -u)" -eq 0 ]; then chown -R postgres: "$DIR"; fi
run_as_pguser initdb -D "$PGDATA" -A trust -U postgres >/dev/null
cat >>"$PGDATA/postgresql.conf" <<CONF
port = $PORT
listen_addresses = ''
unix_socket_directories = '$DIR'
shared_preload_libraries = 'pg_courier'
shared_buffers = 256MB
max_connections = 100
CONF
run_as_pguser pg_ctl -D "$PGDATA" -l "$DIR/server.log" -w start >/dev/null
trap 'run_as_pguser pg_ctl -D "$PGDATA" -m fast stop >/dev/null 2>&1 || true' EXIT

PSQL=(psql -X -q -v ON_ERROR_STOP=1 -h "$DIR" -p "$PORT" -U postgres -d postgres)
sqlq() { run_as_pguser env PGOPTIONS='-c client_min_messages=warning' "${PSQL[@]}" -At -c "$1"; }
PGB=(pgbench -h "$DIR" -p "$PORT" -U postgres -n -M prepared)

# tps FILE CLIENTS [extra pgbench args]: transactions per second
tps() {
	local file=$1 clients=$2
	shift 2
	run_as_pguser "${PGB[@]}" -c "$clients" -j 2 "$@" -f "$DIR/bench/$file" postgres 2>&1 |
		sed -n 's/^tps = \([0-9.]*\) .*/\1/p'
}

reset_tables() {
	sqlq "DROP TABLE IF EXISTS bare; CREATE TABLE bare (id bigserial PRIMARY KEY, body jsonb NOT NULL);
	      CREATE EXTENSION IF NOT EXISTS pg_courier CASCADE;
	      SELECT courier.drop_topic(topic) FROM courier.topics WHERE topic = 'bench';
	      SELECT courier.create_topic('bench');" >/dev/null
	sqlq "VACUUM" >/dev/null
	sqlq "CHECKPOINT" >/dev/null
}

best() { printf '%s\n' "$@" | sort -g | tail -1; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

report=()
line() { report+=("$(printf '%-34s %12s %12s %8s' "$@")"); }
line "measurement" "baseline/s" "courier/s" "ratio"

# compare LABEL MSGS-PER-TX CLIENTS "PGBENCH-ARGS" BASE-SETUP BASE-SCRIPT COURIER-SETUP COURIER-SCRIPT
#   ROUNDS times: reset, set up and run the baseline, then the same for
#   pg_courier; report the best messages per second of each, and the ratio
compare() {
	local label=$1 per=$2 clients=$3 args=$4 r t
	local b=() c=()
	for r in $(seq "$ROUNDS"); do
		reset_tables; $5
		t=$(tps "$6" "$clients" $args); b+=("$(awk -v t="$t" -v p="$per" 'BEGIN{print t*p}')")
		reset_tables; $7
		t=$(tps "$8" "$clients" $args); c+=("$(awk -v t="$t" -v p="$per" 'BEGIN{print t*p}')")
	done
	B=$(best "${b[@]}"); C=$(best "${c[@]}")
	line "$label" "$B" "$C" "$(ratio "$C" "$B")"
}

nothing() { :; }
PAD="'pad', 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'"
# a 200k backlog in the bare table / in topic 'bench' (send_batch takes 100k at a time)
backlog_bare() {
	sqlq "INSERT INTO bare (body) SELECT jsonb_build_object('n', g, $PAD) FROM generate_series(1, 200000) g" >/dev/null
	sqlq "VACUUM ANALYZE bare" >/dev/null
	sqlq "CHECKPOINT" >/dev/null
}
backlog_topic() {
	local from
	for from in 1 100001; do
		sqlq "SELECT count(*) FROM courier.send_batch('bench', (SELECT array_agg(jsonb_build_object('n', g, $PAD))
		      FROM generate_series($from, $from + 99999) g))" >/dev/null
	done
	sqlq "CHECKPOINT" >/dev/null
}

if [ "$WHAT" = core ] || [ "$WHAT" = all ]; then
	compare "send, 1/tx, 8 clients (msg/s)" 1 8 "-T $DURATION" \
		nothing insert_one.sql nothing send_one.sql
	compare "send_batch 100, 4 clients (msg/s)" 100 4 "-T $DURATION" \
		nothing insert_batch.sql nothing send_batch.sql
	# receive + ack in batches of 100 (two transactions) against one
	# DELETE ... FOR UPDATE SKIP LOCKED of 100 rows; 4 consumers drain 200k
	compare "receive+ack 100, 4 consumers (msg/s)" 100 4 "-t 500" \
		backlog_bare delete_skip_locked.sql backlog_topic receive_ack.sql
fi

if [ "$WHAT" = latency ] || [ "$WHAT" = all ]; then
	# producers at a fixed 1000 msg/s; consumers wait (no polling) and
	# record, per message, now() - sent_at at the moment they got it
	reset_tables
	sqlq "DROP TABLE IF EXISTS lat; CREATE TABLE lat (ms float8);
	      SELECT courier.drop_topic(topic) FROM courier.topics WHERE topic = 'lat';
	      SELECT courier.create_topic('lat');" >/dev/null
	run_as_pguser "${PGB[@]}" -c 2 -T $((DURATION + 3)) -f "$DIR/bench/latency_consume.sql" postgres >"$DIR/lat_consume.out" 2>&1 &
	cpid=$!
	sleep 1
	run_as_pguser "${PGB[@]}" -c 2 -j 2 -R 1000 -T "$DURATION" -f "$DIR/bench/latency_send.sql" postgres >"$DIR/lat_send.out" 2>&1
	wait $cpid || true
	read -r n p50 p99 mx < <(sqlq "SELECT count(*), round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 2),
	                                round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 2),
	                                round(max(ms)::numeric, 2) FROM lat" | tr '|' ' ')
	report+=("$(printf 'latency at 1000 msg/s: %s messages, p50 %s ms, p99 %s ms, max %s ms' "$n" "$p50" "$p99" "$mx")")
fi

if [ "$WHAT" = filter ] || [ "$WHAT" = all ]; then
	# 1M messages, 1% of them match group 'needles'; both groups drain 10k
	# messages with receive(100) + ack: the filtered group has to walk the
	# whole 1M-message log once, the plain one only its first 10k
	reset_tables
	sqlq "SELECT courier.drop_topic(topic) FROM courier.topics WHERE topic = 'flt';
	      SELECT courier.create_topic('flt');
	      SELECT courier.create_group('flt', 'needles', filter => \$\$kind = 'needle'\$\$);
	      SELECT courier.create_group('flt', 'plain');" >/dev/null
	for b in $(seq 10000); do echo "SELECT count(*) FROM courier.send_batch('flt', (SELECT array_agg(jsonb_build_object('n', g)) FROM generate_series(1, 99) g), headers => '{\"kind\": \"hay\"}'); SELECT courier.send('flt', '{\"n\": 0}', headers => '{\"kind\": \"needle\"}');"; done > "$DIR/fill.sql"
	run_as_pguser "${PSQL[@]}" -f "$DIR/fill.sql" >/dev/null
	sqlq "CHECKPOINT" >/dev/null
	sqlq "CREATE OR REPLACE FUNCTION bench_drain(grp text, want int, OUT got int, OUT calls int, OUT secs float8)
	      LANGUAGE plpgsql AS \$d\$
	      DECLARE t0 timestamptz := clock_timestamp(); ids bigint[];
	      BEGIN
	          got := 0; calls := 0;
	          LOOP
	              SELECT array_agg(id) INTO ids FROM courier.receive('flt', grp, 100, '1 hour');
	              calls := calls + 1;
	              EXIT WHEN ids IS NULL;
	              PERFORM courier.ack('flt', grp, ids);
	              got := got + cardinality(ids);
	              EXIT WHEN got >= want;
	          END LOOP;
	          secs := extract(epoch FROM clock_timestamp() - t0);
	      END \$d\$" >/dev/null
	drain() {	# drain GROUP MAX: messages, receive calls and seconds to take MAX messages
		sqlq "SELECT got, calls, secs FROM bench_drain('$1', $2)" | tr '|' ' '
	}
	total=$(sqlq "SELECT count(*) FROM courier.log_$(sqlq "SELECT topic_id FROM courier.topic_meta WHERE name = 'flt'")_1")
	read -r fgot fcalls fsec < <(drain needles 10000)
	read -r pgot pcalls psec < <(drain plain 10000)
	frate=$(awk -v g="$fgot" -v s="$fsec" 'BEGIN{printf "%.0f", g/s}')
	prate=$(awk -v g="$pgot" -v s="$psec" 'BEGIN{printf "%.0f", g/s}')
	line "drain 10k, 1% filter over 1M (msg/s)" "$prate" "$frate" "$(ratio "$frate" "$prate")"
	report+=("$(printf '  log of %s messages; filtered group: %s messages in %s receives, %.2f s; unfiltered: %s in %s receives, %.2f s' \
		"$total" "$fgot" "$fcalls" "$fsec" "$pgot" "$pcalls" "$psec")")
fi

{
	echo "pg_courier bench ($WHAT) $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) cores, PostgreSQL $(sqlq 'SHOW server_version')"
	echo "duration ${DURATION}s, rounds $ROUNDS (best round reported)"
	printf '%s\n' "${report[@]}"
} | tee "$OUT/$WHAT-latest.txt"
