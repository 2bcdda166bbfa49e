#!/usr/bin/env bash
# Fetches the hls.js player the web console embeds, from the npm registry,
# into internal/console/static/vendor/hls.min.js (gitignored: its code is
# not part of this repository). The version and the tarball's integrity are
# pinned here; a tarball that does not match is refused.
# Usage: scripts/fetch-hlsjs.sh [--force]
set -euo pipefail

version=1.6.15
integrity='sha512-E3a5VwgXimGHwpRGV+WxRTKeSp2DW5DI5MWv34ulL3t5UNmyJWCQ1KmLEHbYzcfThfXG8amBL+fCYPneGHC4VA=='

root=$(cd "$(dirname "$0")/.." && pwd)
dest="$root/internal/console/static/vendor/hls.min.js"
if [ -s "$dest" ] && [ "${1:-}" != --force ]; then
	exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
	echo "fetch-hlsjs: npm is missing; scripts/deps.sh run installs it" >&2
	exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "fetch-hlsjs: hls.js@$version from the npm registry" >&2
(cd "$tmp" && npm pack --silent "hls.js@$version" >/dev/null 2>"$tmp/npm.log") || {
	cat "$tmp/npm.log" >&2
	echo "fetch-hlsjs: npm pack hls.js@$version failed" >&2
	exit 1
}
tarball="$tmp/hls.js-$version.tgz"
if [ ! -f "$tarball" ]; then
	echo "fetch-hlsjs: npm pack did not produce $(basename "$tarball")" >&2
	exit 1
fi
got=$(node -e 'const c = require("crypto"), fs = require("fs");
process.stdout.write("sha512-" + c.createHash("sha512").update(fs.readFileSync(process.argv[1])).digest("base64"));' "$tarball")
if [ "$got" != "$integrity" ]; then
	echo "fetch-hlsjs: integrity mismatch for hls.js@$version: got $got, want $integrity" >&2
	exit 1
fi
tar -xzf "$tarball" -C "$tmp" package/dist/hls.min.js
mkdir -p "$(dirname "$dest")"
# Write beside the destination and rename, so an interrupted fetch never
# leaves a truncated player behind.
cp "$tmp/package/dist/hls.min.js" "$dest.tmp"
mv "$dest.tmp" "$dest"
echo "fetch-hlsjs: wrote ${dest#"$root"/} ($(wc -c <"$dest") bytes)" >&2
