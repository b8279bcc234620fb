#!/usr/bin/env bash
# The chaos suite: for each scenario (side by side), a private cluster with tiny segments, a
# millisecond worker naptime and 2PC enabled; chaos.py runs the load with the
# scenario's faults, drains, and checks (see test/chaos/checker.py for the
# rules).  Runs as the server user, with the PostgreSQL bin directory first in
# PATH (test/run.sh does both).  Prints each scenario's summary line and ends
# with "chaos tests: N passed, N failed".
#
#   test/chaos/run.sh WORKDIR [SCENARIO...]
#
# Scenarios: steady (every fault but server crashes), crash (also pg_ctl stop
# -m immediate + restart every few seconds).  Environment: CHAOS_SECONDS (load
# seconds per scenario, default 20), CHAOS_SEED (default: random, printed).

set -u
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=${1:?usage: run.sh WORKDIR [SCENARIO...]}
shift
SCENARIOS=${*:-steady crash}
SECONDS_PER=${CHAOS_SECONDS:-20}
BINDIR=$(dirname "$(command -v pg_ctl)")
PY=/usr/bin/python3
passed=0
failed=0

# run_scenario SCENARIO: one scenario on its own cluster; its output goes to
# WORK/SCENARIO/chaos.log, its verdict to WORK/SCENARIO/verdict (ok | not ok)
run_scenario() {
	local sc=$1 dir="$WORK/$1"
	local args
	rm -rf "$dir"
	mkdir -p "$dir"
	echo "not ok" >"$dir/verdict"
	{
		initdb -D "$dir/data" -A trust -U postgres >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log"; return; }
		cat >>"$dir/data/postgresql.conf" <<-EOF
		listen_addresses = ''
		unix_socket_directories = '$dir'
		port = 5432
		shared_preload_libraries = 'pg_courier'
		log_line_prefix = '%m [%p] %e '
		max_connections = 80
		max_prepared_transactions = 20
		fsync = off
		courier.segment_size = 1000
		courier.worker_naptime = 20
		courier.maintenance_batch = 200
		EOF
		ulimit -c unlimited 2>/dev/null	# a crash leaves a core in the data directory
		pg_ctl -D "$dir/data" -l "$dir/server.log" -w start >/dev/null || { tail -20 "$dir/server.log"; return; }
		args=(run --dsn "host=$dir port=5432 user=postgres dbname=postgres" --records "$dir/records.jsonl"
			--log "$dir/server.log" --report "$dir/report.txt" --scenario "$sc" --seconds "$SECONDS_PER"
			--bindir "$BINDIR" --pgdata "$dir/data")
		[ -n "${CHAOS_SEED:-}" ] && args+=(--seed "$CHAOS_SEED")
		[ "$sc" = crash ] && args+=(--crashes)
		echo "== chaos scenario $sc: $PY $HERE/chaos.py ${args[*]}"
		if "$PY" "$HERE/chaos.py" "${args[@]}" 2>&1; then
			echo "ok" >"$dir/verdict"
		fi
		pg_ctl -D "$dir/data" -m fast -w stop >/dev/null 2>&1
	} >"$dir/chaos.log" 2>&1
}

# The scenarios run side by side, each on its own cluster and socket
# directory: their load is a Python client that waits on its server most of
# the time (a machine of 2 cores was 50-75% idle running one), so each still
# gets its full CHAOS_SECONDS of load, faults and checks.
pids=()
for sc in $SCENARIOS; do
	run_scenario "$sc" &
	pids+=($!)
done
wait "${pids[@]}"
for sc in $SCENARIOS; do
	cat "$WORK/$sc/chaos.log"
	if [ "$(cat "$WORK/$sc/verdict" 2>/dev/null)" = ok ]; then
		echo "ok - chaos $sc"
		passed=$((passed + 1))
	else
		echo "not ok - chaos $sc (details: $WORK/$sc/report.txt, $WORK/$sc/server.log)"
		failed=$((failed + 1))
	fi
done
echo "chaos tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
