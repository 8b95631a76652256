package solver

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/cache"
	"github.com/kiln-build/kiln/image"
	"github.com/kiln-build/kiln/layers"
)

// A step's cached layer is its tree as it is: whole-second mtimes, no clamping, in the
// codec of the build that first made it, at the codec's default level. What an output
// asks for beyond that (another codec, another level, mtimes clamped to
// SOURCE_DATE_EPOCH) is an export transform: made
// from the cached layer at export, kept in the store beside it and reused by later
// builds, never part of a step's key or tree. So a rebuild with another
// compression= or SOURCE_DATE_EPOCH reuses every step, as BuildKit does, and a
// snapshot unpacked from a layer is the tree the step made.

// layerTransform is what an output wants of a step's layer.
type layerTransform struct {
	Compression layers.Compression `json:"compression"`
	Level       int                `json:"level,omitempty"` // 0: the codec's default
	Epoch       int64              `json:"epoch"`           // unix seconds; 0 with NoEpoch
	NoEpoch     bool               `json:"noEpoch"`
}

// exportTransform is this build's transform.
func (e *Engine) exportTransform() layerTransform {
	t := layerTransform{Compression: e.opts.Compression, Level: e.opts.CompressionLevel, NoEpoch: true}
	if ep := e.opts.SourceDateEpoch; ep != nil && !e.opts.KeepFileTimes {
		t.Epoch, t.NoEpoch = ep.Unix(), false
	}
	return t
}

// exportLayers gives the image's step layers the form the outputs want, and the
// config's diff IDs with them. Base image layers are exported as pulled, unless
// ForceCompression asks every layer in the build's codec and level (their files
// untouched: only the step layers are clamped to SOURCE_DATE_EPOCH).
func (e *Engine) exportLayers(ctx context.Context, st State, cfg *v1.ConfigFile) ([]v1.Layer, error) {
	out := make([]v1.Layer, len(st.Layers))
	for i, l := range st.Layers {
		out[i] = l.Layer
		t := e.exportTransform()
		if !l.Step {
			if !e.opts.ForceCompression {
				continue
			}
			t.Epoch, t.NoEpoch = 0, true
		}
		mt, err := l.Layer.MediaType()
		if err != nil {
			return nil, err
		}
		if t.NoEpoch && layers.CompressionOf(string(mt)) == t.Compression && t.Level == 0 && !e.opts.ForceCompression {
			continue
		}
		nl, diffID, err := e.transformLayer(ctx, l.Layer, t)
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
func (e *Engine) transformLayer(ctx context.Context, l v1.Layer, t layerTransform) (v1.Layer, v1.Hash, error) {
	diffID, err := l.DiffID()
	if err != nil {
		return nil, v1.Hash{}, err
	}
	spec, _ := json.Marshal(t)
	key := "export:" + digestOf(diffID.String(), string(spec))
	if ent, ok, err := e.opts.Store.GetStep(ctx, key); err == nil && ok && ent.Layer != nil {
		if nl, nd, err := e.storedLayer(ent.Layer); err == nil {
			e.usedStep(OutputGroup, key)
			return nl, nd, nil
		}
	}
	rc, err := l.Uncompressed()
	if err != nil {
		return nil, v1.Hash{}, fmt.Errorf("open layer %s: %w", diffID, err)
	}
	defer rc.Close()
	bw, err := e.opts.Store.NewBlobWriter()
	if err != nil {
		return nil, v1.Hash{}, err
	}
	defer bw.Abort()
	opts := layers.WriteOptions{Compression: t.Compression, Level: t.Level}
	members, _ := e.opts.Store.(MemberStore)
	if members != nil {
		opts.Members = members
	}
	if !t.NoEpoch {
		ep := e.opts.SourceDateEpoch.UTC()
		opts.SourceDateEpoch = &ep
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
	if members != nil {
		// Advice for later layers only; the layer is made either way.
		_ = members.PutMembers(ctx, blob.Digest, blob.Members)
	}
	now := time.Now()
	err = e.opts.Store.PutStep(ctx, &cache.Entry{Key: key, Created: now, Used: now, Layer: &cache.Layer{
		Digest: blob.Digest.String(), DiffID: blob.DiffID.String(), Size: blob.Size, MediaType: string(blob.MediaType),
	}})
	if err != nil {
		return nil, v1.Hash{}, fmt.Errorf("record layer %s for export: %w", diffID, err)
	}
	e.usedStep(OutputGroup, key)
	return image.StoreLayer(e.opts.Store, blob.Digest, blob.DiffID, blob.Size, blob.MediaType), blob.DiffID, nil
}

// storedLayer is a transformed layer the store recorded, if its blob is still there.
func (e *Engine) storedLayer(tl *cache.Layer) (v1.Layer, v1.Hash, error) {
	digest, err := v1.NewHash(tl.Digest)
	if err != nil {
		return nil, v1.Hash{}, err
	}
	diffID, err := v1.NewHash(tl.DiffID)
	if err != nil {
		return nil, v1.Hash{}, err
	}
	l, ok := e.stepLayer(tl, digest, diffID)
	if !ok {
		return nil, v1.Hash{}, fmt.Errorf("blob %s is gone", digest)
	}
	return l, diffID, nil
}

// Export assembles the image of st with config cfg (whose diff IDs are st's layers
// as the steps made them) and the config members cfg cannot hold (extras): step
// layers get the build's export transform, and with needRootfs every layer is given
// its snapshot, for outputs that read the files (Result.Snapshots).
func (e *Engine) Export(ctx context.Context, st State, cfg *v1.ConfigFile, extras image.ConfigExtras, needRootfs bool) (*Result, error) {
	if len(st.Layers) != len(cfg.RootFS.DiffIDs) {
		return nil, fmt.Errorf("internal error: %d layers but %d diff_ids", len(st.Layers), len(cfg.RootFS.DiffIDs))
	}
	stepDiffIDs := slices.Clone(cfg.RootFS.DiffIDs)
	ls, err := e.exportLayers(ctx, st, cfg)
	if err != nil {
		return nil, fmt.Errorf("export layers: %w", err)
	}
	img, err := image.AssembleWith(cfg, ls, image.AssembleOptions{Extras: extras})
	if err != nil {
		return nil, fmt.Errorf("assemble image: %w", err)
	}
	if needRootfs {
		if err := e.materialize(ctx, st.Layers); err != nil {
			return nil, fmt.Errorf("unpack the image's filesystem: %w", err)
		}
	}
	e.mu.Lock()
	steps := slices.Clone(e.steps)
	e.mu.Unlock()
	return &Result{Image: img, Config: cfg, ConfigExtras: extras, Snapshots: st.Snapshots(), Steps: steps, StepDiffIDs: stepDiffIDs}, nil
}

// Result is a built image.
type Result struct {
	Image  v1.Image
	Config *v1.ConfigFile
	// ConfigExtras are the members of the image's config that Config cannot hold.
	ConfigExtras image.ConfigExtras
	// Snapshots are the committed snapshot ids of the final rootfs, lowest first, for
	// outputs that need the flattened filesystem (snapshot.View).
	Snapshots []string
	// Steps are the step entries the build used, in the order they were resolved:
	// what a remote cache export records.
	Steps []UsedStep
	// StepDiffIDs are the diff IDs of the image's layers as the steps made them,
	// before the export transform (Config has them after): what an inline cache
	// matches step entries with.
	StepDiffIDs []v1.Hash
}
