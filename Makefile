# kiln: see README.md. `make demo` and `make test` work on a fresh machine.
GO      ?= go
BIN     := bin/kiln
INIT    := bin/kiln-init
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
DEMO    := .demo
SHARED  ?= ../shared

.PHONY: build test test-unit test-race deps demo lint bench bench-ephemeral bench-rootless bench-multiplatform conformance fuzz cachecheck cachefuzz clean

# kiln-init (the RUN sandbox's init alone, static) first: kiln records its digest
# and starts it only when the file beside it has that digest (exec.InitBinary).
build:
	CGO_ENABLED=0 $(GO) build -ldflags "-s -w" -o $(INIT) ./cmd/kiln-init
	$(GO) build -ldflags "-X main.version=$(VERSION) -X main.initSum=$$(sha256sum $(INIT) | cut -d' ' -f1)" -o $(BIN) ./cmd/kiln

# Everything: unit tests, the race detector on the concurrent packages, and the
# end-to-end builds (which run bin/kiln as root against real registries and tools).
test: deps build lint
	$(GO) test -count=1 -timeout 12m ./...
	$(GO) test -count=1 -race -timeout 8m ./solver/... ./dockerfile/... ./cache/... ./exec/... ./image/
	$(GO) test -count=1 -race -timeout 4m -run 'GzipMember' ./layers/

deps:
	@scripts/install-deps.sh

# The differential cache harness (cmd/kiln/cachecheck_test.go) over every pair; `make
# test` runs a sample of them. As root.
cachecheck: deps
	KILN_CACHECHECK=all $(GO) test -count=1 -timeout 60m -run TestCacheDifferential ./cmd/kiln

# The harness over random pairs (cmd/kiln/cachefuzz_test.go): N of them (default 100,
# about 45 s a hundred), of seed SEED (default 1); a failure prints how to rerun it
# alone and the pair as a Go literal. `go test ./cmd/kiln` runs 3. As root.
cachefuzz: deps
	KILN_CACHEFUZZ=$${N:-100} KILN_CACHEFUZZ_SEED=$${SEED:-1} $(GO) test -count=1 -timeout 60m -run TestCacheDifferentialRandom ./cmd/kiln

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

# kiln beside buildah and BuildKit in one table. First the shared workloads W1-W5 plus
# kiln's W6 (200,000 files, ~2 GB) and W7 (40 stages, a 39-way COPY --from fan-in), from
# bench/gen_more.py and run through bench/run.py (cold, warm, changed); then the scenarios
# named in $(BENCH_EXTRA): ephemeral (bench/ephemeral.sh: an empty root, --cache-from a
# registry, then --push and an OCI tarball, on $(BENCH_EPHEMERAL_WORKLOADS)), rootless
# (bench/rootless.sh: as a temporary user, and the ratio to root, on
# $(BENCH_ROOTLESS_WORKLOADS)) and multiplatform (bench/multiplatform.sh: a cold
# linux/amd64,linux/arm64 build). Each writes JSON lines into $(BENCH_OUT) (raw.jsonl,
# ephemeral.jsonl, rootless.jsonl, multiplatform.jsonl; removed first), and
# bench/table.py prints them as one markdown table (also $(BENCH_OUT)/table.md): a row
# per workload and scenario, kiln / BuildKit / buildah seconds and peak RSS, "kiln
# ahead?", "n/a: why" where a builder cannot be measured. BuildKit is measured when a
# buildkitd answers at $(BUILDKIT_HOST). A scenario that fails still leaves the table,
# then make fails. As root. Small: make bench BENCH_WORKLOADS=W1,W5 BENCH_RUNS=1
# BENCH_EXTRA= ; only the extras: make bench BENCH_WORKLOADS= BENCH_RUNS=1.
BENCH_WORK      ?= /var/tmp/kiln-bench
BENCH_OUT       ?= /var/tmp/kiln-bench-results
BENCH_WORKLOADS ?= W1,W2,W3,W4,W5,W6,W7
BENCH_RUNS      ?= 3
BENCH_BUILDERS  ?= kiln,buildah,buildkit
BENCH_EXTRA     ?= ephemeral,rootless,multiplatform
BENCH_EPHEMERAL_WORKLOADS ?= W2,W5
BENCH_ROOTLESS_WORKLOADS  ?= W1,W2,W5
BUILDKIT_HOST   ?= unix:///run/buildkit-anchor/buildkitd.sock
comma := ,
list = $(subst $(comma), ,$(1))
bench_shared = $(filter W1 W2 W3 W4 W5,$(call list,$(BENCH_WORKLOADS)))
bench_more   = $(filter W6 W7,$(call list,$(BENCH_WORKLOADS)))
bench_extra  = $(call list,$(BENCH_EXTRA))
bench_env    = KILN=$(CURDIR)/$(BIN) SHARED=$(SHARED) BUILDKIT_HOST=$(BUILDKIT_HOST) RUNS=$(or $(RUNS),$(BENCH_RUNS))
# The extra scenarios, as `make bench` and their own targets run them; $(1): the results file.
bench_ephemeral = python3 $(SHARED)/bench/gen.py --out $(BENCH_WORK) --only $(BENCH_EPHEMERAL_WORKLOADS) && \
	$(bench_env) WORK=$(BENCH_WORK) WORKLOADS="$(call list,$(BENCH_EPHEMERAL_WORKLOADS))" \
	OUT=$(BENCH_OUT)-ephemeral JSONL=$(1) bench/ephemeral.sh
bench_rootless = $(bench_env) WORKLOADS="$(call list,$(BENCH_ROOTLESS_WORKLOADS))" JSONL=$(1) bench/rootless.sh
bench_multiplatform = $(bench_env) OUT=$(BENCH_OUT)-multiplatform JSONL=$(1) bench/multiplatform.sh
bench: build
	$(SHARED)/bench/setup-anchors.sh
	mkdir -p $(BENCH_OUT)
	rm -f $(addprefix $(BENCH_OUT)/,raw.jsonl ephemeral.jsonl rootless.jsonl multiplatform.jsonl table.md .failed)
	$(if $(bench_shared),python3 $(SHARED)/bench/gen.py --out $(BENCH_WORK) --only $(subst $() ,$(comma),$(bench_shared)))
	$(if $(bench_more),SHARED=$(SHARED) python3 bench/gen_more.py --out $(BENCH_WORK) --only $(subst $() ,$(comma),$(bench_more)))
	$(if $(BENCH_WORKLOADS),KILN=$(CURDIR)/$(BIN) KILN_RESET="rm -rf /var/tmp/kiln-bench-root" \
	KILN_CMD="{kiln} build --root /var/tmp/kiln-bench-root --progress quiet -f {dockerfile} --output type=oci$(comma)dest={out} {nocache} {context}" \
	BUILDKIT_HOST=$(BUILDKIT_HOST) SHARED=$(SHARED) \
		python3 bench/run.py --builders $(BENCH_BUILDERS) --workloads $(BENCH_WORKLOADS) \
		--work $(BENCH_WORK) --runs $(BENCH_RUNS) --results $(BENCH_OUT))
	$(if $(filter ephemeral,$(bench_extra)),($(call bench_ephemeral,$(BENCH_OUT)/ephemeral.jsonl)) || touch $(BENCH_OUT)/.failed)
	$(if $(filter rootless,$(bench_extra)),$(call bench_rootless,$(BENCH_OUT)/rootless.jsonl) || touch $(BENCH_OUT)/.failed)
	$(if $(filter multiplatform,$(bench_extra)),$(call bench_multiplatform,$(BENCH_OUT)/multiplatform.jsonl) || touch $(BENCH_OUT)/.failed)
	@echo; echo "## make bench: every row"; echo
	@python3 bench/table.py $(BENCH_OUT) | tee $(BENCH_OUT)/table.md
	@if [ -e $(BENCH_OUT)/.failed ]; then rm -f $(BENCH_OUT)/.failed; echo "make bench: a scenario of BENCH_EXTRA failed (see above)" >&2; exit 1; fi

# Each extra scenario alone (RUNS or BENCH_RUNS runs), its table from its own results.
# Rootless against root on $(BENCH_ROOTLESS_WORKLOADS), kiln and buildah (cold and warm,
# OCI tarball output), with the ratio; as root (it makes a temporary user).
bench-rootless: build
	$(call bench_rootless,$(BENCH_OUT)-rootless/results.jsonl)

# The ephemeral CI runner (issue 16): an empty root, --cache-from a registry filled by
# an earlier run, then --push and an OCI tarball, beside buildah's --cache-from and
# BuildKit's --import-cache when buildctl answers at $(BUILDKIT_HOST) (see
# $(SHARED)/bench/setup-buildkit.sh).
bench-ephemeral: build
	$(SHARED)/bench/setup-anchors.sh
	$(call bench_ephemeral,$(BENCH_OUT)-ephemeral/results.jsonl)

# A two-platform cross-compiling build (issue 18), cold, kiln beside BuildKit when
# buildctl answers at $(BUILDKIT_HOST) and buildah; as root (it registers qemu for arm64
# if needed, and removes what it registered).
bench-multiplatform: build
	$(SHARED)/bench/setup-anchors.sh
	$(call bench_multiplatform,$(BENCH_OUT)-multiplatform/results.jsonl)

FUZZTIME ?= 10m
fuzz:
	$(GO) test ./parser/ -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME)
	$(GO) test ./layers/ -run '^$$' -fuzz FuzzUnpack -fuzztime $(FUZZTIME)
	$(GO) test ./layers/ -run '^$$' -fuzz FuzzWriteUpperDiff -fuzztime $(FUZZTIME)
	$(GO) test ./source/ -run '^$$' -fuzz FuzzDockerignore -fuzztime $(FUZZTIME)

clean:
	rm -rf bin $(DEMO)
