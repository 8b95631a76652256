package source

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// The digest is taken a batch of walked paths at a time; batch boundaries that
// fall anywhere (inside an ignored directory kept for an exception, between a hard
// link's two paths, across selections) must not change it, nor the per-path list.
func TestDigestSameForEveryBatchSize(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		".dockerignore": "drop\nhalf/*.tmp\n!drop/keep\nnothing\n!nothing/never\nnest\n!nest/a/b/keep\n",
		"a.txt":         "A", "b/c.txt": "C", "b/d/e.txt": "E", "b/link": "->c.txt",
		"drop/x": "X", "drop/keep": "K", "drop/sub/y": "Y",
		"nothing/z": "Z", "half/one.tmp": "1", "half/two.txt": "2", "nest/a/b/other": "O",
	}
	for i := range 40 {
		files[fmt.Sprintf("many/f%02d", i)] = fmt.Sprint(i)
	}
	writeTree(t, dir, files)
	// Hard links whose first and second paths land in different batches.
	for _, l := range [][2]string{{"a.txt", "many/zz-link"}, {"b/d/e.txt", "half/e-link"}} {
		if err := os.Link(filepath.Join(dir, l[0]), filepath.Join(dir, l[1])); err != nil {
			t.Fatal(err)
		}
	}
	src := Source{Root: dir, Context: openCtx(t, dir)}
	for _, opts := range []CopyOptions{
		{Sources: []string{"."}, Dest: "/"},
		{Sources: []string{"b", "many", "half", "a.txt"}, Dest: "/x/"},
		{Sources: []string{"."}, Dest: "/", Excludes: []string{"many/f1*"}},
		{Sources: []string{"b/./d", "many/f0*"}, Dest: "/p/", Parents: true},
	} {
		want, err := digest(context.Background(), src, opts, nil, 1<<30)
		if err != nil {
			t.Fatal(err)
		}
		if len(want.Files) < 5 {
			t.Fatalf("%v: only %d paths digested", opts, len(want.Files))
		}
		for _, batch := range []int{1, 2, 3, 7, 64} {
			hc := &countingCache{m: map[string]string{}}
			for pass := range 2 { // cold, then from the hash cache
				got, err := digest(context.Background(), src, opts, hc, batch)
				if err != nil {
					t.Fatal(err)
				}
				if got.Digest != want.Digest || !slices.Equal(got.Files, want.Files) {
					t.Fatalf("%v, batch %d, pass %d: digest %s with %d paths, unbatched %s with %d paths",
						opts, batch, pass, got.Digest, len(got.Files), want.Digest, len(want.Files))
				}
			}
		}
	}
	// The exception in an ignored directory is kept, the ignored directory with
	// no exception that exists is dropped whole.
	all, err := Digest(context.Background(), src, CopyOptions{Sources: []string{"."}, Dest: "/"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, f := range all.Files {
		paths = append(paths, f.Path)
	}
	for _, p := range []string{"drop", "drop/keep", "half/two.txt", "many/zz-link"} {
		if !slices.Contains(paths, p) {
			t.Errorf("%s not digested: %q", p, paths)
		}
	}
	for _, p := range []string{"drop/x", "drop/sub", "nothing", "nothing/z", "half/one.tmp", "nest", "nest/a"} {
		if slices.Contains(paths, p) {
			t.Errorf("%s digested, but it is ignored: %q", p, paths)
		}
	}
}

// Copy takes the walk a batch at a time too: a tree of more than one batch is copied
// whole, and every directory still gets its source's times once all its children
// are in (a batch boundary in the middle of a directory must not set them early).
func TestCopyAcrossWalkBatches(t *testing.T) {
	dir, root := t.TempDir(), t.TempDir()
	files := map[string]string{}
	for i := range walkBatch + 500 {
		files[fmt.Sprintf("src/d%d/f%05d", i%3, i)] = fmt.Sprint(i)
	}
	writeTree(t, dir, files)
	old := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	for _, d := range []string{"src/d0", "src/d1", "src/d2", "src"} {
		if err := os.Chtimes(filepath.Join(dir, d), old, old); err != nil {
			t.Fatal(err)
		}
	}
	err := Copy(context.Background(), Source{Root: dir, Context: openCtx(t, dir)}, root, CopyOptions{Sources: []string{"src"}, Dest: "/app/"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"app/": ""}
	for p, v := range files {
		want["app/"+strings.TrimPrefix(p, "src/")] = v
	}
	for _, d := range []string{"d0", "d1", "d2"} {
		want["app/"+d+"/"] = ""
		fi, err := os.Lstat(filepath.Join(root, "app", d))
		if err != nil {
			t.Fatal(err)
		}
		if !fi.ModTime().Equal(old) {
			t.Errorf("app/%s mtime %v, want the source's %v", d, fi.ModTime(), old)
		}
	}
	sameTree(t, readTree(t, root), want)
}
