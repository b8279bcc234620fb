#!/usr/bin/env bash
# make demo: install what is missing, build and install pg_courier, start a
# throwaway cluster with the extension preloaded (port 5433, data in .demo/),
# create the extension and take a short tour.  "make demo-stop" stops it.
set -eu
. "$(dirname "$0")/common.sh"
cd "$ROOT"

PORT=${DEMO_PORT:-5433}
DEMO="$ROOT/.demo"

# The server user must be able to reach the data directory; if this checkout
# is somewhere it cannot enter (say /root), keep the cluster in /tmp and
# point .demo at it.
demo_dir() {
	if [ "$(id -u)" -eq 0 ] && ! runuser -u postgres -- test -x "$ROOT" 2>/dev/null; then
		echo "/tmp/pg_courier-demo"
	else
		echo "$DEMO"
	fi
}

DIR=$(demo_dir)
PGDATA="$DIR/data"
PGCTL="$(pg_bindir)/pg_ctl"

if [ "${1:-}" = "stop" ]; then
	if [ -f "$PGDATA/postmaster.pid" ]; then
		run_as_pguser "$PGCTL" -D "$PGDATA" -m fast stop
	else
		echo "no demo cluster running"
	fi
	exit 0
fi

echo "== installing dependencies (if missing)"
ensure_build_deps
echo "== building and installing pg_courier"
build_and_install

if [ -f "$PGDATA/postmaster.pid" ]; then
	echo "== stopping the previous demo cluster"
	run_as_pguser "$PGCTL" -D "$PGDATA" -m fast stop >/dev/null || true
fi
echo "== creating a throwaway cluster in $DIR (port $PORT)"
make_pguser_dir "$DIR"
if [ "$DIR" != "$DEMO" ]; then ln -sfn "$DIR" "$DEMO"; fi
run_as_pguser "$(pg_bindir)/initdb" -D "$PGDATA" -A trust -U postgres >/dev/null
cat >>"$PGDATA/postgresql.conf" <<CONF
port = $PORT
listen_addresses = ''
unix_socket_directories = '$DIR'
shared_preload_libraries = 'pg_courier'
CONF
run_as_pguser "$PGCTL" -D "$PGDATA" -l "$DIR/server.log" -w start >/dev/null

PSQL=("$(pg_bindir)/psql" -X -q -h "$DIR" -p "$PORT" -U postgres -d postgres)
echo "== the tour"
run_as_pguser "${PSQL[@]}" -v ON_ERROR_STOP=1 -f "$ROOT/scripts/tour.sql"

cat <<MSG

The demo cluster is running.
  connect:  $(pg_bindir)/psql -h $DIR -p $PORT -U postgres postgres
  stop:     make demo-stop
  log:      $DIR/server.log
MSG
