#!/usr/bin/env bash
# A VPATH build and `make installcheck`, as Debian's pg_buildext
# does them (make -C build-15 -f $srcdir/Makefile VPATH=$srcdir USE_PGXS=1).
#
#   test/packaging/vpath.sh PG_CONFIG   (the clone suite runs it)
#
# Expected (issue 10: "Packagers (Debian's pg_buildext, ...) run make, make
# install, make installcheck"): the build succeeds, installs the same files
# as an in-tree build, and installcheck runs the regress tests.  Prints what
# it finds; exits 1 on the first failure.
set -u
fail=0
SRC=$(cd "$(dirname "$0")/../.." && pwd)
PGC=${1:?usage: vpath_installcheck.sh PG_CONFIG}
B=$(mktemp -d)
trap 'rm -rf "$B"' EXIT
echo "== VPATH build in $B"
make -C "$B" -f "$SRC/Makefile" VPATH="$SRC" USE_PGXS=1 PG_CONFIG="$PGC" -s >"$B/build.log" 2>&1
rc=$?
tail -5 "$B/build.log"
if [ "$rc" -eq 0 ]; then echo "ok - VPATH build"; else echo "not ok - VPATH build fails (exit $rc)"; fail=1; fi
echo "== what installcheck would run"
make -C "$B" -f "$SRC/Makefile" VPATH="$SRC" USE_PGXS=1 PG_CONFIG="$PGC" -n installcheck TAP_TESTS= 2>&1 | grep -E 'pg_regress|pg_isolation_regress' | cut -c1-400
echo 'print-vars: ; @echo "REGRESS=$(words $(REGRESS)) ISOLATION=$(words $(ISOLATION)) EXTVERSION=$(EXTVERSION) DATA=$(DATA)"' >"$B/print.mk"
make -s --no-print-directory -C "$B" -f "$SRC/Makefile" -f "$B/print.mk" VPATH="$SRC" USE_PGXS=1 PG_CONFIG="$PGC" print-vars 2>/dev/null
echo "(in-tree the same Makefile sees REGRESS=26 ISOLATION=24 EXTVERSION=0.2.0 and the upgrade script in DATA)"
set -- $(make -s --no-print-directory -C "$B" -f "$SRC/Makefile" -f "$B/print.mk" VPATH="$SRC" USE_PGXS=1 PG_CONFIG="$PGC" print-vars 2>/dev/null)
[ "$1" = "REGRESS=0" ] && { echo "not ok - a VPATH installcheck runs no regress test"; fail=1; }
exit $fail
