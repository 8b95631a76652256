package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/testenv"
)

// rootlessKiln copies this test binary, which is kiln when KILN_E2E_MAIN=1 (see
// TestMain and rootlessCmd), where u can run it: the test runs the code it was built
// from, never a stale bin/kiln.
func rootlessKiln(t *testing.T, u testenv.TestUser) string {
	t.Helper()
	b, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(u.Home, "kiln")
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dst, u.UID, u.GID); err != nil {
		t.Fatal(err)
	}
	return dst
}

// rootlessCmd is kiln (from rootlessKiln) run as u with args.
func rootlessCmd(u testenv.TestUser, kilnBin string, args ...string) *exec.Cmd {
	cmd := u.Command(kilnBin, args...)
	cmd.Env = append(cmd.Env, "KILN_E2E_MAIN=1")
	return cmd
}

// rootCmd is the same kiln run as root.
func rootCmd(kilnBin string, args ...string) *exec.Cmd {
	cmd := exec.Command(kilnBin, args...)
	cmd.Env = append(os.Environ(), "KILN_E2E_MAIN=1")
	return cmd
}

// chownTree gives u everything under dir, so that it can read its build's inputs.
func chownTree(t *testing.T, dir string, u testenv.TestUser) {
	t.Helper()
	if out, err := exec.Command("chown", "-R", u.Name+":"+u.Name, dir).CombinedOutput(); err != nil {
		t.Fatalf("chown: %v: %s", err, out)
	}
}

// userBusyboxProject writes, in u's home, the busybox test image as an OCI layout
// and a context dir holding files (name → content), and returns both. The caller
// gives u its home (chownTree) once everything is in it.
func userBusyboxProject(t *testing.T, u testenv.TestUser, files map[string]string) (base, ctx string) {
	t.Helper()
	base = filepath.Join(u.Home, "busybox")
	if err := testenv.WriteBusyboxOCILayout(base); err != nil {
		t.Fatal(err)
	}
	ctx = filepath.Join(u.Home, "ctx")
	if err := os.MkdirAll(ctx, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(ctx, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return base, ctx
}

// A busybox build as an ordinary user (RUN, COPY --chown, RUN --mount=type=cache,
// a chown to another uid, ".wh." names a RUN leaves, which become a whiteout and an
// opaque dir in the namespace too) gives the same image, byte for byte, as the same
// build as root, with SOURCE_DATE_EPOCH set: owners in layers are the image's ids,
// never the host's subordinate ones.
func TestRootlessBuildMatchesRoot(t *testing.T) {
	u := testenv.NewTestUser(t)
	kilnBin := rootlessKiln(t, u)
	df := `FROM busybox
RUN echo hi > /hi && id -u > /uid && chown 1000:1000 /hi
COPY --chown=1000:1000 f /f
RUN --mount=type=cache,target=/cache echo cached > /cache/c && cat /cache/c > /fromcache && ls -ln /f /hi
RUN echo v > /victim && mkdir /o && echo x > /o/x
RUN touch /.wh.victim /o/.wh..wh..opq && echo y > /o/y
RUN ls -a / /o > /seen
`
	base, ctx := userBusyboxProject(t, u, map[string]string{"Dockerfile": df, "f": "data\n"})
	chownTree(t, u.Home, u)
	args := func(root, out, iid string) []string {
		return []string{"build", "--root", root, "--progress", "plain", "--iidfile", iid,
			"--build-context", "busybox=oci-layout://" + base, "-o", "type=oci,dest=" + out, ctx}
	}
	cmd := rootlessCmd(u, kilnBin, args(filepath.Join(u.Home, "store"), filepath.Join(u.Home, "rl.tar"), filepath.Join(u.Home, "rl.id"))...)
	cmd.Env = append(cmd.Env, "SOURCE_DATE_EPOCH=1700000000")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("rootless build: %v\n%s", err, out)
	}
	for _, want := range []string{"sandbox: user namespace", "1000     1000", "resource limits are not enforced"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("rootless build output lacks %q:\n%s", want, out)
		}
	}
	rootDir := t.TempDir()
	cmd = rootCmd(kilnBin, args(filepath.Join(rootDir, "store"), filepath.Join(rootDir, "rt.tar"), filepath.Join(rootDir, "rt.id"))...)
	cmd.Env = append(cmd.Env, "SOURCE_DATE_EPOCH=1700000000")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("root build: %v\n%s", err, out)
	}
	rl, err := os.ReadFile(filepath.Join(u.Home, "rl.id"))
	if err != nil {
		t.Fatal(err)
	}
	rt, err := os.ReadFile(filepath.Join(rootDir, "rt.id"))
	if err != nil {
		t.Fatal(err)
	}
	if string(rl) != string(rt) {
		t.Fatalf("rootless image %s differs from root image %s", rl, rt)
	}
	files := flatten(t, readOCI(t, filepath.Join(rootDir, "rt.tar")))
	if _, ok := files["/victim"]; ok || files["/o/y"].content != "y\n" {
		t.Errorf("the .wh. names were not applied: /victim %v, /o/y %q", ok, files["/o/y"].content)
	}
	if _, ok := files["/o/x"]; ok {
		t.Error("/o/x is in the image: .wh..wh..opq did not make /o opaque")
	}
	// The step ran as uid 0 of the namespace, and the image says so.
	ociOut, err := exec.Command("skopeo", "inspect", "oci-archive:"+filepath.Join(rootDir, "rt.tar")).CombinedOutput()
	if err != nil {
		t.Fatalf("skopeo: %v: %s", err, ociOut)
	}
}

// Limits fail clearly where rootless kiln cannot make a cgroup.
func TestRootlessLimitsFailClearly(t *testing.T) {
	u := testenv.NewTestUser(t)
	kilnBin := rootlessKiln(t, u)
	base, ctx := userBusyboxProject(t, u, map[string]string{"Dockerfile": "FROM busybox\nRUN true\n"})
	chownTree(t, u.Home, u)
	out, err := rootlessCmd(u, kilnBin, "build", "--root", filepath.Join(u.Home, "store"), "--progress", "plain", "--memory", "64m",
		"--build-context", "busybox=oci-layout://"+base, ctx).CombinedOutput()
	if err == nil {
		t.Fatalf("a rootless build with --memory succeeded without a cgroup:\n%s", out)
	}
	if !strings.Contains(string(out), "--memory, --cpus and --pids-limit need a cgroup") {
		t.Fatalf("no clear error:\n%s", out)
	}
	// It says what it found of a delegated cgroup v2 subtree: on a hybrid host (this
	// test machine) that the controllers are bound to cgroup v1.
	if ctrl, err := os.ReadFile("/sys/fs/cgroup/unified/cgroup.controllers"); err == nil && !strings.Contains(string(ctrl), "memory") {
		if !strings.Contains(string(out), "this host is hybrid and binds them to cgroup v1") {
			t.Errorf("the error does not say why no delegated cgroup v2 subtree can serve:\n%s", out)
		}
	} else if !strings.Contains(string(out), "kiln's cgroup v2") && !strings.Contains(string(out), "no cgroup v2") {
		t.Errorf("the error does not report on cgroup v2 delegation:\n%s", out)
	}
}
