#!/usr/bin/env bash
# HA on Patroni (issue 8 section 5): test/ha/ha.py starts etcd and three
# Patroni nodes on 127.0.0.1 under WORKDIR, runs the chaos load through two
# leader crashes and rejoins, and runs the chaos checker.  Runs as the server
# user with the PostgreSQL bin directory first in PATH (test/run.sh's suite
# 'ha', i.e. `make test-ha`, does both).  Ends with "ha tests: N passed, N failed".
#
#   test/ha/run.sh WORKDIR
#
# Environment: HA_PORT_BASE (56700: PostgreSQL +1..3, Patroni REST +11..13,
# etcd +20, +21), CHAOS_SEED.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=${1:?usage: run.sh WORKDIR}
rm -rf "$WORK"
mkdir -p "$WORK"
# a crashed server process leaves a core file that ha.py reports with its backtrace
ulimit -c unlimited 2>/dev/null || true
exec /usr/bin/python3 "$HERE/ha.py" --work "$WORK" --bindir "$(dirname "$(command -v pg_ctl)")"
