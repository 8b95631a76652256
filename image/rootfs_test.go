package image

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/kiln-build/kiln/cache"
	"github.com/kiln-build/kiln/internal/testenv"
	"github.com/kiln-build/kiln/layers"
	"github.com/kiln-build/kiln/snapshot"
)

// fakeTrees is a TreeStore on a testStore: step layers and tree records in maps.
type fakeTrees struct {
	*testStore
	steps   map[string]cache.Layer
	records map[string]v1.Hash
	temps   int // TempDir calls: a record found from the layer
}

func (f *fakeTrees) StepLayers(context.Context) (map[string]cache.Layer, error) { return f.steps, nil }
func (f *fakeTrees) TreeDiffID(_ context.Context, id string) (v1.Hash, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	h, ok := f.records[id]
	return h, ok
}
func (f *fakeTrees) PutTreeDiffID(_ context.Context, id string, h v1.Hash) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.records[id] = h
	return nil
}
func (f *fakeTrees) TempDir(pattern string) (string, error) {
	f.mu.Lock()
	f.temps++
	f.mu.Unlock()
	return os.MkdirTemp(f.dir, pattern)
}

// fakeSnaps keeps each snapshot's tree in a dir and computes TreeDiffID for real.
type fakeSnaps struct {
	dir     string
	mu      sync.Mutex
	ingests int
}

func (s *fakeSnaps) path(id string) string { return filepath.Join(s.dir, id) }
func (s *fakeSnaps) View(_ context.Context, ids []string) (string, func() error, error) {
	return s.path(ids[len(ids)-1]), func() error { return nil }, nil
}
func (s *fakeSnaps) TreeDiffID(ctx context.Context, id string) (v1.Hash, error) {
	b, _, err := layers.WriteUpperDiff(ctx, s.path(id), io.Discard, layers.WriteOptions{Compression: layers.Uncompressed})
	return b.DiffID, err
}
func (s *fakeSnaps) Remove(_ context.Context, id string) error { return os.RemoveAll(s.path(id)) }
func (s *fakeSnaps) Ingest(_ context.Context, id string, fill func(string) error) error {
	s.mu.Lock()
	s.ingests++
	s.mu.Unlock()
	tmp, err := os.MkdirTemp(s.dir, "ingest-")
	if err != nil {
		return err
	}
	if err := fill(tmp); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	return os.Rename(tmp, s.path(id))
}

// SnapshotRootfs checks a step snapshot against its step's layer and a base snapshot
// against a record found once from its layer, rebuilds a damaged one with a warning,
// and fails with a CorruptBlobError when the layer it would rebuild from is damaged.
func TestSnapshotRootfsVerify(t *testing.T) {
	testenv.RequireRoot(t) // unpacking keeps owners
	ctx := context.Background()
	ts := newTestStore(t)
	base := newStoreLayer(t, ts, "etc/passwd", "root:x:0:0::/root:/bin/sh\n", types.DockerLayer)
	step := newStoreLayer(t, ts, "one.txt", "one\n", types.OCILayer)
	sd, _ := step.Digest()
	sdiff, _ := step.DiffID()
	trees := &fakeTrees{testStore: ts, records: map[string]v1.Hash{}, steps: map[string]cache.Layer{
		"s-1": {Digest: sd.String(), DiffID: sdiff.String(), Size: 0, MediaType: string(types.OCILayer), Snapshot: "s-1"},
	}}
	snaps := &fakeSnaps{dir: t.TempDir()}
	for id, l := range map[string]v1.Layer{"l-base": base, "s-1": step} {
		if err := snaps.Ingest(ctx, id, func(dir string) error { return snapshot.UnpackLayer(ctx, l, dir) }); err != nil {
			t.Fatal(err)
		}
	}
	cfg, _ := empty.Image.ConfigFile()
	bdiff, _ := base.DiffID()
	cfg.RootFS.DiffIDs = []v1.Hash{bdiff, sdiff}
	img, err := Assemble(cfg, []v1.Layer{base, step})
	if err != nil {
		t.Fatal(err)
	}
	var warned []string
	var mu sync.Mutex
	r := SnapshotRootfs{Image: img, Snapshots: []string{"l-base", "s-1"}, Snaps: snaps, Store: trees,
		Warn: func(m string) { mu.Lock(); warned = append(warned, m); mu.Unlock() }}
	snaps.ingests = 0

	// Sound: no warning, the base's record found once.
	for range 2 {
		if err := r.Verify(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if len(warned) != 0 || trees.temps != 1 || snaps.ingests != 0 {
		t.Fatalf("sound snapshots: warnings %q, %d records found, %d rebuilt", warned, trees.temps, snaps.ingests)
	}

	// A changed file in either snapshot is found and rebuilt from its layer.
	for id, rel := range map[string]string{"s-1": "one.txt", "l-base": "etc/passwd"} {
		warned = nil
		if err := os.WriteFile(filepath.Join(snaps.path(id), rel), []byte("XXXX\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := r.Verify(ctx); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		if len(warned) != 1 || !strings.Contains(warned[0], id) || !strings.Contains(warned[0], "was damaged") {
			t.Errorf("%s: warnings %q", id, warned)
		}
		if b, _ := os.ReadFile(filepath.Join(snaps.path(id), rel)); string(b) == "XXXX\n" {
			t.Errorf("%s was not rebuilt", id)
		}
	}

	// A damaged snapshot whose layer blob is damaged too: the blob is the error.
	if err := os.WriteFile(filepath.Join(snaps.path("s-1"), "one.txt"), []byte("XXXX\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(ts.BlobPath(sd))
	b[len(b)/2] ^= 0xff
	os.WriteFile(ts.BlobPath(sd), b, 0o644)
	err = r.Verify(ctx)
	if c, ok := AsCorruptBlob(err); !ok || c.Digest != sd {
		t.Fatalf("rebuild from a damaged blob: %v, want a CorruptBlobError for %s", err, sd)
	}
}
