package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	osexec "os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/internal/testenv"
)

// The differential cache harness (issue 13, item 5). Each cachePair is data: a
// Dockerfile A, a Dockerfile B (or A's again), a context, what changes in the context
// (or in the base image, the http server, the flags) between A and B. For each pair:
// build A then B on one --root, build B alone on a fresh --root, and require the two
// B images to be the same (config, every file's metadata and content, mtimes). A step
// wrongly taken from the cache shows up as a difference. "must-hit" pairs also say
// which steps of B must come from the cache after A.
//
// The pairs are in cachepairs_*_test.go. `go test ./cmd/kiln` runs the pairs marked
// sample; KILN_CACHECHECK=all (`make cachecheck`) runs all of them.

// cachePair is one A/B pair. Strings in df, dfB, ctx, args, env and out may hold the
// placeholders {base} (the pair's registry's busybox, a tag that holds base, then baseB),
// {host} (the registry, which also serves every variant as busybox:NAME), {digest:NAME}
// (a variant's manifest digest), {http} (the pair's http server), {tmp} (the pair's dir;
// the context is {tmp}/ctx), {ssh} (an ssh-agent-like socket) and {platform} (the
// host's, linux/GOARCH).
type cachePair struct {
	name   string
	sample bool // also run by a plain go test, not only with KILN_CACHECHECK=all

	df, dfB string // the Dockerfile of A, of B ("" = A's)
	// ctx is the context: path → content. "path/" is a directory; "path|OPTS" gives
	// options, comma separated: an octal mode (0755), uid:gid, "->" (a symlink to the
	// value), "=>" (a hard link to the value's path), "xattr:user.k=v". A path starting
	// "../" is beside the context, in {tmp}. Content "@tar:[mtime=N;]name=content;…"
	// is a tar of those files, "@tgz:…" the same gzipped, "@repeat:N:s" s repeated to N
	// bytes. Every mtime is fixed (not the wall clock), with a sub-second part.
	ctx map[string]string
	mut []ctxMut // applied to the context between A and B

	argsA, argsB []string // build flags of A, of B (nil = A's; []string{} = none)
	envA, envB   []string // environment of kiln for A, for B (nil = A's)
	outA, outB   string   // options appended to B's -o type=oci,dest=…, e.g. ",compression=zstd"
	base, baseB  string   // variant (see baseVariants) under {base} for A, for B ("" = plain, A's)

	http, httpB map[string]string // files the http server serves for A, for B (nil = A's)
	httpModB    string            // Last-Modified for B (RFC 3339; "" = A's fixed time)

	hit  []string          // steps of B after A that must be CACHED ("*": every step but FROM)
	miss []string          // steps of B after A that must be rebuilt ("*": every step)
	want map[string]string // path → content both B images must have ("<absent>": no such path)
	fail bool              // B must fail (in both builds)

	// mtimesNotKeyed marks a pair whose context changes only in mtimes. Docker's
	// documented cache rule, which BuildKit follows, leaves mtimes out of the
	// checksums of COPY/ADD sources and bind mounts: such a B must reuse every step
	// after A, and then keeps A's mtimes. The two B images are compared without
	// mtimes (and layer digests), and without the content of the files listed here,
	// which a RUN wrote from what it saw of those mtimes.
	mtimesNotKeyed []string
}

// ctxMut changes the context: op path arg.
//
//	write   path content   write (creating dirs); the mtime becomes a fixed later one
//	keep    path content   write, keeping the exact mtime (only ctime changes)
//	touch   path time      set the mtime: RFC 3339 (with nanoseconds), or "+DURATION"
//	chmod   path mode      octal
//	chown   path uid:gid
//	rm      path           remove (recursively)
//	symlink path target    (replacing path)
//	hardlink path target   (replacing path; target is a context path)
//	mkdir   path
//	append  path content
//	xattr   path k=v
//	mv      path newpath
type ctxMut struct{ op, path, arg string }

// baseVariant is a variant of the busybox image: extra files in one more layer, and
// config changes.
type baseVariant struct {
	files      map[string]string
	env        []string // appended
	user       string
	workdir    string
	cmd        []string
	entrypoint []string
	onbuild    []string
	shell      []string
	labels     map[string]string
	stopSignal string
}

var baseVariants = map[string]baseVariant{
	"plain":      {},
	"plain2":     {}, // the same image as plain, under another tag
	"layer":      {files: map[string]string{"etc/variant.txt": "layer\n"}},
	"layer2":     {files: map[string]string{"etc/variant.txt": "layer2\n"}},
	"env":        {env: []string{"FOO=one"}},
	"env2":       {env: []string{"FOO=two"}},
	"user":       {user: "app"},
	"workdir":    {workdir: "/home/app"},
	"cmd":        {cmd: []string{"echo", "variant"}},
	"entrypoint": {entrypoint: []string{"/bin/echo"}},
	"onbuild":    {onbuild: []string{"RUN echo one > /onbuild.txt"}},
	"onbuild2":   {onbuild: []string{"RUN echo two > /onbuild.txt"}},
	"shell":      {shell: []string{"/bin/busybox", "sh", "-c"}},
	"label":      {labels: map[string]string{"variant": "1"}},
	"label2":     {labels: map[string]string{"variant": "2"}},
	"stopsignal": {stopSignal: "SIGKILL"},
	"passwd": {files: map[string]string{"etc/passwd": "root:x:0:0:root:/root:/bin/sh\n" +
		"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\napp:x:2000:2000:app:/home/app:/bin/sh\n"}},
}

var (
	variantMu     sync.Mutex
	variantImages = map[string]v1.Image{}
)

func variantImage(t *testing.T, name string) v1.Image {
	t.Helper()
	variantMu.Lock()
	defer variantMu.Unlock()
	if img, ok := variantImages[name]; ok {
		return img
	}
	v, ok := baseVariants[name]
	if !ok {
		t.Fatalf("no base variant %q", name)
	}
	img := busyboxVariant(t, v.files, func(cf *v1.ConfigFile) {
		c := &cf.Config
		c.Env = append(c.Env, v.env...)
		if v.user != "" {
			c.User = v.user
		}
		if v.workdir != "" {
			c.WorkingDir = v.workdir
		}
		if v.cmd != nil {
			c.Cmd = v.cmd
		}
		if v.entrypoint != nil {
			c.Entrypoint = v.entrypoint
		}
		if v.onbuild != nil {
			c.OnBuild = v.onbuild
		}
		if v.shell != nil {
			c.Shell = v.shell
		}
		if v.labels != nil {
			c.Labels = v.labels
		}
		if v.stopSignal != "" {
			c.StopSignal = v.stopSignal
		}
	})
	variantImages[name] = img
	return img
}

// cachePairs is every pair, by family.
func cachePairs() []cachePair {
	return slices.Concat(basePairs, runPairs, runFlagPairs, copyPairs, pendingPairs, addPairs,
		mountPairs, secretPairs, metaPairs, argPairs, ctxPairs)
}

// cacheCheckStart is when the harness started: an mtime or a time in a config at or
// after it was made by a build (the wall clock) and is compared as "<build time>".
var cacheCheckStart time.Time

func TestCacheDifferential(t *testing.T) {
	pairs := cachePairs()
	names := map[string]bool{}
	for _, p := range pairs {
		if names[p.name] {
			t.Fatalf("two pairs are named %q", p.name)
		}
		names[p.name] = true
	}
	testRequireRootE2E(t)
	all := os.Getenv("KILN_CACHECHECK") == "all"
	cacheCheckStart = time.Now().Add(-time.Second)
	sem := make(chan struct{}, 2) // at most two pairs at a time
	ran := 0
	for _, p := range pairs {
		if !all && !p.sample {
			continue
		}
		ran++
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			sem <- struct{}{}
			defer func() { <-sem }()
			runPair(t, p)
		})
	}
	t.Logf("%d of %d pairs (KILN_CACHECHECK=all runs all)", ran, len(pairs))
}

// pairRun is the state of one pair being run.
type pairRun struct {
	p       cachePair
	dir     string // {tmp}
	ctx     string // {tmp}/ctx
	host    string
	httpSrv *httptest.Server
	httpMu  sync.Mutex
	served  map[string]string
	httpMod time.Time
	ssh     string
	digests map[string]string
}

func runPair(t *testing.T, p cachePair) {
	r := &pairRun{p: p, dir: t.TempDir(), digests: map[string]string{}}
	r.ctx = filepath.Join(r.dir, "ctx")
	r.host = testenv.Registry(t)
	r.startServers(t)
	r.pushVariants(t)
	r.pushBase(t, p.base)

	writeContext(t, r.dir, r.ctx, p.ctx, r.expand)
	writeDockerfile(t, r.ctx, r.expand(p.df))
	fixMtimes(t, r.dir, phaseCreate)

	rootAB, rootB := t.TempDir(), t.TempDir()
	a := r.build(t, rootAB, "a", p.argsA, p.envA, p.outA)
	if a.code != 0 {
		t.Fatalf("pair %s: A failed (exit %d); the pair needs A to build:\n%s", p.name, a.code, lastLines(a.stderr, 25))
	}

	// Between A and B.
	for _, m := range p.mut {
		applyMut(t, r.ctx, m, r.expand)
	}
	if p.dfB != "" {
		writeDockerfile(t, r.ctx, r.expand(p.dfB))
	}
	fixMtimes(t, r.dir, phaseMutate)
	if p.baseB != "" && p.baseB != p.base {
		r.pushBase(t, p.baseB)
	}
	if p.httpB != nil || p.httpModB != "" {
		r.httpMu.Lock()
		if p.httpB != nil {
			r.served = p.httpB
		}
		if p.httpModB != "" {
			r.httpMod = mustTime(t, p.httpModB)
		}
		r.httpMu.Unlock()
	}
	argsB, envB := p.argsB, p.envB
	if argsB == nil {
		argsB = p.argsA
	}
	if envB == nil {
		envB = p.envA
	}
	outB := p.outB
	if outB == "" {
		outB = p.outA
	}
	b1 := r.build(t, rootAB, "b-after-a", argsB, envB, outB)
	b2 := r.build(t, rootB, "b-fresh", argsB, envB, outB)
	defer noKilnMounts(t, rootAB)
	defer noKilnMounts(t, rootB)

	var report []string
	switch {
	case b1.code != 0 && b2.code != 0:
		if !p.fail {
			t.Fatalf("pair %s: B failed in both builds (exit %d); harness or kiln bug:\n%s", p.name, b2.code, lastLines(b2.stderr, 25))
		}
		return
	case b1.code != b2.code:
		report = append(report, fmt.Sprintf("build outcome: A-then-B exit %d, fresh-B exit %d\n      A-then-B: %s\n      fresh-B:  %s",
			b1.code, b2.code, lastLine(lastLines(b1.stderr, 1)), lastLine(lastLines(b2.stderr, 1))))
	case p.fail:
		t.Errorf("pair %s: B was expected to fail, but both builds succeeded", p.name)
		return
	}
	if p.mtimesNotKeyed != nil {
		p.hit = []string{"*"}
	}
	if b1.code == 0 {
		report = append(report, checkHits(p, parsePlain(b1.stderr))...)
	}
	if b1.code == 0 && b2.code == 0 {
		s1, s2 := snapImage(t, b1.out), snapImage(t, b2.out)
		if p.mtimesNotKeyed != nil {
			s1.withoutMtimes(p.mtimesNotKeyed)
			s2.withoutMtimes(p.mtimesNotKeyed)
		}
		report = append(report, diffSnaps(s1, s2)...)
		for path, want := range p.want {
			for _, s := range []struct {
				which string
				snap  *imageSnap
			}{{"A-then-B", s1}, {"fresh-B", s2}} {
				if got := s.snap.content(path); got != want {
					report = append(report, fmt.Sprintf("want %s = %q, %s has %q", path, want, s.which, got))
				}
			}
		}
	}
	if len(report) > 0 {
		t.Errorf("pair %s: B built after A differs from B built on a fresh root:\n%s%s\n%s",
			p.name, formatReport(report), stepStates(parsePlain(b1.stderr)), r.describe(argsB))
	}
}

// checkHits checks the hit and miss lists against B's steps after A.
func checkHits(p cachePair, steps []*step) []string {
	var out []string
	named := func() []*step {
		var ss []*step
		for _, s := range steps {
			if strings.HasPrefix(s.name, "[") && !strings.Contains(s.name, "] FROM ") {
				ss = append(ss, s)
			}
		}
		return ss
	}
	check := func(list []string, wantCached bool) {
		for _, sub := range list {
			var found []*step
			if sub == "*" {
				found = named()
			} else {
				for _, s := range steps {
					if strings.Contains(s.name, sub) {
						found = append(found, s)
					}
				}
				if len(found) == 0 {
					out = append(out, fmt.Sprintf("must-hit: no step of B matches %q:\n%s", sub, dumpSteps(steps)))
				}
			}
			for _, s := range found {
				if cached := s.state == "CACHED"; cached != wantCached {
					what := "must-hit: step %q of B after A is %s, want CACHED %s"
					if !wantCached {
						what = "must-miss: step %q of B after A is %s, want it rebuilt %s"
					}
					out = append(out, fmt.Sprintf(what, s.name, s.state, s.miss))
				}
			}
		}
	}
	check(p.hit, true)
	check(p.miss, false)
	return out
}

// stepStates lists which steps of B after A came from the cache.
func stepStates(steps []*step) string {
	var sb strings.Builder
	sb.WriteString("  steps of B after A:\n")
	for _, s := range steps {
		if strings.HasPrefix(s.name, "[") {
			fmt.Fprintf(&sb, "    %-6s %s\n", s.state, s.name)
		}
	}
	return sb.String()
}

func formatReport(lines []string) string {
	const max = 40
	var sb strings.Builder
	for i, l := range lines {
		if i == max {
			fmt.Fprintf(&sb, "    … and %d more differences\n", len(lines)-max)
			break
		}
		fmt.Fprintf(&sb, "    %s\n", l)
	}
	return sb.String()
}

// describe says what the pair is, for a failure message.
func (r *pairRun) describe(argsB []string) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "  Dockerfile A:\n%s", indent(r.p.df))
	if r.p.dfB != "" {
		fmt.Fprintf(&sb, "  Dockerfile B:\n%s", indent(r.p.dfB))
	}
	if len(r.p.mut) > 0 {
		fmt.Fprintf(&sb, "  between A and B: %v\n", r.p.mut)
	}
	if r.p.baseB != "" && r.p.baseB != r.p.base {
		fmt.Fprintf(&sb, "  base: %q, then %q\n", r.p.base, r.p.baseB)
	}
	fmt.Fprintf(&sb, "  flags A: %q, B: %q; env A: %q, B: %q; out A: %q, B: %q",
		r.p.argsA, argsB, r.p.envA, r.p.envB, r.p.outA, r.p.outB)
	return sb.String()
}

func indent(s string) string {
	var sb strings.Builder
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		fmt.Fprintf(&sb, "    | %s\n", l)
	}
	return sb.String()
}

var placeholder = regexp.MustCompile(`\{(base|host|http|tmp|ssh|platform|digest:[a-z0-9]+)\}`)

// expand replaces the placeholders of s.
func (r *pairRun) expand(s string) string {
	return placeholder.ReplaceAllStringFunc(s, func(m string) string {
		switch k := m[1 : len(m)-1]; {
		case k == "base":
			return r.host + "/busybox"
		case k == "host":
			return r.host
		case k == "http":
			if r.httpSrv == nil {
				return m
			}
			return r.httpSrv.URL
		case k == "tmp":
			return r.dir
		case k == "ssh":
			return r.ssh
		case k == "platform":
			return "linux/" + runtime.GOARCH
		default:
			return r.digests[strings.TrimPrefix(k, "digest:")]
		}
	})
}

// pushVariants pushes every variant the pair names as {host}/busybox:NAME or
// {digest:NAME}.
func (r *pairRun) pushVariants(t *testing.T) {
	all := strings.Join(append(append([]string{r.p.df, r.p.dfB}, r.p.argsA...), r.p.argsB...), "\n")
	for _, v := range r.p.ctx {
		all += "\n" + v
	}
	tag := regexp.MustCompile(`\{host\}/busybox:([a-z0-9]+)|\{digest:([a-z0-9]+)\}`)
	for _, m := range tag.FindAllStringSubmatch(all, -1) {
		name := m[1] + m[2]
		if _, done := r.digests[name]; done {
			continue
		}
		img := variantImage(t, name)
		testenv.PushImage(t, img, r.host+"/busybox:"+name)
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		r.digests[name] = d.String()
	}
}

// pushBase points {base} (busybox:latest) at a variant.
func (r *pairRun) pushBase(t *testing.T, variant string) {
	if variant == "" {
		variant = "plain"
	}
	testenv.PushImage(t, variantImage(t, variant), r.host+"/busybox:latest")
}

// startServers starts the http server and the ssh socket the pair uses.
func (r *pairRun) startServers(t *testing.T) {
	p := r.p
	if p.http != nil {
		r.served = p.http
		r.httpMod = time.Date(2021, 3, 4, 5, 6, 7, 0, time.UTC)
		r.httpSrv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			r.httpMu.Lock()
			data, ok := r.served[strings.TrimPrefix(req.URL.Path, "/")]
			mod := r.httpMod
			r.httpMu.Unlock()
			if !ok {
				http.NotFound(w, req)
				return
			}
			w.Header().Set("Last-Modified", mod.Format(http.TimeFormat))
			w.Write([]byte(genContent(t, data)))
		}))
		t.Cleanup(r.httpSrv.Close)
	}
	if strings.Contains(strings.Join(append(p.argsA, p.argsB...), " "), "{ssh}") {
		// A short path: a socket's path is at most 108 bytes.
		sockDir, err := os.MkdirTemp("", "kiln-cc-ssh")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(sockDir) })
		r.ssh = filepath.Join(sockDir, "agent.sock")
		fakeSSHAgent(t, r.ssh)
	}
}

// buildResult is one kiln build of a pair.
type buildResult struct {
	code   int
	stderr string
	out    string // the OCI tarball
}

// build runs kiln build in the pair's context on root.
func (r *pairRun) build(t *testing.T, root, name string, args, env []string, outOpts string) buildResult {
	t.Helper()
	out := filepath.Join(r.dir, name+".tar")
	argv := []string{"build", "--root", root, "--progress", "plain", "-o", "type=oci,dest=" + out + r.expand(outOpts)}
	for _, a := range args {
		argv = append(argv, r.expand(a))
	}
	argv = append(argv, ".")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := osexec.CommandContext(ctx, os.Args[0], argv...)
	cmd.Dir = r.ctx
	cmd.Env = kilnEnviron(filepath.Join(r.dir, "docker-config"))
	for _, e := range env {
		cmd.Env = append(cmd.Env, r.expand(e))
	}
	// kiln re-executes itself: on a timeout, kill its whole process group.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := buildResult{stderr: stderr.String(), out: out}
	var ee *osexec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("pair %s: build %s did not finish in time:\n%s", r.p.name, name, lastLines(res.stderr, 20))
	case errors.As(err, &ee):
		res.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("run kiln: %v", err)
	}
	return res
}

// kilnEnviron is the test's environment without what would change a build (proxies,
// SOURCE_DATE_EPOCH, an ssh agent, docker credentials), plus KILN_E2E_MAIN.
func kilnEnviron(dockerConfig string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch uk := strings.ToUpper(k); {
		case strings.HasSuffix(uk, "_PROXY"), uk == "SOURCE_DATE_EPOCH", uk == "SSH_AUTH_SOCK",
			uk == "DOCKER_CONFIG", strings.HasPrefix(uk, "KILN_"):
			continue
		}
		env = append(env, kv)
	}
	return append(env, "KILN_E2E_MAIN=1", "DOCKER_CONFIG="+dockerConfig)
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	tm, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("time %q: %v", s, err)
	}
	return tm
}
