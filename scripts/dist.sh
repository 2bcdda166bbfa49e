#!/usr/bin/env bash
# Builds weir's release archives: one static binary per platform (no cgo;
# the console's hls.js and the API docs' renderer embedded, so run
# scripts/fetch-vendor.sh first, as `make dist` does), with the version in
# `weir version`, packed with the README and the bundled code's licences,
# and a SHA256SUMS file over the archives.
# Usage: scripts/dist.sh OUTDIR VERSION OS/ARCH...
set -euo pipefail

out=$1 version=$2
shift 2
root=$(cd "$(dirname "$0")/.." && pwd)
for f in internal/console/static/vendor/hls.min.js internal/api/docsui/vendor/web-components.min.js; do
	if [ ! -s "$root/$f" ]; then
		echo "dist: $f is missing; run scripts/fetch-vendor.sh (make dist does)" >&2
		exit 1
	fi
done
mkdir -p "$out"
out=$(cd "$out" && pwd)
archives=()
for platform in "$@"; do
	os=${platform%/*} arch=${platform#*/}
	name="weir_${version}_${os}_${arch}"
	stage=$(mktemp -d)
	mkdir -p "$stage/$name"
	echo "dist: building $name" >&2
	(cd "$root" && CGO_ENABLED=0 GOOS=$os GOARCH=$arch go build -trimpath \
		-ldflags "-s -w -X github.com/weir-media/weir/internal/cli.Version=$version" \
		-o "$stage/$name/weir" ./cmd/weir)
	cp "$root/README.md" "$stage/$name/"
	mkdir -p "$stage/$name/licenses"
	cp "$root/internal/api/docsui/vendor/LICENSE" "$stage/$name/licenses/stoplight-elements.txt"
	# hls.min.js carries its own licence header; name it for the reader.
	echo "hls.js 1.6.15 (Apache-2.0): https://github.com/video-dev/hls.js/blob/v1.6.15/LICENSE" >"$stage/$name/licenses/hls.js.txt"
	tar -C "$stage" --owner=0 --group=0 --numeric-owner -czf "$out/$name.tar.gz" "$name"
	rm -rf "$stage"
	archives+=("$name.tar.gz")
done
(cd "$out" && sha256sum "${archives[@]}" >SHA256SUMS)
echo "dist: wrote ${archives[*]} and SHA256SUMS to $out" >&2
