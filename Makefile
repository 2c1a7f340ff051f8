# XDR sensor. Kernel-facing parts (the agent, `make run`, the integration
# tests) need root; unprivileged test runs skip those tests with a reason.

GO       ?= go
GOBIN    := $(shell $(GO) env GOPATH)/bin
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X github.com/xdr-sensor/xdr/cmd/internal/buildinfo.Version=$(VERSION)
DATA     ?= $(CURDIR)/data
BINARIES := xdr-agent xdr-aggregator snr

.PHONY: all build run test bench fuzz dist generate lint tools clean

all: build

build:
	@mkdir -p bin
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/ $(addprefix ./cmd/,$(BINARIES))

# Runs aggregator and agent in offline mode on a local data directory
# until Ctrl-C (which seals the open bundle).
run: build
	@mkdir -p $(DATA)
	@echo "bundles go to $(DATA)/*.gpbz; read them with: bin/snr x $(DATA)/*.gpbz"
	@echo "status: bin/xdr-aggregator status --control-socket $(DATA)/control.sock"
	@trap 'kill -TERM $$agg 2>/dev/null; wait $$agg' EXIT; trap : INT TERM; \
	setsid bin/xdr-aggregator --offline --socket $(DATA)/agent.sock --control-socket $(DATA)/control.sock --data-dir $(DATA) & agg=$$!; \
	sleep 0.5; bin/xdr-agent --socket $(DATA)/agent.sock --method auto

# One package at a time: the kernel-facing tests of different packages
# share the machine's proc connector, BPF programs and CPUs, and timing
# they depend on should not be another package's storm.
test:
	$(GO) vet ./...
	$(GO) test -count=1 -p 1 -timeout 20m ./...

bench: build
	$(GO) test -run '^$$' -bench . -benchmem -timeout 60m ./...

# Short fuzzing of every decoder of untrusted bytes and every bounded
# structure (their seed corpora already run in `make test`).
FUZZTIME ?= 20s
FUZZ := proto/wire:FuzzDecode agent/proccon:FuzzDecode agent/proccon:FuzzHandleDatagram \
	agent/procfs:FuzzParseStat agent/procfs:FuzzParseStatus agent/userdb:FuzzParsePasswd \
	agent/userdb:FuzzParseGroup agent/ebpf:FuzzDecode agent/ebpf:FuzzRing agent/mapper:FuzzParseDNSQuery \
	agent/accounts:FuzzDiff aggregator/server:FuzzServerConn aggregator/bundle:FuzzReader \
	aggregator/bundle:FuzzRecover aggregator/upload:FuzzCheckAck aggregator/upload:FuzzParseRetryAfter \
	cmd/internal/config:FuzzParse footprint:FuzzAdd stats:FuzzAgentCounters

fuzz:
	@for t in $(FUZZ); do \
		echo "fuzz $${t%%:*} $${t##*:}"; \
		$(GO) test -run '^$$' -fuzz "^$${t##*:}$$" -fuzztime $(FUZZTIME) ./$${t%%:*} || exit 1; \
	done

# Static binaries for the devices: dist/linux-ARCH/ holds the three
# binaries (stripped, with version information), install.sh, the reference
# configuration and the systemd units; dist/xdr-VERSION-linux-ARCH.tar.gz
# packs them. The BPF objects are little-endian and embedded in the agent:
# the same object serves every architecture here.
DIST_ARCHS := amd64 arm64 arm riscv64
dist:
	@rm -rf dist && mkdir -p dist
	@for arch in $(DIST_ARCHS); do \
		dir=dist/linux-$$arch; mkdir -p $$dir; \
		echo "dist linux/$$arch"; \
		CGO_ENABLED=0 GOOS=linux GOARCH=$$arch GOARM=7 $(GO) build -trimpath -ldflags '$(LDFLAGS)' \
			-o $$dir/ $(addprefix ./cmd/,$(BINARIES)) || exit 1; \
		cp deploy/install.sh deploy/xdr.conf deploy/*.service deploy/xdr-sysusers.conf deploy/xdr-tmpfiles.conf $$dir/ || exit 1; \
		tar -C dist -czf dist/xdr-$(VERSION)-linux-$$arch.tar.gz linux-$$arch || exit 1; \
	done
	@for arch in $(DIST_ARCHS); do \
		(cd dist/linux-$$arch && wc -c $(BINARIES) | awk -v a=$$arch '{ printf "%s %s %d bytes\n", a, $$2, $$1 }'); \
	done

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
