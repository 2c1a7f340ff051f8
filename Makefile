# XDR sensor. Kernel-facing parts (the agent, `make run`, the integration
# tests) need root; unprivileged test runs skip those tests with a reason.

GO       ?= go
GOBIN    := $(shell $(GO) env GOPATH)/bin
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X github.com/xdr-sensor/xdr/cmd/internal/buildinfo.Version=$(VERSION)
DATA     ?= $(CURDIR)/data
BINARIES := xdr-agent xdr-aggregator snr

.PHONY: all build run test bench fuzz generate lint tools clean

all: build

build:
	@mkdir -p bin
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/ $(addprefix ./cmd/,$(BINARIES))

# Runs aggregator and agent in offline mode on a local data directory
# until Ctrl-C (which seals the open bundle).
run: build
	@mkdir -p $(DATA)
	@echo "bundles go to $(DATA)/*.gpbz; read them with: bin/snr x $(DATA)/*.gpbz"
	@trap 'kill -TERM $$agg 2>/dev/null; wait $$agg' EXIT; \
	bin/xdr-aggregator --offline --socket $(DATA)/agent.sock --data-dir $(DATA) & agg=$$!; \
	sleep 0.5; bin/xdr-agent --socket $(DATA)/agent.sock --method auto

test:
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 20m ./...

bench: build
	$(GO) test -run '^$$' -bench . -benchmem -timeout 60m ./...

# Short fuzzing of every decoder of untrusted bytes (seed corpora run in
# `make test` already).
FUZZTIME ?= 20s
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./proto/wire
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./agent/proccon
	$(GO) test -run '^$$' -fuzz '^FuzzReader$$' -fuzztime $(FUZZTIME) ./aggregator/bundle

tools:
	@test -x $(GOBIN)/buf || $(GO) install github.com/bufbuild/buf/cmd/buf@v1.75.0
	@test -x $(GOBIN)/protoc-gen-go || $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12

generate: tools
	PATH=$(GOBIN):$$PATH buf generate
	$(GO) generate ./...

lint: tools
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go')); test -z "$$out" || { echo "gofmt needed:"; echo "$$out"; exit 1; }
	PATH=$(GOBIN):$$PATH buf lint
	@if git rev-parse --verify -q main >/dev/null; then PATH=$(GOBIN):$$PATH buf breaking --against '.git#branch=main'; fi

clean:
	rm -rf bin dist
