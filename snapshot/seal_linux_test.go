package snapshot

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A committed snapshot is sealed as it is published, by Ingest and by Commit; any
// change to its tree afterwards, even one that keeps the size and puts the mtime back,
// makes Verify report it damaged. Remove takes the seal with the snapshot, and a
// snapshot without a seal (an older kiln's) is sealed as it is on its first Verify.
func TestSealFindsChangedTree(t *testing.T) {
	ctx := context.Background()
	s := newTestSnapshotter(t)
	files := map[string]string{"a.txt": "alpha\n", "d/b.txt": "bravo\n", "d/e/c.txt": "charlie\n"}

	damage := map[string]func(t *testing.T, dir string){
		"content, size and mtime kept": func(t *testing.T, dir string) {
			p := filepath.Join(dir, "d/e/c.txt")
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte("CHARLIE\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(p, fi.ModTime(), fi.ModTime()); err != nil {
				t.Fatal(err)
			}
		},
		"file removed": func(t *testing.T, dir string) {
			if err := os.Remove(filepath.Join(dir, "d/b.txt")); err != nil {
				t.Fatal(err)
			}
		},
		"file added": func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, "d/e/new"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		},
		"mode changed": func(t *testing.T, dir string) {
			if err := os.Chmod(filepath.Join(dir, "a.txt"), 0o600); err != nil {
				t.Fatal(err)
			}
		},
		"owner changed": func(t *testing.T, dir string) {
			if err := os.Lchown(filepath.Join(dir, "d"), 1, 1); err != nil {
				t.Fatal(err)
			}
		},
		"hard link made to a file": func(t *testing.T, dir string) {
			// The link is outside the tree: only the file's link count shows it.
			if err := os.Link(filepath.Join(dir, "a.txt"), filepath.Join(t.TempDir(), "a")); err != nil {
				t.Fatal(err)
			}
		},
	}
	n := 0
	for name, fn := range damage {
		n++
		id := fmt.Sprintf("ingested-%d", n)
		t.Run(name, func(t *testing.T) {
			ingest(t, s, id, files)
			if err := s.Verify(ctx, id); err != nil {
				t.Fatalf("a fresh snapshot does not verify: %v", err)
			}
			fn(t, s.Path(id))
			wantDamaged(t, s, id, "after the damage")
			if err := s.Remove(ctx, id); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(s.sealPath(id)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("Remove left the seal: %v", err)
			}
			ingest(t, s, id, files)
			if err := s.Verify(ctx, id); err != nil {
				t.Errorf("the snapshot made again does not verify: %v", err)
			}
		})
	}

	t.Run("committed", func(t *testing.T) {
		ingest(t, s, "base", files)
		a, err := s.Prepare(ctx, []string{"base"})
		if err != nil {
			t.Fatal(err)
		}
		defer a.Discard(ctx)
		if err := os.WriteFile(filepath.Join(a.Root, "run.txt"), []byte("run\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := a.Commit(ctx, "step"); err != nil {
			t.Fatal(err)
		}
		// Reading a tree, as overlay and outputs do, changes nothing the seal holds.
		b, err := s.Prepare(ctx, []string{"base", "step"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := os.ReadFile(filepath.Join(b.Root, "run.txt")); err != nil {
			t.Fatal(err)
		}
		if err := b.Discard(ctx); err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{"base", "step"} {
			if err := s.Verify(ctx, id); err != nil {
				t.Errorf("%s: %v", id, err)
			}
		}
		p := filepath.Join(s.Path("step"), "run.txt")
		if err := os.WriteFile(p, []byte("RUN\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		wantDamaged(t, s, "step", "the changed step snapshot")
	})

	t.Run("restored copy", func(t *testing.T) {
		// A root restored from a copy (cp -a, a CI cache) has new inodes and ctimes
		// everywhere: sealed again, not damaged; a change after that is found.
		ingest(t, s, "copied", files)
		p := s.Path("copied")
		if out, err := exec.Command("cp", "-a", p, p+".copy").CombinedOutput(); err != nil {
			t.Fatalf("cp -a: %v\n%s", err, out)
		}
		if err := os.RemoveAll(p); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(p+".copy", p); err != nil {
			t.Fatal(err)
		}
		if err := s.Verify(ctx, "copied"); err != nil {
			t.Fatalf("a restored copy: %v", err)
		}
		if err := os.WriteFile(filepath.Join(p, "a.txt"), []byte("ALPHA\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		wantDamaged(t, s, "copied", "after a change to the restored copy")
	})

	t.Run("seal cut short", func(t *testing.T) {
		ingest(t, s, "cut", files)
		if err := os.Truncate(s.sealPath("cut"), 0); err != nil {
			t.Fatal(err)
		}
		if err := s.Verify(ctx, "cut"); err != nil {
			t.Errorf("an empty seal (power loss): %v, want it sealed again", err)
		}
	})

	t.Run("no seal", func(t *testing.T) {
		ingest(t, s, "legacy", files)
		if err := os.Remove(s.sealPath("legacy")); err != nil {
			t.Fatal(err)
		}
		if err := s.Verify(ctx, "legacy"); err != nil {
			t.Fatalf("a snapshot without a seal: %v", err)
		}
		if _, err := os.Stat(s.sealPath("legacy")); err != nil {
			t.Fatalf("Verify did not seal it: %v", err)
		}
		ts := []unix.Timespec{unix.NsecToTimespec(time.Now().UnixNano()), unix.NsecToTimespec(0)}
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, filepath.Join(s.Path("legacy"), "d"), ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			t.Fatal(err)
		}
		wantDamaged(t, s, "legacy", "after a dir's mtime changed")
	})
}

// wantDamaged fails the test unless Verify reports snapshot id damaged.
func wantDamaged(t *testing.T, s *Snapshotter, id, when string) {
	t.Helper()
	var damaged *DamagedError
	if err := s.Verify(context.Background(), id); !errors.As(err, &damaged) || damaged.ID != id {
		t.Errorf("Verify %s = %v, want a DamagedError for %s", when, err, id)
	}
}

// The seal does not depend on how the walk is spread over goroutines: the same tree
// gives the same digest every time.
func TestTreeSealIsStable(t *testing.T) {
	dir := t.TempDir()
	for i := range 40 {
		p := filepath.Join(dir, "d"+string(rune('a'+i%8)), "sub"+string(rune('a'+i%5)))
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(p, "f"+string(rune('a'+i))), []byte{byte(i)}, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	first, err := treeSeal(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		again, err := treeSeal(context.Background(), dir)
		if err != nil {
			t.Fatal(err)
		}
		if string(again) != string(first) {
			t.Fatalf("the seal changed without a change to the tree: %x, then %x", first, again)
		}
	}
	if err := os.Rename(filepath.Join(dir, "da"), filepath.Join(dir, "dz")); err != nil {
		t.Fatal(err)
	}
	moved, err := treeSeal(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if string(moved) == string(first) {
		t.Error("renaming a dir left the seal as it was")
	}
}

// Rebuild puts a new tree in place of a damaged one in one rename, keeps an intact
// one (another build rebuilt it first), and leaves the old tree where it was when the
// new one cannot be made.
func TestRebuild(t *testing.T) {
	ctx := context.Background()
	s := newTestSnapshotter(t)
	files := map[string]string{"a.txt": "alpha\n", "d/b.txt": "bravo\n"}
	fill := fillWith(files)
	ingest(t, s, "snap", files)
	called := false
	if rebuilt, err := s.Rebuild(ctx, "snap", func(string) error { called = true; return nil }); err != nil || rebuilt || called {
		t.Fatalf("an intact snapshot: rebuilt %v, %v, fill called %v; want it kept", rebuilt, err, called)
	}
	p := filepath.Join(s.Path("snap"), "d/b.txt")
	if err := os.WriteFile(p, []byte("BRAVO\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Rebuild(ctx, "snap", func(string) error { return errors.New("no layer") }); err == nil {
		t.Fatal("a fill that fails: no error")
	}
	if b, _ := os.ReadFile(p); string(b) != "BRAVO\n" {
		t.Fatalf("a failed rebuild did not leave the old tree: %q", b)
	}
	if rebuilt, err := s.Rebuild(ctx, "snap", fill); err != nil || !rebuilt {
		t.Fatalf("a damaged snapshot: rebuilt %v, %v", rebuilt, err)
	}
	if b, _ := os.ReadFile(p); string(b) != "bravo\n" {
		t.Errorf("after the rebuild: %q", b)
	}
	if err := s.Verify(ctx, "snap"); err != nil {
		t.Errorf("the rebuilt snapshot does not verify: %v", err)
	}
	if entries, err := os.ReadDir(filepath.Join(s.root, "tmp")); err != nil || len(entries) != 0 {
		t.Errorf("the old tree was left in tmp/: %v %v", entries, err)
	}
	if rebuilt, err := s.Rebuild(ctx, "missing", fill); err != nil || !rebuilt || s.Verify(ctx, "missing") != nil {
		t.Errorf("a missing snapshot: rebuilt %v, %v", rebuilt, err)
	}
}
