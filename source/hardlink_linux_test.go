package source

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func inode(t *testing.T, p string) uint64 {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

// Hard links among the files of one source's tree stay hard links in the copy, as
// with BuildKit's copier; two sources, or two matches of a wildcard, are two copies
// there (BuildKit v0.32.2: "COPY [xy] /glob/" of two links gives two files), so links
// across them are not kept. The content digest tells a link from a copy.
func TestCopyKeepsHardLinks(t *testing.T) {
	ctxDir := t.TempDir()
	writeTree(t, ctxDir, map[string]string{"d/a": "A", "d/sub/": "", "x": "X", "other": "O"})
	for _, l := range [][2]string{{"d/a", "d/sub/b"}, {"x", "y"}} {
		if err := os.Link(filepath.Join(ctxDir, l[0]), filepath.Join(ctxDir, l[1])); err != nil {
			t.Fatal(err)
		}
	}
	src := Source{Root: ctxDir, Context: openCtx(t, ctxDir)}
	root := t.TempDir()
	for _, opts := range []CopyOptions{
		{Sources: []string{"d"}, Dest: "/dir/"},
		{Sources: []string{"[xy]"}, Dest: "/glob/"},
		{Sources: []string{"x", "y"}, Dest: "/two/"},
	} {
		if err := Copy(context.Background(), src, root, opts); err != nil {
			t.Fatal(err)
		}
	}
	if inode(t, filepath.Join(root, "dir/a")) != inode(t, filepath.Join(root, "dir/sub/b")) {
		t.Error("dir/a and dir/sub/b are not one inode")
	}
	if inode(t, filepath.Join(root, "glob/x")) == inode(t, filepath.Join(root, "glob/y")) {
		t.Error("glob/x and glob/y (two matches of one wildcard) were linked")
	}
	if inode(t, filepath.Join(root, "two/x")) == inode(t, filepath.Join(root, "two/y")) {
		t.Error("two/x and two/y (two sources) were linked")
	}
	if inode(t, filepath.Join(root, "dir/a")) == inode(t, filepath.Join(ctxDir, "d/a")) {
		t.Error("the copy is linked to the context")
	}

	linked, err := Digest(context.Background(), src, CopyOptions{Sources: []string{"d"}, Dest: "/"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(ctxDir, "d/sub/b")); err != nil {
		t.Fatal(err)
	}
	writeTree(t, ctxDir, map[string]string{"d/sub/b": "A"})
	copied, err := Digest(context.Background(), src, CopyOptions{Sources: []string{"d"}, Dest: "/"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if linked.Digest == copied.Digest {
		t.Error("the digest does not change when a hard link becomes a copy")
	}
}

// Two matches of one wildcard that hold links to one inode are copied on their own
// (BuildKit v0.32.2): a link is never made to a path a later match replaced, nor to
// the path being written. "COPY d* /c1/" of d1/a ("one"), d2/a ("two") and d3/b, a
// link to d1/a, gives a = "two" and b = "one"; "COPY * /c2/" of d1/a and d2/a, links
// of one inode, writes a once more over itself instead of failing.
func TestWildcardMatchesDoNotShareLinks(t *testing.T) {
	ctxDir := t.TempDir()
	writeTree(t, ctxDir, map[string]string{"d1/a": "one", "d2/a": "two", "e1/a": "e"})
	for _, l := range [][2]string{{"d1/a", "d3/b"}, {"e1/a", "e2/a"}} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(ctxDir, l[1])), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Link(filepath.Join(ctxDir, l[0]), filepath.Join(ctxDir, l[1])); err != nil {
			t.Fatal(err)
		}
	}
	src := Source{Root: ctxDir, Context: openCtx(t, ctxDir)}
	root := t.TempDir()
	for _, opts := range []CopyOptions{{Sources: []string{"d*"}, Dest: "/c1/"}, {Sources: []string{"e*"}, Dest: "/c2/"}} {
		if err := Copy(context.Background(), src, root, opts); err != nil {
			t.Fatalf("COPY %v: %v", opts.Sources, err)
		}
	}
	for p, want := range map[string]string{"c1/a": "two", "c1/b": "one", "c2/a": "e"} {
		if b, err := os.ReadFile(filepath.Join(root, p)); err != nil || string(b) != want {
			t.Errorf("%s = %q, %v; want %q", p, b, err, want)
		}
	}
}
