package snapshot

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/testenv"
)

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

// A RUN's copy-ups of files it did not change leave the upper dir (PruneUnchangedFiles),
// and everything the step changed stays: new content with the old size and time, a
// new time, an xattr, a file with hard links, a file under a dir the step replaced.
// Without PruneUnchangedFiles (a COPY) the copy-ups stay.
func TestPruneUnchangedFiles(t *testing.T) {
	ctx := context.Background()
	s := newTestSnapshotter(t)
	old := time.Unix(1_000_000_000, 0) // whole seconds, as unpacked from a tar
	files := map[string]string{
		"etc/.pwd.lock": "", "etc/passwd": "root:x:0:0\n", "etc/group": "root:x:0:\n",
		"etc/hosts2": "127.0.0.1 a\n", "etc/tagged": "t\n", "hard/a": "h\n", "opq/f": "o\n",
	}
	err := s.Ingest(ctx, "base", func(dir string) error {
		for _, d := range []string{"etc", "hard", "opq"} {
			if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
				return err
			}
		}
		for p, c := range files {
			if err := os.WriteFile(filepath.Join(dir, p), []byte(c), 0o644); err != nil {
				return err
			}
		}
		if err := os.Link(filepath.Join(dir, "hard/a"), filepath.Join(dir, "hard/b")); err != nil {
			return err
		}
		if err := os.Symlink("passwd", filepath.Join(dir, "etc/link")); err != nil {
			return err
		}
		for p := range files {
			if err := os.Chtimes(filepath.Join(dir, p), old, old); err != nil {
				return err
			}
		}
		for _, d := range []string{"etc", "hard", "opq"} {
			if err := os.Chtimes(filepath.Join(dir, d), old, old); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	run := func(prune bool) string {
		a, err := s.Prepare(ctx, []string{"base"})
		if err != nil {
			t.Fatal(err)
		}
		defer a.Discard(ctx)
		if prune {
			a.PruneUnchangedFiles()
		}
		r := func(p string) string { return filepath.Join(a.Root, p) }
		// Copied up, unchanged: opened for writing (useradd's lock), chmod and
		// lchown to what they were.
		f, err := os.OpenFile(r("etc/.pwd.lock"), os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
		must(t, os.Chmod(r("etc/passwd"), 0o644))
		must(t, os.Lchown(r("etc/link"), 0, 0))
		// Changed: a new time; new bytes of the same size with the old time put
		// back; an xattr; a file with a hard link; a file of a replaced dir.
		must(t, os.Chtimes(r("etc/group"), old, old.Add(time.Second)))
		must(t, os.WriteFile(r("etc/hosts2"), []byte("127.0.0.1 b\n"), 0o644))
		must(t, os.Chtimes(r("etc/hosts2"), old, old))
		must(t, unix.Setxattr(r("etc/tagged"), "user.kiln-test", []byte("1"), 0))
		must(t, os.Chmod(r("hard/a"), 0o644))
		must(t, os.RemoveAll(r("opq")))
		must(t, os.Mkdir(r("opq"), 0o755))
		must(t, os.WriteFile(r("opq/f"), []byte("o\n"), 0o644))
		must(t, os.Chtimes(r("opq/f"), old, old))
		must(t, os.Chtimes(r("opq"), old, old))
		for _, d := range []string{"etc", "hard"} {
			must(t, os.Chtimes(r(d), old, old))
		}
		if err := a.Unmount(ctx); err != nil {
			t.Fatal(err)
		}
		return describe(t, a.Upper)
	}
	want := `. 40755
etc 40755
etc/group 100644 root:x:0:
etc/hosts2 100644 127.0.0.1 b
etc/tagged 100644 t
hard 40755
hard/a 100644 h
opq 40755 opaque
opq/f 100644 o
`
	// describe prints file contents, whose own newlines double the line ends.
	if got := strings.ReplaceAll(run(true), "\n\n", "\n"); got != want {
		t.Errorf("upper of a RUN:\n%s\nwant:\n%s", got, want)
	}
	got := run(false)
	for _, p := range []string{"etc/.pwd.lock 100644", "etc/passwd 100644", "etc/link 120777"} {
		if !strings.Contains(got, p) {
			t.Errorf("without PruneUnchangedFiles the copy-up %q went:\n%s", p, got)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestBelow: what Active.Below reports is what overlayfs's lookup finds under the
// upper dir: the topmost layer's entry, hidden by a whiteout, by a non-directory on
// the way, or by an opaque directory on the way in any layer above, the upper dir's
// own included. Checked against a real mount of the same layers.
func TestBelow(t *testing.T) {
	testenv.RequireRoot(t)
	base := t.TempDir()
	upper, top, bottom := filepath.Join(base, "upper"), filepath.Join(base, "top"), filepath.Join(base, "bottom")
	mk := func(p string) {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	whiteout := func(p string) {
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := unix.Mknod(p, unix.S_IFCHR, 0); err != nil {
			t.Fatal(err)
		}
	}
	opaque := func(p string) {
		os.MkdirAll(p, 0o755)
		if err := unix.Setxattr(p, "trusted.overlay.opaque", []byte("y"), 0); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{"a/f", "b/f", "c/f", "d/deep/f", "e/f", "g/h/f", "g2/h/f", "plain"} {
		mk(filepath.Join(bottom, p))
	}
	mk(filepath.Join(top, "t"))
	whiteout(filepath.Join(top, "b"))             // b deleted above
	opaque(filepath.Join(top, "c"))               // c emptied above
	mk(filepath.Join(top, "c/new"))               //   and refilled
	mk(filepath.Join(top, "e"))                   // e is a file above: e/f is hidden
	opaque(filepath.Join(top, "g"))               // g opaque above, g/h not there
	opaque(filepath.Join(top, "g2"))              // g2 opaque above, g2/h there
	mk(filepath.Join(top, "g2/h/other"))          //   without g2/h/f
	os.MkdirAll(filepath.Join(upper, "d"), 0o755) // the upper dir's own path
	opaque(filepath.Join(upper, "a"))             // a emptied by the step itself
	a := &Active{Upper: upper, lowers: []string{top, bottom}}
	cases := map[string]bool{
		"plain": true, "t": true, "a/f": false, "b": false, "b/f": false, "c/f": false, "c/new": true,
		"d/deep/f": true, "d/deep": true, "e": true, "e/f": false, "g/h/f": false, "g/h": false, "none": false,
		"g2/h/f": false, "g2/h/other": true,
	}
	for rel, want := range cases {
		got, err := a.Below(rel)
		if err != nil || got != want {
			t.Errorf("Below(%q) = %v, %v; want %v", rel, got, err, want)
		}
	}
	// None of those paths is in the upper dir itself, so the merged view shows
	// each exactly when Below says the layers under it do.
	work, merged := filepath.Join(base, "work"), filepath.Join(base, "merged")
	for _, d := range []string{work, merged} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	opts := "lowerdir=" + top + ":" + bottom + ",upperdir=" + upper + ",workdir=" + work + ",index=off,metacopy=off,redirect_dir=off"
	if err := unix.Mount("overlay", merged, "overlay", 0, opts); err != nil {
		t.Fatalf("mount overlay: %v", err)
	}
	defer unix.Unmount(merged, unix.MNT_DETACH)
	for rel, want := range cases {
		_, err := os.Lstat(filepath.Join(merged, rel))
		if got := err == nil; got != want {
			t.Errorf("the merged view has %q: %v, the table says %v", rel, got, want)
		}
	}
}
