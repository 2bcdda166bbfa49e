#!/usr/bin/env bash
# s3-server.sh: the S3 server weir's tests and docs use (versitygw, posix
# backend).
#
#   scripts/s3-server.sh install          go install versitygw if it is missing
#   scripts/s3-server.sh start DIR PORT   run it on 127.0.0.1:PORT with its data
#                                         in DIR/data; pid in DIR/versitygw.pid,
#                                         log in DIR/versitygw.log; returns once
#                                         the server answers
#   scripts/s3-server.sh stop DIR         stop the server started on DIR
#   scripts/s3-server.sh env DIR          print the WEIR_TEST_S3_* exports for it
#
# Credentials come from WEIR_TEST_S3_ACCESS_KEY / WEIR_TEST_S3_SECRET_KEY
# (default weirtest / weirtest-secret). Tests started with the printed
# environment use this server instead of starting their own.
set -euo pipefail

VERSION=v1.8.0
ACCESS_KEY=${WEIR_TEST_S3_ACCESS_KEY:-weirtest}
SECRET_KEY=${WEIR_TEST_S3_SECRET_KEY:-weirtest-secret}
REGION=${WEIR_TEST_S3_REGION:-us-east-1}

die() { echo "s3-server.sh: $*" >&2; exit 1; }

# find_bin prints the versitygw path: PATH, then GOBIN, then GOPATH/bin.
find_bin() {
	if command -v versitygw >/dev/null 2>&1; then
		command -v versitygw
		return 0
	fi
	command -v go >/dev/null 2>&1 || return 1
	local gobin gopath
	gobin=$(go env GOBIN)
	gopath=$(go env GOPATH)
	if [[ -n "$gobin" && -x "$gobin/versitygw" ]]; then
		echo "$gobin/versitygw"
		return 0
	fi
	local IFS=:
	for p in $gopath; do
		if [[ -x "$p/bin/versitygw" ]]; then
			echo "$p/bin/versitygw"
			return 0
		fi
	done
	return 1
}

cmd_install() {
	if bin=$(find_bin); then
		echo "versitygw already installed: $bin"
		return 0
	fi
	command -v go >/dev/null 2>&1 || die "go is not installed"
	echo "installing github.com/versity/versitygw/cmd/versitygw@$VERSION (this takes a few minutes)"
	go install "github.com/versity/versitygw/cmd/versitygw@$VERSION"
	bin=$(find_bin) || die "go install finished but versitygw is not in PATH, GOBIN or GOPATH/bin"
	echo "installed $bin"
}

# running DIR: true when the pid file names a live versitygw.
running() {
	local pidfile=$1/versitygw.pid pid
	[[ -f "$pidfile" ]] || return 1
	pid=$(<"$pidfile")
	[[ "$pid" =~ ^[0-9]+$ ]] || return 1
	kill -0 "$pid" 2>/dev/null || return 1
	grep -q versitygw "/proc/$pid/cmdline" 2>/dev/null || [[ ! -d /proc ]]
}

cmd_start() {
	[[ $# -eq 2 ]] || die "usage: start DIR PORT"
	local dir=$1 port=$2
	[[ "$port" =~ ^[0-9]+$ ]] || die "port $port is not a number"
	local bin
	bin=$(find_bin) || die "versitygw not found; run: scripts/s3-server.sh install"
	mkdir -p "$dir/data"
	dir=$(cd "$dir" && pwd)
	if running "$dir"; then
		die "already running with pid $(<"$dir/versitygw.pid"); stop it first: scripts/s3-server.sh stop $dir"
	fi
	# setsid detaches it from this shell's job control, so the caller
	# (make, CI) can exit and stop it later with the pid file.
	ROOT_ACCESS_KEY="$ACCESS_KEY" ROOT_SECRET_KEY="$SECRET_KEY" \
		setsid "$bin" --port "127.0.0.1:$port" --region "$REGION" --quiet \
		posix "$dir/data" >"$dir/versitygw.log" 2>&1 </dev/null &
	local pid=$!
	echo "$pid" >"$dir/versitygw.pid"
	local _
	for _ in $(seq 1 300); do
		if ! kill -0 "$pid" 2>/dev/null; then
			rm -f "$dir/versitygw.pid"
			cat "$dir/versitygw.log" >&2
			die "versitygw exited during startup (is port $port free?)"
		fi
		# Any HTTP answer (403 for an anonymous request) means it serves.
		if curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$port/"; then
			echo "versitygw $VERSION pid $pid on http://127.0.0.1:$port, data in $dir/data"
			return 0
		fi
		sleep 0.1
	done
	kill "$pid" 2>/dev/null || true
	rm -f "$dir/versitygw.pid"
	die "versitygw did not answer on port $port within 30 s; log: $dir/versitygw.log"
}

cmd_stop() {
	[[ $# -eq 1 ]] || die "usage: stop DIR"
	local dir=$1
	if ! running "$dir"; then
		rm -f "$dir/versitygw.pid"
		echo "not running"
		return 0
	fi
	local pid _
	pid=$(<"$dir/versitygw.pid")
	kill "$pid"
	for _ in $(seq 1 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		kill -9 "$pid" 2>/dev/null || true
	fi
	rm -f "$dir/versitygw.pid"
	echo "stopped pid $pid"
}

cmd_env() {
	[[ $# -eq 1 ]] || die "usage: env DIR"
	running "$1" || die "no server running for $1"
	local pid port
	pid=$(<"$1/versitygw.pid")
	port=$(tr '\0' '\n' <"/proc/$pid/cmdline" | sed -n 's/^127\.0\.0\.1:\([0-9]*\)$/\1/p' | head -1)
	[[ -n "$port" ]] || die "cannot tell the port of pid $pid"
	echo "export WEIR_TEST_S3_ENDPOINT=http://127.0.0.1:$port"
	echo "export WEIR_TEST_S3_ACCESS_KEY=$ACCESS_KEY"
	echo "export WEIR_TEST_S3_SECRET_KEY=$SECRET_KEY"
	echo "export WEIR_TEST_S3_REGION=$REGION"
}

case "${1:-}" in
install) shift; cmd_install "$@" ;;
start) shift; cmd_start "$@" ;;
stop) shift; cmd_stop "$@" ;;
env) shift; cmd_env "$@" ;;
*) sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0" >&2; exit 2 ;;
esac
