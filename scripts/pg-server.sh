#!/usr/bin/env bash
# pg-server.sh: a throwaway PostgreSQL 15 cluster for weir's tests and for
# local development of the PostgreSQL metadata store.
#
#   scripts/pg-server.sh start DIR PORT   initdb DIR/data if it is missing (trust
#                                         authentication, user postgres), start
#                                         postgres on 127.0.0.1:PORT with its
#                                         Unix socket in DIR and its log in
#                                         DIR/postgres.log, wait until it accepts
#                                         connections, and print its URL
#   scripts/pg-server.sh stop DIR         fast shutdown of the cluster in DIR
#                                         (the data stays; rm -rf DIR to drop it)
#   scripts/pg-server.sh status DIR       say whether it runs, and its URL
#   scripts/pg-server.sh env DIR          print `export WEIR_TEST_POSTGRES_URL=...`
#
# With WEIR_TEST_POSTGRES_URL exported, tests create their databases on this
# server instead of starting a cluster per test process:
#   scripts/pg-server.sh start /tmp/weir-pg 55432
#   eval "$(scripts/pg-server.sh env /tmp/weir-pg)"
#   go test ./internal/metastore/...
#
# The cluster is tuned for speed, not safety (fsync off): never keep data you
# care about in it. PostgreSQL refuses to run as root, so as root initdb and
# postgres run as the postgres OS user, DIR is chowned to it, and every
# directory above DIR must be searchable by it. The binaries come from
# /usr/lib/postgresql/15/bin (Debian's postgresql-15) unless
# WEIR_TEST_POSTGRES_BIN names another directory. Unlike the per-process
# cluster of internal/testenv, this server keeps running until `stop`.
set -euo pipefail

BIN=${WEIR_TEST_POSTGRES_BIN:-/usr/lib/postgresql/15/bin}

die() { echo "pg-server.sh: $*" >&2; exit 1; }

usage() {
	sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

# as_pg runs a command as the user that owns the cluster.
as_pg() {
	if [[ $(id -u) -eq 0 ]]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

check_bin() {
	for b in initdb pg_ctl postgres; do
		[[ -x "$BIN/$b" ]] || die "$BIN/$b not found: install postgresql-15 (make test does) or set WEIR_TEST_POSTGRES_BIN"
	done
}

url_for() { echo "postgres://postgres@127.0.0.1:$1/postgres?sslmode=disable"; }

# port_of prints the port recorded by start.
port_of() {
	[[ -f "$1/port" ]] || die "no cluster started in $1 (no $1/port)"
	cat "$1/port"
}

running() { as_pg "$BIN/pg_ctl" -D "$1/data" status >/dev/null 2>&1; }

cmd_start() {
	local dir=$1 port=$2
	[[ "$port" =~ ^[0-9]+$ ]] && ((port > 0 && port < 65536)) || die "bad port $port"
	check_bin
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	if [[ $(id -u) -eq 0 ]]; then
		id postgres >/dev/null 2>&1 || die "running as root, but there is no postgres user to run PostgreSQL as"
		chown postgres: "$dir"
		chmod 700 "$dir"
		runuser -u postgres -- test -w "$dir" ||
			die "the postgres user cannot reach $dir: every directory above it must be searchable (o+x)"
	fi
	if [[ -f "$dir/data/PG_VERSION" ]] && running "$dir"; then
		local old
		old=$(port_of "$dir")
		[[ "$old" == "$port" ]] || die "a cluster already runs in $dir on port $old"
		url_for "$port"
		return 0
	fi
	if [[ ! -f "$dir/data/PG_VERSION" ]]; then
		as_pg env LC_ALL=C LANG=C "$BIN/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 \
			--locale=C --no-sync --no-instructions >"$dir/initdb.log" 2>&1 ||
			die "initdb failed; see $dir/initdb.log"
	fi
	echo "$port" >"$dir/port"
	as_pg env LC_ALL=C LANG=C "$BIN/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 \
		-o "-p $port -h 127.0.0.1 -k $dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
		start >/dev/null || die "postgres did not start; see $dir/postgres.log"
	url_for "$port"
}

cmd_stop() {
	local dir=$1
	[[ -f "$dir/data/PG_VERSION" ]] || die "no cluster in $dir"
	if ! running "$dir"; then
		echo "pg-server.sh: not running in $dir"
		return 0
	fi
	as_pg "$BIN/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null
	echo "pg-server.sh: stopped $dir"
}

cmd_status() {
	local dir=$1
	if [[ -f "$dir/data/PG_VERSION" ]] && running "$dir"; then
		echo "running: $(url_for "$(port_of "$dir")")"
	else
		echo "not running"
		return 3
	fi
}

cmd_env() {
	echo "export WEIR_TEST_POSTGRES_URL='$(url_for "$(port_of "$1")")'"
}

case "${1:-}" in
start) [[ $# -eq 3 ]] || usage; cmd_start "$2" "$3" ;;
stop) [[ $# -eq 2 ]] || usage; cmd_stop "$2" ;;
status) [[ $# -eq 2 ]] || usage; cmd_status "$2" ;;
env) [[ $# -eq 2 ]] || usage; cmd_env "$2" ;;
*) usage ;;
esac
