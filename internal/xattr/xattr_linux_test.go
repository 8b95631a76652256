package xattr

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

func TestListAndGet(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "f")
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := unix.Lsetxattr(f, "user.b", []byte("2"), 0); err != nil {
		t.Skipf("filesystem without user xattrs: %v", err)
	}
	if err := unix.Lsetxattr(f, "user.a", []byte("1"), 0); err != nil {
		t.Fatal(err)
	}
	names, err := List(f)
	if err != nil || !slices.Equal(names, []string{"user.a", "user.b"}) {
		t.Fatalf("List = %q, %v; want sorted user.a, user.b", names, err)
	}
	if v, ok, err := Get(f, "user.b"); err != nil || !ok || string(v) != "2" {
		t.Errorf("Get user.b = %q, %v, %v", v, ok, err)
	}
	if v, ok, err := Get(f, "user.missing"); err != nil || ok || v != nil {
		t.Errorf("Get of a missing xattr = %q, %v, %v; want not ok, no error", v, ok, err)
	}
	// A final symlink is not followed: the link itself has no xattrs.
	link := filepath.Join(dir, "l")
	if err := os.Symlink(f, link); err != nil {
		t.Fatal(err)
	}
	if names, err := List(link); err != nil || len(names) != 0 {
		t.Errorf("List through a symlink = %q, %v; want none", names, err)
	}
}
