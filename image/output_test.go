package image

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

type dirRootfs struct {
	dir string
	err error
}

func (r dirRootfs) View(context.Context) (string, func() error, error) {
	return r.dir, func() error { return nil }, r.err
}

// A failing output leaves its destination as it was: no file, no dir, no temp beside.
func TestOutputsWriteNothingOnFailure(t *testing.T) {
	s := newTestStore(t)
	l := newStoreLayer(t, s, "hello", "hello, world\n", types.OCILayer)
	cfg, err := empty.Image.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	diffID, _ := l.DiffID()
	cfg.RootFS.DiffIDs = []v1.Hash{diffID}
	img, err := Assemble(cfg, []v1.Layer{l})
	if err != nil {
		t.Fatal(err)
	}
	// Damage the layer's blob, size kept.
	d, _ := l.Digest()
	p := s.BlobPath(d)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}

	out := t.TempDir()
	viewErr := errors.New("the tree failed its check")
	tree := t.TempDir()
	if err := os.WriteFile(filepath.Join(tree, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		output Output
		rootfs Rootfs
		dest   string
	}{
		{"oci", OCIArchive{Dest: filepath.Join(out, "oci.tar")}, nil, "oci.tar"},
		{"docker", DockerArchive{Dest: filepath.Join(out, "docker.tar")}, nil, "docker.tar"},
		{"tar", RootfsTar{Dest: filepath.Join(out, "fs.tar")}, dirRootfs{tree, viewErr}, "fs.tar"},
		{"local", LocalDir{Dir: filepath.Join(out, "dir")}, dirRootfs{tree, viewErr}, "dir"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.output.Write(context.Background(), Built{Image: img, Tags: []string{"app:v1"}, Rootfs: c.rootfs})
			if err == nil {
				t.Fatal("Write succeeded on a damaged blob or a failing view")
			}
			if c.rootfs == nil {
				if _, ok := AsCorruptBlob(err); !ok {
					t.Fatalf("error is not a CorruptBlobError: %v", err)
				}
			} else if !errors.Is(err, viewErr) {
				t.Fatalf("error does not wrap the view's: %v", err)
			}
			ents, _ := os.ReadDir(out)
			for _, e := range ents {
				t.Errorf("%s left %s in the output dir", c.name, e.Name())
			}
		})
	}

	// With a good view, local and tar outputs hold the tree.
	dir := filepath.Join(out, "good")
	if err := (LocalDir{Dir: dir}).Write(context.Background(), Built{Image: img, Rootfs: dirRootfs{dir: tree}}); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(dir, "f")); err != nil || string(got) != "x" {
		t.Fatalf("local output: %q, %v", got, err)
	}
}
