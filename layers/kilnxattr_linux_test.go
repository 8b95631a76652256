package layers

import (
	"archive/tar"
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/xattr"
)

// Rootless kiln's records (xattr.OwnerName, xattr.DeviceName) become the layer's
// owner and device entries, never xattrs of the layer; other xattrs stay.
func TestKilnXattrsBecomeHeaders(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "f"), "data", 0o644)
	writeFile(t, filepath.Join(dir, "console"), "", 0o600)
	must(t, unix.Lsetxattr(filepath.Join(dir, "f"), xattr.OwnerName, []byte("1000:1001"), 0))
	must(t, unix.Lsetxattr(filepath.Join(dir, "f"), "user.other", []byte("v"), 0))
	must(t, unix.Lsetxattr(filepath.Join(dir, "console"), xattr.DeviceName, []byte("c 5 1"), 0))
	_, _, blob := writeUpper(t, dir, WriteOptions{Compression: Uncompressed})
	got := map[string]*tar.Header{}
	for _, e := range readTar(t, blob) {
		got[e.hdr.Name] = e.hdr
		for k := range e.hdr.PAXRecords {
			if strings.Contains(k, "user.kiln.") {
				t.Errorf("%s carries %s into the layer", e.hdr.Name, k)
			}
		}
	}
	if h := got["f"]; h == nil || h.Uid != 1000 || h.Gid != 1001 || h.PAXRecords["SCHILY.xattr.user.other"] != "v" {
		t.Errorf("f = %+v, want 1000:1001 with user.other", h)
	}
	if h := got["console"]; h == nil || h.Typeflag != tar.TypeChar || h.Devmajor != 5 || h.Devminor != 1 || h.Mode != 0o600 {
		t.Errorf("console = %+v, want the char device 5:1, mode 0600", h)
	}
}

// An archive cannot forge rootless kiln's records: user.kiln.* records are dropped
// on unpack.
func TestUnpackDropsKilnXattrs(t *testing.T) {
	h := hdrReg("f")
	h.PAXRecords = map[string]string{"SCHILY.xattr." + xattr.OwnerName: "0:0", "SCHILY.xattr.user.other": "v"}
	blob := buildTar(t, hdrs(h), map[string]string{"f": "x"})
	dest := t.TempDir()
	must(t, Unpack(context.Background(), bytes.NewReader(blob), dest, UnpackOptions{KeepOwners: true}))
	if _, ok, err := xattr.Get(filepath.Join(dest, "f"), xattr.OwnerName); err != nil || ok {
		t.Errorf("unpack set %s from the archive (err %v)", xattr.OwnerName, err)
	}
	if v, ok, _ := xattr.Get(filepath.Join(dest, "f"), "user.other"); !ok || string(v) != "v" {
		t.Errorf("user.other = %q, %v", v, ok)
	}
}
