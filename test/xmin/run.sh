#!/usr/bin/env bash
# A held xmin horizon (issue 8 section 3): a private cluster (wal_level =
# logical, the default autovacuum) and xmin.py's three runs of the W4 load:
# nothing holding the horizon, a REPEATABLE READ transaction holding it, a
# logical replication slot holding it.  Runs as the server user with the
# PostgreSQL bin directory first in PATH (test/run.sh does both).  Ends with
# "xmin tests: N passed, N failed".
#
#   test/xmin/run.sh WORKDIR
#
# Environment: XMIN_SECONDS (load seconds per run; 12 in make test),
# XMIN_MODES (none,rr,slot), XMIN_ROUNDS (1; the modes are run this many times
# and each run is compared with the baseline run just before it).  The long
# figures in docs/reliability.md: XMIN_SECONDS=180 and XMIN_SECONDS=40
# XMIN_ROUNDS=3.

set -u
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=${1:?usage: run.sh WORKDIR}
rm -rf "$WORK"
mkdir -p "$WORK"
LOG="$WORK/server.log"
initdb -D "$WORK/data" -A trust -U postgres >"$WORK/initdb.log" 2>&1 || { cat "$WORK/initdb.log"; echo "xmin tests: 0 passed, 1 failed"; exit 1; }
cat >>"$WORK/data/postgresql.conf" <<-CONF
listen_addresses = ''
unix_socket_directories = '$WORK'
port = 5432
shared_preload_libraries = 'pg_courier'
log_line_prefix = '%m [%p] %e '
wal_level = logical
max_replication_slots = 4
fsync = off
courier.segment_size = 20000
CONF
pg_ctl -D "$WORK/data" -l "$LOG" -w start >/dev/null || { tail -20 "$LOG"; echo "xmin tests: 0 passed, 1 failed"; exit 1; }
trap 'pg_ctl -D "$WORK/data" -m fast -w stop >/dev/null 2>&1' EXIT
/usr/bin/python3 "$HERE/xmin.py" --dsn "host=$WORK port=5432 user=postgres" \
	--seconds "${XMIN_SECONDS:-12}" --modes "${XMIN_MODES:-none,rr,slot}" --rounds "${XMIN_ROUNDS:-1}" --json "$WORK/xmin.json" 2>&1 \
	| sed -u '/^xmin tests:/d' | tee "$WORK/xmin.out"
rc=${PIPESTATUS[0]}
passed=$(grep -c '^ok - ' "$WORK/xmin.out")
failed=$(grep -c '^not ok - ' "$WORK/xmin.out")
# the server log: no internal error, no crash
if grep -qE '^\S+ \S+ \S+ \[[0-9]+\] XX[0-9]{3} |PANIC:|TRAP:|terminated by signal' "$LOG"; then
	grep -E '^\S+ \S+ \S+ \[[0-9]+\] XX[0-9]{3} |PANIC:|TRAP:|terminated by signal' "$LOG" | head -5
	echo "not ok - xmin: the server log is clean"
	failed=$((failed + 1))
else
	echo "ok - xmin: the server log is clean"
	passed=$((passed + 1))
fi
[ "$rc" -ne 0 ] && [ "$failed" -eq 0 ] && failed=1
echo "xmin tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
