package layers

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A parent the archive does not name gets the zero time, so two unpacks of one
// layer at different times give the same tree; a later entry naming it wins.
func TestUnpackImpliedParentsHaveZeroTime(t *testing.T) {
	named := time.Unix(1_600_000_000, 0)
	data := buildTar(t, []*tar.Header{
		{Name: "a/b/c.txt", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1, ModTime: named},
		{Name: "a/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: named},
	}, map[string]string{"a/b/c.txt": "c"})
	dir := t.TempDir()
	if err := Unpack(context.Background(), bytes.NewReader(data), dir, UnpackOptions{}); err != nil {
		t.Fatal(err)
	}
	for rel, want := range map[string]time.Time{"a": named, "a/b": time.Unix(0, 0), "a/b/c.txt": named} {
		fi, err := os.Lstat(filepath.Join(dir, rel))
		if err != nil {
			t.Fatal(err)
		}
		if !fi.ModTime().Equal(want) {
			t.Errorf("%s: mtime %v, want %v", rel, fi.ModTime(), want)
		}
	}
}
