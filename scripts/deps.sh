#!/usr/bin/env bash
# Installs the system tools weir and its tests use, only where missing.
# Usage: scripts/deps.sh [run|test]
#   run  — what `weir serve` needs (ffmpeg/ffprobe)
#   test — that plus the interop peers and servers the tests start
set -euo pipefail
mode=${1:-test}

need=()
want() { # want COMMAND PACKAGE
	command -v "$1" >/dev/null 2>&1 || need+=("$2")
}
want ffmpeg ffmpeg
want ffprobe ffmpeg
if [ "$mode" = test ]; then
	want kcat kcat
	[ -x /usr/lib/postgresql/15/bin/initdb ] || need+=(postgresql)
	want psql postgresql-client
	want dot graphviz
fi

if [ ${#need[@]} -gt 0 ]; then
	echo "deps: installing ${need[*]}" >&2
	sudo=""
	[ "$(id -u)" = 0 ] || sudo="sudo"
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if [ "$mode" = test ] && [ -x scripts/s3-server.sh ]; then
	scripts/s3-server.sh install
fi
