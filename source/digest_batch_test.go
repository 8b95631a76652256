package source

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
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
