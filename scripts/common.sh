#!/usr/bin/env bash
# Shared by scripts/demo.sh, test/run.sh and bench/run.sh: finding PostgreSQL 15,
# installing what is missing (Debian 12), building, and running things as an
# unprivileged user (PostgreSQL refuses to run as root).

PG_MAJOR=15
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# sudo when we are not root (and nothing when we are)
as_root() {
	if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# ensure_packages PKG...: apt-get install the Debian packages that are missing.
ensure_packages() {
	local missing=()
	local p
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	echo "installing: ${missing[*]}"
	as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null || return 1
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		"${missing[@]}" >/dev/null || return 1
}

# The build needs a compiler, make and the server headers.
ensure_build_deps() {
	ensure_packages ca-certificates make gcc libc6-dev "postgresql-$PG_MAJOR" "postgresql-server-dev-$PG_MAJOR"
}

# Node.js and npm (the examples' test): Debian's, unless some are there already.
ensure_node() {
	command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 && return 0
	ensure_packages nodejs npm
}

# PG_BINDIR may point at a private, relocated copy of the installation (so
# that several checkouts can build, install and test side by side).
pg_bindir() {
	echo "${PG_BINDIR:-/usr/lib/postgresql/$PG_MAJOR/bin}"
}

# Build and install the extension into the PostgreSQL 15 installation.
build_and_install() {
	local pgc
	pgc="$(pg_bindir)/pg_config"
	make -C "$ROOT" -s -j"$(nproc)" PG_CONFIG="$pgc" >/dev/null || return 1
	# install -C leaves files that did not change alone: a suite that
	# reinstalls the same build (bench) must not replace pg_courier.so (a
	# new inode, missing for a moment) under a cluster another suite runs
	as_root make -C "$ROOT" -s PG_CONFIG="$pgc" CUSTOM_INSTALL='/usr/bin/install -C' install >/dev/null || return 1
}

# The user that runs servers: ourselves, or "postgres" when we are root.
pg_user() {
	if [ "$(id -u)" -eq 0 ]; then echo postgres; else id -un; fi
}

# run_as_pguser CMD...: run a command as pg_user, keeping PATH and the given env.
run_as_pguser() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u postgres -- env PATH="$(pg_bindir):$PATH" "$@"
	else
		env PATH="$(pg_bindir):$PATH" "$@"
	fi
}

# A fresh directory that pg_user owns.
make_pguser_dir() {
	local dir=$1
	rm -rf "$dir"
	mkdir -p "$dir"
	if [ "$(id -u)" -eq 0 ]; then chown -R postgres: "$dir"; fi
}
