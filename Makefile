# herald — build, test and release targets. See README.md.
GO        ?= go
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X herald/internal/version.Version=$(VERSION)
GOBUILD   := CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)'
STATICCHECK_VERSION := v0.8.2
FUZZTIME  ?= 30s

.PHONY: all build test unit deps check fuzz bench run clean deb

all: build

build:
	@mkdir -p bin
	$(GOBUILD) -o bin/herald ./cmd/herald
	$(GOBUILD) -o bin/herald-sendmail ./cmd/herald-sendmail

# deps installs what the tests need on a fresh Debian machine (real mail
# clients for the integration tests, Go modules). Idempotent.
deps:
	@scripts/install-test-deps.sh
	$(GO) mod download

# unit runs the unit tests only: no root, no apt, no real clients; the
# integration tests (internal/e2e, packaging, and the tests that drive real
# programs, which skip themselves under -short) are make test's.
unit:
	$(GO) test -short $$($(GO) list ./... | grep -v -e '/internal/e2e$$' -e '/packaging$$')

test: deps
	$(GO) test -race -shuffle=on -timeout 8m ./...

check:
	@fmt=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$fmt" ]; then echo "gofmt needed:"; echo "$$fmt"; exit 1; fi
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

# fuzz runs every fuzz target for FUZZTIME each (bounded; not part of test).
fuzz:
	@scripts/fuzz-all.sh $(FUZZTIME)

# bench prints herald's figures beside the peers' (Postfix, dma,
# nullmailer where installed), one line per figure with its target
# (docs/bench.md); RUNS=3 rounds by default. Every Go benchmark:
# go test -run '^$$' -bench . -benchmem ./...
bench: build
	@GO=$(GO) scripts/bench.sh

# run starts herald on its embedded default: no root, no config, state in ./var.
run: build
	./bin/herald serve

# deb builds dist/herald_VERSION_ARCH.deb reproducibly with dpkg-deb
# (see scripts/build-deb.sh and packaging/).
deb:
	@scripts/build-deb.sh -o dist

clean:
	rm -rf bin dist
