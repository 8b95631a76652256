package atomicfile

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kiln-build/kiln/internal/lease"
	"github.com/kiln-build/kiln/internal/testenv"
)

// writerEnv makes the test binary start a Write (named: "named" or "tmpfile") of the
// dest it names that never finishes, as a build killed mid-output (see TestMain).
const writerEnv = "KILN_ATOMICFILE_TEST_WRITER"

func TestMain(m *testing.M) {
	if spec := os.Getenv(writerEnv); spec != "" {
		how, dest, _ := strings.Cut(spec, " ")
		hang := func(w io.Writer) error {
			io.WriteString(w, "partial")
			os.Stdout.WriteString("writing\n")
			time.Sleep(time.Hour)
			return nil
		}
		if how == "named" {
			dir, base := filepath.Split(dest)
			writeNamed(dir, base, dest, 0o644, hang)
		} else {
			Write(dest, 0o644, hang)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// names lists dir.
func names(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

func writeString(s string) func(io.Writer) error {
	return func(w io.Writer) error { _, err := io.WriteString(w, s); return err }
}

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	dest := filepath.Join(dir, "sub", "out.tar")
	if err := Write(dest, 0o640, writeString("one")); err != nil {
		t.Fatal(err)
	}
	if err := Write(dest, 0o644, writeString("two")); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(dest)
	if err != nil || string(b) != "two" {
		t.Fatalf("dest = %q, %v", b, err)
	}
	if fi, _ := os.Stat(dest); fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644", fi.Mode())
	}
	boom := errors.New("boom")
	if err := Write(dest, 0o644, func(w io.Writer) error { io.WriteString(w, "half"); return boom }); !errors.Is(err, boom) {
		t.Fatalf("failing write = %v", err)
	}
	if err := Write(filepath.Join(dir, "sub", "new"), 0o644, func(io.Writer) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("failing write = %v", err)
	}
	if b, _ := os.ReadFile(dest); string(b) != "two" {
		t.Errorf("a failed write changed dest: %q", b)
	}
	if got := names(t, filepath.Join(dir, "sub")); !slices.Equal(got, []string{"out.tar"}) {
		t.Errorf("left in the dir: %v", got)
	}
}

// startWriter runs a process that starts writing dest and never finishes.
func startWriter(t *testing.T, how, dest string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), writerEnv+"="+how+" "+dest)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	buf := make([]byte, 8)
	if _, err := io.ReadFull(out, buf); err != nil || string(buf) != "writing\n" {
		t.Fatalf("writer did not start: %q %v", buf, err)
	}
	return cmd
}

// A writer killed with SIGKILL mid-write leaves nothing where O_TMPFILE works; where it
// does not, its leased temp name is removed by the next write to the same dest, while
// the temp file of a writer still alive is kept.
func TestWriteKilled(t *testing.T) {
	t.Run("tmpfile", func(t *testing.T) {
		dir := t.TempDir()
		dest := filepath.Join(dir, "out")
		if _, err := openTmpfile(dir); err != nil {
			// CI's temp dir is ext4 or tmpfs, which both have O_TMPFILE.
			if testenv.OnCI() {
				t.Fatalf("no O_TMPFILE on the temp dir's filesystem: %v", err)
			}
			t.Skipf("no O_TMPFILE on the temp dir's filesystem: %v", err)
		}
		w := startWriter(t, "tmpfile", dest)
		w.Process.Kill()
		w.Wait()
		if got := names(t, dir); len(got) != 0 {
			t.Errorf("a killed writer left %v", got)
		}
	})
	t.Run("named", func(t *testing.T) {
		dir := t.TempDir()
		dest := filepath.Join(dir, "out")
		killed := startWriter(t, "named", dest)
		killed.Process.Kill()
		killed.Wait()
		leftover := names(t, dir)
		if len(leftover) != 1 || !strings.HasPrefix(leftover[0], ".out.kiln-tmp-") {
			t.Fatalf("after the kill: %v; want the killed writer's temp file", leftover)
		}
		live := startWriter(t, "named", dest)
		liveName := ""
		for _, n := range names(t, dir) {
			if n != leftover[0] {
				liveName = n
			}
		}
		// Another dest's leftover is not this write's to remove.
		other := filepath.Join(dir, ".other.kiln-tmp-0123")
		if err := os.WriteFile(other, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := Write(dest, 0o644, writeString("done")); err != nil {
			t.Fatal(err)
		}
		got := names(t, dir)
		want := []string{liveName, ".other.kiln-tmp-0123", "out"}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("after a write: %v, want %v (the killed writer's temp gone, the live one's kept)", got, want)
		}
		live.Process.Kill()
	})
}

func TestWriteDir(t *testing.T) {
	dir := t.TempDir()
	dest := filepath.Join(dir, "rootfs")
	// A killed writer's temp dir (lease free) and a live one's (leased).
	stale := filepath.Join(dir, ".rootfs.kiln-tmp-dead")
	held := filepath.Join(dir, ".rootfs.kiln-tmp-live")
	for _, d := range []string{stale, held} {
		if err := os.MkdirAll(filepath.Join(d, "etc"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	l, err := lease.Take(held)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	boom := errors.New("boom")
	if err := WriteDir(dest, 0o755, func(d string) error {
		os.WriteFile(filepath.Join(d, "half"), nil, 0o644)
		return boom
	}); !errors.Is(err, boom) {
		t.Fatalf("failing WriteDir = %v", err)
	}
	if got := names(t, dir); !slices.Equal(got, []string{".rootfs.kiln-tmp-live"}) {
		t.Errorf("after a failed WriteDir: %v; want only the live writer's dir", got)
	}
	if err := WriteDir(dest, 0o755, func(d string) error {
		return os.WriteFile(filepath.Join(d, "f"), []byte("x"), 0o644)
	}); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dest, "f")); err != nil || string(b) != "x" {
		t.Errorf("dest/f = %q, %v", b, err)
	}
	if fi, _ := os.Stat(dest); fi.Mode().Perm() != 0o755 {
		t.Errorf("mode %v", fi.Mode())
	}
}
