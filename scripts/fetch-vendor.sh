#!/usr/bin/env bash
# Fetches the browser code weir embeds but does not write, from the npm
# registry, at pinned versions whose tarball integrity is checked (a tarball
# that does not match is refused):
#   hls.js              the console's player  → internal/console/static/vendor/
#   @stoplight/elements the API docs at /docs → internal/api/docsui/vendor/
# Both destinations are gitignored: their code is not part of this
# repository. A binary built without them still works; see docs/console.md
# and docs/api.md for what changes.
# Usage: scripts/fetch-vendor.sh [--force]
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
force=${1:-}

# fetch PACKAGE VERSION INTEGRITY DEST_DIR FILE...
# copies package/FILE from the tarball to DEST_DIR/FILE (base name).
fetch() {
	local pkg=$1 version=$2 integrity=$3 dest=$4
	shift 4
	local f missing=0
	for f in "$@"; do
		[ -s "$dest/$(basename "$f")" ] || missing=1
	done
	if [ $missing = 0 ] && [ "$force" != --force ]; then
		return 0
	fi
	if ! command -v npm >/dev/null 2>&1; then
		echo "fetch-vendor: npm is missing; scripts/deps.sh run installs it" >&2
		exit 1
	fi
	local tmp
	tmp=$(mktemp -d)
	echo "fetch-vendor: $pkg@$version from the npm registry" >&2
	(cd "$tmp" && npm pack --silent "$pkg@$version" >/dev/null 2>"$tmp/npm.log") || {
		cat "$tmp/npm.log" >&2
		echo "fetch-vendor: npm pack $pkg@$version failed" >&2
		rm -rf "$tmp"
		exit 1
	}
	# npm names a scoped package's tarball scope-name-version.tgz.
	local tarball
	tarball="$tmp/$(echo "${pkg#@}" | tr / -)-$version.tgz"
	if [ ! -f "$tarball" ]; then
		echo "fetch-vendor: npm pack did not produce $(basename "$tarball")" >&2
		rm -rf "$tmp"
		exit 1
	fi
	local got
	got=$(node -e 'const c = require("crypto"), fs = require("fs");
process.stdout.write("sha512-" + c.createHash("sha512").update(fs.readFileSync(process.argv[1])).digest("base64"));' "$tarball")
	if [ "$got" != "$integrity" ]; then
		echo "fetch-vendor: integrity mismatch for $pkg@$version: got $got, want $integrity" >&2
		rm -rf "$tmp"
		exit 1
	fi
	mkdir -p "$dest"
	for f in "$@"; do
		tar -xzf "$tarball" -C "$tmp" "package/$f"
		# Write beside the destination and rename, so an interrupted
		# fetch never leaves a truncated file behind.
		cp "$tmp/package/$f" "$dest/$(basename "$f").tmp"
		mv "$dest/$(basename "$f").tmp" "$dest/$(basename "$f")"
		echo "fetch-vendor: wrote ${dest#"$root"/}/$(basename "$f") ($(wc -c <"$dest/$(basename "$f")") bytes)" >&2
	done
	rm -rf "$tmp"
}

fetch hls.js 1.6.15 \
	'sha512-E3a5VwgXimGHwpRGV+WxRTKeSp2DW5DI5MWv34ulL3t5UNmyJWCQ1KmLEHbYzcfThfXG8amBL+fCYPneGHC4VA==' \
	"$root/internal/console/static/vendor" dist/hls.min.js

fetch @stoplight/elements 9.0.15 \
	'sha512-+5xm9Gm3t/xQZNiy29NjxZP8UsVoAKyNtifA+aysEp4iu+ygicuNiMUrS8cmfI9Go+NfzhekFgAKGb/I1kz22w==' \
	"$root/internal/api/docsui/vendor" web-components.min.js styles.min.css LICENSE
