#!/usr/bin/env bash
# Installs the system tools weir and its tests use, only where missing.
# Usage: scripts/deps.sh [run|test]
#   run  — what `weir serve` needs (ffmpeg/ffprobe, the built-in engines'
#          programs and models), and npm to fetch the console's player and
#          the API docs' renderer at build time
#   test — that plus the interop peers and servers the tests start, and
#          Chromium for the console's browser test
set -euo pipefail
mode=${1:-test}

need=()
want() { # want COMMAND PACKAGE
	command -v "$1" >/dev/null 2>&1 || need+=("$2")
}
want_pkg() { # want_pkg PACKAGE: a Debian package with no command of its own
	command -v dpkg-query >/dev/null 2>&1 || return 0
	dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed' || need+=("$1")
}
want ffmpeg ffmpeg
want ffprobe ffmpeg
want node nodejs
want npm npm
want kcat kcat # the README's tour and the ingest benchmark use it
# The ocr engine: Tesseract 5 and its English model.
want tesseract tesseract-ocr
want_pkg tesseract-ocr-eng
# The stt engine: PocketSphinx and its US English model.
want pocketsphinx_batch pocketsphinx
want_pkg pocketsphinx-en-us
# The fingerprint engine and the fingerprint library: Chromaprint's fpcalc.
want fpcalc libchromaprint-tools
if [ "$mode" = test ]; then
	want chromium chromium
	[ -x /usr/lib/postgresql/15/bin/initdb ] || need+=(postgresql)
	want psql postgresql-client
	want curl curl # the gzip test compares with curl --compressed
	want dot graphviz
	want_pkg fonts-dejavu-core # the ocr engine's tests draw captions in DejaVu faces
	want espeak-ng espeak-ng # spoken test sentences for the stt engine
	want prometheus prometheus # the dashboard and alert rules test (deploy/)
	want promtool prometheus
	# The example engines (examples/): Python with OpenCV, the Kafka
	# client, the Haar cascades, and OpenCV's sample media (vtest.avi,
	# messi5.jpg) they are tested on. internal/bus runs the Kafka client
	# (python3-confluent-kafka) as a consumer group member too.
	for pkg in python3-opencv python3-numpy python3-confluent-kafka opencv-data opencv-doc; do
		want_pkg "$pkg"
	done
fi

if [ ${#need[@]} -gt 0 ]; then
	echo "deps: installing ${need[*]}" >&2
	sudo=""
	[ "$(id -u)" = 0 ] || sudo="sudo"
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# The console's browser test plays through the bundled hls.js, and the API
# docs test renders /docs with the bundled Stoplight Elements.
if [ "$mode" = test ]; then
	scripts/fetch-vendor.sh
fi

if [ "$mode" = test ] && [ -x scripts/s3-server.sh ]; then
	scripts/s3-server.sh install
fi
