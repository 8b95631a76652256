package exec

import (
	"bytes"
	"context"
	"errors"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/testenv"
)

func TestMain(m *testing.M) {
	MaybeInit()
	if os.Getenv("KILN_TEST_ISOLATE") == "1" {
		isolateHelper()
	}
	os.Exit(m.Run())
}

// busyboxRootfs writes a minimal image: busybox with its applets, a passwd with
// root, nobody and app, and a group file that makes app a member of "extra".
func busyboxRootfs(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Skipf("busybox: %v", err)
	}
	if err := os.WriteFile(filepath.Join(bin, "busybox"), src, 0o755); err != nil {
		t.Fatal(err)
	}
	list, err := osexec.Command("/bin/busybox", "--list").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range strings.Fields(string(list)) {
		if a == "busybox" {
			continue
		}
		if err := os.Symlink("busybox", filepath.Join(bin, a)); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\napp:x:1000:1000:app:/home/app:/bin/sh\n",
		"etc/group":  "root:x:0:\nnogroup:x:65534:\napp:x:1000:\nextra:x:2000:app,other\n",
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// sandboxFS is a merged overlay over a busybox rootfs, as the solver prepares it.
type sandboxFS struct {
	lower, upper, merged string
}

func newSandboxFS(t *testing.T) sandboxFS {
	t.Helper()
	testenv.RequireRoot(t)
	lower := busyboxRootfs(t)
	base := t.TempDir()
	fs := sandboxFS{lower: lower, upper: filepath.Join(base, "upper"), merged: filepath.Join(base, "merged")}
	work := filepath.Join(base, "work")
	for _, d := range []string{fs.upper, fs.merged, work} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	opts := "lowerdir=" + lower + ",upperdir=" + fs.upper + ",workdir=" + work
	if err := unix.Mount("overlay", fs.merged, "overlay", 0, opts); err != nil {
		t.Skipf("overlay: %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(fs.merged, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount overlay: %v", err)
		}
		checkNoLeaks(t, base)
	})
	return fs
}

// checkNoLeaks fails when a step cgroup of this test process or a mount under dir is
// left, and removes the shared kiln parent cgroups when empty. Other packages' tests
// run kiln at the same time, and their steps' cgroups (kiln/step-<random>) are theirs
// to clean, so a cgroup of this process is told by its lease: a step holds an open
// descriptor on each of its cgroup's dirs (package lease) until it has removed it.
func checkNoLeaks(t *testing.T, dir string) {
	t.Helper()
	fds, _ := filepath.Glob("/proc/self/fd/*")
	for _, fd := range fds {
		if p, err := os.Readlink(fd); err == nil && strings.Contains(p, "/kiln/"+stepPrefix) && strings.HasPrefix(p, "/sys/fs/cgroup") {
			t.Errorf("cgroup left behind (its lease still held): %s", p)
		}
	}
	parents, _ := filepath.Glob("/sys/fs/cgroup/*/kiln")
	for _, p := range parents {
		_ = os.Remove(p) // fails while another test's step uses it
	}
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(mi, []byte(dir)) {
		t.Errorf("mount left under %s", dir)
	}
}

// run runs script with sh -c in fs and returns stdout, stderr and Run's error.
func (fs sandboxFS) run(t *testing.T, ctx context.Context, spec Spec, script string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	spec.Rootfs = fs.merged
	if spec.Args == nil {
		spec.Args = []string{"/bin/sh", "-c", script}
	}
	spec.Stdout, spec.Stderr = &out, &errb
	err := Run(ctx, spec)
	return out.String(), errb.String(), err
}

func (fs sandboxFS) mustRun(t *testing.T, spec Spec, script string) string {
	t.Helper()
	out, stderr, err := fs.run(t, context.Background(), spec, script)
	if err != nil {
		t.Fatalf("run %q: %v\nstderr: %s", script, err, stderr)
	}
	return out
}

func exitCode(t *testing.T, err error) *ExitError {
	t.Helper()
	var ee *ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("error %v is not an *ExitError", err)
	}
	return ee
}

// findProcess reports whether a host process has marker in its command line.
func findProcess(marker string) bool {
	cmdlines, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, c := range cmdlines {
		b, err := os.ReadFile(c)
		if err == nil && bytes.Contains(b, []byte(marker)) {
			return true
		}
	}
	return false
}
