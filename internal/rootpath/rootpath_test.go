package rootpath

import (
	"os"
	"path/filepath"
	"strings"
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
