package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	osexec "os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/testenv"
)

// installKiln builds kiln and kiln-init into a dir as make build does: kiln-init first,
// and kiln with its digest. It returns kiln's path.
func installKiln(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	initPath := testenv.GoBuild(t, dir, "kiln-init", "github.com/kiln-build/kiln/cmd/kiln-init", "-ldflags=-s -w")
	b, err := os.ReadFile(initPath)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return testenv.GoBuild(t, dir, "kiln", "github.com/kiln-build/kiln/cmd/kiln",
		"-ldflags=-X main.initSum="+hex.EncodeToString(sum[:]))
}

// tamper appends a byte to the file at path: another build's kiln-init, as far as
// its digest goes.
func tamper(t *testing.T, path string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write([]byte{0}); err != nil {
		t.Fatal(err)
	}
}

// runInstalled runs an installed kiln build under strace, which records every execve
// of the build's processes, and returns stderr and the strace log.
func runInstalled(t *testing.T, kilnPath, dir string, args ...string) (stderr, execs string) {
	t.Helper()
	strace, err := osexec.LookPath("strace")
	if err != nil {
		t.Fatalf("strace (scripts/install-deps.sh installs it): %v", err)
	}
	log := filepath.Join(t.TempDir(), "strace.log")
	cmd := osexec.Command(strace, append([]string{"-f", "-qq", "-e", "trace=execve", "-e", "signal=none", "-o", log,
		kilnPath, "build"}, args...)...)
	cmd.Dir = dir
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("kiln build %v: %v\n%s", args, err, errb.String())
	}
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	return errb.String(), string(b)
}

// stepInits counts the sandbox inits in an strace -f log of execve calls that started
// as init matches and then exec'd a step's command. A sandbox started ahead for a
// step that never came (exec.Sandboxes) is an init that exec'd nothing.
func stepInits(execs string, init *regexp.Regexp) int {
	started := map[string]bool{}
	n := 0
	for _, line := range strings.Split(execs, "\n") {
		// strace pads the pid to the width of the largest: "123  execve(…".
		pid, call, ok := strings.Cut(strings.TrimSpace(line), " ")
		call = strings.TrimSpace(call)
		if !ok || !strings.HasPrefix(call, "execve(") {
			continue
		}
		// An exec by a thread other than the process's first is logged under
		// that thread's id, with the process's own after it: "<pid changed to
		// 812 ...>" (the Go init execs from the thread it locked, which need not
		// be its first).
		if _, rest, found := strings.Cut(call, "<pid changed to "); found {
			if p, _, found := strings.Cut(rest, " "); found {
				pid = p
			}
		}
		switch {
		case init.MatchString(call):
			started[pid] = true
		case started[pid]:
			n++
			delete(started, pid)
		}
	}
	return n
}

// stepInits reads strace's lines whatever the pids' width, and counts only the inits
// that went on to exec a command.
func TestStepInitsCountsInitsThatRanAStep(t *testing.T) {
	init := regexp.MustCompile(`execve\("/proc/self/fd/\d+", \["kiln-sandbox-init"\]`)
	log := `812   execve("/proc/self/fd/13", ["kiln-sandbox-init"], 0x1 /* 1 var */) = 0
12345 execve("/proc/self/fd/13", ["kiln-sandbox-init"], 0x1 /* 1 var */) = 0
812   execve("/bin/sh", ["/bin/sh", "-c", "true"], 0x2 /* 2 vars */) = 0
812   execve("/bin/true", ["true"], 0x2 /* 2 vars */) = 0
12346 execve("/proc/self/fd/13", ["kiln-sandbox-init"], 0x1 /* 1 var */) = 0
12346 execve("/bin/sh", ["/bin/sh", "-c", "true"], 0x2 /* 2 vars */) = 0
23669 execve("/proc/self/fd/13", ["kiln-sandbox-init"], 0x1 /* 1 var */) = 0
23677 execve("/bin/sh", ["/bin/sh", "-c", "true"], 0x2 /* 2 vars */ <pid changed to 23669 ...>
23669 +++ superseded by execve in pid 23677 +++
23669 <... execve resumed>)             = 0
`
	if n := stepInits(log, init); n != 3 {
		t.Errorf("stepInits = %d, want 3 (812, 12346 and 23669, from another thread, ran a step; 12345 did not)", n)
	}
}

// An installed kiln starts its RUN steps with the kiln-init beside it, when that is the
// one it was built with, and with itself otherwise; the image is the same either way,
// and the same as the one the test binary (kiln as its own init) builds.
func TestInstalledKilnInit(t *testing.T) {
	root, out := e2e(t)
	host := busyboxRegistry(t)
	kilnPath := installKiln(t)
	dir := project(t, map[string]string{
		"Dockerfile": "FROM " + host + "/busybox:latest\n" +
			"RUN echo one > /one && id -u > /uid-root\n" +
			"USER 1000:1000\nWORKDIR /tmp/w\n" +
			"RUN id -u > /tmp/w/uid && pwd > /tmp/w/cwd\n" +
			"USER root\nENV GREETING=hi\n" +
			"RUN --mount=type=cache,target=/cache echo $GREETING > /cache/x && cat /cache/x > /greeting\n" +
			"RUN --network=none cat /proc/1/cmdline | tr '\\0' ' ' > /cmdline\n",
	})
	args := func(root, tar string) []string {
		return []string{"--root", root, "--progress", "plain", "--build-arg", epochArg,
			"-o", "type=oci,dest=" + filepath.Join(out, tar), dir}
	}

	stderr, execs := runInstalled(t, kilnPath, dir, args(root, "installed.tar")...)
	initExec := regexp.MustCompile(`execve\("/proc/self/fd/\d+", \["kiln-sandbox-init"\]`)
	if n := stepInits(execs, initExec); n != 4 {
		t.Errorf("%d RUN steps started through the verified kiln-init, want 4:\n%s", n, execs)
	}
	if strings.Contains(execs, `execve("/proc/self/exe", ["kiln-sandbox-init"]`) {
		t.Errorf("a RUN step started kiln itself as its init beside a good kiln-init")
	}
	if strings.Contains(stderr, "is not the one") {
		t.Errorf("warned about a good kiln-init:\n%s", stderr)
	}

	mustBuild(t, dir, args(t.TempDir(), "self.tar")...)
	want := ociDigest(t, filepath.Join(out, "self.tar"))
	if got := ociDigest(t, filepath.Join(out, "installed.tar")); got != want {
		t.Errorf("image built with kiln-init %s, with kiln as init %s", got, want)
	}
	files := flatten(t, readOCI(t, filepath.Join(out, "installed.tar")))
	for name, content := range map[string]string{
		"one": "one\n", "uid-root": "0\n", "tmp/w/uid": "1000\n", "tmp/w/cwd": "/tmp/w\n",
		"greeting": "hi\n",
		// pid 1 is the command: the init exec'd it.
		"cmdline": "/bin/sh -c cat /proc/1/cmdline | tr '\\0' ' ' > /cmdline ",
	} {
		if got := files["/"+name].content; got != content {
			t.Errorf("/%s = %q, want %q", name, got, content)
		}
	}

	// A kiln-init from another build is never started: the build says so and goes
	// on with kiln itself, to the same image.
	tamper(t, filepath.Join(filepath.Dir(kilnPath), "kiln-init"))
	stderr, execs = runInstalled(t, kilnPath, dir, append([]string{"--no-cache"}, args(t.TempDir(), "other.tar")...)...)
	if !strings.Contains(stderr, "is not the one this kiln was built with") || !strings.Contains(stderr, "install kiln and kiln-init from the same build") {
		t.Errorf("no warning about a kiln-init of another build:\n%s", stderr)
	}
	selfExec := regexp.MustCompile(`execve\("/proc/self/exe", \["kiln-sandbox-init"\]`)
	if initExec.MatchString(execs) || stepInits(execs, selfExec) != 4 {
		t.Errorf("beside another build's kiln-init, RUN steps must start kiln itself:\n%s", execs)
	}
	if got := ociDigest(t, filepath.Join(out, "other.tar")); got != want {
		t.Errorf("image built beside another kiln-init %s, want %s", got, want)
	}
}

// An installed kiln run by an ordinary user starts the kiln-init beside it too (it
// is verified in kiln's user namespace, and warns there when it is another build's),
// and builds the image a root build of the test binary builds.
func TestInstalledKilnInitRootless(t *testing.T) {
	testenv.RequireRoot(t)
	u := testenv.NewTestUser(t)
	installed := installKiln(t)
	bin := filepath.Join(u.Home, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"kiln", "kiln-init"} {
		b, err := os.ReadFile(filepath.Join(filepath.Dir(installed), name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(bin, name), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	df := "FROM busybox\nRUN id -u > /uid && echo hi > /hi && chown 1000:1000 /hi\n" +
		"USER 1000:1000\nRUN id -u > /tmp/uid\n"
	base, ctx := userBusyboxProject(t, u, map[string]string{"Dockerfile": df})
	chownTree(t, u.Home, u)
	args := func(root, out string) []string {
		return []string{"build", "--root", root, "--progress", "plain", "--build-arg", epochArg,
			"--build-context", "busybox=oci-layout://" + base, "-o", "type=oci,dest=" + out, ctx}
	}
	run := func(what string) string {
		t.Helper()
		a := args(filepath.Join(u.Home, "store-"+what), filepath.Join(u.Home, what+".tar"))
		out, err := u.Command(filepath.Join(bin, "kiln"), a...).CombinedOutput()
		if err != nil {
			t.Fatalf("rootless build (%s): %v\n%s", what, err, out)
		}
		return string(out)
	}
	if out := run("own"); strings.Contains(out, "is not the one") || !strings.Contains(out, "sandbox: user namespace") {
		t.Errorf("rootless build beside its own kiln-init:\n%s", out)
	}
	rootOut := t.TempDir()
	mustBuild(t, ctx, args(filepath.Join(rootOut, "store"), filepath.Join(rootOut, "root.tar"))[1:]...)
	want := ociDigest(t, filepath.Join(rootOut, "root.tar"))
	if got := ociDigest(t, filepath.Join(u.Home, "own.tar")); got != want {
		t.Errorf("rootless image with kiln-init %s, root image %s", got, want)
	}

	tamper(t, filepath.Join(bin, "kiln-init"))
	if out := run("other"); !strings.Contains(out, "is not the one this kiln was built with") {
		t.Errorf("no warning about another build's kiln-init in a rootless build:\n%s", out)
	}
	if got := ociDigest(t, filepath.Join(u.Home, "other.tar")); got != want {
		t.Errorf("rootless image beside another kiln-init %s, want %s", got, want)
	}
}
