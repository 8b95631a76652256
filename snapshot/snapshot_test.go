package snapshot

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/lease"
	"github.com/kiln-build/kiln/internal/testenv"
)

// newTestSnapshotter returns a snapshotter in a temp dir and checks, after every other
// cleanup, that no mount is left under it (detaching any so the dir can be removed).
func newTestSnapshotter(t *testing.T, opts ...Option) *Snapshotter {
	t.Helper()
	testenv.RequireRoot(t)
	dir := t.TempDir()
	t.Cleanup(func() {
		mps, err := MountsUnder(dir)
		if err != nil {
			t.Errorf("read mounts: %v", err)
		}
		if len(mps) > 0 {
			t.Errorf("mounts left behind: %v", mps)
			unmountUnder(dir)
		}
	})
	s, err := New(context.Background(), dir, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Wait(); err != nil {
			t.Errorf("background removals: %v", err)
		}
	})
	return s
}

func ingest(t *testing.T, s *Snapshotter, id string, files map[string]string) {
	t.Helper()
	if err := s.Ingest(context.Background(), id, fillWith(files)); err != nil {
		t.Fatal(err)
	}
}

// fillWith is an Ingest or Rebuild fill that writes files (path → content).
func fillWith(files map[string]string) func(dir string) error {
	return func(dir string) error {
		for name, content := range files {
			p := filepath.Join(dir, name)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
				return err
			}
		}
		return nil
	}
}

// describe lists a tree as "path kind [content] [opaque]" lines for comparison.
func describe(t *testing.T, root string) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		line := fmt.Sprintf("%s %o", rel, st.Mode)
		switch {
		case isWhiteout(&st):
			line += " whiteout"
		case d.IsDir():
			if isOpaque(p) {
				line += " opaque"
			}
		case d.Type().IsRegular():
			b, _ := os.ReadFile(p)
			line += " " + string(b)
		}
		lines = append(lines, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func mustMkdir(t *testing.T, p string) {
	t.Helper()
	if err := os.Mkdir(p, 0o755); err != nil {
		t.Fatal(err)
	}
}

func mustWrite(t *testing.T, p, content string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// step does a typical RUN: add, modify, delete, and replace a dir.
func step(t *testing.T, root string) {
	t.Helper()
	mustWrite(t, filepath.Join(root, "new"), "n")
	mustWrite(t, filepath.Join(root, "a"), "a2")
	if err := os.Remove(filepath.Join(root, "keep", "gone")); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(root, "d")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(root, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, filepath.Join(root, "d", "z"), "z")
	if err := os.Remove(filepath.Join(root, "f2d")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(root, "f2d"), 0o755); err != nil {
		t.Fatal(err)
	}
}

var baseFiles = map[string]string{"a": "a1", "d/x": "x", "d/y": "y", "keep/gone": "g", "keep/stay": "s", "f2d": "f"}

// Both mount APIs stack 200 parents (the suite's PrepareManyParents runs only the
// one New picks): mount(2) through its short-symlink fallback, as the ids make the
// lowerdir list longer than a page.
func TestManyParents(t *testing.T) {
	cases := []struct {
		name string
		opts []Option
	}{{"fsconfig", nil}, {"mount2", []Option{withClassicMount()}}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			s := newTestSnapshotter(t, tc.opts...)
			var parents []string
			for i := range 200 {
				id := fmt.Sprintf("sha256-%064d", i)
				ingest(t, s, id, map[string]string{fmt.Sprintf("f%d", i): "x", "top": fmt.Sprint(i)})
				parents = append(parents, id)
			}
			a, err := s.Prepare(ctx, parents)
			if err != nil {
				t.Fatal(err)
			}
			defer a.Discard(ctx)
			if b, err := os.ReadFile(filepath.Join(a.Root, "top")); err != nil || string(b) != "199" {
				t.Errorf("top = %q, %v; want the last parent's", b, err)
			}
			if _, err := os.Stat(filepath.Join(a.Root, "f0")); err != nil {
				t.Error(err)
			}
			if err := a.Discard(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// New removes the work dirs of processes that are gone (their lease is free), with any
// mount left in them, and nothing else: not a live Active of this process, not a dir
// leased by another holder, not a committed layer.
func TestNewCleansLeftovers(t *testing.T) {
	ctx := context.Background()
	s := newTestSnapshotter(t)
	ingest(t, s, "sha256-base", map[string]string{"f": "precious"})
	live, err := s.Prepare(ctx, []string{"sha256-base"})
	if err != nil {
		t.Fatal(err)
	}
	defer live.Discard(ctx)
	// A dead process's Active, with a mount still in place.
	dead := filepath.Join(s.root, "active", "0123456789abcdef")
	merged := filepath.Join(dead, "merged")
	if err := os.MkdirAll(merged, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(s.Path("sha256-base"), merged, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	// A pre-lease kiln's dir: an unlocked lock file inside.
	legacyDead := filepath.Join(s.root, "active", "1-dead")
	mustMkdir(t, legacyDead)
	mustWrite(t, filepath.Join(legacyDead, legacyLockName), "")
	// A pre-lease kiln's dir being set up, long ago.
	hidden := filepath.Join(s.root, "tmp", ".999999999-x")
	if err := os.Mkdir(hidden, 0o700); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(hidden, old, old); err != nil {
		t.Fatal(err)
	}
	// Live work of another holder: a leased dir, a pre-lease dir whose lock is held,
	// and a pre-lease dir being set up now.
	held := filepath.Join(s.root, "tmp", "fedcba9876543210")
	if err := os.Mkdir(held, 0o700); err != nil {
		t.Fatal(err)
	}
	l, err := lease.Take(held)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	legacyLive := filepath.Join(s.root, "active", "2-live")
	mustMkdir(t, legacyLive)
	mustWrite(t, filepath.Join(legacyLive, legacyLockName), "")
	ll, err := lease.Take(filepath.Join(legacyLive, legacyLockName))
	if err != nil {
		t.Fatal(err)
	}
	defer ll.Release()
	settingUp := filepath.Join(s.root, "tmp", ".1-now")
	if err := os.Mkdir(settingUp, 0o700); err != nil {
		t.Fatal(err)
	}

	if _, err := New(ctx, s.root); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{dead, legacyDead, hidden} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s not cleaned", p)
		}
	}
	for _, p := range []string{held, legacyLive, settingUp, filepath.Join(live.Root, "f")} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("live work was cleaned: %v", err)
		}
	}
	if b, err := os.ReadFile(filepath.Join(s.Path("sha256-base"), "f")); err != nil || string(b) != "precious" {
		t.Errorf("base layer damaged: %q %v", b, err)
	}
}

// A copy-mode Unmount that fails part-way leaves Upper empty, so the next Unmount
// writes the whole diff again instead of failing on what the first one wrote.
func TestCopyUnmountRetriesFromEmptyUpper(t *testing.T) {
	ctx := context.Background()
	s := newTestSnapshotter(t, WithoutOverlay())
	ingest(t, s, "sha256-base", baseFiles)
	var uppers []string
	for _, blocked := range []bool{false, true} {
		a, err := s.Prepare(ctx, []string{"sha256-base"})
		if err != nil {
			t.Fatal(err)
		}
		defer a.Discard(ctx)
		step(t, a.Root)
		if blocked {
			// In the way of the diff's "new", after "a" and "d" were written.
			mustWrite(t, filepath.Join(a.Upper, "new"), "in the way")
			if err := a.Unmount(ctx); err == nil {
				t.Fatal("Unmount over a blocked Upper succeeded")
			}
		}
		if err := a.Unmount(ctx); err != nil {
			t.Fatalf("blocked %v: %v", blocked, err)
		}
		uppers = append(uppers, describe(t, a.Upper))
	}
	if uppers[0] != uppers[1] {
		t.Errorf("diff after a failed Unmount:\n%s\nwant:\n%s", uppers[1], uppers[0])
	}
}

// A step's overlay is volatile where the kernel has it (Linux >= 5.10: here always):
// the step's fsyncs and the unmount skip the sync of the upper filesystem. What the
// step wrote is still its snapshot, a later step's lower, and a second step mounts
// (overlay refuses a work dir a volatile mount used: every Active has its own).
func TestStepOverlayIsVolatile(t *testing.T) {
	s := newTestSnapshotter(t)
	if !s.Overlay() {
		t.Fatalf("no overlay here: %s", s.Mode())
	}
	ctx := context.Background()
	ingest(t, s, "base", map[string]string{"etc/base": "b"})
	a, err := s.Prepare(ctx, []string{"base"})
	if err != nil {
		t.Fatal(err)
	}
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var line string
	for _, l := range strings.Split(string(mi), "\n") {
		if f := strings.Fields(l); len(f) > 4 && f[4] == a.Root {
			line = l
		}
	}
	if !strings.Contains(line, "volatile") {
		t.Errorf("the step's overlay is not volatile: %q", line)
	}
	f, err := os.Create(filepath.Join(a.Root, "made"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("by the step"); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Errorf("fsync in a volatile overlay: %v", err)
	}
	f.Close()
	if err := a.Commit(ctx, "step1"); err != nil {
		t.Fatal(err)
	}
	b, err := s.Prepare(ctx, []string{"step1", "base"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Discard(ctx)
	got, err := os.ReadFile(filepath.Join(b.Root, "made"))
	if err != nil || string(got) != "by the step" {
		t.Errorf("the next step reads %q, %v", got, err)
	}
	if got, err := os.ReadFile(filepath.Join(b.Root, "etc/base")); err != nil || string(got) != "b" {
		t.Errorf("base file: %q, %v", got, err)
	}
}
