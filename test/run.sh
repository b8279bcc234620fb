#!/usr/bin/env bash
# make test: install what is missing, build, install, and run every suite on
# private temporary clusters.  Each suite says what it ran and how long it
# took; a table at the end repeats it per suite; the last line is
# "N passed, N failed" (the sum of the suites' own counts, in the unit each
# suite names); the exit status is non-zero when anything failed.
#
# Suites (each counts in the unit named):
#   regress    files      pg_regress through `make installcheck` (REGRESS),
#                         test/sql -> expected/ (API and errors)
#   isolation  specs      pg_isolation_regress through `make installcheck`
#                         (ISOLATION), test/specs -> expected/
#   tap        scripts    prove, test/t/*.pl as `make prove_installcheck` runs them
#   pgtap      assertions pg_prove: test/pgtap/*.sql (the SQL API contract) and
#                         test/sql/privilege_matrix.sql
#   examples   checks     examples/: the Python and Node.js workers, the
#                         outbox producer and oncall.sql, against a cluster
#   clone      checks     a copy of this checkout in a mktemp -d (0700) folder:
#                         make demo, then make test with the smoke suite there
#   smoke      files      one regress file, one spec, one TAP script, the pgTAP
#                         API file (what clone runs)
#   filter     checks     test/filter/run.sh (the filter engine, RocketMQ vectors)
#   fuzz       runs       test/fuzz/run.sh (libFuzzer on the filter parser, bounded)
#   chaos      scenarios  test/chaos/run.sh (load + faults + exact checker)
#   xmin       checks     test/xmin/run.sh (load while the xmin horizon is held)
#   sqlfuzz    checks     test/sqlfuzz/run.sh (sqlsmith, generated calls)
#   bench      runs       bench/run.sh smoke: every benchmark workload for a moment,
#                         beside the peers it can install; passes when it
#                         completes and its books balance
#   citus      checks     test/citus/run.sh (coordinator + 2 workers; skipped
#                         without citus.so: named as skipped before the last line)
#   ha         checks     test/ha/run.sh (Patroni + etcd, two leader crashes;
#                         `make test-ha`, not in the default list)
#
# Environment: SUITES="regress isolation" runs a subset; TAP="013 030"
# runs only the TAP scripts whose names start so, TAP_JOBS (3) at a time; FUZZ_SECONDS (40,
# shared by FUZZ_JOBS processes: 2 on two cores or more);
# CHAOS_SECONDS (load seconds per chaos scenario, 20), CHAOS_SEED;
# XMIN_SECONDS (load seconds per xmin run, 12); SQLSMITH_QUERIES, SQLSMITH_SECONDS
# (10000, 40), SQLSMITH_SEED, SQLFUZZ_SEED; TEST_RUN_DIR (/dev/shm/pg_courier-test-USER, or /tmp/...
# when /dev/shm is small, missing or noexec).

set -u
. "$(dirname "$0")/../scripts/common.sh"
cd "$ROOT"

# "a+b" runs a and b side by side: suites that spend most of their time
# waiting (timers, lease expiries, fixed-length loads) and share nothing
# (not clone beside anything that runs a cluster: it installs its own build
# of pg_courier.so into the PostgreSQL the other suite's server loads from)
SUITES=${SUITES:-"regress+isolation tap pgtap examples clone filter fuzz chaos xmin+bench sqlfuzz citus"}
SUITE_LIST=" ${SUITES//+/ } "
FUZZ_SECONDS=${FUZZ_SECONDS:-40}
# the fuzzing time is shared by two processes when there are two cores
FUZZ_JOBS=${FUZZ_JOBS:-$([ "$(nproc)" -ge 2 ] && echo 2 || echo 1)}
case "$FUZZ_JOBS" in '' | *[!0-9]* | 0) echo "FUZZ_JOBS must be a whole number >= 1"; echo "0 passed, 1 failed"; exit 1 ;; esac
# one directory per user: a run as root leaves it owned by the server user.
# By default it is on /dev/shm when that is a memory file system with 4 GB
# free that runs programs and 8 GB of memory are available (a run writes
# about 1 GB and keeps much less), else in /tmp: this machine kind's disk
# made the TAP scripts about 12% slower.
shm_ok() {
	local probe
	[ -d /dev/shm ] && [ -w /dev/shm ] || return 1
	[ "$(df -Pk /dev/shm 2>/dev/null | awk 'NR == 2 { print $4 }')" -gt $((4 * 1024 * 1024)) ] 2>/dev/null || return 1
	# (a tmpfs's size is a limit, not memory: what it holds is RAM)
	[ "$(awk '/^MemAvailable:/ { print $2 }' /proc/meminfo 2>/dev/null)" -gt $((8 * 1024 * 1024)) ] 2>/dev/null || return 1
	probe=$(mktemp /dev/shm/pg_courier-probe.XXXXXX) || return 1
	printf '#!/bin/sh\nexit 0\n' >"$probe" && chmod 755 "$probe" && "$probe" 2>/dev/null
	local rc=$?
	rm -f "$probe"
	return $rc
}
if [ -n "${TEST_RUN_DIR:-}" ]; then
	RUN=$TEST_RUN_DIR
elif shm_ok; then
	RUN=/dev/shm/pg_courier-test-$(id -un)
else
	RUN=/tmp/pg_courier-test-$(id -un)
fi
PASSED=0
FAILED=0
SKIPPED=0
FAILED_NAMES=()
FAILED_DETAIL=()		# "suite unit: first failure" lines for the summary
COUNTED=()				# suites that reached tally (or were skipped)
SUMMARY=()
T0=$SECONDS

note() { printf '\n== %s\n' "$*"; }

# tally SUITE PASSED FAILED WHAT: count a suite; WHAT says what ran
tally() {
	local took=$((SECONDS - SUITE_START))
	case "$2$3" in '' | *[!0-9]*) set -- "$1" 0 1 "$4 (its counts were not numbers: '$2' '$3')" ;; esac
	COUNTED+=("$1")
	PASSED=$((PASSED + $2))
	FAILED=$((FAILED + $3))
	[ "$3" -gt 0 ] && FAILED_NAMES+=("$1")
	printf -- '-- %s: %d passed, %d failed (%s; %d s)\n' "$1" "$2" "$3" "$4" "$took"
	SUMMARY+=("$(printf '%-10s %6d %6d %5d s  %s' "$1" "$2" "$3" "$took" "$4")")
}

SUITE_START=$SECONDS
note "dependencies"
ensure_build_deps || { echo "could not install build dependencies"; echo "0 passed, 1 failed"; exit 1; }
ensure_packages "postgresql-$PG_MAJOR-pgtap" libtap-parser-sourcehandler-pgtap-perl libipc-run-perl perl \
	clang libclang-rt-14-dev python3 python3-psycopg pgbouncer prometheus-postgres-exporter sqlsmith git gdb \
	|| { echo "could not install test dependencies"; echo "0 passed, 1 failed"; exit 1; }
case "$SUITE_LIST" in
*" examples "*) ensure_node || { echo "could not install Node.js and npm"; echo "0 passed, 1 failed"; exit 1; } ;;
esac
case "$SUITE_LIST" in
*" ha "*) ensure_packages patroni etcd-server python3-psycopg2 \
	|| { echo "could not install test dependencies"; echo "0 passed, 1 failed"; exit 1; } ;;
esac

note "build and install"
if ! build_and_install; then
	make -C "$ROOT" PG_CONFIG="$(pg_bindir)/pg_config" 2>&1 | tail -30
	echo "0 passed, 1 failed"
	exit 1
fi

PG_CONFIG_BIN="$(pg_bindir)/pg_config"
PGXS_DIR=$(cd "$(dirname "$("$PG_CONFIG_BIN" --pgxs)")/../.." && pwd)
PG_REGRESS="$PGXS_DIR/src/test/regress/pg_regress"

# A copy of what the tests read, owned by the server user, wherever this
# checkout lives (a clone in /root or in a mktemp -d folder is 0700, and the
# servers run as postgres when we are root).  The suites run from there.
make_pguser_dir "$RUN"
for d in Makefile pg_courier.control expected test src contrib examples scripts; do
	rm -rf "${RUN:?}/$d"
	cp -r "$ROOT/$d" "$RUN/$d" || { echo "cannot copy $d into $RUN (set TEST_RUN_DIR)" >&2; exit 1; }
done
if [ "$(id -u)" -eq 0 ]; then chown -R postgres: "$RUN"; fi
cd "$RUN"

# count_regress LOGFILE: passed and failed tests of a pg_regress run
count_regress() {
	local ok bad
	ok=$(grep -Ec '\.\.\. ok|^ok ' "$1")
	bad=$(grep -Eci '\.\.\. FAILED|^not ok ' "$1")
	echo "$ok $bad"
}

# run_installcheck NAME MAKE-VARIABLES...: PGXS's own `make installcheck` on
# the copy, on a private instance (--temp-instance, test/pg_courier.conf);
# its results and regression.diffs end up in $RUN/NAME.  Prints "ok bad".
run_installcheck() {
	local name=$1 out="$RUN/$1" tree="$RUN/$1/tree" d
	shift
	make_pguser_dir "$out"
	# its own copy of the tree (timestamps kept, nothing rebuilt), so that
	# regress and isolation can run side by side (both write ./results)
	rm -rf "$tree" "$out/results" "$out/regression.diffs" "$out/regression.out"
	run_as_pguser mkdir -p "$tree"
	for d in Makefile pg_courier.control expected test src contrib; do
		run_as_pguser cp -a "$RUN/$d" "$tree/$d"
	done
	run_as_pguser make -s --no-print-directory -C "$tree" installcheck TAP_TESTS= PG_CONFIG="$PG_CONFIG_BIN" "$@" \
		EXTRA_REGRESS_OPTS="--temp-instance=$out/tmp_check --temp-config=$RUN/test/pg_courier.conf" \
		>"$out/run.log" 2>&1
	local rc=$?
	for f in results regression.diffs regression.out; do
		[ -e "$tree/$f" ] && mv "$tree/$f" "$out/"
	done
	local ok bad
	read -r ok bad < <(count_regress "$out/run.log")
	if [ "$rc" -ne 0 ] && [ "$bad" -eq 0 ]; then bad=1; fi
	echo "$ok $bad"
}

report_installcheck() {	# report_installcheck NAME: show the log and the diffs
	grep -vE '^(ALTER DATABASE|SET|CREATE EXTENSION|DROP DATABASE|CREATE DATABASE)$' "$RUN/$1/run.log"
	if [ -s "$RUN/$1/regression.diffs" ]; then
		echo "---- $1 regression.diffs (first 200 lines)"
		head -200 "$RUN/$1/regression.diffs"
	fi
}

# TAP scripts run TAP_JOBS (3) at a time: most of their time is spent
# waiting (for a timer, a worker round, a standby), not computing (on 2
# cores, 3 at a time took the suite from 522 s to 456 s).  Each runs
# in its own TESTDIR; PostgreSQL::Test::Cluster's nodes listen on their own
# Unix sockets and take port numbers under one shared lock directory
# (PG_TEST_PORT_DIR), and the two scripts that bind loopback ports (017,
# 018) get a port range per job slot (COURIER_PORT_BASE).  The slowest
# scripts start first so that the two slots end together; a script's output
# is printed when it ends.
TAP_JOBS=${TAP_JOBS:-3}
TAP_SLOW_FIRST="015 013 023 043 018 044 024 006 053 042"

# tap_order SCRIPT...: the scripts, the slow ones (TAP_SLOW_FIRST) first
tap_order() {
	local p t
	for p in $TAP_SLOW_FIRST; do
		for t in "$@"; do case "$(basename "$t")" in "$p"*) echo "$t" ;; esac; done
	done
	for t in "$@"; do
		case " $TAP_SLOW_FIRST " in *" $(basename "$t" | cut -c1-3) "*) ;; *) echo "$t" ;; esac
	done
}

# start_tap_script SCRIPT SLOT: one TAP script in the background, as `make
# prove_installcheck` runs it (same include paths), in its own TESTDIR; its
# exit status goes to TESTDIR/rc
start_tap_script() {
	local t=$1 slot=$2 tdir
	tdir="$RUN/tap/$(basename "$t" .pl)"
	make_pguser_dir "$tdir"
	rm -f "$tdir/rc"
	(
		run_as_pguser env TESTDIR="$tdir" PG_REGRESS="$PG_REGRESS" \
			PGXS_DIR="$PGXS_DIR" COURIER_ROOT="$RUN" PG_TEST_PORT_DIR="$RUN/tap/portlock" \
			COURIER_INITDB_TEMPLATE="$RUN/tap/initdb/template" \
			COURIER_PORT_BASE=$((56800 + 100 * slot)) \
			prove -I "$PGXS_DIR/src/test/perl" -I "$RUN" -I "$RUN/test/perl" "$RUN/$t" >"$tdir/prove.log" 2>&1
		echo $? >"$tdir/rc"
	) &
}

# finish_tap_script SCRIPT: print an ended script's output and add it to
# TAP_OK / TAP_BAD / TAP_ASSERTS
finish_tap_script() {
	local t=$1 tdir rc n
	tdir="$RUN/tap/$(basename "$t" .pl)"
	rc=$(cat "$tdir/rc" 2>/dev/null || echo 1)
	cat "$tdir/prove.log"
	n=$(sed -nE 's/^Files=[0-9]+, Tests=([0-9]+),.*/\1/p' "$tdir/prove.log" | tail -1)
	TAP_ASSERTS=$((TAP_ASSERTS + ${n:-0}))
	if [ "$rc" -eq 0 ]; then
		TAP_OK=$((TAP_OK + 1))
	else
		TAP_BAD=$((TAP_BAD + 1))
		# named again in the summary, with its first failed assertion (CI
		# may keep only the end of the output)
		FAILED_DETAIL+=("tap $(basename "$t" .pl): $( { grep -m1 -A1 -E '^#\s+Failed test' "$tdir/prove.log" \
			|| grep -m1 -E 'Bailout|Dubious|^# Looks like|No plan found' "$tdir/prove.log"; } | tr -s ' \n' ' ' | cut -c1-240)")
		for f in "$tdir"/tmp_check/log/*; do
			[ -f "$f" ] || continue
			echo "---- $f (last 40 lines)"
			tail -40 "$f"
		done
	fi
}

# tap_reap: wait until one of run_tap_scripts' scripts ends, free its slot
# and report it (works on run_tap_scripts' running and free)
tap_reap() {
	local pid s t
	wait -n -p pid "${!running[@]}"
	read -r s t <<<"${running[$pid]}"
	unset "running[$pid]"
	free="$free $s"
	finish_tap_script "$t"
}

# run_tap_scripts SCRIPT...: every script, TAP_JOBS at a time
run_tap_scripts() {
	local t slot free
	local -A running=()		# pid -> "slot script"
	make_pguser_dir "$RUN/tap/portlock"
	# one initdb for every node of every script (CourierTest copies it)
	make_pguser_dir "$RUN/tap/initdb"
	run_as_pguser initdb -D "$RUN/tap/initdb/template" -A trust -N >"$RUN/tap/initdb/log" 2>&1 \
		|| { cat "$RUN/tap/initdb/log"; rm -rf "$RUN/tap/initdb/template"; }
	free=$(seq -s " " 0 $((TAP_JOBS - 1)))
	for t in $(tap_order "$@"); do
		[ "${#running[@]}" -lt "$TAP_JOBS" ] || tap_reap
		read -r slot free <<<"$free"
		start_tap_script "$t" "$slot"
		running[$!]="$slot $t"
	done
	while [ "${#running[@]}" -gt 0 ]; do tap_reap; done
}

# start_cluster DIR [CONF-LINES]: a private cluster as the server user, on a
# socket in DIR (port 5432); stop_cluster DIR
start_cluster() {
	local dir=$1 conf=${2:-}
	make_pguser_dir "$dir"
	run_as_pguser initdb -D "$dir/data" -A trust -U postgres >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log"; return 1; }
	cat >>"$dir/data/postgresql.conf" <<-EOF
	listen_addresses = ''
	unix_socket_directories = '$dir'
	port = 5432
	shared_preload_libraries = 'pg_courier'
	log_line_prefix = '%m [%p] %e '
	fsync = off
	$conf
	EOF
	run_as_pguser pg_ctl -D "$dir/data" -l "$dir/server.log" -w start >/dev/null || { tail -20 "$dir/server.log"; return 1; }
}
stop_cluster() { run_as_pguser pg_ctl -D "$1/data" -m fast -w stop >/dev/null 2>&1; }
# server_log_clean DIR: no internal error, no crash in the cluster's log
server_log_clean() {
	! grep -qE '^\S+ \S+ \S+ \[[0-9]+\] XX[0-9]{3} |PANIC:|TRAP:|terminated by signal' "$1/server.log"
}

# run_pg_prove NAME CLUSTER-DIR FILE...: pgTAP files through pg_prove, in
# database postgres of the cluster; prints "ok bad files"
run_pg_prove() {
	local name=$1 cdir=$2 out="$RUN/$1"
	shift 2
	run_as_pguser env PGHOST="$cdir" PGPORT=5432 PGUSER=postgres PGDATABASE=postgres \
		pg_prove --verbose "$@" >"$out/pg_prove.log" 2>&1
	local rc=$?
	local ok bad
	ok=$(grep -cE '^\s*ok [0-9]+' "$out/pg_prove.log")
	bad=$(grep -cE '^\s*not ok [0-9]+' "$out/pg_prove.log")
	# a file that dies or misses its plan counts once more
	if [ "$rc" -ne 0 ] && [ "$bad" -eq 0 ]; then bad=1; fi
	echo "$ok $bad $#"
}

# count_suite NAME LOG RC WHAT: tally a suite whose runner ends with "NAME tests: N passed, N failed"
count_suite() {
	local name=$1 log=$2 rc=$3 what=$4 line ok bad
	line=$(grep -E "^$name tests: [0-9]+ passed, [0-9]+ failed" "$log" | tail -1)
	if [ -n "$line" ]; then
		ok=$(echo "$line" | sed -E "s/^$name tests: ([0-9]+) passed.*/\1/")
		bad=$(echo "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/')
	else
		ok=0; bad=1
	fi
	if [ "$rc" -ne 0 ] && [ "$bad" -eq 0 ]; then bad=1; fi
	tally "$name" "$ok" "$bad" "$what"
}

# run_clone_suite DIR: what a user does with a clone in a private folder.
# The checkout's files (as git lists them, plus the build products, so that
# nothing is rebuilt) are copied into a fresh mktemp -d folder (mode 0700,
# owned by us: the server user cannot enter it); there `make demo` must take
# the whole tour and `make demo-stop` stop it, and `make test` (the smoke
# suite) must pass.  Ends with "clone tests: N passed, N failed".
run_clone_suite() {
	local out=$1 ok=0 bad=0 priv clone rc
	make_pguser_dir "$out"
	priv=$(mktemp -d) || { echo "clone tests: 0 passed, 1 failed"; return 1; }
	chmod 700 "$priv"
	clone="$priv/pg_courier"
	mkdir "$clone"
	pass() { echo "ok - $*"; ok=$((ok + 1)); }
	fail() { echo "not ok - $*"; bad=$((bad + 1)); }
	# no_permission_errors LOG WHAT: nothing in LOG that the server user could not reach
	no_permission_errors() {
		if grep -qiE 'permission denied|could not change directory' "$1"; then
			grep -iE 'permission denied|could not change directory' "$1" | head -5
			fail "$2 complains about permissions"
		else
			pass "$2 reads nothing the server user cannot reach"
		fi
	}
	if git -C "$ROOT" rev-parse --git-dir >/dev/null 2>&1; then
		(cd "$ROOT" && git ls-files -z --cached --others --exclude-standard |
			tar --null --ignore-failed-read -T - -cf - 2>/dev/null) | tar -C "$clone" -xf -
	else
		tar -C "$ROOT" --exclude=./.demo -cf - . | tar -C "$clone" -xf -
	fi
	(cd "$ROOT" && find . -path ./.git -prune -o \( -name '*.o' -o -name '*.so' -o -path './sql/pg_courier--*.sql' \) -print0 |
		tar --null -T - -cf -) | tar -C "$clone" -xf -
	echo "clone: $clone (mode $(stat -c %a "$priv") on $(dirname "$clone"), owner $(stat -c %U "$priv"))"
	# Debian's pg_buildext builds (from a clean tree, as this is before the demo
	# builds in it) and runs installcheck in a directory of its own
	if bash "$clone/test/packaging/vpath.sh" "$PG_CONFIG_BIN" >"$out/vpath.log" 2>&1; then
		pass "a VPATH build (pg_buildext's way) builds and declares every regress test and spec"
	else
		tail -20 "$out/vpath.log"
		fail "a VPATH build (pg_buildext's way): $out/vpath.log"
	fi
	if [ "$(id -u)" -eq 0 ] && runuser -u postgres -- test -x "$clone" 2>/dev/null; then
		fail "the server user can enter the private folder: this suite tests nothing"
	fi

	env DEMO_DIR="$out/demo" make -C "$clone" demo >"$out/demo.log" 2>&1
	rc=$?
	if [ "$rc" -eq 0 ] && grep -q '^tour done' "$out/demo.log"; then
		pass "make demo from the private clone takes the whole tour"
	else
		tail -30 "$out/demo.log"
		fail "make demo from the private clone (exit status $rc; $out/demo.log)"
	fi
	no_permission_errors "$out/demo.log" "make demo"
	if env DEMO_DIR="$out/demo" make -C "$clone" demo-stop >"$out/demo-stop.log" 2>&1 &&
		[ ! -f "$out/demo/data/postmaster.pid" ]; then
		pass "make demo-stop stops the demo cluster"
	else
		cat "$out/demo-stop.log"
		fail "make demo-stop"
	fi

	env SUITES=smoke TEST_RUN_DIR="$out/run" make -C "$clone" test >"$out/test.log" 2>&1
	rc=$?
	local last
	last=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$out/test.log" | tail -1)
	if [ "$rc" -eq 0 ] && grep -qE '^[1-9][0-9]* passed, 0 failed$' <<<"$last"; then
		pass "make test (smoke suite) from the private clone: $last"
	else
		tail -40 "$out/test.log"
		fail "make test (smoke suite) from the private clone (exit status $rc; $out/test.log)"
	fi
	no_permission_errors "$out/test.log" "make test"
	rm -rf "$priv"
	echo "clone tests: $ok passed, $bad failed"
	[ "$bad" -eq 0 ]
}

# the pgTAP cluster: no worker (the files drive everything themselves), and
# small shared-memory limits, so that api.sql reaches courier.max_topics and
# max_groups in a few dozen creations (it loops up to whatever they are)
PGTAP_CONF="courier.worker = off
courier.max_topics = 32
courier.max_groups = 128"

list_tests() {	# list_tests DIR EXT: test names in a directory
	(cd "$RUN/$1" && ls -- *."$2" 2>/dev/null | sed "s/\.$2\$//" | sort | tr '\n' ' ')
}

# run_suite SUITE: one suite, counted by tally
run_suite() {
	local suite=$1
	SUITE_START=$SECONDS
	case "$suite" in
	regress)
		note "pg_regress (make installcheck, REGRESS): test/sql -> expected/"
		tests=$(list_tests test/sql sql)
		read -r ok bad < <(run_installcheck regress ISOLATION= REGRESS="$tests")
		report_installcheck regress
		tally regress "$ok" "$bad" "$(wc -w <<<"$tests") files"
		;;
	isolation)
		note "isolation (make installcheck, ISOLATION): test/specs -> expected/"
		specs=$(list_tests test/specs spec)
		read -r ok bad < <(run_installcheck isolation REGRESS= ISOLATION="$specs")
		report_installcheck isolation
		perms=$(cat "$RUN"/isolation/results/*.out 2>/dev/null | grep -c '^starting permutation')
		tally isolation "$ok" "$bad" "$(wc -w <<<"$specs") specs, $perms permutations"
		;;
	tap)
		note "TAP (test/t, as make prove_installcheck runs them)"
		TAP_OK=0; TAP_BAD=0; TAP_ASSERTS=0
		picked=()
		for t in test/t/*.pl; do
			[ -e "$t" ] || continue
			if [ -n "${TAP:-}" ]; then	# TAP="013 030": only scripts whose name starts so
				pick=0
				for p in ${TAP:-}; do case "$(basename "$t")" in "$p"*) pick=1 ;; esac; done
				[ "$pick" -eq 1 ] || continue
			fi
			picked+=("$t")
		done
		[ "${#picked[@]}" -eq 0 ] || run_tap_scripts "${picked[@]}"
		tally tap "$TAP_OK" "$TAP_BAD" "$((TAP_OK + TAP_BAD)) scripts, $TAP_ASSERTS assertions"
		;;
	pgtap)
		note "pgTAP (pg_prove): the SQL API contract and the privilege matrix"
		make_pguser_dir "$RUN/pgtap"
		if start_cluster "$RUN/pgtap/cluster" "$PGTAP_CONF"; then
			dsn="host=$RUN/pgtap/cluster port=5432 user=postgres dbname=postgres"
			run_as_pguser psql -X -q "$dsn" -c 'CREATE EXTENSION pg_courier CASCADE' -c 'CREATE EXTENSION pgtap' \
				>"$RUN/pgtap/setup.log" 2>&1 || cat "$RUN/pgtap/setup.log"
			read -r ok bad files < <(run_pg_prove pgtap "$RUN/pgtap/cluster" "$RUN"/test/pgtap/*.sql "$RUN/test/sql/privilege_matrix.sql")
			grep -vE '^\s*ok [0-9]+' "$RUN/pgtap/pg_prove.log" | tail -40
			server_log_clean "$RUN/pgtap/cluster" || { echo "the server log has an internal error or a crash"; bad=$((bad + 1)); }
			stop_cluster "$RUN/pgtap/cluster"
		else
			ok=0; bad=1; files=0
		fi
		tally pgtap "$ok" "$bad" "$files files, counted by assertion"
		;;
	examples)
		note "examples: Python and Node.js workers, the outbox producer, oncall.sql"
		make_pguser_dir "$RUN/examples-run"
		run_as_pguser env NPM_CONFIG_CACHE="$RUN/examples-run/npm-cache" \
			bash "$RUN/test/examples/run.sh" "$RUN/examples-run" >"$RUN/examples.log" 2>&1
		rc=$?
		grep -E '^(== |ok - |not ok - |  )' "$RUN/examples.log"
		count_suite examples "$RUN/examples.log" "$rc" \
			"$(grep -cE '^(ok|not ok) - ' "$RUN/examples.log") checks: the Python and Node.js workers, the outbox producer, oncall.sql"
		;;
	clone)
		note "clone: make demo and make test from a copy in a 0700 folder (mktemp -d)"
		run_clone_suite "$RUN/clone" >"$RUN/clone.log" 2>&1
		rc=$?
		grep -E '^(clone: |ok - |not ok - )' "$RUN/clone.log"
		count_suite clone "$RUN/clone.log" "$rc" "$(grep -cE '^(ok|not ok) - ' "$RUN/clone.log") checks"
		;;
	smoke)
		note "smoke: one file of each kind (what the clone suite runs)"
		ok=0; bad=0
		read -r o b < <(run_installcheck regress ISOLATION= REGRESS=send_receive)
		report_installcheck regress
		ok=$((ok + o)); bad=$((bad + b))
		read -r o b < <(run_installcheck isolation REGRESS= ISOLATION=two_receivers)
		report_installcheck isolation
		ok=$((ok + o)); bad=$((bad + b))
		TAP_OK=0; TAP_BAD=0; TAP_ASSERTS=0
		run_tap_scripts test/t/001_preload.pl
		ok=$((ok + TAP_OK)); bad=$((bad + TAP_BAD))
		make_pguser_dir "$RUN/pgtap"
		if start_cluster "$RUN/pgtap/cluster" "$PGTAP_CONF"; then
			dsn="host=$RUN/pgtap/cluster port=5432 user=postgres dbname=postgres"
			run_as_pguser psql -X -q "$dsn" -c 'CREATE EXTENSION pg_courier CASCADE' -c 'CREATE EXTENSION pgtap' >/dev/null 2>&1
			read -r o b f < <(run_pg_prove pgtap "$RUN/pgtap/cluster" "$RUN/test/pgtap/api.sql")
			tail -3 "$RUN/pgtap/pg_prove.log"
			if [ "$b" -eq 0 ]; then ok=$((ok + 1)); else bad=$((bad + 1)); fi
			stop_cluster "$RUN/pgtap/cluster"
		else
			bad=$((bad + 1))
		fi
		tally smoke "$ok" "$bad" "regress send_receive, isolation two_receivers, TAP 001_preload, pgTAP api.sql"
		;;
	filter)
		note "filter engine"
		out=$(run_as_pguser bash "$RUN/test/filter/run.sh" "$RUN/test/compat/rocketmq-filter-vectors.json" 2>&1)
		rc=$?
		echo "$out" | tail -20
		builds=$(echo "$out" | grep -cE '^== .*(-O|sanitize)')
		echo "$out" >"$RUN/filter.log"
		count_suite filter "$RUN/filter.log" "$rc" \
			"checks: the RocketMQ vectors and unit tests in $builds builds, plus compile checks"
		;;
	fuzz)
		fuzz_secs=$(( (FUZZ_SECONDS + FUZZ_JOBS - 1) / FUZZ_JOBS ))
		note "fuzzing the filter parser for ${FUZZ_SECONDS}s (${FUZZ_JOBS} processes of ${fuzz_secs}s)"
		run_as_pguser env FUZZ_WORKDIR="$RUN/fuzz" bash "$RUN/test/fuzz/run.sh" "$fuzz_secs" "$FUZZ_JOBS" \
			>"$RUN/fuzz.log" 2>&1
		rc=$?
		tail -15 "$RUN/fuzz.log"
		if [ "$rc" -eq 0 ]; then ok=1; bad=0; else ok=0; bad=1; fi
		tally fuzz "$ok" "$bad" "$FUZZ_JOBS libFuzzer process(es) of ${fuzz_secs} s, $(sed -nE 's/^fuzz: [A-Z]+ \(([0-9]+) runs.*/\1/p' "$RUN/fuzz.log" | tail -1) inputs"
		;;
	chaos)
		note "chaos: load, faults and the exact checker (${CHAOS_SECONDS:-20}s per scenario)"
		make_pguser_dir "$RUN/chaos"
		run_as_pguser env CHAOS_SECONDS="${CHAOS_SECONDS:-20}" CHAOS_SEED="${CHAOS_SEED:-}" \
			bash "$RUN/test/chaos/run.sh" "$RUN/chaos" >"$RUN/chaos.log" 2>&1
		rc=$?
		grep -E '^(== chaos|chaos: |chaos summary|ok - |not ok - |  [a-z-]+: [0-9]+$)' "$RUN/chaos.log"
		count_suite chaos "$RUN/chaos.log" "$rc" "scenarios of ${CHAOS_SECONDS:-20} s, each checked message by message"
		;;
	xmin)
		note "xmin: the load while the xmin horizon is held (${XMIN_SECONDS:-12}s per run)"
		make_pguser_dir "$RUN/xmin"
		run_as_pguser env XMIN_SECONDS="${XMIN_SECONDS:-12}" \
			bash "$RUN/test/xmin/run.sh" "$RUN/xmin" >"$RUN/xmin.log" 2>&1
		rc=$?
		grep -E '^(== xmin|xmin: |xmin summary|  |ok - |not ok - )' "$RUN/xmin.log"
		count_suite xmin "$RUN/xmin.log" "$rc" "checks over 3 runs of ${XMIN_SECONDS:-12} s"
		;;
	ha)
		note "ha: a Patroni cluster of three under the chaos load, two leader crashes"
		make_pguser_dir "$RUN/ha"
		run_as_pguser env CHAOS_SEED="${CHAOS_SEED:-}" HA_PORT_BASE="${HA_PORT_BASE:-56700}" \
			bash "$RUN/test/ha/run.sh" "$RUN/ha/run" >"$RUN/ha.log" 2>&1
		rc=$?
		grep -E '^(ha: |ok - |not ok - |chaos summary|#[0-9])' "$RUN/ha.log" | grep -v '^ha: failover [0-9]: cluster'
		count_suite ha "$RUN/ha.log" "$rc" "checks"
		;;
	sqlfuzz)
		note "sqlfuzz: sqlsmith and generated calls of every public function"
		run_as_pguser env SQLSMITH_QUERIES="${SQLSMITH_QUERIES:-10000}" SQLSMITH_SECONDS="${SQLSMITH_SECONDS:-40}" \
			SQLSMITH_SEED="${SQLSMITH_SEED:-}" SQLFUZZ_SEED="${SQLFUZZ_SEED:-}" \
			bash "$RUN/test/sqlfuzz/run.sh" "$RUN/sqlfuzz" >"$RUN/sqlfuzz.log" 2>&1
		rc=$?
		grep -vE '^\s*$' "$RUN/sqlfuzz.log" | tail -40
		count_suite sqlfuzz "$RUN/sqlfuzz.log" "$rc" "checks (sqlsmith run, generated calls, afterwards checks)"
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
			printf -- '-- citus: skipped (%s; %d s)\n' "no citus.so" "$((SECONDS - SUITE_START))"
			SUMMARY+=("$(printf '%-10s %6s %6s %5d s  %s' citus - - "$((SECONDS - SUITE_START))" "skipped: no citus.so")")
			COUNTED+=(citus)
		else
			count_suite citus "$RUN/citus.log" "$rc" "checks: coordinator and two workers"
		fi
		;;
	bench)
		note "bench smoke: every workload briefly, books checked (no timings asserted)"
		BENCH_DIR="$RUN/bench" BENCH_NPM_DIR=${BENCH_NPM_DIR:-/tmp/pg_courier-bench-npm} bash "$ROOT/bench/run.sh" smoke >"$RUN/bench.log" 2>&1
		rc=$?
		grep -E '^bench: |NOT BALANCED|all balanced|SKIPPING' "$RUN/bench.log"
		if [ "$rc" -eq 0 ]; then tally bench 1 0 "1 smoke run of every workload, books balanced"; else tail -40 "$RUN/bench.log"; tally bench 0 1 "1 smoke run of every workload"; fi
		;;
	*)
		echo "unknown suite $suite"
		tally "$suite" 0 1 "unknown suite"
		;;
	esac
}

# run_side_by_side SUITE...: the suites at once (SUITES names them "a+b"),
# each in a subshell with its output in a file; then their output in the
# order given and their counts added to ours (one whose counts did not come
# back is counted failed after the loop).  Only suites that share no
# directory, port or cluster are paired so (see SUITES above).
run_side_by_side() {
	local s pids=() v
	for s in "$@"; do
		rm -f "$RUN/side.$s.vars" "$RUN/side.$s.vars.tmp" "$RUN/side.$s.out"
		(
			PASSED=0; FAILED=0; SKIPPED=0; SUMMARY=(); FAILED_NAMES=(); FAILED_DETAIL=(); COUNTED=()
			run_suite "$s"
			for v in PASSED FAILED SKIPPED SUMMARY FAILED_NAMES FAILED_DETAIL COUNTED; do
				declare -p "$v" | sed -E "s/^declare -([-a-zA-Z]+) $v=/declare -g -\1 SIDE_$v=/"
			done >"$RUN/side.$s.vars.tmp"
			echo "declare -g SIDE_DONE=1" >>"$RUN/side.$s.vars.tmp"
			mv "$RUN/side.$s.vars.tmp" "$RUN/side.$s.vars"	# whole, or not there
		) >"$RUN/side.$s.out" 2>&1 &
		pids+=($!)
	done
	wait "${pids[@]}"
	for s in "$@"; do
		cat "$RUN/side.$s.out"
		unset SIDE_DONE SIDE_PASSED SIDE_FAILED SIDE_SKIPPED SIDE_SUMMARY SIDE_FAILED_NAMES SIDE_FAILED_DETAIL SIDE_COUNTED
		[ -s "$RUN/side.$s.vars" ] && . "$RUN/side.$s.vars"
		if [ "${SIDE_DONE:-0}" = 1 ]; then
			PASSED=$((PASSED + SIDE_PASSED)); FAILED=$((FAILED + SIDE_FAILED)); SKIPPED=$((SKIPPED + SIDE_SKIPPED))
			SUMMARY+=("${SIDE_SUMMARY[@]}")
			FAILED_NAMES+=("${SIDE_FAILED_NAMES[@]}")
			FAILED_DETAIL+=("${SIDE_FAILED_DETAIL[@]}")
			COUNTED+=("${SIDE_COUNTED[@]}")
		else
			echo "-- $s: ended without its counts"
		fi
	done
}

for group in $SUITES; do
	case "$group" in
	*+*) run_side_by_side ${group//+/ } ;;
	*) run_suite "$group" ;;
	esac
done

# a suite that never reached tally (a shell error ended it, or the loop) is
# a failure, never a silent gap
for s in $SUITE_LIST; do
	case " ${COUNTED[*]} " in *" $s "*) continue ;; esac
	echo "-- $s: did not finish (no count)"
	FAILED=$((FAILED + 1)); FAILED_NAMES+=("$s")
	SUMMARY+=("$(printf '%-10s %6d %6d %5s    %s' "$s" 0 1 - "did not finish")")
done

echo
echo "== summary ($((SECONDS - T0)) s in all)"
printf '%-10s %6s %6s %7s  %s\n' suite passed failed time "what ran (the unit of passed/failed first)"
printf '%s\n' "${SUMMARY[@]}"
echo
[ ${#FAILED_NAMES[@]} -gt 0 ] && echo "failed suites: ${FAILED_NAMES[*]}"
[ ${#FAILED_DETAIL[@]} -gt 0 ] && printf '  %s\n' "${FAILED_DETAIL[@]}"
# the last line is always "N passed, N failed" (CI reads it); skipped suites
# are named just before
[ "$SKIPPED" -gt 0 ] && echo "skipped: $SKIPPED suite(s) that cannot run here (see the table)"
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
