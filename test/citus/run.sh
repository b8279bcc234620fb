#!/usr/bin/env bash
# The Citus suite (issue 12, docs/citus.md): a coordinator and two workers on
# loopback, pg_courier distributed with courier.citus_distribute(), and
# citus_test.py proving routing, the outbox on one worker and across two
# (two-phase commit; a rollback leaves nothing), receive-transform-send across
# workers, the ownership guard, the refusal of shard moves and the cluster
# views, counting every message.  Builds nothing: without citus.so in
# `pg_config --pkglibdir` it says how to build Citus and ends as skipped.
#
#   test/citus/run.sh WORKDIR
#
# Runs as the server user with the PostgreSQL bin directory first in PATH
# (test/run.sh does both; as root it re-runs itself as postgres).  Ends with
# "citus tests: N passed, N failed" (", 1 skipped" when Citus is absent).
# Environment: CITUS_PORT (coordinator port, workers the next two; default
# 57630), CITUS_BENCH_SECONDS (default 0: no benchmark; > 0 measures sends
# through the coordinator against sends on a worker, docs/citus.md),
# CITUS_KEEP=1 (leave the three servers running, to look around).

set -u
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=${1:?usage: run.sh WORKDIR}
PY=/usr/bin/python3
PORT=${CITUS_PORT:-57630}

PG_CONFIG=$(command -v pg_config || true)
[ -n "${PG_BINDIR:-}" ] && PG_CONFIG="$PG_BINDIR/pg_config"
if [ -z "$PG_CONFIG" ] || [ ! -x "$PG_CONFIG" ]; then
	echo "citus: pg_config not found (put the PostgreSQL 15 bin directory first in PATH)"
	echo "citus tests: 0 passed, 1 failed"
	exit 1
fi
BINDIR=$("$PG_CONFIG" --bindir)
PKGLIBDIR=$("$PG_CONFIG" --pkglibdir)

if [ ! -f "$PKGLIBDIR/citus.so" ]; then
	cat <<-EOF
	citus: skipped, Citus is not installed ($PKGLIBDIR/citus.so is missing).
	To run this suite, build Citus 12.1 from its public source (citusdata/citus, tag v12.1.12)
	against this PostgreSQL, in the source tree:
	    apt-get install liblz4-dev libzstd-dev libkrb5-dev libssl-dev libselinux1-dev \\
	        libxslt1-dev libpam0g-dev
	    ./configure --without-libcurl PG_CONFIG=$PG_CONFIG
	    make -j2 && make install
	then run: test/citus/run.sh WORKDIR   (or SUITES=citus make test)
	EOF
	echo "citus tests: 0 passed, 0 failed, 1 skipped"
	exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
	mkdir -p "$WORK" && chown postgres: "$WORK"
	exec runuser -u postgres -- env PATH="$BINDIR:$PATH" PG_BINDIR="$BINDIR" \
		CITUS_PORT="$PORT" CITUS_KEEP="${CITUS_KEEP:-0}" CITUS_BENCH_SECONDS="${CITUS_BENCH_SECONDS:-0}" bash "$0" "$WORK"
fi
export PATH="$BINDIR:$PATH"

NODES="coord w1 w2"
port_of() {
	case $1 in coord) echo "$PORT" ;; w1) echo $((PORT + 1)) ;; w2) echo $((PORT + 2)) ;; esac
}

stop_all() {
	[ "${CITUS_KEEP:-0}" = 1 ] && return
	for n in $NODES; do
		[ -f "$WORK/$n/data/postmaster.pid" ] && pg_ctl -D "$WORK/$n/data" -m fast -w stop >/dev/null 2>&1
	done
}
trap stop_all EXIT

rm -rf "${WORK:?}"/coord "$WORK"/w1 "$WORK"/w2
for n in $NODES; do
	mkdir -p "$WORK/$n"
	if ! initdb -D "$WORK/$n/data" -A trust -U postgres >"$WORK/$n/initdb.log" 2>&1; then
		cat "$WORK/$n/initdb.log"
		echo "citus tests: 0 passed, 1 failed"
		exit 1
	fi
	cat >>"$WORK/$n/data/postgresql.conf" <<-EOF
	listen_addresses = '127.0.0.1'
	unix_socket_directories = '$WORK/$n'
	port = $(port_of "$n")
	shared_preload_libraries = 'citus, pg_courier'
	log_line_prefix = '%m [%p] %e '
	max_connections = 100
	max_prepared_transactions = 100
	wal_level = logical
	fsync = off
	courier.worker_naptime = 100
	# keep the records of two-phase commits, so the suite can count them
	citus.recover_2pc_interval = -1
	EOF
	ulimit -c unlimited 2>/dev/null
	if ! pg_ctl -D "$WORK/$n/data" -l "$WORK/$n/server.log" -w start >/dev/null; then
		tail -30 "$WORK/$n/server.log"
		echo "citus tests: 0 passed, 1 failed"
		exit 1
	fi
done

psql_on() {	# psql_on NODE SQL
	psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$(port_of "$1")" -U postgres -d postgres -c "$2"
}
setup_ok=1
for n in $NODES; do
	psql_on "$n" "CREATE EXTENSION citus" >/dev/null || setup_ok=0
done
psql_on coord "SELECT citus_set_coordinator_host('127.0.0.1', $(port_of coord))" >/dev/null || setup_ok=0
psql_on coord "SELECT citus_add_node('127.0.0.1', $(port_of w1))" >/dev/null || setup_ok=0
psql_on coord "SELECT citus_add_node('127.0.0.1', $(port_of w2))" >/dev/null || setup_ok=0
# Citus propagates CREATE EXTENSION to the workers
psql_on coord "CREATE EXTENSION pg_courier CASCADE" >/dev/null || setup_ok=0
if [ "$setup_ok" -ne 1 ]; then
	for n in $NODES; do echo "---- $n"; tail -20 "$WORK/$n/server.log"; done
	echo "citus tests: 0 passed, 1 failed"
	exit 1
fi

dsn() { echo "host=127.0.0.1 port=$(port_of "$1") user=postgres dbname=postgres"; }
"$PY" "$HERE/citus_test.py" --coord "$(dsn coord)" --w1 "$(dsn w1)" --w2 "$(dsn w2)" \
	--logs "$WORK/coord/server.log" "$WORK/w1/server.log" "$WORK/w2/server.log" \
	--bench-seconds "${CITUS_BENCH_SECONDS:-0}" --bindir "$BINDIR" --workdir "$WORK" \
	2>&1 | tee "$WORK/citus_test.log"
rc=${PIPESTATUS[0]}
if ! grep -qE '^citus tests: [0-9]+ passed, [0-9]+ failed' "$WORK/citus_test.log"; then
	echo "citus tests: 0 passed, 1 failed"
	exit 1
fi
exit "$rc"
