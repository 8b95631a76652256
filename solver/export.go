package solver

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/cache"
	"github.com/kiln-build/kiln/image"
	"github.com/kiln-build/kiln/layers"
)

// A step's cached layer is its tree as it is: whole-second mtimes, no clamping, in the
// codec of the build that first made it. What an output asks for beyond that
// (another codec, mtimes clamped to SOURCE_DATE_EPOCH) is an export transform: made
// from the cached layer at export, kept in the store beside it and reused by later
// builds, never part of a step's key or tree. So a rebuild with another
// compression= or SOURCE_DATE_EPOCH reuses every step, as BuildKit does, and a
// snapshot unpacked from a layer is the tree the step made.

// layerTransform is what an output wants of a step's layer.
type layerTransform struct {
	Compression layers.Compression `json:"compression"`
	Epoch       int64              `json:"epoch"` // unix seconds; 0 with NoEpoch
	NoEpoch     bool               `json:"noEpoch"`
}

// exportTransform is this build's transform.
func (b *build) exportTransform() layerTransform {
	t := layerTransform{Compression: b.opts.Compression, NoEpoch: true}
	if e := b.opts.SourceDateEpoch; e != nil {
		t.Epoch, t.NoEpoch = e.Unix(), false
	}
	return t
}

// exportLayers gives the image's step layers the form the outputs want, and the
// config's diff IDs with them. Base image layers are exported as pulled.
func (b *build) exportLayers(ctx context.Context, st *stageState, cfg *v1.ConfigFile) ([]v1.Layer, error) {
	t := b.exportTransform()
	out := make([]v1.Layer, len(st.layers))
	for i, l := range st.layers {
		out[i] = l.layer
		if !l.step {
			continue
		}
		mt, err := l.layer.MediaType()
		if err != nil {
			return nil, err
		}
		if t.NoEpoch && layers.CompressionOf(string(mt)) == t.Compression {
			continue
		}
		nl, diffID, err := b.transformLayer(ctx, l.layer, t)
		if err != nil {
			return nil, err
		}
		out[i] = nl
		cfg.RootFS.DiffIDs[i] = diffID
	}
	return out, nil
}

// transformLayer returns l in form t: from the store when it was made before and its
// blob is still there, else rewritten now. The store keeps it as an entry of its own
// ("export:" and the digest of the layer and the transform), so it lives and is
// pruned like a step, by use.
func (b *build) transformLayer(ctx context.Context, l v1.Layer, t layerTransform) (v1.Layer, v1.Hash, error) {
	diffID, err := l.DiffID()
	if err != nil {
		return nil, v1.Hash{}, err
	}
	spec, _ := json.Marshal(t)
	key := "export:" + digestOf(diffID.String(), string(spec))
	if e, ok, err := b.opts.Store.GetStep(ctx, key); err == nil && ok && e.Layer != nil {
		if nl, nd, err := b.storedLayer(e.Layer); err == nil {
			b.usedStep(b.g.Target, key)
			return nl, nd, nil
		}
	}
	rc, err := l.Uncompressed()
	if err != nil {
		return nil, v1.Hash{}, fmt.Errorf("open layer %s: %w", diffID, err)
	}
	defer rc.Close()
	bw, err := b.opts.Store.NewBlobWriter()
	if err != nil {
		return nil, v1.Hash{}, err
	}
	defer bw.Abort()
	opts := layers.WriteOptions{Compression: t.Compression}
	if !t.NoEpoch {
		e := b.opts.SourceDateEpoch.UTC()
		opts.SourceDateEpoch = &e
	}
	blob, err := layers.Rewrite(ctx, rc, bw, opts)
	if err == nil {
		_, err = io.Copy(io.Discard, rc) // to the end, where the blob's digest is checked
	}
	if err != nil {
		return nil, v1.Hash{}, fmt.Errorf("layer %s: %w", diffID, err)
	}
	if err := bw.Commit(blob.Digest, false); err != nil {
		return nil, v1.Hash{}, fmt.Errorf("store layer %s for export: %w", diffID, err)
	}
	now := time.Now()
	err = b.opts.Store.PutStep(ctx, &cache.Entry{Key: key, Created: now, Used: now, Layer: &cache.Layer{
		Digest: blob.Digest.String(), DiffID: blob.DiffID.String(), Size: blob.Size, MediaType: string(blob.MediaType),
	}})
	if err != nil {
		return nil, v1.Hash{}, fmt.Errorf("record layer %s for export: %w", diffID, err)
	}
	b.usedStep(b.g.Target, key)
	return image.StoreLayer(b.opts.Store, blob.Digest, blob.DiffID, blob.Size, blob.MediaType), blob.DiffID, nil
}

// storedLayer is a transformed layer the store recorded, if its blob is still there.
func (b *build) storedLayer(tl *cache.Layer) (v1.Layer, v1.Hash, error) {
	digest, err := v1.NewHash(tl.Digest)
	if err != nil {
		return nil, v1.Hash{}, err
	}
	diffID, err := v1.NewHash(tl.DiffID)
	if err != nil {
		return nil, v1.Hash{}, err
	}
	l, ok := b.stepLayer(tl, digest, diffID)
	if !ok {
		return nil, v1.Hash{}, fmt.Errorf("blob %s is gone", digest)
	}
	return l, diffID, nil
}
