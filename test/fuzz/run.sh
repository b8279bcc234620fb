#!/usr/bin/env bash
# test/fuzz/run.sh [SECONDS [JOBS]]
#
# Fuzz the filter library (src/filter.c) with libFuzzer for SECONDS seconds
# (default 60) in JOBS processes at once (default 1; each with its own seed,
# all sharing one corpus, so two jobs of 20 s cover about what one of 40 s
# does on a machine with two idle cores): builds test/fuzz/fuzz_filter.c with
# `clang -g -O1 -fsanitize=fuzzer,address,undefined` and runs it over the
# seed corpus (test/fuzz/corpus) with -max_len=4096 -timeout=5
# -rss_limit_mb=2048 and leak detection on.
#
# Everything it writes (the binary, new corpus entries, crash artifacts, the
# log) goes to $FUZZ_WORKDIR, or a new temporary directory; never into the
# source tree.  Needs no root.  The sources are found next to this script
# (../../src) or in $FILTER_SRC_DIR.
#
# Exit status: 0 when nothing was found, 1 on any crash, leak, timeout or
# sanitizer report in any job, or when no input ran at all (or a build
# failure), 2 when clang or its fuzzer runtime is missing.  The last line is "fuzz: PASS (N runs)" or "fuzz: FAIL ...".

set -u

secs=${1:-60}
jobs=${2:-1}
here=$(cd "$(dirname "$0")" && pwd)
src=${FILTER_SRC_DIR:-$here/../../src}

case "$secs:$jobs" in
	:* | *: | *[!0-9:]* | *:0 | 0:*)
		echo "usage: $0 [SECONDS [JOBS]] (whole numbers >= 1)"
		echo "fuzz: FAIL (bad arguments)"
		exit 1
		;;
esac

clang=""
for c in ${CLANG:-} clang clang-14 clang-15 clang-16 clang-13; do
	if command -v "$c" >/dev/null 2>&1; then
		clang=$c
		break
	fi
done
if [ -z "$clang" ]; then
	echo "fuzz: clang is not installed; on Debian 12: apt-get install clang libclang-rt-14-dev"
	exit 2
fi
if [ ! -f "$src/filter.c" ]; then
	echo "cannot find filter.c in $src (set FILTER_SRC_DIR)"
	echo "fuzz: FAIL (no sources)"
	exit 1
fi

if [ -n "${FUZZ_WORKDIR:-}" ]; then
	work=$FUZZ_WORKDIR
	mkdir -p "$work" || { echo "fuzz: FAIL (cannot create $work)"; exit 1; }
else
	work=$(mktemp -d "${TMPDIR:-/tmp}/filter-fuzz.XXXXXX") || { echo "fuzz: FAIL (no temp dir)"; exit 1; }
fi
mkdir -p "$work/corpus" "$work/artifacts"
echo "fuzz: working in $work with $clang"

# Is the fuzzer runtime there?  (Debian: libclang-rt-14-dev)
cat >"$work/probe.c" <<'EOF'
#include <stddef.h>
#include <stdint.h>
int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);
int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void) d; (void) n; return 0; }
EOF
if ! "$clang" -fsanitize=fuzzer,address,undefined -o "$work/probe" "$work/probe.c" >"$work/probe.log" 2>&1; then
	cat "$work/probe.log"
	echo "fuzz: $clang cannot build a libFuzzer target; on Debian 12: apt-get install libclang-rt-14-dev"
	exit 2
fi

if ! "$clang" -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	-Wall -Wextra -Werror -std=c99 -I"$src" \
	-o "$work/fuzz_filter" "$here/fuzz_filter.c" "$src/filter.c" >"$work/build.log" 2>&1; then
	cat "$work/build.log"
	echo "fuzz: FAIL (build failed)"
	exit 1
fi

# New inputs go to $work/corpus; the seeds are only read.
seeds=()
[ -d "$here/corpus" ] && seeds=("$here/corpus")
# fuzz_job N: one libFuzzer process, its log in $work/fuzz.N.log
fuzz_job() {
	ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1} \
	UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1} \
		"$work/fuzz_filter" \
		-seed=$((${FUZZ_SEED:-$$} + $1)) \
		-max_total_time="$secs" -max_len=4096 -timeout=5 -rss_limit_mb=2048 \
		-detect_leaks=1 -print_final_stats=1 \
		-artifact_prefix="$work/artifacts/" \
		"$work/corpus" "${seeds[@]}" >"$work/fuzz.$1.log" 2>&1
}
rm -f "$work"/fuzz.*.log	# (a reused FUZZ_WORKDIR: no log of an earlier run)
pids=()
for j in $(seq 1 "$jobs"); do
	fuzz_job "$j" &
	pids+=($!)
done
report_re='ERROR: (AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|libFuzzer)|runtime error:|SUMMARY: |check failed|ALARM: working on the last Unit'
# per job: its exit status and report lines make it a bad job; its executed
# inputs add up
rc=0
runs=0
bad_jobs=()
for j in $(seq 1 "$jobs"); do
	st=0
	wait "${pids[$((j - 1))]}" || { st=$?; rc=$st; }
	if [ "$st" -ne 0 ] || grep -qE "$report_re" "$work/fuzz.$j.log"; then bad_jobs+=("$j"); fi
	n=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$work/fuzz.$j.log" | tail -1)
	[ -n "$n" ] || n=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$work/fuzz.$j.log" | tail -1)
	runs=$((runs + ${n:-0}))
done
cat "$work"/fuzz.*.log >"$work/fuzz.log"
reports=$(grep -E -c "$report_re" "$work/fuzz.log")
if [ "$rc" -eq 0 ] && [ "$reports" -eq 0 ] && [ "$runs" -gt 0 ]; then
	tail -5 "$work/fuzz.log"
	echo "fuzz: PASS ($runs runs)"
	exit 0
fi
# the failing jobs' logs last: CI may keep only the end of the output
if [ "${#bad_jobs[@]}" -gt 0 ]; then
	for j in "${bad_jobs[@]}"; do
		echo "---- fuzz job $j (last 60 lines of $work/fuzz.$j.log)"
		tail -60 "$work/fuzz.$j.log"
	done
else
	tail -60 "$work/fuzz.log"
fi
ls -l "$work/artifacts" 2>/dev/null
echo "fuzz: FAIL (exit status $rc, $reports reports, $runs runs; artifacts and log in $work)"
exit 1
