package snapshot

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Directories overlayfs copied up only because something was created and removed
// inside them (RUN's mount-point stubs) are not part of the diff; directories the step
// did change are.
func TestUnmountPrunesUnchangedCopyUps(t *testing.T) {
	ctx := context.Background()
	s := newTestSnapshotter(t)
	old := time.Unix(1_000_000_000, 0)
	err := s.Ingest(ctx, "base", func(dir string) error {
		for _, d := range []string{"etc", "touched", "opaque", "deep/er"} {
			if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
				return err
			}
		}
		for _, d := range []string{"etc", "touched", "opaque", "deep/er", "deep"} {
			if err := os.Chtimes(filepath.Join(dir, d), old, old); err != nil {
				return err
			}
		}
		return os.WriteFile(filepath.Join(dir, "opaque", "f"), []byte("x"), 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	a, err := s.Prepare(ctx, []string{"base"})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Discard(ctx)
	// A stub created and removed, with the dir's times put back: no change.
	for _, d := range []string{"etc", "deep/er"} {
		stub := filepath.Join(a.Root, d, "stub")
		if err := os.WriteFile(stub, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		os.Remove(stub)
		os.Chtimes(filepath.Join(a.Root, d), old, old)
	}
	os.Chtimes(filepath.Join(a.Root, "deep"), old, old)
	// A file created and removed without restoring the time: the dir's mtime changed.
	os.WriteFile(filepath.Join(a.Root, "touched", "tmp"), nil, 0o644)
	os.Remove(filepath.Join(a.Root, "touched", "tmp"))
	// A dir emptied and recreated: opaque, must stay.
	os.RemoveAll(filepath.Join(a.Root, "opaque"))
	os.Mkdir(filepath.Join(a.Root, "opaque"), 0o755)
	// A new empty dir: not in the lowers, must stay.
	os.Mkdir(filepath.Join(a.Root, "new"), 0o755)

	if err := a.Unmount(ctx); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]bool{"etc": false, "deep": false, "deep/er": false, "touched": true, "opaque": true, "new": true} {
		_, err := os.Lstat(filepath.Join(a.Upper, p))
		if got := err == nil; got != want {
			t.Errorf("upper/%s present = %v, want %v", p, got, want)
		}
	}
	if v, _ := getxattr(filepath.Join(a.Upper, "opaque"), "trusted.overlay.opaque"); string(v) != "y" {
		t.Errorf("opaque dir lost its xattr")
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(a.Upper, "touched"), &st); err != nil {
		t.Fatal(err)
	}
}

// The same snapshot twice in a stack (two steps with one result) mounts: overlay
// refuses a repeated lowerdir, so only the topmost occurrence is used.
func TestRepeatedParentMounts(t *testing.T) {
	ctx := context.Background()
	s := newTestSnapshotter(t)
	for _, id := range []string{"a", "b"} {
		if err := s.Ingest(ctx, id, func(dir string) error {
			return os.WriteFile(filepath.Join(dir, id), []byte(id), 0o644)
		}); err != nil {
			t.Fatal(err)
		}
	}
	root, release, err := s.View(ctx, []string{"a", "b", "a"})
	if err != nil {
		t.Fatalf("view with a repeated parent: %v", err)
	}
	defer release()
	for _, f := range []string{"a", "b"} {
		if data, err := os.ReadFile(filepath.Join(root, f)); err != nil || string(data) != f {
			t.Errorf("%s = %q, %v", f, data, err)
		}
	}
}

// countdownCtx is cancelled after its Err has been asked n times: it stops a walk
// that checks ctx at every dir in the middle, deterministically.
type countdownCtx struct {
	context.Context
	n int
}

func (c *countdownCtx) Err() error {
	if c.n--; c.n < 0 {
		return context.Canceled
	}
	return nil
}

// Pruning stopped half-way (a cancelled Unmount) leaves the dirs it pruned under
// with their times, so that the next Unmount prunes the rest and the diff is the
// same as from one uninterrupted Unmount.
func TestPruneResumesAfterCancel(t *testing.T) {
	ctx := context.Background()
	s := newTestSnapshotter(t)
	old := time.Unix(1_000_000_000, 0)
	dirs := []string{"p", "p/a", "p/b", "p/c", "q"}
	err := s.Ingest(ctx, "base", func(dir string) error {
		for _, d := range dirs {
			if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
				return err
			}
		}
		for i := len(dirs) - 1; i >= 0; i-- {
			if err := os.Chtimes(filepath.Join(dir, dirs[i]), old, old); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for stop := range 6 {
		a, err := s.Prepare(ctx, []string{"base"})
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range dirs[1:] { // a stub in every leaf dir makes overlay copy them all up
			stub := filepath.Join(a.Root, d, "stub")
			mustWrite(t, stub, "")
			os.Remove(stub)
		}
		for i := len(dirs) - 1; i >= 0; i-- {
			os.Chtimes(filepath.Join(a.Root, dirs[i]), old, old)
		}
		err = a.Unmount(&countdownCtx{Context: ctx, n: stop})
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Fatalf("stop %d: %v", stop, err)
		}
		if err := a.Unmount(ctx); err != nil {
			t.Fatalf("stop %d: second Unmount: %v", stop, err)
		}
		if got := describe(t, a.Upper); got != ". 40755" {
			t.Errorf("stop %d: upper after a resumed prune:\n%s", stop, got)
		}
		a.Discard(ctx)
	}
}
