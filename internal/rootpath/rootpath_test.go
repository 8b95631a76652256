package rootpath

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestResolveStaysInside(t *testing.T) {
	root := t.TempDir()
	for _, l := range []struct{ name, target string }{
		{"abs", "/"},
		{"up", "../../.."},
		{"hostetc", "/etc"},
	} {
		if err := os.Symlink(l.target, filepath.Join(root, l.name)); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct{ in, want string }{
		{"a/b", "a/b"},
		{"../../etc/passwd", "etc/passwd"},
		{"/abs/x", "x"},
		{"up/x", "x"},
		{"hostetc/passwd", "etc/passwd"},
	}
	for _, tt := range tests {
		got, err := Resolve(root, tt.in)
		if err != nil {
			t.Fatalf("Resolve(%q): %v", tt.in, err)
		}
		if want := filepath.Join(root, tt.want); got != want {
			t.Errorf("Resolve(%q) = %q, want %q", tt.in, got, want)
		}
	}
}

func TestMkdirAllThroughSymlinks(t *testing.T) {
	parent := t.TempDir()
	root := filepath.Join(parent, "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/", filepath.Join(root, "abs")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../..", filepath.Join(root, "up")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/made4/deeper", filepath.Join(root, "dangling")); err != nil {
		t.Fatal(err)
	}
	for _, in := range []string{"abs/made1/x", "up/made2/y", "../made3", "dangling/z"} {
		got, err := MkdirAll(root, in, 0o755)
		if err != nil {
			t.Fatalf("MkdirAll(%q): %v", in, err)
		}
		if in == "dangling/z" && got != filepath.Join(root, "made4/deeper/z") {
			t.Errorf("MkdirAll(%q) = %q, want it through the dangling link", in, got)
		}
		if !strings.HasPrefix(got, root+"/") {
			t.Errorf("MkdirAll(%q) = %q, outside %s", in, got, root)
		}
		if fi, err := os.Stat(got); err != nil || !fi.IsDir() {
			t.Errorf("MkdirAll(%q): %q not a dir (%v)", in, got, err)
		}
	}
	for _, name := range []string{"made1", "made2", "made3", "made4"} {
		if _, err := os.Lstat(filepath.Join(parent, name)); err == nil {
			t.Errorf("%s created outside root", name)
		}
	}
}

func TestMkdirAllModeIgnoresUmask(t *testing.T) {
	root := t.TempDir()
	before, err := os.Stat(root)
	if err != nil {
		t.Fatal(err)
	}
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	if err := os.Symlink("/made/by/link", filepath.Join(root, "l")); err != nil {
		t.Fatal(err)
	}
	for _, in := range []string{"a/b/c", "l/d"} {
		if _, err := MkdirAll(root, in, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{"a", "a/b", "a/b/c", "made", "made/by", "made/by/link", "made/by/link/d"} {
		fi, err := os.Stat(filepath.Join(root, p))
		if err != nil {
			t.Errorf("%s: %v", p, err)
		} else if fi.Mode().Perm() != 0o755 {
			t.Errorf("%s mode %v, want 0755 under umask 077", p, fi.Mode())
		}
	}
	if fi, _ := os.Stat(root); fi.Mode() != before.Mode() {
		t.Errorf("root's mode changed to %v", fi.Mode())
	}
}
