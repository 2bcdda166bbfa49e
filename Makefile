# weir — two commands on a fresh machine: `make run` and `make test`.
GO       ?= go
BIN      ?= bin/weir
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X github.com/weir-media/weir/internal/cli.Version=$(VERSION)
PKGS     ?= ./...

.PHONY: run build dist test lint deps bench fuzz clean

# The console's player (hls.js) and the API docs' renderer (Stoplight
# Elements) are fetched from npm once, not committed.
VENDOR := internal/console/static/vendor/hls.min.js internal/api/docsui/vendor/web-components.min.js

build: $(VENDOR)
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/weir

$(VENDOR):
	scripts/fetch-vendor.sh

# Release archives in $(DIST): static binaries (hls.js and the docs
# renderer embedded, version from git) for DIST_PLATFORMS, and SHA256SUMS.
DIST           ?= dist
DIST_PLATFORMS ?= linux/amd64 linux/arm64
dist: $(VENDOR)
	scripts/dist.sh "$(DIST)" "$(VERSION)" $(DIST_PLATFORMS)

# Installs what is missing, builds, and starts `weir serve` with the embedded
# defaults (data in ./weir-data, every listener on 127.0.0.1: HTTP 8080, Kafka
# 9092, RTMP 1935, SRT 8890). weir prints the addresses it actually bound
# (weir.yaml and WEIR_* variables included) once it is up.
# ARGS go to `weir serve`: make run ARGS="--allow-private-sources --log-level debug".
ARGS ?=
run: 
	@scripts/deps.sh run
	@$(MAKE) --no-print-directory build
	exec ./$(BIN) serve $(ARGS)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

# Installs missing test dependencies (ffmpeg, kcat, PostgreSQL, versitygw),
# checks formatting and vet, then runs every test with the race detector.
test: 
	@scripts/deps.sh test
	@$(MAKE) --no-print-directory lint
	$(GO) test -race -timeout 20m $(PKGS)

# The glass-to-glass benchmark plays through hls.js in Chromium: test deps.
bench: $(VENDOR)
	@scripts/deps.sh test
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 2x $(PKGS)

fuzz:
	@for pkg in $$($(GO) list $(PKGS)); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			echo "fuzz $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime 20s $$pkg || exit 1; \
		done; \
	done

clean:
	rm -rf bin $(DIST)
