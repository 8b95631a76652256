package layers

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// A hard link entry's header applies to the inode it shares with its target, as
// containerd's and moby's unpackers apply it (BuildKit's ADD gives both names the
// link's mode and owner); a link to a symlink changes nothing through it.
func TestUnpackHardLinkHeaderAppliesToTheInode(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root to set owners")
	}
	when := time.Unix(1_600_000_000, 0)
	outside := filepath.Join(t.TempDir(), "outside")
	if err := os.WriteFile(outside, []byte("o"), 0o600); err != nil {
		t.Fatal(err)
	}
	data := buildTar(t, []*tar.Header{
		{Name: "orig", Typeflag: tar.TypeReg, Mode: 0o600, Uid: 5, Gid: 6, ModTime: when},
		{Name: "alias", Typeflag: tar.TypeLink, Linkname: "orig", Mode: 0o644, Uid: 0, Gid: 0, ModTime: when},
		{Name: "l", Typeflag: tar.TypeSymlink, Linkname: outside, Mode: 0o777, ModTime: when},
		{Name: "l2", Typeflag: tar.TypeLink, Linkname: "l", Mode: 0o666, Uid: 7, Gid: 7, ModTime: when},
	}, map[string]string{"orig": "O"})
	dir := t.TempDir()
	if err := Unpack(context.Background(), bytes.NewReader(data), dir, UnpackOptions{KeepOwners: true, Whiteouts: NoWhiteouts}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"orig", "alias"} {
		fi, err := os.Lstat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode().Perm() != 0o644 || st.Uid != 0 || st.Gid != 0 || st.Nlink != 2 {
			t.Errorf("%s: %v %d:%d links %d, want -rw-r--r-- 0:0 links 2", name, fi.Mode(), st.Uid, st.Gid, st.Nlink)
		}
	}
	fi, err := os.Stat(outside)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("the file a linked symlink points to outside dest was changed: %v", fi.Mode())
	}
}
