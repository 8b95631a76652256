# kiln: see README.md. `make demo` and `make test` work on a fresh machine.
GO      ?= go
BIN     := bin/kiln
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
DEMO    := .demo
SHARED  ?= ../shared

.PHONY: build test test-unit test-race deps demo lint bench bench-ephemeral bench-rootless bench-multiplatform conformance fuzz cachecheck clean

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/kiln

# Everything: unit tests, the race detector on the concurrent packages, and the
# end-to-end builds (which run bin/kiln as root against real registries and tools).
test: deps build lint
	$(GO) test -count=1 -timeout 12m ./...
	$(GO) test -count=1 -race -timeout 8m ./solver/... ./dockerfile/... ./cache/... ./exec/...
	$(GO) test -count=1 -race -timeout 4m -run 'GzipMember' ./layers/

deps:
	@scripts/install-deps.sh

# The differential cache harness (cmd/kiln/cachecheck_test.go) over every pair; `make
# test` runs a sample of them. As root.
cachecheck: deps
	KILN_CACHECHECK=all $(GO) test -count=1 -timeout 60m -run TestCacheDifferential ./cmd/kiln

# Builds examples/demo on a busybox base made from Debian's busybox-static and bundled
# as an OCI layout: no registry, no network.
demo: deps build
	@mkdir -p $(DEMO)
	$(GO) run ./internal/cmd/mkbase $(DEMO)/busybox
	$(BIN) build --root $(DEMO)/root --progress plain \
		--build-context busybox=oci-layout://$(CURDIR)/$(DEMO)/busybox \
		-t kiln-demo:latest -o type=oci,dest=$(DEMO)/demo.tar examples/demo
	skopeo inspect oci-archive:$(DEMO)/demo.tar

lint:
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# The shared Dockerfile conformance suite (needs the anchor registry on 127.0.0.1:5000).
conformance: build
	$(SHARED)/bench/setup-anchors.sh
	KILN=$(CURDIR)/$(BIN) python3 $(SHARED)/conformance/run.py --builder kiln --compare

# kiln beside buildah and BuildKit on the shared workloads W1-W5 plus kiln's W6 (200,000
# files, ~2 GB) and W7 (40 stages, a 39-way COPY --from fan-in), from bench/gen_more.py and
# run through bench/run.py; results in $(BENCH_OUT). BuildKit is skipped when no buildkitd
# answers at $(BUILDKIT_HOST). One row: make bench BENCH_WORKLOADS=W7 BENCH_RUNS=1.
BENCH_WORK      ?= /var/tmp/kiln-bench
BENCH_OUT       ?= /var/tmp/kiln-bench-results
BENCH_WORKLOADS ?= W1,W2,W3,W4,W5,W6,W7
BENCH_RUNS      ?= 3
BENCH_BUILDERS  ?= kiln,buildah,buildkit
BUILDKIT_HOST   ?= unix:///run/buildkit-anchor/buildkitd.sock
comma := ,
bench_shared = $(filter W1 W2 W3 W4 W5,$(subst $(comma), ,$(BENCH_WORKLOADS)))
bench_more   = $(filter W6 W7,$(subst $(comma), ,$(BENCH_WORKLOADS)))
bench: build
	$(SHARED)/bench/setup-anchors.sh
	$(if $(bench_shared),python3 $(SHARED)/bench/gen.py --out $(BENCH_WORK) --only $(subst $() ,$(comma),$(bench_shared)))
	$(if $(bench_more),SHARED=$(SHARED) python3 bench/gen_more.py --out $(BENCH_WORK) --only $(subst $() ,$(comma),$(bench_more)))
	KILN=$(CURDIR)/$(BIN) KILN_RESET="rm -rf /var/tmp/kiln-bench-root" \
	KILN_CMD="{kiln} build --root /var/tmp/kiln-bench-root --progress quiet -f {dockerfile} --output type=oci,dest={out} {nocache} {context}" \
	BUILDKIT_HOST=$(BUILDKIT_HOST) SHARED=$(SHARED) \
		python3 bench/run.py --builders $(BENCH_BUILDERS) --workloads $(BENCH_WORKLOADS) \
		--work $(BENCH_WORK) --runs $(BENCH_RUNS) --results $(BENCH_OUT)

# Rootless against root kiln on W1, W2 and W5 (medians of 3, cold and warm, OCI
# tarball output), with the ratio; as root (it makes a temporary user).
bench-rootless: build
	KILN=$(CURDIR)/$(BIN) SHARED=$(SHARED) bench/rootless.sh

# The ephemeral CI runner (issue 16): an empty root, --cache-from a registry filled by
# an earlier run, then --push and an OCI tarball, beside BuildKit's --import-cache when
# buildctl answers at $(BUILDKIT_HOST) (see $(SHARED)/bench/setup-buildkit.sh).
bench-ephemeral: build
	$(SHARED)/bench/setup-anchors.sh
	python3 $(SHARED)/bench/gen.py --out $(BENCH_WORK) --only W2,W5
	KILN=$(CURDIR)/$(BIN) WORK=$(BENCH_WORK) OUT=$(BENCH_OUT)-ephemeral bench/ephemeral.sh

# A two-platform cross-compiling build (issue 18), cold, kiln beside BuildKit when
# buildctl answers at $(BUILDKIT_HOST); as root (it registers qemu for arm64 if needed).
bench-multiplatform: build
	$(SHARED)/bench/setup-anchors.sh
	KILN=$(CURDIR)/$(BIN) OUT=$(BENCH_OUT)-multiplatform bench/multiplatform.sh

FUZZTIME ?= 10m
fuzz:
	$(GO) test ./parser/ -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME)
	$(GO) test ./layers/ -run '^$$' -fuzz FuzzUnpack -fuzztime $(FUZZTIME)
	$(GO) test ./layers/ -run '^$$' -fuzz FuzzWriteUpperDiff -fuzztime $(FUZZTIME)
	$(GO) test ./source/ -run '^$$' -fuzz FuzzDockerignore -fuzztime $(FUZZTIME)

clean:
	rm -rf bin $(DEMO)
