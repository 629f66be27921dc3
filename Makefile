# instructgo: build, test, benchmark, lint.
# The default build is pure Go (cpu backend); nothing here needs a GPU.

GO      ?= go
BIN     := bin/instructgo
PKGS    := ./...
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --verify -q HEAD 2>/dev/null || echo unknown)
LDFLAGS := -X main.version=$(VERSION) -X main.commit=$(COMMIT)

.PHONY: all build test test-short bench lint fmt clean

all: lint build test

## build: the instructgo binary in bin/
build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/instructgo

## test: every package's tests (float64 references, gradient checks, CLI)
test:
	$(GO) test -count=1 $(PKGS)

## bench: op and training-step benchmarks on this machine (see bench/RESULTS.md)
bench:
	$(GO) test -run '^$$' -bench . -benchtime 5x ./gpu/cpu/ ./model/

## lint: gofmt check and go vet
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "not gofmt-formatted:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin
