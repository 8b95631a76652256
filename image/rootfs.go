package image

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/errgroup"

	"github.com/kiln-build/kiln/cache"
	"github.com/kiln-build/kiln/layers"
	"github.com/kiln-build/kiln/snapshot"
)

// Snapshots is the part of the snapshotter that SnapshotRootfs needs; package
// snapshot's Snapshotter implements it.
type Snapshots interface {
	View(ctx context.Context, parents []string) (root string, release func() error, err error)
	// TreeDiffID is the diffID of a fresh layer tar of snapshot id's tree.
	TreeDiffID(ctx context.Context, id string) (v1.Hash, error)
	Remove(ctx context.Context, id string) error
	Ingest(ctx context.Context, id string, fill func(dir string) error) error
}

// TreeStore is what SnapshotRootfs asks the store; *cache.Store implements it.
type TreeStore interface {
	BlobStore
	// StepLayers maps each snapshot a step committed to that step's layer.
	StepLayers(ctx context.Context) (map[string]cache.Layer, error)
	// TreeDiffID and PutTreeDiffID keep the tree diffID of snapshots no step made.
	TreeDiffID(ctx context.Context, id string) (v1.Hash, bool)
	PutTreeDiffID(ctx context.Context, id string, h v1.Hash) error
	TempDir(pattern string) (string, error)
}

// SnapshotRootfs is a built image's filesystem as its snapshots stacked, checked
// before it is handed out: a snapshot's files are only a copy of its layer, which a
// disk or a hand can change after the fact, and an output must not copy a wrong byte.
//
// Each snapshot's tree is tarred afresh (layers.WriteUpperDiff, read only) and its
// diffID compared with what the tree must make: a step's own layer (the tree of a step
// is normalised to its layer when committed), or, for a snapshot no step made (a base
// image layer another tool wrote, whose tar a fresh one need not match byte for byte),
// the diffID of a fresh tar of that layer unpacked from its verified blob, found once
// and recorded in the store. A damaged snapshot is rebuilt from its layer, with a
// warning; a damaged blob read for that is a *CorruptBlobError, which the build repairs.
type SnapshotRootfs struct {
	Image     v1.Image // its layers, lowest first, are the snapshots' layers
	Snapshots []string // the image's snapshot ids, lowest first
	Snaps     Snapshots
	Store     TreeStore
	Warn      func(msg string)
	Jobs      int // snapshots checked at once; 0 means GOMAXPROCS

	verified bool // by an earlier View: one build's outputs check the trees once
}

// View checks every snapshot (Verify), the first time, and mounts them read-only
// until release. Outputs call it one after another, never at once.
func (r *SnapshotRootfs) View(ctx context.Context) (string, func() error, error) {
	if !r.verified {
		if err := r.Verify(ctx); err != nil {
			return "", nil, err
		}
		r.verified = true
	}
	return r.Snaps.View(ctx, r.Snapshots)
}

// Verify checks every snapshot against its layer and rebuilds the damaged ones.
func (r SnapshotRootfs) Verify(ctx context.Context) error {
	ls, err := r.Image.Layers()
	if err != nil {
		return fmt.Errorf("read the image's layers: %w", err)
	}
	if len(ls) != len(r.Snapshots) {
		return fmt.Errorf("internal error: %d layers but %d snapshots", len(ls), len(r.Snapshots))
	}
	steps, err := r.Store.StepLayers(ctx)
	if err != nil {
		return err
	}
	jobs := r.Jobs
	if jobs <= 0 {
		jobs = runtime.GOMAXPROCS(0)
	}
	eg, egctx := errgroup.WithContext(ctx)
	eg.SetLimit(jobs)
	seen := map[string]bool{}
	for i, id := range r.Snapshots {
		if seen[id] {
			continue
		}
		seen[id] = true
		l, step := ls[i], false
		if sl, ok := steps[id]; ok {
			// The image's layer may be an export transform of the step's
			// (SOURCE_DATE_EPOCH): the snapshot holds the step's own.
			if l, err = r.stepLayer(sl); err != nil {
				return fmt.Errorf("snapshot %s: %w", id, err)
			}
			step = true
		}
		eg.Go(func() error { return r.verifyOne(egctx, i, id, l, step) })
	}
	return eg.Wait()
}

func (r SnapshotRootfs) stepLayer(sl cache.Layer) (v1.Layer, error) {
	d, err := v1.NewHash(sl.Digest)
	if err != nil {
		return nil, err
	}
	diffID, err := v1.NewHash(sl.DiffID)
	if err != nil {
		return nil, err
	}
	return StoreLayer(r.Store, d, diffID, sl.Size, types.MediaType(sl.MediaType)), nil
}

// verifyOne checks snapshot id, the i-th of the image, against layer l.
func (r SnapshotRootfs) verifyOne(ctx context.Context, i int, id string, l v1.Layer, step bool) error {
	want, err := r.wantTree(ctx, id, l, step)
	if err != nil {
		return err
	}
	got, err := r.Snaps.TreeDiffID(ctx, id)
	if err != nil {
		return fmt.Errorf("check snapshot %s: %w", id, err)
	}
	if got == want {
		return nil
	}
	ld, _ := l.Digest()
	if err := r.Snaps.Remove(ctx, id); err != nil {
		return fmt.Errorf("snapshot %s is damaged (its files make %s, not %s) and removing it failed: %w", id, got, want, err)
	}
	if err := r.Snaps.Ingest(ctx, id, func(dir string) error { return snapshot.UnpackLayer(ctx, l, dir) }); err != nil {
		return fmt.Errorf("snapshot %s is damaged; rebuild it from layer %s: %w", id, ld, err)
	}
	if again, err := r.Snaps.TreeDiffID(ctx, id); err != nil || again != want {
		return fmt.Errorf("snapshot %s was damaged and, rebuilt from layer %s, still makes %s, not %s (%v): check the disk, then run kiln prune --all", id, ld, again, want, err)
	}
	if r.Warn != nil {
		r.Warn(fmt.Sprintf("snapshot %s of layer %d (%s) was damaged: its files made layer %s, not %s; rebuilt it from the layer", id, i+1, ld, got, want))
	}
	return nil
}

// wantTree is the diffID snapshot id's tree must make.
func (r SnapshotRootfs) wantTree(ctx context.Context, id string, l v1.Layer, step bool) (v1.Hash, error) {
	if step {
		return l.DiffID()
	}
	if h, ok := r.Store.TreeDiffID(ctx, id); ok {
		return h, nil
	}
	dir, err := r.Store.TempDir("tree-")
	if err != nil {
		return v1.Hash{}, err
	}
	defer os.RemoveAll(dir)
	if err := snapshot.UnpackLayer(ctx, l, dir); err != nil {
		return v1.Hash{}, fmt.Errorf("snapshot %s: %w", id, err)
	}
	blob, _, err := layers.WriteUpperDiff(ctx, dir, io.Discard, layers.WriteOptions{Compression: layers.Uncompressed})
	if err != nil {
		return v1.Hash{}, fmt.Errorf("snapshot %s: tar its layer's tree: %w", id, err)
	}
	if err := r.Store.PutTreeDiffID(ctx, id, blob.DiffID); err != nil {
		return v1.Hash{}, err
	}
	return blob.DiffID, nil
}
