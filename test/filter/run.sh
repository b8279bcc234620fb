#!/usr/bin/env bash
# test/filter/run.sh [VECTORS.json]
#
# Unit tests of the filter library (src/filter.c), outside the server:
# builds test/filter/filter_test.c with `cc -std=c99 -Wall -Wextra -Werror`
# (plus PostgreSQL's own warning flags), runs it over every RocketMQ vector
# and our own tests, then does the same with -fsanitize=address,undefined
# when the compiler supports it.  It also checks that filter.c compiles
# cleanly with gcc and clang when they are installed.
#
# Builds go to a temporary directory.  The sources are found next to this
# script (../../src), or in $FILTER_SRC_DIR.  The last line printed is
# "filter tests: N passed, M failed" (summed over the builds); the exit
# status is non-zero when anything failed.

set -u

here=$(cd "$(dirname "$0")" && pwd)
src=${FILTER_SRC_DIR:-$here/../../src}
vectors=${1:-$here/../compat/rocketmq-filter-vectors.json}
cc=${CC:-cc}

if [ ! -f "$src/filter.c" ] || [ ! -f "$src/filter.h" ]; then
	echo "cannot find filter.c and filter.h in $src (set FILTER_SRC_DIR)"
	echo "filter tests: 0 passed, 1 failed"
	exit 1
fi
if [ ! -f "$vectors" ]; then
	echo "cannot read the vectors file $vectors"
	echo "filter tests: 0 passed, 1 failed"
	exit 1
fi
if ! command -v "$cc" >/dev/null 2>&1; then
	echo "no C compiler ($cc)"
	echo "filter tests: 0 passed, 1 failed"
	exit 1
fi

out=$(mktemp -d "${TMPDIR:-/tmp}/filter-test.XXXXXX") || exit 1
trap 'rm -rf "$out"' EXIT

# The warnings of the PostgreSQL build (pg_config --cflags), minus what
# only gcc knows.
warn="-std=c99 -Wall -Wextra -Werror -Wmissing-prototypes -Wpointer-arith
	-Wdeclaration-after-statement -Werror=vla -Wendif-labels
	-Wmissing-format-attribute -Wimplicit-fallthrough -Wformat-security
	-Wshadow"

passed=0
failed=0

# run_build NAME CFLAGS...: build the driver and run it
run_build() {
	local name=$1
	shift
	echo "== $name"
	# shellcheck disable=SC2086
	if ! "$cc" $warn "$@" -I"$src" -o "$out/filter_test" "$src/filter.c" "$here/filter_test.c" \
		>"$out/build.log" 2>&1; then
		cat "$out/build.log"
		echo "build failed"
		failed=$((failed + 1))
		return
	fi
	cat "$out/build.log"
	"$out/filter_test" "$vectors" >"$out/run.log" 2>&1
	local rc=$?
	cat "$out/run.log"
	local line ok bad
	line=$(grep -E '^filter tests: [0-9]+ passed, [0-9]+ failed' "$out/run.log" | tail -1)
	if [ -n "$line" ]; then
		ok=$(echo "$line" | sed -E 's/^filter tests: ([0-9]+) passed.*/\1/')
		bad=$(echo "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/')
	else
		ok=0
		bad=1
	fi
	if [ "$rc" -ne 0 ] && [ "$bad" -eq 0 ]; then
		echo "the test driver exited with status $rc"
		bad=1
	fi
	passed=$((passed + ok))
	failed=$((failed + bad))
}

run_build "$cc -O2" -O2

# Sanitizers, if this compiler has them.
if echo 'int main(void){return 0;}' >"$out/probe.c" &&
	"$cc" -fsanitize=address,undefined -o "$out/probe" "$out/probe.c" >/dev/null 2>&1 &&
	"$out/probe"; then
	ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0} \
	UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
		run_build "$cc -O1 -fsanitize=address,undefined" -O1 -g -fno-omit-frame-pointer \
		-fsanitize=address,undefined -fno-sanitize-recover=all
else
	echo "== sanitizers not available with $cc: skipped"
fi

# filter.c must also compile cleanly with the other compiler.
for other in gcc clang clang-14; do
	command -v "$other" >/dev/null 2>&1 || continue
	echo "== compile check: $other"
	# shellcheck disable=SC2086
	if "$other" $warn -O2 -I"$src" -c -o "$out/filter.o" "$src/filter.c"; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
	fi
done

echo "filter tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
