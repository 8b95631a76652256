package main

import (
	"fmt"
	"go/format"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The random pair generator of the differential cache harness (cachecheck_test.go):
// random cachePairs, each run through runPair like the handwritten ones (same builds,
// same comparison), to find the cases those miss. The grammar:
//
//	cachefuzz_ctx_test.go   the context, and the model of it B's mutations keep
//	cachefuzz_gen_test.go   stages, RUN, ARG/ENV, WORKDIR, USER and the rest
//	cachefuzz_copy_test.go  COPY and ADD: sources, dests, flags
//	cachefuzz_mut_test.go   B: context mutations, Dockerfile variants, flags, base
//
// Besides the pairs' own changes, a fifth of them has A export its cache
// (--cache-to, local or registry) and both B builds import it (--cache-from): B on a
// fresh root is then built from A's exported cache.
//
// KILN_CACHEFUZZ=N runs N pairs (default 3) of seed KILN_CACHEFUZZ_SEED (default 1);
// `make cachefuzz` runs 100 (N=…, SEED=…). Pair i of seed s depends on nothing else,
// and its subtest is seed-S-pair-I: a failure says how to run it alone, and logs the
// pair as a Go literal for cachepairs_*_test.go.
//
// What the generator keeps out, because it is no wrong reuse (each rule is where it
// is applied): changes of mtimes alone (Docker's rule leaves them out of COPY keys),
// including a directory's that gains and loses an entry in B, or whose new entry is
// ignored, and a URL's Last-Modified (kiln reruns the ADD, but a COPY --from of its
// file is keyed by content); RUNs that see the wall clock, their own output being written, or the
// host's /etc/hosts; and inputs kiln refuses as BuildKit does (variables in --from,
// a pattern matching a dangling symlink, names in --chown with --link), or that
// BuildKit's parser, which kiln uses, garbles (it reads an instruction's flags a byte
// at a time: a non-ASCII name in --mount or --exclude is not the file's name).

const (
	cacheFuzzDefaultN    = 3
	cacheFuzzDefaultSeed = 1
)

func cacheFuzzParams(t *testing.T) (n int, seed uint64) {
	n, seed = cacheFuzzDefaultN, cacheFuzzDefaultSeed
	if s := os.Getenv("KILN_CACHEFUZZ"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 0 {
			t.Fatalf("KILN_CACHEFUZZ=%q: want a number of pairs", s)
		}
		n = v
	}
	if s := os.Getenv("KILN_CACHEFUZZ_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("KILN_CACHEFUZZ_SEED=%q: want a number", s)
		}
		seed = v
	}
	return n, seed
}

func TestCacheDifferentialRandom(t *testing.T) {
	n, seed := cacheFuzzParams(t)
	testRequireRootE2E(t)
	cacheCheckStart = time.Now().Add(-time.Second)
	sem := make(chan struct{}, 2) // at most two pairs at a time
	for i := range n {
		p := genPair(seed, i)
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			sem <- struct{}{}
			defer func() { <-sem }()
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("alone: KILN_CACHEFUZZ=%d KILN_CACHEFUZZ_SEED=%d go test -count=1 -run 'TestCacheDifferentialRandom/^%s$' ./cmd/kiln\n"+
						"the pair:\n%s", i+1, seed, p.name, pairLiteral(p))
				}
			})
			runPair(t, p)
		})
	}
	t.Logf("%d random pairs of seed %d (KILN_CACHEFUZZ=N, KILN_CACHEFUZZ_SEED=S)", n, seed)
}

// TestCacheFuzzGenerator checks the generator itself (no build): a pair depends only
// on its seed and index, and what it writes is well formed.
func TestCacheFuzzGenerator(t *testing.T) {
	for seed := range uint64(20) {
		for i := range 50 {
			p := genPair(seed, i)
			if again := genPair(seed, i); pairLiteral(again) != pairLiteral(p) {
				t.Fatalf("%s: generated twice, two pairs:\n%s\n%s", p.name, pairLiteral(p), pairLiteral(again))
			}
			if !strings.HasPrefix(p.df, "FROM ") && !strings.HasPrefix(p.df, "ARG ") {
				t.Fatalf("%s: Dockerfile A:\n%s", p.name, p.df)
			}
			if p.dfB == "" && p.mut == nil && p.argsB == nil && p.baseB == "" && p.outB == "" && p.httpB == nil && p.httpModB == "" {
				t.Fatalf("%s: B is A", p.name)
			}
			for k := range p.ctx {
				if strings.HasPrefix(k, "Dockerfile") {
					t.Fatalf("%s: the context names the Dockerfile", p.name)
				}
			}
		}
	}
}

// genPair is pair i of seed.
func genPair(seed uint64, i int) cachePair {
	g := &fzGen{r: rand.New(rand.NewPCG(seed, uint64(i)))}
	g.genContext()
	g.genDockerfile()
	if g.chance(0.1) {
		g.argsA = append(g.argsA, "--build-arg", "SOURCE_DATE_EPOCH=1700000000")
	}
	if len(g.stages) > 1 && g.chance(0.1) {
		g.argsA = append(g.argsA, "--target", g.stages[g.r.IntN(len(g.stages)-1)].name)
	}
	p := cachePair{
		name:  fmt.Sprintf("seed-%d-pair-%d", seed, i),
		df:    g.render(),
		ctx:   g.c.ctxMap(),
		argsA: g.argsA,
	}
	p.http = g.http
	if g.chance(0.12) {
		p.outA = fzPick(g, []string{",compression=zstd", ",compression=uncompressed", ",compression=gzip", ",rewrite-timestamp=false", ",compression-level=1"})
	}
	g.genB(&p)
	if g.chance(0.2) {
		g.remoteCache(&p)
	}
	return p
}

// remoteCache makes A export its cache and both B builds import it: B on a fresh root
// is then built from A's exported cache, and must still be B after A.
func (g *fzGen) remoteCache(p *cachePair) {
	to, from := "type=local,dest={tmp}/rc", "type=local,src={tmp}/rc"
	if g.chance(0.3) {
		ref := fmt.Sprintf("{host}/fzcache:%s", strings.ReplaceAll(p.name, "-", ""))
		to, from = "type=registry,ref="+ref, "type=registry,ref="+ref
		if g.chance(0.3) {
			to += ",image-manifest=true"
		}
	}
	to += ",mode=" + fzPick(g, []string{"max", "max", "min"})
	if g.chance(0.2) {
		to += ",compression=zstd"
	}
	if g.chance(0.2) {
		to += ",cache-mounts=true"
	}
	argsB := p.argsB
	if argsB == nil {
		argsB = p.argsA
	}
	p.argsA = append(slices.Clone(p.argsA), "--cache-to", to)
	p.argsB = append(slices.Clone(argsB), "--cache-from", from)
}

// pairLiteral writes p as cachepairs_*_test.go do.
func pairLiteral(p cachePair) string {
	q := strconv.Quote
	list := func(xs []string) string {
		var parts []string
		for _, x := range xs {
			parts = append(parts, q(x))
		}
		return "[]string{" + strings.Join(parts, ", ") + "}"
	}
	var sb strings.Builder
	sb.WriteString("\t{\n")
	fmt.Fprintf(&sb, "\t\tname: %s,\n", q(p.name))
	if p.mtimesNotKeyed != nil {
		fmt.Fprintf(&sb, "\t\tmtimesNotKeyed: %s,\n", list(p.mtimesNotKeyed))
	}
	fmt.Fprintf(&sb, "\t\tdf: %s,\n", q(p.df))
	if p.dfB != "" {
		fmt.Fprintf(&sb, "\t\tdfB: %s,\n", q(p.dfB))
	}
	if len(p.ctx) > 0 {
		var kv []string
		for _, k := range slices.Sorted(maps.Keys(p.ctx)) {
			kv = append(kv, q(k)+": "+q(p.ctx[k]))
		}
		fmt.Fprintf(&sb, "\t\tctx: map[string]string{%s},\n", strings.Join(kv, ", "))
	}
	if len(p.mut) > 0 {
		var ms []string
		for _, m := range p.mut {
			ms = append(ms, fmt.Sprintf("{%s, %s, %s}", q(m.op), q(m.path), q(m.arg)))
		}
		fmt.Fprintf(&sb, "\t\tmut: []ctxMut{%s},\n", strings.Join(ms, ", "))
	}
	if p.argsA != nil {
		fmt.Fprintf(&sb, "\t\targsA: %s,\n", list(p.argsA))
	}
	if p.argsB != nil {
		fmt.Fprintf(&sb, "\t\targsB: %s,\n", list(p.argsB))
	}
	if p.baseB != "" {
		fmt.Fprintf(&sb, "\t\tbaseB: %s,\n", q(p.baseB))
	}
	for _, h := range []struct {
		name string
		m    map[string]string
	}{{"http", p.http}, {"httpB", p.httpB}} {
		if h.m != nil {
			var kv []string
			for _, k := range slices.Sorted(maps.Keys(h.m)) {
				kv = append(kv, q(k)+": "+q(h.m[k]))
			}
			fmt.Fprintf(&sb, "\t\t%s: map[string]string{%s},\n", h.name, strings.Join(kv, ", "))
		}
	}
	if p.httpModB != "" {
		fmt.Fprintf(&sb, "\t\thttpModB: %s,\n", q(p.httpModB))
	}
	if p.outA != "" {
		fmt.Fprintf(&sb, "\t\toutA: %s,\n", q(p.outA))
	}
	if p.outB != "" {
		fmt.Fprintf(&sb, "\t\toutB: %s,\n", q(p.outB))
	}
	if p.fail {
		sb.WriteString("\t\tfail: true,\n")
	}
	sb.WriteString("\t},")
	// As gofmt aligns it in a list of pairs.
	const pre, post = "package main\n\nvar _ = []cachePair{\n", "\n}\n"
	src, err := format.Source([]byte(pre + sb.String() + post))
	if err != nil {
		return sb.String()
	}
	return strings.TrimSuffix(strings.TrimPrefix(string(src), pre), post)
}
