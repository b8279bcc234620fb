#!/usr/bin/env bash
# SQL fuzzing (issue 8 section 4): a private cluster holding topics, groups,
# filters and traffic (setup.sql), then
#   sqlsmith   random SQL from sqlsmith (Debian package) as role smith
#              (smith.sql: EXECUTE on pg_courier's functions, SELECT on its
#              views, SQL copies of the functions so that sqlsmith draws them
#              often), generated with --dry-run and run by psql after
#              smith_filter.py dropped the shapes that reach PostgreSQL's own
#              internal parser errors (smith.sql revokes the functions that
#              reach the others), bounded by SQLSMITH_QUERIES and SQLSMITH_SECONDS, while
#              traffic.py keeps sending, receiving and acking; then the
#              topics must still work and the server log hold no XX000,
#              PANIC, assertion failure or crash
#   calls      calls.py: every public function of schema courier with NULLs,
#              extremes and malformed values, thousands of calls, each
#              succeeding or raising a proper SQLSTATE; the same checks after
#   monitor    a monitoring role in pg_monitor, as docs/operations.md
#              says, reads the views and sees every topic
# Runs as the server user with the PostgreSQL bin directory first in PATH
# (test/run.sh does both).  Ends with "sqlfuzz tests: N passed, N failed".
#
#   test/sqlfuzz/run.sh WORKDIR [TEST...]
#
# Environment: SQLSMITH_QUERIES (10000), SQLSMITH_SECONDS (40), SQLSMITH_SEED
# and SQLFUZZ_SEED (random, printed), SQLFUZZ_RANDOM_CALLS (2500).

set -u
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=${1:?usage: run.sh WORKDIR [TEST...]}
shift
TESTS=${*:-sqlsmith calls monitor}
PY=/usr/bin/python3
QUERIES=${SQLSMITH_QUERIES:-10000}
SMITH_SECONDS=${SQLSMITH_SECONDS:-40}
SMITH_SEED=${SQLSMITH_SEED:-$((RANDOM * 32768 + RANDOM))}
passed=0
failed=0
ok() { echo "ok - $*"; passed=$((passed + 1)); }
notok() { echo "not ok - $*"; failed=$((failed + 1)); }

rm -rf "$WORK"
mkdir -p "$WORK"
LOG="$WORK/server.log"
DSN="host=$WORK port=5432 user=postgres dbname=postgres"
initdb -D "$WORK/data" -A trust -U postgres >"$WORK/initdb.log" 2>&1 || { cat "$WORK/initdb.log"; echo "sqlfuzz tests: 0 passed, 1 failed"; exit 1; }
cat >>"$WORK/data/postgresql.conf" <<-CONF
listen_addresses = ''
unix_socket_directories = '$WORK'
port = 5432
shared_preload_libraries = 'pg_courier'
log_line_prefix = '%m [%p] %e '
max_prepared_transactions = 10
fsync = off
track_functions = 'all'
courier.worker_naptime = 100
CONF
pg_ctl -D "$WORK/data" -l "$LOG" -w start >/dev/null || { tail -20 "$LOG"; echo "sqlfuzz tests: 0 passed, 1 failed"; exit 1; }
trap 'pg_ctl -D "$WORK/data" -m fast -w stop >/dev/null 2>&1' EXIT
psql "$DSN" -X -q -f "$HERE/setup.sql" >"$WORK/setup.log" 2>&1 || { cat "$WORK/setup.log"; notok setup; }
psql "$DSN" -X -q -f "$HERE/smith.sql" >>"$WORK/setup.log" 2>&1 || { cat "$WORK/setup.log"; notok "setup of role smith"; }

logsize() { stat -c %s "$LOG"; }

for t in $TESTS; do
	case "$t" in
	sqlsmith)
		off=$(logsize)
		rm -f "$WORK/stop"
		$PY "$HERE/traffic.py" "$DSN" "$((SMITH_SECONDS + 30))" "$WORK/stop" >"$WORK/traffic.log" 2>&1 &
		tpid=$!
		echo "== sqlsmith: seed $SMITH_SEED, at most $QUERIES queries or ${SMITH_SECONDS}s"
		# sqlsmith generates (--dry-run), smith_filter.py drops the shapes
		# that reach PostgreSQL's own internal parser errors, psql runs the
		# rest as smith, one session, every error reported and passed over
		timeout --signal=INT "$SMITH_SECONDS" bash -c '
			sqlsmith --target="host=$1 port=5432 user=smith dbname=postgres" --exclude-catalog \
				--max-queries="$2" --seed="$3" --dry-run 2>"$1/sqlsmith.log" |
			"$4" "$5/smith_filter.py" "$1/sqlsmith.queries" "$1/sqlsmith.dropped" |
			psql "host=$1 port=5432 user=smith dbname=postgres" -X -q -v ON_ERROR_STOP=0 \
				>/dev/null 2>"$1/sqlsmith.errors"
			exit "${PIPESTATUS[2]}"' _ "$WORK" "$QUERIES" "$SMITH_SEED" "$PY" "$HERE"
		src=$?
		touch "$WORK/stop"
		wait "$tpid"
		# what it ran: queries, and how many called one of pg_courier's functions
		$PY - "$WORK/sqlsmith.queries" <<-'PYEOF'
		import collections, re, sys
		qs = [q for q in open(sys.argv[1], errors="replace").read().split(";\n") if q.strip()]
		c = collections.Counter()
		n = 0
		for q in qs:
		    fs = set(re.findall(r"smith\.([a-z_]+?)_\d+\(", q)) | set(re.findall(r"smith\.((?:receive|peek|find|send_batch)_[a-z]+)\(", q))
		    fs |= set(re.findall(r"courier\.([a-z][a-z_]*)\(", q))
		    fs |= {"view " + v for v in re.findall(r"courier\.(topics|groups|dead_letters|privileges)\b", q)}
		    n += bool(fs)
		    c.update(fs)
		print(f"sqlsmith: {len(qs)} queries, {n} of them call pg_courier's functions or read its views")
		print("  by function: " + ", ".join(f"{k}:{v}" for k, v in sorted(c.items())))
		PYEOF
		echo "  dropped (PostgreSQL's own parser errors, smith_filter.py): $(grep -c ';$' "$WORK/sqlsmith.dropped" || true)"
		echo "  errors: $(grep -c 'ERROR:' "$WORK/sqlsmith.errors" || true), most frequent:"
		sed -n 's/^\(psql:[^ ]* \)\{0,1\}ERROR:  //p' "$WORK/sqlsmith.errors" | cut -c1-100 | sort | uniq -c | sort -rn | head -12 | sed 's/^/  /'
		tail -1 "$WORK/traffic.log"
		if ! psql "$DSN" -X -qAt -c "SELECT 1" >/dev/null 2>&1; then
			notok "sqlsmith: the server is down after the run (exit $src; $LOG)"
		elif [ "$src" -ne 0 ] && [ "$src" -ne 1 ] && [ "$src" -ne 124 ] && [ "$src" -ne 130 ]; then
			tail -20 "$WORK/sqlsmith.log" "$WORK/sqlsmith.errors"
			notok "sqlsmith: exit status $src"
		elif $PY "$HERE/calls.py" --dsn "$DSN" --log "$LOG" --log-offset "$off" --check-only; then
			ok "sqlsmith: no crash, no XX000, the topics work afterwards"
			rm -f "$WORK/sqlsmith.queries"
		else
			notok "sqlsmith: see $LOG (each error's statement follows it) and $WORK/sqlsmith.queries"
		fi
		;;
	calls)
		off=$(logsize)
		echo "== generated calls of every public function"
		args=(--dsn "$DSN" --log "$LOG" --log-offset "$off")
		[ -n "${SQLFUZZ_SEED:-}" ] && args+=(--seed "$SQLFUZZ_SEED")
		if $PY "$HERE/calls.py" "${args[@]}"; then
			ok "calls: every call succeeded or raised a proper SQLSTATE; the topics work afterwards"
		else
			notok "calls: see above and $LOG"
		fi
		;;
	monitor)
		# docs/operations.md: the views are readable by everyone and show the
		# topics the caller holds a privilege on; members of pg_monitor see
		# every topic's counts -- "grant pg_monitor to your monitoring role"
		echo "== a monitoring role reads the views"
		want=$(psql "$DSN" -X -qAt -c "SELECT (SELECT count(*) FROM courier.topics) || ' ' || (SELECT count(*) FROM courier.groups)" 2>&1)
		out=$(psql "$DSN" -X -qAt -v ON_ERROR_STOP=1 2>&1 <<-'SQL'
		CREATE ROLE monitor IN ROLE pg_monitor;
		GRANT USAGE ON SCHEMA courier TO monitor;
		GRANT SELECT ON courier.topics, courier.groups, courier.dead_letters TO monitor;
		SET ROLE monitor;
		SELECT 'topics ' || count(*) FROM courier.topics;
		SELECT 'groups ' || count(*) FROM courier.groups;
		SELECT 'dead_letters ' || count(*) FROM courier.dead_letters;
		SQL
		)
		rc=$?
		echo "$out" | sed 's/^/  /'
		got=$(echo "$out" | sed -nE 's/^(topics|groups) ([0-9]+)$/\2/p' | tr '\n' ' ' | sed 's/ $//')
		if [ "$rc" -eq 0 ] && [ "$got" = "$want" ] && [ "${want%% *}" -gt 0 ]; then
			ok "monitor: a member of pg_monitor reads topics, groups and dead_letters and sees every topic ($want)"
		else
			notok "monitor: a member of pg_monitor (docs/operations.md) sees topics and groups '$got', the superuser '$want'"
		fi
		;;
	*)
		notok "unknown test $t"
		;;
	esac
done
echo "sqlfuzz tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
