package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	osexec "os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// The solver's cache and scheduling, end to end (issue 5): which steps a rebuild
// takes from the cache and why it misses, parallel stages, failure cancellation,
// concurrent builds on one root, kill -9, du and prune.

// step is one step of a --progress plain log.
type step struct {
	id    string
	name  string // e.g. "[stage-0 3/5] COPY src/ /src/"
	state string // "CACHED", "DONE" or "ERROR"
	miss  string // the cache-miss line's reason, if any
	lines []string
}

var plainLine = regexp.MustCompile(`^#(\d+) (.*)$`)

// parsePlain reads the steps of a --progress plain log, in the order first seen.
func parsePlain(log string) []*step {
	var steps []*step
	byID := map[string]*step{}
	for _, line := range strings.Split(log, "\n") {
		m := plainLine.FindStringSubmatch(line)
		if m == nil || m[1] == "0" { // "#0": a note of the whole build
			continue
		}
		s := byID[m[1]]
		if s == nil {
			s = &step{id: m[1], name: m[2]}
			byID[m[1]] = s
			steps = append(steps, s)
		}
		s.lines = append(s.lines, line)
		switch rest := m[2]; {
		case rest == "CACHED":
			s.state = "CACHED"
		case strings.HasPrefix(rest, "DONE "):
			s.state = "DONE"
		case strings.HasPrefix(rest, "ERROR"):
			s.state = "ERROR"
		case strings.HasPrefix(rest, "cache miss: "):
			s.miss = rest
		}
	}
	return steps
}

// findStep returns the one step whose name contains substr.
func findStep(t *testing.T, steps []*step, substr string) *step {
	t.Helper()
	var found []*step
	for _, s := range steps {
		if strings.Contains(s.name, substr) {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d steps match %q in:\n%s", len(found), substr, dumpSteps(steps))
	}
	return found[0]
}

func dumpSteps(steps []*step) string {
	var sb strings.Builder
	for _, s := range steps {
		fmt.Fprintf(&sb, "  #%s %s: %s %s\n", s.id, s.name, s.state, s.miss)
	}
	return sb.String()
}

// wantStates checks the state of the steps matching each substring.
func wantStates(t *testing.T, steps []*step, want map[string]string) {
	t.Helper()
	for substr, state := range want {
		if s := findStep(t, steps, substr); s.state != state {
			t.Errorf("step %q is %s, want %s\nsteps:\n%s", s.name, s.state, state, dumpSteps(steps))
		}
	}
}

// allCached fails unless every step but FROM of a registry image came from the cache.
func allCached(t *testing.T, steps []*step) {
	t.Helper()
	for _, s := range steps {
		if strings.Contains(s.name, "] FROM ") || strings.HasPrefix(s.name, "exporting to ") {
			continue
		}
		if s.state != "CACHED" {
			t.Errorf("step %q is %s, want CACHED\nsteps:\n%s", s.name, s.state, dumpSteps(steps))
		}
	}
}

// noneCached fails if any step came from the cache.
func noneCached(t *testing.T, steps []*step) {
	t.Helper()
	for _, s := range steps {
		if s.state == "CACHED" {
			t.Errorf("step %q is CACHED, want it rebuilt\nsteps:\n%s", s.name, dumpSteps(steps))
		}
	}
}

// built is one plain-progress build: its steps, log and image digest.
type built struct {
	steps  []*step
	log    string
	digest string // manifest digest from --metadata-file
}

// buildPlain builds dir with --progress plain on root and returns its steps and digest.
func buildPlain(t *testing.T, dir, root string, args ...string) built {
	t.Helper()
	meta := filepath.Join(t.TempDir(), "meta.json")
	r := mustBuild(t, dir, append([]string{"--root", root, "--progress", "plain", "--metadata-file", meta}, append(args, ".")...)...)
	var md map[string]string
	data, err := os.ReadFile(meta)
	if err != nil || json.Unmarshal(data, &md) != nil || md["containerimage.digest"] == "" {
		t.Fatalf("metadata file: %v %s", err, data)
	}
	return built{steps: parsePlain(r.stderr), log: r.stderr, digest: md["containerimage.digest"]}
}

func writeFile(t *testing.T, p, content string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := osexec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

// cacheDockerfile has a RUN that uses a declared ARG, then two COPYs and a RUN that
// reads what they copied.
const cacheDockerfile = `FROM %s/busybox
ARG USED
RUN echo "used=$USED" > /used.txt
COPY a.txt /a.txt
COPY src/ /src/
RUN cat /a.txt /src/main.go > /out.txt
`

// Each rule of the step cache key, on a warm cache of the same build.
func TestCacheKeyRules(t *testing.T) {
	testRequireRootE2E(t)
	host := busyboxRegistry(t)
	// setup builds a fresh project on a fresh root once and returns the context dir,
	// the root and the first build.
	setup := func(t *testing.T) (dir, root string, first built) {
		root, _ = e2e(t)
		dir = project(t, map[string]string{
			"Dockerfile":    fmt.Sprintf(cacheDockerfile, host),
			"a.txt":         "A\n",
			"src/main.go":   "package main\n",
			"src/util.go":   "package util\n",
			"notes.log":     "ignored\n",
			".dockerignore": "*.log\n",
		})
		first = buildPlain(t, dir, root)
		noneCached(t, first.steps)
		return dir, root, first
	}

	t.Run("warm rebuild", func(t *testing.T) {
		t.Parallel()
		dir, root, first := setup(t)
		again := buildPlain(t, dir, root)
		allCached(t, again.steps)
		if again.digest != first.digest {
			t.Errorf("warm rebuild digest %s, first %s", again.digest, first.digest)
		}
	})

	t.Run("build args", func(t *testing.T) {
		t.Parallel()
		dir, root, first := setup(t)
		// Not declared by any ARG: no effect on any step.
		unused := buildPlain(t, dir, root, "--build-arg", "UNUSED=1")
		allCached(t, unused.steps)
		if unused.digest != first.digest {
			t.Errorf("an unused build arg changed the digest")
		}
		// Declared before the RUNs: every RUN after the ARG reruns.
		used := buildPlain(t, dir, root, "--build-arg", "USED=2")
		s := findStep(t, used.steps, `RUN echo "used=`)
		if s.state != "DONE" {
			t.Fatalf("RUN using USED is %s, want rebuilt\n%s", s.state, used.log)
		}
		if want := "(build arg or env USED changed)"; !strings.HasSuffix(s.miss, want) {
			t.Errorf("cache miss line %q does not end in %q", s.miss, want)
		}
		if used.digest == first.digest {
			t.Error("a used build arg did not change the image")
		}
		// The same value again is a hit.
		allCached(t, buildPlain(t, dir, root, "--build-arg", "USED=2").steps)
	})

	t.Run("touch is not a change", func(t *testing.T) {
		t.Parallel()
		dir, root, first := setup(t)
		run(t, "touch", "-d", "2001-01-01", filepath.Join(dir, "a.txt"), filepath.Join(dir, "src/main.go"), filepath.Join(dir, "src"))
		again := buildPlain(t, dir, root)
		allCached(t, again.steps)
		if again.digest != first.digest {
			t.Error("touch changed the digest")
		}
	})

	t.Run("content change", func(t *testing.T) {
		t.Parallel()
		dir, root, first := setup(t)
		writeFile(t, filepath.Join(dir, "src/main.go"), "package main // changed\n")
		again := buildPlain(t, dir, root)
		wantStates(t, again.steps, map[string]string{
			`RUN echo "used=`: "CACHED",
			"COPY a.txt":      "CACHED",
			"COPY src/":       "DONE",
			"RUN cat /a.txt":  "DONE",
		})
		if s := findStep(t, again.steps, "COPY src/"); s.miss != "cache miss: COPY src/ /src/ (src/main.go changed)" {
			t.Errorf("cache miss line = %q", s.miss)
		}
		if s := findStep(t, again.steps, "RUN cat /a.txt"); !strings.HasSuffix(s.miss, "(a previous step changed)") {
			t.Errorf("cache miss line of the next RUN = %q", s.miss)
		}
		if again.digest == first.digest {
			t.Error("a content change did not change the image")
		}
	})

	t.Run("chmod is a change", func(t *testing.T) {
		t.Parallel()
		dir, root, _ := setup(t)
		if err := os.Chmod(filepath.Join(dir, "a.txt"), 0o755); err != nil {
			t.Fatal(err)
		}
		again := buildPlain(t, dir, root)
		wantStates(t, again.steps, map[string]string{
			`RUN echo "used=`: "CACHED",
			"COPY a.txt":      "DONE",
			"COPY src/":       "DONE",
		})
		if s := findStep(t, again.steps, "COPY a.txt"); !strings.HasSuffix(s.miss, "(a.txt changed)") {
			t.Errorf("cache miss line = %q", s.miss)
		}
	})

	t.Run("dockerignored file", func(t *testing.T) {
		t.Parallel()
		root, _ := e2e(t)
		dir := project(t, map[string]string{
			"Dockerfile":    fmt.Sprintf("FROM %s/busybox\nCOPY . /app/\nRUN ls /app > /ls.txt\n", host),
			"keep.txt":      "keep\n",
			"debug.log":     "one\n",
			"tmp/x":         "x\n",
			".dockerignore": "*.log\ntmp/\n",
		})
		first := buildPlain(t, dir, root)
		writeFile(t, filepath.Join(dir, "debug.log"), "two, longer\n")
		writeFile(t, filepath.Join(dir, "tmp/x"), "changed\n")
		writeFile(t, filepath.Join(dir, "new.log"), "new\n")
		again := buildPlain(t, dir, root)
		allCached(t, again.steps)
		if again.digest != first.digest {
			t.Error("an ignored file changed the digest")
		}
		// The ignore file itself is copied (it is not ignored), so changing it is a
		// change; a kept file's change is too.
		writeFile(t, filepath.Join(dir, "keep.txt"), "kept, changed\n")
		third := buildPlain(t, dir, root)
		if s := findStep(t, third.steps, "COPY . /app/"); s.state != "DONE" || !strings.HasSuffix(s.miss, "(keep.txt changed)") {
			t.Errorf("COPY after a kept file changed: %s %q", s.state, s.miss)
		}
	})

	t.Run("fresh copy of the context", func(t *testing.T) {
		t.Parallel()
		dir, root, first := setup(t)
		for _, cp := range [][]string{{"-a"}, {"-r"}} {
			copyDir := filepath.Join(t.TempDir(), "ctx")
			run(t, "cp", append(cp, dir, copyDir)...)
			if cp[0] == "-r" {
				// Make sure mtimes really differ from the original's.
				run(t, "touch", "-d", "2002-02-02", filepath.Join(copyDir, "a.txt"))
			}
			again := buildPlain(t, copyDir, root)
			allCached(t, again.steps)
			if again.digest != first.digest {
				t.Errorf("cp %s: digest %s, first %s", cp[0], again.digest, first.digest)
			}
		}
	})

	t.Run("no-cache", func(t *testing.T) {
		t.Parallel()
		dir, root, _ := setup(t)
		noneCached(t, buildPlain(t, dir, root, "--no-cache").steps)
	})

	t.Run("no-cache-filter", func(t *testing.T) {
		t.Parallel()
		root, _ := e2e(t)
		dir := project(t, map[string]string{
			"Dockerfile": fmt.Sprintf(`FROM %[1]s/busybox AS deps
RUN echo deps > /deps.txt
FROM %[1]s/busybox AS app
RUN echo app > /app.txt
COPY --from=deps /deps.txt /deps.txt
`, host),
		})
		buildPlain(t, dir, root)
		again := buildPlain(t, dir, root, "--no-cache-filter", "app")
		wantStates(t, again.steps, map[string]string{
			"[deps 2/2] RUN echo deps": "CACHED",
			"[app 2/3] RUN echo app":   "DONE",
			"[app 3/3] COPY --from":    "DONE",
		})
	})
}

// testRequireRootE2E skips a parent test early when not root (e2e(t) does it too, in
// each subtest).
func testRequireRootE2E(t *testing.T) {
	t.Helper()
	e2e(t)
}

// A rerun step whose output differs from the cached one (--no-cache of a RUN that is
// not reproducible) must give a consistent image: the next step sees exactly what the
// rerun step's layer holds, in this build and in later cached builds.
func TestCacheRerunStepIsConsistent(t *testing.T) {
	root, out := e2e(t)
	host := busyboxRegistry(t)
	dir := project(t, map[string]string{
		"Dockerfile": fmt.Sprintf("FROM %s/busybox\nRUN cat /proc/uptime /proc/self/stat > /t\nRUN cp /t /u\n", host),
	})
	check := func(name string, args ...string) {
		t.Helper()
		tarPath := filepath.Join(out, name+".tar")
		buildPlain(t, dir, root, append(args, "-o", "type=oci,dest="+tarPath)...)
		files := flatten(t, readOCI(t, tarPath))
		if files["/t"].content == "" || files["/t"].content != files["/u"].content {
			t.Errorf("%s: /t = %q but /u (a copy of it made by the next step) = %q", name, files["/t"].content, files["/u"].content)
		}
	}
	check("first")
	check("no-cache", "--no-cache")
	check("cached")
}

// The exact plain output of a rebuild after one file changed: the steps before the
// COPY are CACHED, the COPY says which file changed.
func TestCachePlainOutputShape(t *testing.T) {
	root, _ := e2e(t)
	host := busyboxRegistry(t)
	dir := project(t, map[string]string{
		"Dockerfile":  fmt.Sprintf("FROM %s/busybox\nWORKDIR /app\nRUN echo setup > /setup.txt\nCOPY src/ ./src/\nRUN cat src/main.go\n", host),
		"src/main.go": "package main\n",
	})
	buildPlain(t, dir, root)
	writeFile(t, filepath.Join(dir, "src/main.go"), "package main\n\nfunc main() {}\n")
	r := buildPlain(t, dir, root)
	// Durations and output timestamps vary: normalise them.
	done := regexp.MustCompile(`^(#\d+ DONE) \d+\.\ds$`)
	stamp := regexp.MustCompile(`^(#\d+) \d+\.\d{3} `)
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(r.log), "\n") {
		got = append(got, done.ReplaceAllString(stamp.ReplaceAllString(line, "$1 T "), "$1 Xs"))
	}
	want := []string{
		"#1 [1/5] FROM " + host + "/busybox",
		"#1 DONE Xs",
		"",
		"#2 [2/5] WORKDIR /app",
		"#2 CACHED",
		"",
		"#3 [3/5] RUN echo setup > /setup.txt",
		"#3 CACHED",
		"",
		"#4 [4/5] COPY src/ ./src/",
		"#4 cache miss: COPY src/ ./src/ (src/main.go changed)",
		"#4 DONE Xs",
		"",
		"#5 [5/5] RUN cat src/main.go",
		"#5 cache miss: RUN cat src/main.go (a previous step changed)",
		"#5 T package main",
		"#5 T ",
		"#5 T func main() {}",
		"#5 DONE Xs",
	}
	if !slices.Equal(got, want) {
		t.Errorf("plain output:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// interval is when a RUN ran, in seconds of /proc/uptime.
type interval struct{ start, end float64 }

var uptimeMark = regexp.MustCompile(`^#\d+ \d+\.\d+ (START|END) (\d+\.\d+)$`)

// runInterval reads the START and END marks a step printed.
func runInterval(t *testing.T, s *step) interval {
	t.Helper()
	var iv interval
	for _, line := range s.lines {
		m := uptimeMark.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		var v float64
		fmt.Sscanf(m[2], "%g", &v)
		if m[1] == "START" {
			iv.start = v
		} else {
			iv.end = v
		}
	}
	if iv.start == 0 || iv.end == 0 {
		t.Fatalf("step %s printed no START/END marks:\n%s", s.name, strings.Join(s.lines, "\n"))
	}
	return iv
}

// parallelDockerfile has four independent stages that each sleep a second between
// two uptime marks, and a final stage that copies from all four.
func parallelDockerfile(host string) string {
	var sb strings.Builder
	for i := 1; i <= 4; i++ {
		fmt.Fprintf(&sb, "FROM %s/busybox AS s%d\nRUN echo START $(cut -d' ' -f1 /proc/uptime); sleep 1; echo %d > /r; echo END $(cut -d' ' -f1 /proc/uptime)\n", host, i, i)
	}
	fmt.Fprintf(&sb, "FROM %s/busybox\n", host)
	for i := 1; i <= 4; i++ {
		fmt.Fprintf(&sb, "COPY --from=s%d /r /r%d\n", i, i)
	}
	return sb.String()
}

// Independent stages run at once with --jobs 4 and one at a time with --jobs 1; the
// image is the same either way.
func TestCacheParallelStages(t *testing.T) {
	testRequireRootE2E(t)
	host := busyboxRegistry(t)
	dir := project(t, map[string]string{"Dockerfile": parallelDockerfile(host)})
	var mu sync.Mutex
	results := map[string]built{}
	for _, jobs := range []string{"1", "4"} {
		t.Run("jobs "+jobs, func(t *testing.T) {
			t.Parallel()
			root, _ := e2e(t)
			r := buildPlain(t, dir, root, "--jobs", jobs, "--build-arg", "SOURCE_DATE_EPOCH=1700000000")
			var ivs []interval
			for i := 1; i <= 4; i++ {
				ivs = append(ivs, runInterval(t, findStep(t, r.steps, fmt.Sprintf("[s%d 2/2] RUN", i))))
			}
			overlaps := 0
			for i := range ivs {
				for j := i + 1; j < len(ivs); j++ {
					if ivs[i].start < ivs[j].end && ivs[j].start < ivs[i].end {
						overlaps++
					}
				}
			}
			switch {
			case jobs == "1" && overlaps > 0:
				t.Errorf("--jobs 1: %d pairs of RUN steps overlapped: %v", overlaps, ivs)
			case jobs == "4" && overlaps == 0:
				t.Errorf("--jobs 4: no RUN steps overlapped: %v", ivs)
			}
			mu.Lock()
			results[jobs] = r
			mu.Unlock()
		})
	}
	t.Cleanup(func() {
		if a, b := results["1"].digest, results["4"].digest; a == "" || a != b {
			t.Errorf("--jobs 1 gave %s, --jobs 4 gave %s", a, b)
		}
	})
}

// SOURCE_DATE_EPOCH makes layers reproducible, also when the steps were first cached
// by a build without it.
func TestCacheSourceDateEpochReproducible(t *testing.T) {
	rootA, _ := e2e(t)
	rootB, _ := e2e(t)
	host := busyboxRegistry(t)
	dir := project(t, map[string]string{
		"Dockerfile": fmt.Sprintf("FROM %s/busybox\nRUN echo hi > /hi.txt\nCOPY f.txt /f.txt\n", host),
		"f.txt":      "f\n",
	})
	epoch := []string{"--build-arg", "SOURCE_DATE_EPOCH=1700000000"}
	fresh := buildPlain(t, dir, rootA, epoch...)
	buildPlain(t, dir, rootB)
	warm := buildPlain(t, dir, rootB, epoch...)
	if warm.digest != fresh.digest {
		t.Errorf("with SOURCE_DATE_EPOCH after a build without it: %s, fresh: %s", warm.digest, fresh.digest)
	}
	again := buildPlain(t, dir, rootB, epoch...)
	allCached(t, again.steps)
	if again.digest != fresh.digest {
		t.Errorf("warm rebuild with SOURCE_DATE_EPOCH: %s, fresh: %s", again.digest, fresh.digest)
	}
}

// The layer codec of -o compression=... applies to cached steps too.
func TestCacheCompressionOfCachedSteps(t *testing.T) {
	root, out := e2e(t)
	host := busyboxRegistry(t)
	dir := project(t, map[string]string{
		"Dockerfile": fmt.Sprintf("FROM %s/busybox\nRUN echo hi > /hi.txt\nCOPY f.txt /f.txt\n", host),
		"f.txt":      "f\n",
	})
	buildPlain(t, dir, root)
	tarPath := filepath.Join(out, "zstd.tar")
	buildPlain(t, dir, root, "-o", "type=oci,dest="+tarPath+",compression=zstd")
	// ggcr's full validation gunzips every layer: check the manifest and config only.
	layoutDir := t.TempDir()
	untar(t, tarPath, layoutDir)
	idx, err := layout.ImageIndexFromPath(layoutDir)
	if err != nil {
		t.Fatal(err)
	}
	m, err := idx.IndexManifest()
	if err != nil || len(m.Manifests) != 1 {
		t.Fatalf("index: %+v, %v", m, err)
	}
	img, err := idx.Image(m.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(img, validate.Fast); err != nil {
		t.Fatal(err)
	}
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range ls[len(ls)-2:] {
		mt, _ := l.MediaType()
		if !strings.Contains(string(mt), "zstd") {
			t.Errorf("layer %d of the steps has media type %s, want zstd", i, mt)
		}
	}
	if files := flatten(t, img); files["/hi.txt"].content != "hi\n" || files["/f.txt"].content != "f\n" {
		t.Errorf("zstd image files wrong")
	}
}

// The first failing step cancels the others: a build whose one stage fails at once
// while another sleeps 30 s ends in well under 30 s, and no step process is left.
func TestCacheFirstFailureCancels(t *testing.T) {
	root, _ := e2e(t)
	host := busyboxRegistry(t)
	// The sleep's odd argument lets the test find a leftover process by its command line.
	dir := project(t, map[string]string{
		"Dockerfile": fmt.Sprintf(`FROM %[1]s/busybox AS slow
RUN sleep 29.4242
FROM %[1]s/busybox AS bad
RUN sleep 0.2; echo failing; exit 3
FROM %[1]s/busybox
COPY --from=slow /etc/passwd /a
COPY --from=bad /etc/passwd /b
`, host),
	})
	start := time.Now()
	r := kiln(t, dir, "build", "--root", root, "--progress", "plain", "--jobs", "4", ".")
	took := time.Since(start)
	if r.code != 1 {
		t.Fatalf("exit %d, want 1\n%s", r.code, r.stderr)
	}
	if took > 10*time.Second {
		t.Errorf("the build took %s: the failure did not cancel the sleeping stage", took)
	}
	if !strings.Contains(r.stderr, "exit code: 3") {
		t.Errorf("stderr does not report the failing step's exit code:\n%s", r.stderr)
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		if data, err := os.ReadFile(p); err == nil && strings.Contains(string(data), "29.4242") {
			t.Errorf("step process left running: %s %q", p, data)
		}
	}
	noKilnMounts(t, root)
}

// runKiln is kiln() for goroutines: it reports instead of failing the test.
func runKiln(dir string, args ...string) (result, error) {
	cmd := osexec.Command(os.Args[0], args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "KILN_E2E_MAIN=1")
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errOut.String()}
	var ee *osexec.ExitError
	if errors.As(err, &ee) {
		r.code, err = ee.ExitCode(), nil
	}
	return r, err
}

// Three builds of different Dockerfiles on one root at once (same base, a shared first
// step whose output is not reproducible) all succeed with consistent images, and
// rebuilding them is all CACHED.
func TestCacheConcurrentBuildsOneRoot(t *testing.T) {
	root, out := e2e(t)
	host := busyboxRegistry(t)
	// The shared step races: each build runs it (none finds it cached) and they write
	// different /t. A later step must still see the /t of the layer it is built on.
	common := fmt.Sprintf("FROM %s/busybox\nRUN cat /proc/uptime /proc/self/stat > /t; sleep 0.3\n", host)
	var dirs []string
	for i := range 3 {
		dirs = append(dirs, project(t, map[string]string{
			"Dockerfile": common + fmt.Sprintf("RUN cp /t /u; echo %d > /n\nCOPY f.txt /f.txt\n", i),
			"f.txt":      fmt.Sprintf("file %d\n", i),
		}))
	}
	var wg sync.WaitGroup
	results := make([]result, 3)
	errs := make([]error, 3)
	for i, dir := range dirs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = runKiln(dir, "build", "--root", root, "--progress", "plain",
				"-o", "type=oci,dest="+filepath.Join(out, fmt.Sprintf("%d.tar", i)), ".")
		}()
	}
	wg.Wait()
	raced := 0
	for i := range dirs {
		if errs[i] != nil || results[i].code != 0 {
			t.Fatalf("build %d: %v exit %d\n%s", i, errs[i], results[i].code, results[i].stderr)
		}
		if findStep(t, parsePlain(results[i].stderr), "RUN cat /proc/uptime").state == "DONE" {
			raced++
		}
		files := flatten(t, readOCI(t, filepath.Join(out, fmt.Sprintf("%d.tar", i))))
		if files["/t"].content == "" || files["/t"].content != files["/u"].content {
			t.Errorf("build %d: /t = %q, /u = %q", i, files["/t"].content, files["/u"].content)
		}
		if files["/n"].content != fmt.Sprintf("%d\n", i) || files["/f.txt"].content != fmt.Sprintf("file %d\n", i) {
			t.Errorf("build %d: /n = %q, /f.txt = %q", i, files["/n"].content, files["/f.txt"].content)
		}
	}
	t.Logf("%d of 3 builds ran the shared step", raced)
	// Warm: every step of each is cached now, and the cached images are consistent.
	for i, dir := range dirs {
		tarPath := filepath.Join(out, fmt.Sprintf("warm%d.tar", i))
		r := buildPlain(t, dir, root, "-o", "type=oci,dest="+tarPath)
		allCached(t, r.steps)
		files := flatten(t, readOCI(t, tarPath))
		if files["/t"].content != files["/u"].content {
			t.Errorf("warm build %d: /t = %q, /u = %q", i, files["/t"].content, files["/u"].content)
		}
	}
	noKilnMounts(t, root)
}

// kill -9 of kiln at any point leaves a root the next build uses: it succeeds, its
// image is right, and no mount is left behind.
func TestCacheSIGKILL(t *testing.T) {
	root, out := e2e(t)
	host := busyboxRegistry(t)
	big := make([]byte, 4<<20)
	for i := range big {
		big[i] = byte(i*7 + i>>11)
	}
	dir := project(t, map[string]string{
		"Dockerfile": fmt.Sprintf(`FROM %s/busybox
RUN sleep 0.3; echo a > /a
COPY big.bin /big.bin
RUN sleep 0.3; cp /big.bin /big2; echo b > /b
RUN sleep 0.3; echo c > /c
`, host),
	})
	writeFile(t, filepath.Join(dir, "big.bin"), string(big))
	for _, after := range []time.Duration{100 * time.Millisecond, 300 * time.Millisecond, 550 * time.Millisecond, 800 * time.Millisecond, 1100 * time.Millisecond} {
		cmd := osexec.Command(os.Args[0], "build", "--root", root, "--progress", "plain", "--no-cache",
			"-o", "type=oci,dest="+filepath.Join(out, "killed.tar"), ".")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "KILN_E2E_MAIN=1")
		// kiln re-executes itself into a private mount namespace: kill the whole group.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		var log strings.Builder
		cmd.Stderr = &log
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(after)
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		err := cmd.Wait()
		t.Logf("killed after %s (%v); it had got to:\n%s", after, err, lastLines(log.String(), 3))
		if _, err := os.Stat(filepath.Join(out, "killed.tar")); err == nil {
			// A build that finished before the kill is fine; a partial output is not
			// (the output is renamed into place only when complete).
			readOCI(t, filepath.Join(out, "killed.tar"))
			os.Remove(filepath.Join(out, "killed.tar"))
		}
		noKilnMounts(t, root)
	}
	tarPath := filepath.Join(out, "after.tar")
	buildPlain(t, dir, root, "-o", "type=oci,dest="+tarPath)
	files := flatten(t, readOCI(t, tarPath))
	for p, want := range map[string]string{"/a": "a\n", "/b": "b\n", "/c": "c\n", "/big.bin": string(big), "/big2": string(big)} {
		if got := files[p].content; got != want {
			t.Errorf("%s: %d bytes, want %d", p, len(got), len(want))
		}
	}
	// And the cache it left is whole: a rebuild is all CACHED with the same image.
	again := buildPlain(t, dir, root)
	allCached(t, again.steps)
	noKilnMounts(t, root)
	// What the killed builds had half written is gone once builds ran again.
	for _, tmp := range []string{filepath.Join(root, "tmp"), filepath.Join(root, "snapshots", "tmp")} {
		if entries, err := os.ReadDir(tmp); err == nil && len(entries) > 0 {
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			t.Errorf("left in %s: %v", tmp, names)
		}
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// usage is what kiln du printed.
type usage struct {
	blobs, snapshots, total string
	entries                 int
}

func du(t *testing.T, root string) usage {
	t.Helper()
	r := kiln(t, t.TempDir(), "du", "--root", root)
	if r.code != 0 {
		t.Fatalf("kiln du: exit %d\n%s", r.code, r.stderr)
	}
	var u usage
	for _, line := range strings.Split(r.stdout, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 2 && f[0] == "blobs":
			u.blobs = f[1]
		case len(f) == 2 && f[0] == "snapshots":
			u.snapshots = f[1]
		case len(f) == 2 && f[0] == "Total:":
			u.total = f[1]
		case len(f) == 3 && f[0] == "Cache" && f[1] == "entries:":
			fmt.Sscanf(f[2], "%d", &u.entries)
		}
	}
	if u.total == "" || u.blobs == "" {
		t.Fatalf("cannot read kiln du output:\n%s", r.stdout)
	}
	return u
}

// sizeBytes reads humanSize's output back (1000-based units).
func sizeBytes(t *testing.T, s string) float64 {
	t.Helper()
	var n float64
	var unit string
	if _, err := fmt.Sscanf(s, "%f%s", &n, &unit); err != nil {
		t.Fatalf("size %q: %v", s, err)
	}
	mult := map[string]float64{"B": 1, "kB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12}[unit]
	if mult == 0 {
		t.Fatalf("size %q: unknown unit", s)
	}
	return n * mult
}

func prune(t *testing.T, root string, args ...string) string {
	t.Helper()
	r := kiln(t, t.TempDir(), append([]string{"prune", "--root", root}, args...)...)
	if r.code != 0 {
		t.Fatalf("kiln prune %v: exit %d\n%s", args, r.code, r.stderr)
	}
	return r.stdout
}

// kiln du reports what builds stored; prune removes by age, by size and everything.
func TestCacheDuAndPrune(t *testing.T) {
	root, out := e2e(t)
	host := busyboxRegistry(t)
	big := strings.Repeat("0123456789abcdef", 64<<10) // 1 MiB
	dir := project(t, map[string]string{
		"Dockerfile": fmt.Sprintf("FROM %s/busybox\nCOPY big.txt /big.txt\nRUN echo built > /built.txt\n", host),
		"big.txt":    big,
	})
	// Fixed times, so that reruns of the steps give the same image.
	epoch := []string{"--build-arg", "SOURCE_DATE_EPOCH=1700000000"}
	first := buildPlain(t, dir, root, epoch...)
	before := du(t, root)
	if sizeBytes(t, before.blobs) < 1e6 || sizeBytes(t, before.snapshots) < 1e6 || before.entries < 3 {
		t.Fatalf("du after a build: %+v", before)
	}

	// Nothing was unused for an hour.
	if got := prune(t, root, "--filter", "until=1h"); !strings.Contains(got, "Total reclaimed space: 0B") {
		t.Errorf("prune --filter until=1h: %s", got)
	}
	if after := du(t, root); after != before {
		t.Errorf("du after prune --filter until=1h: %+v, before %+v", after, before)
	}
	allCached(t, buildPlain(t, dir, root, epoch...).steps)

	// Keep nothing: the step cache goes.
	prune(t, root, "--keep-storage", "0")
	kept := du(t, root)
	if sizeBytes(t, kept.total) >= sizeBytes(t, before.total) || kept.entries >= before.entries {
		t.Errorf("du after prune --keep-storage 0: %+v, before %+v", kept, before)
	}

	// The build still works (the base's blobs and snapshots went with its entry).
	rebuilt := buildPlain(t, dir, root, epoch...)
	if rebuilt.digest != first.digest {
		t.Errorf("rebuild after prune --keep-storage 0: digest %s, first %s", rebuilt.digest, first.digest)
	}

	// Everything, base images included; a build afterwards pulls again and works.
	prune(t, root, "--all")
	empty := du(t, root)
	// What is left is the store's empty directories.
	if empty.entries != 0 || sizeBytes(t, empty.blobs) > 64e3 || sizeBytes(t, empty.snapshots) > 64e3 {
		t.Errorf("du after prune --all: %+v", empty)
	}
	tarPath := filepath.Join(out, "after.tar")
	again := buildPlain(t, dir, root, append(epoch, "-o", "type=oci,dest="+tarPath)...)
	noneCached(t, again.steps)
	if again.digest != first.digest {
		t.Errorf("build after prune --all: digest %s, first %s", again.digest, first.digest)
	}
	if files := flatten(t, readOCI(t, tarPath)); files["/big.txt"].content != big || files["/built.txt"].content != "built\n" {
		t.Error("the image built after prune --all is wrong")
	}
	noKilnMounts(t, root)
}
