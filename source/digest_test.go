package source

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// countingCache is a HashCache that counts lookups and can be told to lie, which shows
// whether Digest re-read a file or trusted the cache.
type countingCache struct {
	mu         sync.Mutex
	m          map[string]string
	gets, puts int
}

func (c *countingCache) Get(k string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gets++
	v, ok := c.m[k]
	return v, ok
}

func (c *countingCache) GetMany(ks []string) []string {
	out := make([]string, len(ks))
	for i, k := range ks {
		out[i], _ = c.Get(k)
	}
	return out
}

func (c *countingCache) Put(k, v string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.puts++
	c.m[k] = v
}

var digestTree = map[string]string{
	".dockerignore": "**/*.log\n", "app/main.go": "package main", "app/sub/data": "D",
	"app/link": "->main.go", "app/debug.log": "L", "README": "R",
}

func digestOf(t *testing.T, dir string, opts CopyOptions, hc HashCache) *Sum {
	t.Helper()
	s, err := Digest(context.Background(), Source{Root: dir, Context: openCtx(t, dir)}, opts, hc)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestDigestChanges(t *testing.T) {
	opts := CopyOptions{Sources: []string{"app"}, Dest: "/app/"}
	for _, tc := range []struct {
		name    string
		change  func(t *testing.T, dir string)
		changed bool
	}{
		{"mtime only", func(t *testing.T, dir string) {
			future := time.Now().Add(time.Hour)
			for _, p := range []string{"app/main.go", "app/sub", "app"} {
				if err := os.Chtimes(filepath.Join(dir, p), future, future); err != nil {
					t.Fatal(err)
				}
			}
		}, false},
		{"ignored file", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "app/debug.log"), []byte("more"), 0o644)
			os.WriteFile(filepath.Join(dir, "app/new.log"), []byte("new"), 0o644)
		}, false},
		{"file outside the sources", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "README"), []byte("changed"), 0o644)
		}, false},
		{"content", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "app/sub/data"), []byte("E"), 0o644)
		}, true},
		{"mode", func(t *testing.T, dir string) {
			os.Chmod(filepath.Join(dir, "app/main.go"), 0o755)
		}, true},
		{"link target", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, "app/link"))
			os.Symlink("sub", filepath.Join(dir, "app/link"))
		}, true},
		{"new file", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "app/sub/more"), nil, 0o644)
		}, true},
		{"ignore rule", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, ".dockerignore"), nil, 0o644)
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeTree(t, dir, digestTree)
			hc := &countingCache{m: map[string]string{}}
			before := digestOf(t, dir, opts, hc)
			tc.change(t, dir)
			after := digestOf(t, dir, opts, hc)
			if changed := before.Digest != after.Digest; changed != tc.changed {
				t.Errorf("digest changed = %v, want %v\nbefore %v\nafter  %v", changed, tc.changed, before.Files, after.Files)
			}
		})
	}
}

func TestDigestSameForFreshCopy(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	writeTree(t, a, digestTree)
	writeTree(t, b, digestTree)
	opts := CopyOptions{Sources: []string{"."}, Dest: "/"}
	da, db := digestOf(t, a, opts, nil), digestOf(t, b, opts, nil)
	if da.Digest != db.Digest {
		t.Fatalf("fresh copy digests differ:\n%v\n%v", da.Files, db.Files)
	}
	var paths []string
	for _, f := range da.Files {
		paths = append(paths, f.Path)
	}
	want := []string{".", ".dockerignore", "README", "app", "app/link", "app/main.go", "app/sub", "app/sub/data"}
	if len(paths) != len(want) {
		t.Fatalf("paths %q, want %q", paths, want)
	}
	for i := range want {
		if paths[i] != want[i] {
			t.Fatalf("paths %q, want %q", paths, want)
		}
	}
}

func TestDigestUsesHashCache(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, digestTree)
	opts := CopyOptions{Sources: []string{"app"}, Dest: "/app/"}
	hc := &countingCache{m: map[string]string{}}
	cold := digestOf(t, dir, opts, hc)
	n := len(cold.Files)
	if hc.gets != n || hc.puts != n {
		t.Fatalf("cold: %d gets, %d puts, want %d each", hc.gets, hc.puts, n)
	}
	warm := digestOf(t, dir, opts, hc)
	if hc.gets != 2*n || hc.puts != n {
		t.Fatalf("warm: %d gets, %d puts, want %d and %d", hc.gets, hc.puts, 2*n, n)
	}
	if warm.Digest != cold.Digest {
		t.Fatal("warm digest differs from cold")
	}
	// Poison the cache: a digest that trusts it (and does not re-read) changes.
	for k := range hc.m {
		hc.m[k] = "sha256:poison"
	}
	if poisoned := digestOf(t, dir, opts, hc); poisoned.Digest == cold.Digest {
		t.Fatal("digest ignored the hash cache and re-read the files")
	}
	if got := digestOf(t, dir, opts, nil); got.Digest != cold.Digest {
		t.Fatal("digest without a cache differs")
	}
}

func TestDigestSelectionMatchesCopy(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"a.txt": "A", "b.txt": "B", "c.md": "C", "d/x.log": "X", "d/y": "Y"})
	for _, tc := range []struct {
		name  string
		opts  CopyOptions
		paths []string
		err   bool
	}{
		{"wildcard", CopyOptions{Sources: []string{"*.txt"}}, []string{"a.txt", "b.txt"}, false},
		{"empty wildcard", CopyOptions{Sources: []string{"*.none"}}, nil, false},
		{"exclude", CopyOptions{Sources: []string{"d"}, Excludes: []string{"*.log"}}, []string{"d", "d/y"}, false},
		{"missing", CopyOptions{Sources: []string{"nope"}}, nil, true},
		{"outside", CopyOptions{Sources: []string{"../x"}}, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.Dest = "/x/"
			s, err := Digest(context.Background(), Source{Root: dir, Context: openCtx(t, dir)}, tc.opts, nil)
			if tc.err {
				if err == nil {
					t.Fatal("no error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, f := range s.Files {
				got = append(got, f.Path)
			}
			if len(got) != len(tc.paths) {
				t.Fatalf("paths %q, want %q", got, tc.paths)
			}
			for i := range got {
				if got[i] != tc.paths[i] {
					t.Fatalf("paths %q, want %q", got, tc.paths)
				}
			}
		})
	}
}
