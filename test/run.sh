#!/usr/bin/env bash
# make test: install what is missing, build, install, and run every suite on
# private temporary clusters.  The last line is "N passed, N failed"; the exit
# status is non-zero when anything failed.
#
# Suites:
#   regress    pg_regress, test/sql -> test/expected (API and errors)
#   isolation  pg_isolation_regress, test/specs (concurrency claims)
#   tap        prove, test/t/*.pl (restart, crash, replica, worker)
#   filter     test/filter/run.sh (the filter engine, RocketMQ vectors)
#   fuzz       test/fuzz/run.sh (libFuzzer on the filter parser, bounded)
#   chaos      test/chaos/run.sh (load + faults + exact checker; 1 test per scenario)
#   xmin       test/xmin/run.sh (load while the xmin horizon is held: no bloat)
#   sqlfuzz    test/sqlfuzz/run.sh (sqlsmith, generated calls of every function)
#   ha         test/ha/run.sh (Patroni + etcd, two leader crashes; `make test-ha`,
#              not in the default list)
#   citus      test/citus/run.sh (coordinator + 2 workers; skipped without citus.so)
#   bench      bench/run.sh smoke: every benchmark workload for a moment, beside the
#              peers it can install; passes when it completes and its books balance
#
# Environment: SUITES="regress isolation" runs a subset; TAP="013 030"
# runs only the TAP scripts whose names start so; FUZZ_SECONDS (60);
# CHAOS_SECONDS (load seconds per chaos scenario, 20), CHAOS_SEED;
# XMIN_SECONDS (load seconds per xmin run, 12); SQLSMITH_QUERIES, SQLSMITH_SECONDS
# (10000, 60), SQLSMITH_SEED, SQLFUZZ_SEED.  `make test-ha` runs test/ha (Patroni).

set -u
. "$(dirname "$0")/../scripts/common.sh"
cd "$ROOT"

SUITES=${SUITES:-"regress isolation tap filter fuzz chaos xmin sqlfuzz citus bench"}
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
RUN=${TEST_RUN_DIR:-/tmp/pg_courier-test}
PASSED=0
FAILED=0
SKIPPED=0
FAILED_NAMES=()

note() { printf '\n== %s\n' "$*"; }

tally() {	# tally SUITE PASSED FAILED
	PASSED=$((PASSED + $2))
	FAILED=$((FAILED + $3))
	[ "$3" -gt 0 ] && FAILED_NAMES+=("$1")
	printf -- '-- %s: %d passed, %d failed\n' "$1" "$2" "$3"
}

note "dependencies"
ensure_build_deps || { echo "could not install build dependencies"; echo "0 passed, 1 failed"; exit 1; }
ensure_packages "postgresql-$PG_MAJOR-pgtap" libipc-run-perl perl clang libclang-rt-14-dev python3 python3-psycopg \
	pgbouncer prometheus-postgres-exporter sqlsmith \
	|| { echo "could not install test dependencies"; echo "0 passed, 1 failed"; exit 1; }
case " $SUITES " in
*" ha "*) ensure_packages patroni etcd-server python3-psycopg2 \
	|| { echo "could not install test dependencies"; echo "0 passed, 1 failed"; exit 1; } ;;
esac

note "build and install"
if ! build_and_install; then
	make -C "$ROOT" PG_CONFIG="$(pg_bindir)/pg_config" 2>&1 | tail -30
	echo "0 passed, 1 failed"
	exit 1
fi

PGXS_DIR=$(cd "$(dirname "$("$(pg_bindir)/pg_config" --pgxs)")/../.." && pwd)
PG_REGRESS="$PGXS_DIR/src/test/regress/pg_regress"
PG_ISOLATION="$PGXS_DIR/src/test/isolation/pg_isolation_regress"

# A copy of the test tree that the server user can read and write, wherever
# this checkout lives.
make_pguser_dir "$RUN"
cp -r "$ROOT/test" "$RUN/test"
cp -r "$ROOT/src" "$RUN/src"	# the filter suites build src/filter.c on their own
cp -r "$ROOT/contrib" "$RUN/contrib"	# queries file of the metrics test
if [ "$(id -u)" -eq 0 ]; then chown -R postgres: "$RUN"; fi

# count_regress LOGFILE: passed and failed tests of a pg_regress run
count_regress() {
	local ok bad
	ok=$(grep -Ec '\.\.\. ok|^ok ' "$1")
	bad=$(grep -Eci '\.\.\. FAILED|^not ok ' "$1")
	echo "$ok $bad"
}

run_pg_regress() {	# run_pg_regress NAME BINARY SCHEDULE-ARGS...
	local name=$1 bin=$2
	shift 2
	local out="$RUN/$name"
	make_pguser_dir "$out"
	run_as_pguser "$bin" \
		--bindir="$(pg_bindir)" \
		--temp-instance="$out/tmp_check" \
		--temp-config="$RUN/test/pg_courier.conf" \
		--inputdir="$RUN/test" \
		--outputdir="$out" \
		--dbname=contrib_regression \
		--load-extension=btree_gist \
		--load-extension=pg_courier \
		"$@" >"$out/run.log" 2>&1
	local rc=$?
	cat "$out/run.log"
	read -r ok bad < <(count_regress "$out/run.log")
	if [ "$rc" -ne 0 ] && [ "$bad" -eq 0 ]; then bad=1; fi
	if [ -s "$out/regression.diffs" ]; then
		echo "---- $name regression.diffs (first 200 lines)"
		head -200 "$out/regression.diffs"
	fi
	tally "$name" "$ok" "$bad"
}

# count_suite NAME LOG RC: tally a suite whose runner ends with "NAME tests: N passed, N failed"
count_suite() {
	local name=$1 log=$2 rc=$3 line ok bad
	line=$(grep -E "^$name tests: [0-9]+ passed, [0-9]+ failed" "$log" | tail -1)
	if [ -n "$line" ]; then
		ok=$(echo "$line" | sed -E "s/^$name tests: ([0-9]+) passed.*/\1/")
		bad=$(echo "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/')
	else
		ok=0; bad=1
	fi
	if [ "$rc" -ne 0 ] && [ "$bad" -eq 0 ]; then bad=1; fi
	tally "$name" "$ok" "$bad"
}

for suite in $SUITES; do
	case "$suite" in
	regress)
		note "pg_regress"
		tests=$(cd test/sql && ls *.sql | sed 's/\.sql$//' | sort | tr '\n' ' ')
		run_pg_regress regress "$PG_REGRESS" $tests
		;;
	isolation)
		note "isolation"
		specs=$(cd test/specs && ls *.spec | sed 's/\.spec$//' | sort | tr '\n' ' ')
		run_pg_regress isolation "$PG_ISOLATION" $specs
		;;
	tap)
		note "TAP"
		ok=0; bad=0
		for t in test/t/*.pl; do
			[ -e "$t" ] || continue
			if [ -n "${TAP:-}" ]; then	# TAP="013 030": only scripts whose name starts so
				pick=0
				for p in ${TAP:-}; do case "$(basename "$t")" in "$p"*) pick=1 ;; esac; done
				[ "$pick" -eq 1 ] || continue
			fi
			tdir="$RUN/tap/$(basename "$t" .pl)"
			make_pguser_dir "$tdir"
			if run_as_pguser env TESTDIR="$tdir" PG_REGRESS="$PG_REGRESS" \
				PGXS_DIR="$PGXS_DIR" COURIER_ROOT="$RUN" \
				prove -I "$PGXS_DIR/src/test/perl" "$RUN/$t"; then
				ok=$((ok + 1))
			else
				bad=$((bad + 1))
				for f in "$tdir"/tmp_check/log/*; do
					[ -f "$f" ] || continue
					echo "---- $f (last 40 lines)"
					tail -40 "$f"
				done
			fi
		done
		tally tap "$ok" "$bad"
		;;
	filter)
		note "filter engine"
		out=$(run_as_pguser bash "$RUN/test/filter/run.sh" "$RUN/test/compat/rocketmq-filter-vectors.json" 2>&1)
		rc=$?
		echo "$out" | tail -20
		line=$(echo "$out" | grep -E '^filter tests: [0-9]+ passed, [0-9]+ failed' | tail -1)
		if [ -n "$line" ]; then
			ok=$(echo "$line" | sed -E 's/^filter tests: ([0-9]+) passed.*/\1/')
			bad=$(echo "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/')
		else
			ok=0; bad=1
		fi
		if [ "$rc" -ne 0 ] && [ "$bad" -eq 0 ]; then bad=1; fi
		tally filter "$ok" "$bad"
		;;
	fuzz)
		note "fuzzing the filter parser for ${FUZZ_SECONDS}s"
		run_as_pguser env FUZZ_WORKDIR="$RUN/fuzz" bash "$RUN/test/fuzz/run.sh" "$FUZZ_SECONDS" \
			>"$RUN/fuzz.log" 2>&1
		rc=$?
		tail -15 "$RUN/fuzz.log"
		if [ "$rc" -eq 0 ]; then tally fuzz 1 0; else tally fuzz 0 1; fi
		;;
	chaos)
		note "chaos: load, faults and the exact checker (${CHAOS_SECONDS:-20}s per scenario)"
		make_pguser_dir "$RUN/chaos"
		run_as_pguser env CHAOS_SECONDS="${CHAOS_SECONDS:-20}" CHAOS_SEED="${CHAOS_SEED:-}" \
			bash "$RUN/test/chaos/run.sh" "$RUN/chaos" >"$RUN/chaos.log" 2>&1
		rc=$?
		grep -E '^(== chaos|chaos: |chaos summary|ok - |not ok - |  [a-z-]+: [0-9]+$)' "$RUN/chaos.log"
		line=$(grep -E '^chaos tests: [0-9]+ passed, [0-9]+ failed' "$RUN/chaos.log" | tail -1)
		if [ -n "$line" ]; then
			ok=$(echo "$line" | sed -E 's/^chaos tests: ([0-9]+) passed.*/\1/')
			bad=$(echo "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/')
		else
			ok=0; bad=1
		fi
		if [ "$rc" -ne 0 ] && [ "$bad" -eq 0 ]; then bad=1; fi
		tally chaos "$ok" "$bad"
		;;
	xmin)
		note "xmin: the load while the xmin horizon is held (${XMIN_SECONDS:-12}s per run)"
		make_pguser_dir "$RUN/xmin"
		run_as_pguser env XMIN_SECONDS="${XMIN_SECONDS:-12}" \
			bash "$RUN/test/xmin/run.sh" "$RUN/xmin" >"$RUN/xmin.log" 2>&1
		rc=$?
		grep -E '^(== xmin|xmin: |xmin summary|  |ok - |not ok - )' "$RUN/xmin.log"
		count_suite xmin "$RUN/xmin.log" "$rc"
		;;
	ha)
		note "ha: a Patroni cluster of three under the chaos load, two leader crashes"
		make_pguser_dir "$RUN/ha"
		run_as_pguser env CHAOS_SEED="${CHAOS_SEED:-}" HA_PORT_BASE="${HA_PORT_BASE:-56700}" \
			bash "$RUN/test/ha/run.sh" "$RUN/ha/run" >"$RUN/ha.log" 2>&1
		rc=$?
		grep -E '^(ha: |ok - |not ok - |chaos summary|#[0-9])' "$RUN/ha.log" | grep -v '^ha: failover [0-9]: cluster'
		count_suite ha "$RUN/ha.log" "$rc"
		;;
	sqlfuzz)
		note "sqlfuzz: sqlsmith and generated calls of every public function"
		run_as_pguser env SQLSMITH_QUERIES="${SQLSMITH_QUERIES:-10000}" SQLSMITH_SECONDS="${SQLSMITH_SECONDS:-60}" \
			SQLSMITH_SEED="${SQLSMITH_SEED:-}" SQLFUZZ_SEED="${SQLFUZZ_SEED:-}" \
			bash "$RUN/test/sqlfuzz/run.sh" "$RUN/sqlfuzz" >"$RUN/sqlfuzz.log" 2>&1
		rc=$?
		grep -vE '^\s*$' "$RUN/sqlfuzz.log" | tail -40
		count_suite sqlfuzz "$RUN/sqlfuzz.log" "$rc"
		;;
	citus)
		note "citus: coordinator and two workers (skipped without Citus)"
		make_pguser_dir "$RUN/citus"
		run_as_pguser env PG_BINDIR="$(pg_bindir)" bash "$RUN/test/citus/run.sh" "$RUN/citus" \
			>"$RUN/citus.log" 2>&1
		rc=$?
		grep -Ev '^ok [0-9]+ - ' "$RUN/citus.log" | tail -40
		line=$(grep -E '^citus tests: [0-9]+ passed, [0-9]+ failed' "$RUN/citus.log" | tail -1)
		if echo "$line" | grep -q ' skipped'; then
			SKIPPED=$((SKIPPED + 1))
			printf -- '-- citus: skipped\n'
		else
			count_suite citus "$RUN/citus.log" "$rc"
		fi
		;;
	bench)
		note "bench smoke: every workload briefly, books checked (no timings asserted)"
		BENCH_DIR="$RUN/bench" BENCH_NPM_DIR=${BENCH_NPM_DIR:-/tmp/pg_courier-bench-npm} bash "$ROOT/bench/run.sh" smoke >"$RUN/bench.log" 2>&1
		rc=$?
		grep -E '^bench: |NOT BALANCED|all balanced|SKIPPING' "$RUN/bench.log"
		if [ "$rc" -eq 0 ]; then tally bench 1 0; else tail -40 "$RUN/bench.log"; tally bench 0 1; fi
		;;
	*)
		echo "unknown suite $suite"
		tally "$suite" 0 1
		;;
	esac
done

echo
[ ${#FAILED_NAMES[@]} -gt 0 ] && echo "failed suites: ${FAILED_NAMES[*]}"
if [ "$SKIPPED" -gt 0 ]; then
	echo "$PASSED passed, $FAILED failed, $SKIPPED skipped"
else
	echo "$PASSED passed, $FAILED failed"
fi
[ "$FAILED" -eq 0 ]
