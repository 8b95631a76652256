package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/internal/testenv"
)

// The RUN issue's done-when, end to end: real builds on the busybox base whose RUN
// steps create, modify, delete and chmod files as different users and shells, fail,
// hit their limits, are interrupted, and leave nothing behind on the host.

// runEnv is one RUN end-to-end test's world: its store, output dir, a marker unique
// to the test (put it in the command line of every step that could leave a process
// behind), the busybox registry, and step limits unique to the test, by which its
// step cgroups are told from those of builds running beside it.
type runEnv struct {
	root, out, marker, host string
	pids, memory            int64
}

// runE2E prepares a RUN end-to-end test. Its cleanup checks that the test leaked no
// mount, no process and no cgroup.
func runE2E(t *testing.T) *runEnv {
	t.Helper()
	e := &runEnv{marker: "kiln-e2e-" + randomHex(6)}
	e.root, e.out = e2e(t)
	var b [2]byte
	rand.Read(b[:])
	n := int64(b[0])<<8 | int64(b[1])
	e.pids = 3000 + n%1000
	e.memory = 1<<30 + (1+n)*4096 // whole pages: the kernel keeps it as given
	t.Cleanup(func() { e.checkNoLeaks(t) })
	e.host = busyboxRegistry(t)
	return e
}

// argv is a kiln build command line in the test's store with its limits; later
// flags in args override them.
func (e *runEnv) argv(args ...string) []string {
	return append([]string{"build", "--root", e.root,
		"--pids-limit", fmt.Sprint(e.pids), "--memory", fmt.Sprint(e.memory)}, args...)
}

// build runs kiln build and fails the test unless it exits 0.
func (e *runEnv) build(t *testing.T, dir string, args ...string) result {
	t.Helper()
	r := kiln(t, dir, e.argv(args...)...)
	if r.code != 0 {
		t.Fatalf("kiln build %v: exit %d\nstdout:\n%s\nstderr:\n%s", args, r.code, r.stdout, r.stderr)
	}
	return r
}

// try runs kiln build, whatever its outcome.
func (e *runEnv) try(t *testing.T, dir string, args ...string) result {
	t.Helper()
	return kiln(t, dir, e.argv(args...)...)
}

// checkNoLeaks fails the test if a mount under its store, an overlay naming it, a
// process whose command line holds its marker, or a cgroup of one of its steps (one
// with its limits) is left. It runs when every kiln of the test has exited.
func (e *runEnv) checkNoLeaks(t *testing.T) {
	t.Helper()
	noKilnMounts(t, e.root)
	noOverlayMentioning(t, e.root)
	if pids := processesWith(t, e.marker); len(pids) > 0 {
		t.Errorf("processes of the test's steps left running: %v", pids)
	}
	if left := e.stepCgroups(t); len(left) > 0 {
		t.Errorf("step cgroups left behind: %v", left)
	}
}

// stepCgroups lists the kiln step cgroup dirs, in every hierarchy, whose pids or
// memory limit is the test's.
func (e *runEnv) stepCgroups(t *testing.T) []string {
	t.Helper()
	mine := map[string]bool{}
	all := kilnCgroups(t)
	for d := range all {
		for file, want := range map[string]int64{"pids.max": e.pids, "memory.limit_in_bytes": e.memory, "memory.max": e.memory} {
			if data, err := os.ReadFile(filepath.Join(d, file)); err == nil && strings.TrimSpace(string(data)) == fmt.Sprint(want) {
				mine[filepath.Base(d)] = true
			}
		}
	}
	var out []string
	for d := range all {
		if mine[filepath.Base(d)] {
			out = append(out, d)
		}
	}
	return out
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// kilnCgroups lists the step cgroup dirs under kiln's cgroup in every hierarchy.
func kilnCgroups(t *testing.T) map[string]bool {
	t.Helper()
	dirs := map[string]bool{}
	parents, _ := filepath.Glob("/sys/fs/cgroup/*/kiln*")
	unified, _ := filepath.Glob("/sys/fs/cgroup/kiln*")
	for _, p := range append(parents, unified...) {
		entries, err := os.ReadDir(p)
		if err != nil {
			continue
		}
		for _, e := range entries {
			if e.IsDir() {
				dirs[filepath.Join(p, e.Name())] = true
			}
		}
	}
	return dirs
}

// noOverlayMentioning fails if an overlay mount on the host names dir in its options.
func noOverlayMentioning(t *testing.T, dir string) {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		_, after, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		f := strings.Fields(after)
		if len(f) >= 3 && f[0] == "overlay" && strings.Contains(f[2], dir) {
			t.Errorf("overlay mount of the store left behind: %s", line)
		}
	}
}

// processesWith lists the pids whose command line contains marker.
func processesWith(t *testing.T, marker string) []int {
	t.Helper()
	var pids []int
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	self := os.Getpid()
	for _, e := range entries {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil || pid == self {
			continue
		}
		data, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		if bytes.Contains(data, []byte(marker)) && !isZombie(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func isZombie(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(data)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] == 'Z' || s[i+2] == 'X'
	}
	return false
}

// layerFiles lists the entries of each layer of img, as written (whiteouts included).
func layerFiles(t *testing.T, img v1.Image) []map[string]fileEntry {
	t.Helper()
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]fileEntry
	for _, l := range ls {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, listTar(t, rc))
		rc.Close()
	}
	return out
}

// stepLayer returns the layer made by the step whose history mentions s.
func stepLayer(t *testing.T, img v1.Image, s string) map[string]fileEntry {
	t.Helper()
	files := layerFiles(t, img)
	i := 0
	for _, h := range config(t, img).History {
		if h.EmptyLayer {
			continue
		}
		if strings.Contains(h.CreatedBy, s) {
			if i >= len(files) {
				t.Fatalf("history has more layers than the image")
			}
			return files[i]
		}
		i++
	}
	t.Fatalf("no layer whose history mentions %q", s)
	return nil
}

func dockerfileProject(t *testing.T, dockerfile string) string {
	t.Helper()
	return project(t, map[string]string{"Dockerfile": dockerfile})
}

func readHostFile(t *testing.T, rootfs, p string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(rootfs, p))
	if err != nil {
		t.Errorf("umoci rootfs: %v", err)
	}
	return string(data)
}

// Ten RUN steps on busybox: each one's effect is in the image exactly, as a reader of
// layers (ggcr, umoci) sees it.
func TestRunStepsChangeTheImage(t *testing.T) {
	t.Parallel()
	e := runE2E(t)
	df := `FROM ` + e.host + `/busybox:latest
ARG GREETING
ARG UNUSED=default
ENV APPENV=fromenv
RUN mkdir -p /srv/data && echo hello > /srv/data/hello.txt && echo "$GREETING $APPENV" > /srv/vars && printf %s "$UNUSED" > /srv/unused && env | sort > /srv/env && hostname > /srv/hostname
RUN echo 'extra:x:2000:2000::/home/extra:/bin/sh' >> /etc/passwd
RUN rm /bin/vi && rm -r /var && rm /srv/data/hello.txt
RUN rm -rf /usr && mkdir -p /usr/local/bin && echo tool > /usr/local/bin/tool
RUN touch /srv/script && chmod 4750 /srv/script && chmod 0700 /srv/data /home/app
WORKDIR /srv/work
RUN pwd > /srv/pwd
SHELL ["/bin/sh", "-ec"]
RUN echo "$-" > /srv/shellflags
RUN ["/bin/touch", "/srv/exec form"]
RUN ["/bin/echo", "x"]
RUN <<EOF
echo line1 > /srv/heredoc
echo "line2 $GREETING" >> /srv/heredoc
EOF
RUN <<EOF
#!/bin/sh
echo "script $0" > /srv/shebang
EOF
USER app
RUN id > /tmp/id && echo "$HOME" > /tmp/home
USER 4242:4343
RUN id > /tmp/id4242 && echo "$HOME" > /tmp/home4242
`
	dir := dockerfileProject(t, df)
	tarPath := filepath.Join(e.out, "img.tar")
	r := e.build(t, dir, "--progress", "plain", "--build-arg", "GREETING=hi", "-o", "type=oci,dest="+tarPath, ".")
	img := readOCI(t, tarPath)
	if !hasOutputLine(r.stderr, "x") {
		t.Errorf("the output of RUN [\"/bin/echo\", \"x\"] is not in the progress:\n%s", r.stderr)
	}

	// Build args reach RUN but not the image; ENV reaches both.
	cf := config(t, img)
	wantEnv := []string{testenv.BusyboxEnvPath, "APPENV=fromenv"}
	if strings.Join(cf.Config.Env, "\n") != strings.Join(wantEnv, "\n") {
		t.Errorf("config Env = %q, want %q", cf.Config.Env, wantEnv)
	}
	if cf.Config.User != "4242:4343" || cf.Config.WorkingDir != "/srv/work" {
		t.Errorf("config User %q WorkingDir %q", cf.Config.User, cf.Config.WorkingDir)
	}
	if want := []string{"/bin/sh", "-ec"}; strings.Join(cf.Config.Shell, " ") != strings.Join(want, " ") {
		t.Errorf("config Shell = %q", cf.Config.Shell)
	}

	files := flatten(t, img)
	// The step's environment is the image's and the build args, with PATH and HOME
	// (and what ash itself sets): nothing of kiln's own environment.
	wantStepEnv := "APPENV=fromenv\nGREETING=hi\nHOME=/root\n" + testenv.BusyboxEnvPath + "\nPWD=/\nSHLVL=1\nUNUSED=default\n"
	if got := files["/srv/env"].content; got != wantStepEnv {
		t.Errorf("step environment:\n%s\nwant:\n%s", got, wantStepEnv)
	}
	// BuildKit's fixed hostname, never the host's: the file is the same every build.
	if got := files["/srv/hostname"].content; got != "buildkitsandbox\n" {
		t.Errorf("step hostname = %q, want buildkitsandbox", got)
	}
	if _, ok := files["/etc/hostname"]; ok {
		t.Error("/etc/hostname reached the image")
	}
	for p, want := range map[string]string{
		"/srv/vars":       "hi fromenv\n",
		"/srv/unused":     "default",
		"/srv/pwd":        "/srv/work\n",
		"/srv/shellflags": "ce\n", // busybox ash's $- for sh -ec
		"/srv/exec form":  "",
		"/srv/heredoc":    "line1\nline2 hi\n",
		"/srv/shebang":    "script /dev/pipes/EOF\n",
		"/tmp/id":         "uid=1000(app) gid=1000(app) groups=1000(app)\n",
		"/tmp/home":       "/home/app\n",
		"/tmp/id4242":     "uid=4242 gid=4343 groups=4343\n",
		"/tmp/home4242":   "/\n",
		"/etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n" +
			"app:x:1000:1000:app:/home/app:/bin/sh\nextra:x:2000:2000::/home/extra:/bin/sh\n",
	} {
		f, ok := files[p]
		if !ok {
			t.Errorf("%s is missing from the image", p)
			continue
		}
		if f.content != want {
			t.Errorf("%s = %q, want %q", p, f.content, want)
		}
	}
	if files["/usr/local/bin/tool"].content != "tool\n" {
		t.Errorf("/usr/local/bin/tool = %+v", files["/usr/local/bin/tool"])
	}
	for _, p := range []string{"/bin/vi", "/var", "/srv/data/hello.txt", "/dev/pipes", "/dev/pipes/EOF", "/usr/bin", "/usr/sbin"} {
		if _, ok := files[p]; ok {
			t.Errorf("%s is in the image, want it deleted (or never there)", p)
		}
	}
	for p, want := range map[string]int64{"/srv/script": 0o4750, "/srv/data": 0o700, "/home/app": 0o700} {
		if got := files[p].mode; got != want {
			t.Errorf("mode of %s = %o, want %o", p, got, want)
		}
	}
	if f := files["/tmp/id"]; f.uid != 1000 || f.gid != 1000 {
		t.Errorf("/tmp/id owned by %d:%d, want 1000:1000", f.uid, f.gid)
	}
	if f := files["/tmp/id4242"]; f.uid != 4242 || f.gid != 4343 {
		t.Errorf("/tmp/id4242 owned by %d:%d, want 4242:4343", f.uid, f.gid)
	}
	if f := files["/home/app"]; f.uid != 1000 || f.gid != 1000 {
		t.Errorf("chmod changed the owner of /home/app: %d:%d", f.uid, f.gid)
	}

	// The deleting step's layer holds whiteouts and nothing it did not touch.
	del := stepLayer(t, img, "rm /bin/vi")
	for _, wh := range []string{"/bin/.wh.vi", "/.wh.var", "/srv/data/.wh.hello.txt"} {
		if f, ok := del[wh]; !ok || f.typ != '0' {
			t.Errorf("layer of the rm step has no whiteout %s: %v", wh, keys(del))
		}
	}
	base := layerFiles(t, img)[0]
	for p, f := range del {
		switch p {
		case "/bin", "/bin/.wh.vi", "/.wh.var", "/srv", "/srv/data", "/srv/data/.wh.hello.txt":
		case "/etc":
			// Copied up by the mount points of /etc/hosts and /etc/resolv.conf; BuildKit's
			// differ leaves out a dir equal to the lower one, kiln's writes it unchanged.
			if b := base["/etc"]; f.typ != b.typ || f.mode != b.mode || f.uid != b.uid || f.gid != b.gid {
				t.Errorf("layer of the rm step changed /etc: %+v, base %+v", f, b)
			}
		default:
			t.Errorf("layer of the rm step has %s, which the step did not change", p)
		}
	}
	// A dir deleted and made again hides the old one's content: an opaque dir, or a
	// whiteout per old entry.
	opq := stepLayer(t, img, "rm -rf /usr")
	if _, ok := opq["/usr/.wh..wh..opq"]; !ok {
		if _, ok := opq["/usr/.wh.bin"]; !ok {
			t.Errorf("layer of the rm -rf /usr step hides neither /usr nor /usr/bin: %v", keys(opq))
		}
	}
	// The chmod step's layer records the new mode of a base dir without its content.
	chm := stepLayer(t, img, "chmod 4750")
	if f, ok := chm["/home/app"]; !ok || f.mode != 0o700 || f.typ != '5' {
		t.Errorf("chmod layer /home/app = %+v, %v", f, ok)
	}
	if _, ok := chm["/bin/busybox"]; ok {
		t.Error("chmod layer copied an untouched base file")
	}
	// No layer records /dev, /proc, /sys content or the mount points kiln made.
	for i, l := range layerFiles(t, img)[1:] {
		for p := range l {
			if strings.HasPrefix(p, "/proc/") || strings.HasPrefix(p, "/sys/") || strings.HasPrefix(p, "/dev/") {
				t.Errorf("layer %d has %s", i+1, p)
			}
		}
	}

	// The same build again is all cache hits and the same image.
	again := filepath.Join(e.out, "again.tar")
	r = e.build(t, dir, "--progress", "plain", "--build-arg", "GREETING=hi", "-o", "type=oci,dest="+again, ".")
	d1, _ := img.Digest()
	if d2, _ := readOCI(t, again).Digest(); d1 != d2 {
		t.Errorf("rebuild gave %s, first build %s\n%s", d2, d1, r.stderr)
	}
	if strings.Contains(r.stderr, "cache miss") {
		t.Errorf("rebuild missed the cache:\n%s", r.stderr)
	}

	// umoci agrees.
	rootfs := umociUnpack(t, tarPath)
	if got := readHostFile(t, rootfs, "tmp/id"); got != "uid=1000(app) gid=1000(app) groups=1000(app)\n" {
		t.Errorf("umoci tmp/id = %q", got)
	}
	if got := readHostFile(t, rootfs, "srv/heredoc"); got != "line1\nline2 hi\n" {
		t.Errorf("umoci srv/heredoc = %q", got)
	}
	if got := readHostFile(t, rootfs, "etc/passwd"); !strings.HasSuffix(got, "app:x:1000:1000:app:/home/app:/bin/sh\nextra:x:2000:2000::/home/extra:/bin/sh\n") {
		t.Errorf("umoci etc/passwd = %q", got)
	}
	for _, p := range []string{"bin/vi", "var", "srv/data/hello.txt", "usr/bin"} {
		if _, err := os.Lstat(filepath.Join(rootfs, p)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("umoci rootfs has %s (%v), want it deleted", p, err)
		}
	}
	if got := readHostFile(t, rootfs, "usr/local/bin/tool"); got != "tool\n" {
		t.Errorf("umoci usr/local/bin/tool = %q", got)
	}
	if _, err := os.Lstat(filepath.Join(rootfs, "bin/ls")); err != nil {
		t.Errorf("umoci rootfs lost an untouched base file: %v", err)
	}
	for p, want := range map[string]os.FileMode{"srv/script": 0o750 | os.ModeSetuid, "srv/data": 0o700 | os.ModeDir} {
		if fi, err := os.Lstat(filepath.Join(rootfs, p)); err != nil || fi.Mode() != want {
			t.Errorf("umoci %s mode = %v (%v), want %v", p, fi.Mode(), err, want)
		}
	}
	if fi, err := os.Lstat(filepath.Join(rootfs, "tmp/id4242")); err != nil || fi.Sys().(*syscall.Stat_t).Uid != 4242 || fi.Sys().(*syscall.Stat_t).Gid != 4343 {
		t.Errorf("umoci tmp/id4242: %v", err)
	}
}

// hasOutputLine reports whether plain progress shows a step printing line.
func hasOutputLine(progress, line string) bool {
	for _, l := range strings.Split(progress, "\n") {
		// "#N 0.123 line"
		if f := strings.SplitN(l, " ", 3); len(f) == 3 && strings.HasPrefix(f[0], "#") && f[2] == line {
			return true
		}
	}
	return false
}

func keys(m map[string]fileEntry) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// A failing RUN names its line, its exit code (or why it could not start) and the end
// of its output.
func TestRunFailureReportsLineCodeAndOutput(t *testing.T) {
	t.Parallel()
	e := runE2E(t)
	for _, tc := range []struct {
		name, steps string
		want        []string
	}{
		{"exit 3", "RUN echo fine\nRUN echo first-line && echo to-stderr >&2 && \\\n  echo last-line && exit 3\nRUN echo never\n",
			[]string{"Dockerfile:3", "exit code: 3", "first-line", "to-stderr", "last-line"}},
		{"shell command not found", "RUN nosuchcommand\n", []string{"Dockerfile:2", "exit code: 127", "nosuchcommand: not found"}},
		{"exec form not found", "RUN [\"/nonexistent\", \"a\"]\n", []string{"Dockerfile:2", "127", "/nonexistent", "no such file or directory"}},
		{"exec form not executable", "RUN [\"/etc/passwd\"]\n", []string{"Dockerfile:2", "126", "/etc/passwd", "permission denied"}},
		{"unknown user", "USER nosuch\nRUN true\n", []string{"Dockerfile:3", "nosuch"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := dockerfileProject(t, "FROM "+e.host+"/busybox:latest\n"+tc.steps)
			dest := filepath.Join(e.out, strings.ReplaceAll(tc.name, " ", "-")+".tar")
			r := e.try(t, dir, "-o", "type=oci,dest="+dest, ".")
			if r.code != 1 {
				t.Fatalf("exit %d, want 1\n%s", r.code, r.stderr)
			}
			for _, want := range tc.want {
				if !strings.Contains(r.stderr, want) {
					t.Errorf("stderr does not mention %q:\n%s", want, r.stderr)
				}
			}
			if _, err := os.Stat(dest); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("failed build left %s (%v)", dest, err)
			}
		})
	}
}

// --memory: a step that needs more is killed and the error says so.
func TestRunMemoryLimit(t *testing.T) {
	t.Parallel()
	e := runE2E(t)
	// The shell holds 100 MiB in a variable.
	dir := dockerfileProject(t, "FROM "+e.host+"/busybox:latest\nRUN : "+e.marker+"; x=$(head -c 100m /dev/zero | tr '\\0' a); echo ${#x}\n")
	start := time.Now()
	r := e.try(t, dir, "--memory", "32m", "-o", "type=oci,dest="+filepath.Join(e.out, "img.tar"), ".")
	if r.code != 1 {
		t.Fatalf("exit %d, want 1\n%s", r.code, r.stderr)
	}
	t.Logf("%v\n%s", time.Since(start), r.stderr)
	if !strings.Contains(r.stderr, "out of memory (limit 32MiB)") {
		t.Errorf("stderr does not say the memory limit killed the step:\n%s", r.stderr)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("build took %v", d)
	}
}

// --pids-limit: a step forking more than the limit ends promptly (it fails here, as
// ash cannot fork), leaving no process.
func TestRunPidsLimit(t *testing.T) {
	t.Parallel()
	e := runE2E(t)
	dir := dockerfileProject(t, "FROM "+e.host+"/busybox:latest\nRUN : "+e.marker+"; for i in $(seq 200); do (sleep 3; true) & done; wait\n")
	start := time.Now()
	r := e.try(t, dir, "--pids-limit", "50", "-o", "type=oci,dest="+filepath.Join(e.out, "img.tar"), ".")
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("build took %v", d)
	}
	t.Logf("exit %d\n%s", r.code, r.stderr)
	if r.code != 0 && !strings.Contains(r.stderr, "process limit") {
		t.Errorf("failed build (exit %d) does not name the process limit:\n%s", r.code, r.stderr)
	}
	if pids := processesWith(t, e.marker); len(pids) > 0 {
		t.Errorf("processes of the step left: %v", pids)
	}
}

// --network none and RUN --network=none: only loopback.
func TestRunNetworkNone(t *testing.T) {
	t.Parallel()
	e := runE2E(t)
	df := "FROM " + e.host + "/busybox:latest\n" +
		"RUN ls /sys/class/net > /nets && cat /proc/net/dev > /netdev\n" +
		"RUN --network=none cat /proc/net/dev > /netdev-flag\n"
	dir := dockerfileProject(t, df)
	ifaces := func(netdev string) []string {
		var names []string
		for _, line := range strings.Split(netdev, "\n") {
			if n, _, ok := strings.Cut(line, ":"); ok {
				names = append(names, strings.TrimSpace(n))
			}
		}
		return names
	}

	tarPath := filepath.Join(e.out, "none.tar")
	e.build(t, dir, "--network", "none", "-o", "type=oci,dest="+tarPath, ".")
	files := flatten(t, readOCI(t, tarPath))
	if got := files["/nets"].content; got != "lo\n" {
		t.Errorf("--network none: /sys/class/net = %q, want lo", got)
	}
	for _, f := range []string{"/netdev", "/netdev-flag"} {
		if got := ifaces(files[f].content); strings.Join(got, ",") != "lo" {
			t.Errorf("--network none: %s lists %q, want lo only", f, got)
		}
	}

	// With the default network only the RUN --network=none step is isolated.
	tarPath = filepath.Join(e.out, "default.tar")
	e.build(t, dir, "-o", "type=oci,dest="+tarPath, ".")
	files = flatten(t, readOCI(t, tarPath))
	if got := ifaces(files["/netdev-flag"].content); strings.Join(got, ",") != "lo" {
		t.Errorf("RUN --network=none: /proc/net/dev lists %q, want lo only", got)
	}
	hostDev, err := os.ReadFile("/proc/net/dev")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ifaces(files["/netdev"].content), ifaces(string(hostDev)); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("default network: step sees %q, host has %q", got, want)
	}
}

// Inside RUN /etc/resolv.conf is the host's and /etc/hosts BuildKit's; neither is
// ever in a layer.
func TestRunHostsAndResolvNotCommitted(t *testing.T) {
	t.Parallel()
	e := runE2E(t)
	dir := dockerfileProject(t, "FROM "+e.host+"/busybox:latest\n"+
		"RUN cat /etc/hosts > /hosts.copy && cat /etc/resolv.conf > /resolv.copy\n"+
		"RUN mkdir -p /etc/sub && echo x > /etc/app.conf\n")
	tarPath := filepath.Join(e.out, "img.tar")
	e.build(t, dir, "-o", "type=oci,dest="+tarPath, ".")
	img := readOCI(t, tarPath)
	for i, l := range layerFiles(t, img) {
		for p := range l {
			switch p {
			case "/etc/hosts", "/etc/resolv.conf", "/etc/.wh.hosts", "/etc/.wh.resolv.conf":
				t.Errorf("layer %d has %s", i, p)
			}
		}
	}
	files := flatten(t, img)
	if want, err := os.ReadFile("/etc/resolv.conf"); err == nil && files["/resolv.copy"].content != string(want) {
		t.Errorf("RUN read /etc/resolv.conf as %q, the host's is %q", files["/resolv.copy"].content, want)
	}
	// /etc/hosts is BuildKit's, whatever the host's says.
	if got, want := files["/hosts.copy"].content, "127.0.0.1\tlocalhost buildkitsandbox\n::1\tlocalhost ip6-localhost ip6-loopback\n"; got != want {
		t.Errorf("RUN read /etc/hosts as %q, want BuildKit's %q", got, want)
	}
	if files["/etc/app.conf"].content != "x\n" {
		t.Error("a file written next to the mounted ones is missing")
	}
	rootfs := umociUnpack(t, tarPath)
	for _, p := range []string{"etc/hosts", "etc/resolv.conf"} {
		if _, err := os.Lstat(filepath.Join(rootfs, p)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("umoci rootfs has %s (%v)", p, err)
		}
	}
}

// A process left in the background dies with its step; the build does not wait.
func TestRunBackgroundProcessKilled(t *testing.T) {
	t.Parallel()
	e := runE2E(t)
	dir := dockerfileProject(t, "FROM "+e.host+"/busybox:latest\n"+
		"RUN : "+e.marker+"; (sleep 1000; true) > /dev/null 2>&1 & echo started > /bg\n"+
		"RUN : "+e.marker+"; (sleep 1000; true) & echo started-with-output\n"+
		"RUN test -f /bg\n")
	start := time.Now()
	tarPath := filepath.Join(e.out, "img.tar")
	e.build(t, dir, "-o", "type=oci,dest="+tarPath, ".")
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("build took %v: it waited for the background process", d)
	}
	if pids := processesWith(t, e.marker); len(pids) > 0 {
		t.Errorf("background processes survived their step: %v", pids)
	}
	if got := flatten(t, readOCI(t, tarPath))["/bg"].content; got != "started\n" {
		t.Errorf("/bg = %q", got)
	}
}

// SIGINT mid-step: kiln exits 130 within seconds and leaves no mount, process or
// cgroup. Not parallel: it times kiln's reaction.
func TestRunInterrupted(t *testing.T) {
	e := runE2E(t)
	dir := dockerfileProject(t, "FROM "+e.host+"/busybox:latest\nRUN : "+e.marker+"; sleep 30; true\n")
	cmd := osexec.Command(os.Args[0], e.argv("--progress", "plain", "-o", "type=oci,dest="+filepath.Join(e.out, "img.tar"), ".")...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "KILN_E2E_MAIN=1")
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = io.Discard, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-done
		}
	})

	// Wait for the step's shell, and note its cgroups.
	var stepPid int
	for deadline := time.Now().Add(20 * time.Second); stepPid == 0; time.Sleep(20 * time.Millisecond) {
		if pids := processesWith(t, e.marker); len(pids) > 0 {
			stepPid = pids[0]
		}
		select {
		case err := <-done:
			t.Fatalf("kiln ended before the step ran: %v\n%s", err, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the step did not start\n%s", stderr.String())
		}
	}
	stepCgroups := cgroupDirsOf(t, stepPid)
	if len(stepCgroups) == 0 {
		t.Errorf("the step's process is in no kiln cgroup: %s", readOr(fmt.Sprintf("/proc/%d/cgroup", stepPid)))
	}

	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("kiln still running 10s after SIGINT\n%s", stderr.String())
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("kiln took %v to stop after SIGINT", d)
	}
	if code := cmd.ProcessState.ExitCode(); code != 130 {
		t.Errorf("exit code %d after SIGINT, want 130\n%s", code, stderr.String())
	}
	if pids := processesWith(t, e.marker); len(pids) > 0 {
		t.Errorf("processes of the step left: %v", pids)
	}
	for _, d := range stepCgroups {
		if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the step's cgroup %s is left (%v)", d, err)
		}
	}
	noKilnMounts(t, e.root)
	noOverlayMentioning(t, e.root)
	if left, _ := filepath.Glob(filepath.Join(e.root, "snapshots", "active", "*")); len(left) > 0 {
		t.Errorf("the step's snapshot is left in the store: %v", left)
	}
	if _, err := os.Stat(filepath.Join(e.out, "img.tar")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("interrupted build left its output (%v)", err)
	}

	// The store is usable afterwards.
	dir = dockerfileProject(t, "FROM "+e.host+"/busybox:latest\nRUN echo after > /after\n")
	tarPath := filepath.Join(e.out, "after.tar")
	e.build(t, dir, "-o", "type=oci,dest="+tarPath, ".")
	if got := flatten(t, readOCI(t, tarPath))["/after"].content; got != "after\n" {
		t.Errorf("/after = %q", got)
	}
}

// cgroupDirsOf lists the host cgroup dirs of pid that are kiln's.
func cgroupDirsOf(t *testing.T, pid int) []string {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 || !strings.HasPrefix(f[2], "/kiln/") {
			continue
		}
		switch {
		case f[1] == "":
			dirs = append(dirs, filepath.Join("/sys/fs/cgroup/unified", f[2]))
		case strings.HasPrefix(f[1], "name="):
			dirs = append(dirs, filepath.Join("/sys/fs/cgroup", strings.TrimPrefix(f[1], "name="), f[2]))
		default:
			for _, c := range strings.Split(f[1], ",") {
				if p := filepath.Join("/sys/fs/cgroup", c, f[2]); isDir(p) {
					dirs = append(dirs, p)
				}
			}
		}
	}
	return dirs
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

func readOr(p string) string {
	data, err := os.ReadFile(p)
	if err != nil {
		return err.Error()
	}
	return string(data)
}

// debianBase is the Debian image of the shared anchors (../shared/bench/setup-anchors.sh).
const debianBase = testenv.AnchorDebian

// requireDebianBase skips (or fails on CI) when the anchors' Debian image is not served.
func requireDebianBase(t *testing.T) { testenv.RequireAnchorDebian(t) }

// A Debian base: useradd, apt-get and a named USER work as under BuildKit.
func TestRunDebian(t *testing.T) {
	t.Parallel()
	requireDebianBase(t)
	e := runE2E(t)
	dir := dockerfileProject(t, "FROM "+debianBase+"\n"+
		"RUN useradd -m builder && id builder > /tmp/id-builder\n"+
		"RUN apt-get --version > /tmp/apt-version\n"+
		"USER builder\n"+
		"RUN whoami > /tmp/who && echo \"$HOME\" > /tmp/home\n")
	tarPath := filepath.Join(e.out, "img.tar")
	e.build(t, dir, "-o", "type=oci,dest="+tarPath, ".")
	img := readOCI(t, tarPath)
	files := flatten(t, img)
	idLine := files["/tmp/id-builder"].content
	if !strings.HasPrefix(idLine, "uid=1000(builder) gid=1000(builder)") {
		t.Errorf("id builder = %q", idLine)
	}
	if !strings.HasPrefix(files["/tmp/apt-version"].content, "apt ") {
		t.Errorf("apt-get --version = %q", files["/tmp/apt-version"].content)
	}
	if f := files["/tmp/who"]; f.content != "builder\n" || f.uid != 1000 || f.gid != 1000 {
		t.Errorf("/tmp/who = %q owned %d:%d, want builder by 1000:1000", f.content, f.uid, f.gid)
	}
	if got := files["/tmp/home"].content; got != "/home/builder\n" {
		t.Errorf("HOME = %q", got)
	}
	if f, ok := files["/home/builder"]; !ok || f.typ != '5' || f.uid != 1000 {
		t.Errorf("/home/builder = %+v, %v", f, ok)
	}
	if !strings.Contains(files["/etc/passwd"].content, "\nbuilder:x:1000:1000::/home/builder:") {
		t.Errorf("/etc/passwd has no builder:\n%s", files["/etc/passwd"].content)
	}
	if cf := config(t, img); cf.Config.User != "builder" {
		t.Errorf("config User = %q", cf.Config.User)
	}
}
