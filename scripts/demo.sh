#!/usr/bin/env bash
# make demo: install what is missing, build and install pg_courier, start a
# throwaway cluster with the extension preloaded (port 5433, data in .demo/),
# create the extension and take a short tour.  "make demo-stop" stops it.
#
# The server runs as "postgres" when we are root, and that user may not be
# able to enter this checkout (a clone in /root or in a mktemp -d folder is
# mode 0700): then the cluster lives in $DEMO_DIR (/tmp/pg_courier-demo) and
# .demo points at it.  Whatever the server user reads (the tour) is copied
# there first, and it runs from there.
set -eu
. "$(dirname "$0")/common.sh"
# every path below is absolute; the server user may not be able to enter ROOT
cd /

PORT=${DEMO_PORT:-5433}
DEMO="$ROOT/.demo"

# The server user must be able to reach the data directory; if this checkout
# is somewhere it cannot enter (say /root), keep the cluster in /tmp and
# point .demo at it.
demo_dir() {
	if [ "$(id -u)" -eq 0 ] && ! runuser -u postgres -- test -x "$ROOT" 2>/dev/null; then
		echo "${DEMO_DIR:-/tmp/pg_courier-demo}"
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
cp "$ROOT/scripts/tour.sql" "$DIR/tour.sql"
chmod 644 "$DIR/tour.sql"
(cd "$DIR" && run_as_pguser "${PSQL[@]}" -v ON_ERROR_STOP=1 -f "$DIR/tour.sql")

cat <<MSG

The demo cluster is running.
  connect:  $(pg_bindir)/psql -h $DIR -p $PORT -U postgres postgres
  stop:     make demo-stop
  log:      $DIR/server.log
MSG
