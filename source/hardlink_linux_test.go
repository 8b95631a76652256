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

// Hard links among the files of one source stay hard links in the copy, as with
// BuildKit's copier; two sources are two copies there, so links across them are not
// kept. The content digest tells a link from a copy.
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
	if inode(t, filepath.Join(root, "glob/x")) != inode(t, filepath.Join(root, "glob/y")) {
		t.Error("glob/x and glob/y (one wildcard source) are not one inode")
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
