package remote

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/errgroup"

	"github.com/kiln-build/kiln/cache"
	"github.com/kiln-build/kiln/image"
	"github.com/kiln-build/kiln/layers"
)

// Entries is where an export reads the step entries and their layers: a *Store.
type Entries interface {
	GetStep(ctx context.Context, key string) (*cache.Entry, bool, error)
	StepLayer(l *cache.Layer) (v1.Layer, bool)
}

// ExportOptions configure Export.
type ExportOptions struct {
	KeyVersion string
	Insecure   []string
	Note       func(string)
	// Client is the process's registry client (nil: each call starts afresh).
	Client *image.Client
}

// Export writes the entries of keys (in order, duplicates once) with their layers to
// the cache of spec, replacing what its ref or tag named. Blobs the target has are
// not sent; layers still in a registry cache of the same registry are mounted. A
// key without an entry (a step that had nothing to record) is left out.
func Export(ctx context.Context, spec Spec, src *Store, keys []string, o ExportOptions) error {
	if o.Note == nil {
		o.Note = func(string) {}
	}
	be, err := newBackend(ctx, spec, o.Insecure, o.Client)
	if err != nil {
		return err
	}
	start := time.Now()
	cfg := cacheConfig{Kiln: &kilnConfig{Format: formatVersion, KeyVersion: o.KeyVersion}}
	var ls []v1.Layer
	var descs []v1.Descriptor
	index := map[v1.Hash]int{}
	seen := map[string]bool{}
	for _, key := range keys {
		if seen[key] {
			continue
		}
		seen[key] = true
		e, ok, err := src.GetStep(ctx, key)
		if err != nil {
			return fmt.Errorf("cache-to %s: %w", spec, err)
		}
		if !ok {
			continue
		}
		rec := cacheRecord{Digest: recordDigest(key), Kiln: &kilnRecord{
			Key: key, Config: json.RawMessage(e.Config), History: e.History, Created: e.Created,
		}}
		if len(e.Config) == 0 {
			rec.Kiln.Config = nil
		}
		if e.Layer != nil {
			l, ok := src.StepLayer(e.Layer)
			if !ok {
				continue // its blob is gone: a later build makes the step again
			}
			el := e.Layer
			codec := layers.CompressionOf(el.MediaType)
			// Only a step's own layer: an output transform's codec is part of its
			// key (the image it is reused for has that codec).
			if spec.Compression != "" && codec != spec.Compression && e.Layer.Snapshot != "" {
				if l, el, err = src.recompressed(ctx, l, e.Layer, spec.Compression, spec.CompressionLevel); err != nil {
					return fmt.Errorf("cache-to %s: %w", spec, err)
				}
				codec = spec.Compression
			}
			mt := cacheLayerType(codec, spec.OCIMediaTypes)
			d, err := l.Digest()
			if err != nil {
				return err
			}
			i, ok := index[d]
			if !ok {
				i = len(ls)
				index[d] = i
				ls = append(ls, l)
				cfg.Layers = append(cfg.Layers, cacheLayer{Blob: d.String(), Parent: -1})
				descs = append(descs, v1.Descriptor{
					MediaType: mt, Digest: d, Size: el.Size,
					Annotations: map[string]string{
						annotationDiffID:  el.DiffID,
						annotationCreated: e.Created.UTC().Format(time.RFC3339Nano),
					},
				})
			}
			rec.Results = []cacheResult{{LayerIndex: i, CreatedAt: e.Created}}
			rec.Kiln.MediaType, rec.Kiln.Size, rec.Kiln.DiffID = mt, el.Size, el.DiffID
			rec.Kiln.Snapshot = e.Layer.Snapshot != ""
		}
		cfg.Records = append(cfg.Records, rec)
	}

	if spec.CacheMounts {
		add := func(l v1.Layer, d v1.Descriptor) int {
			if i, ok := index[d.Digest]; ok {
				return i
			}
			index[d.Digest] = len(ls)
			ls = append(ls, l)
			cfg.Layers = append(cfg.Layers, cacheLayer{Blob: d.Digest.String(), Parent: -1})
			descs = append(descs, d)
			return len(ls) - 1
		}
		if cfg.Kiln.Mounts, err = src.exportMounts(ctx, add); err != nil {
			return fmt.Errorf("cache-to %s: %w", spec, err)
		}
	}
	cfg.Kiln.Memos = src.exportMemos()
	sent, sentBytes, err := uploadLayers(ctx, be, ls)
	if err != nil {
		return fmt.Errorf("cache-to %s: %w", spec, err)
	}
	raw, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	cd, csize, err := v1.SHA256(bytesReader(raw))
	if err != nil {
		return err
	}
	if err := be.putBlob(ctx, cd, raw); err != nil {
		return fmt.Errorf("cache-to %s: %w", spec, err)
	}
	cfgDesc := v1.Descriptor{MediaType: ConfigMediaType, Digest: cd, Size: csize}
	root, mt, err := rootManifest(spec.ImageManifest, spec.OCIMediaTypes, cfgDesc, descs)
	if err != nil {
		return err
	}
	if err := be.putManifest(ctx, root, mt); err != nil {
		return fmt.Errorf("cache-to %s: %w", spec, err)
	}
	o.Note(fmt.Sprintf("cache-to %s: %d records, %d cache mounts, %d layers (%d sent, %d bytes; the rest were there), mode=%s, in %.1fs",
		spec, len(cfg.Records), len(cfg.Kiln.Mounts), len(ls), sent, sentBytes, spec.Mode, time.Since(start).Seconds()))
	return nil
}

// uploadJobs bounds the blob checks and uploads of one export that run at once.
const uploadJobs = 8

// uploadLayers stores the layers be does not have yet, each checked and sent in
// parallel; it returns how many were sent and their bytes.
func uploadLayers(ctx context.Context, be backend, ls []v1.Layer) (int64, int64, error) {
	var sent, sentBytes atomic.Int64
	eg, egctx := errgroup.WithContext(ctx)
	eg.SetLimit(uploadJobs)
	for _, l := range ls {
		eg.Go(func() error {
			d, err := l.Digest()
			if err != nil {
				return err
			}
			if be.hasBlob(egctx, d) {
				return nil
			}
			if err := be.putLayer(egctx, l, d); err != nil {
				return err
			}
			size, _ := l.Size()
			sent.Add(1)
			sentBytes.Add(size)
			return nil
		})
	}
	err := eg.Wait()
	return sent.Load(), sentBytes.Load(), err
}

// rootManifest is BuildKit's cache root: an image manifest whose config is the cache
// config (image-manifest=true, for registries that refuse an index of blobs), or an
// index listing the layers and the config: OCI's, or with oci-mediatypes=false a
// Docker manifest list, as BuildKit writes it.
func rootManifest(imageManifest, oci bool, cfg v1.Descriptor, layers []v1.Descriptor) ([]byte, types.MediaType, error) {
	if layers == nil {
		layers = []v1.Descriptor{}
	}
	if imageManifest {
		m := v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1, Config: cfg, Layers: layers}
		raw, err := json.Marshal(m)
		return raw, types.OCIManifestSchema1, err
	}
	mt := types.OCIImageIndex
	if !oci {
		mt = types.DockerManifestList
	}
	idx := v1.IndexManifest{SchemaVersion: 2, MediaType: mt, Manifests: append(append([]v1.Descriptor{}, layers...), cfg)}
	raw, err := json.Marshal(idx)
	return raw, mt, err
}

// Refs are the --cache-to specs' names, for messages.
func Refs(specs []Spec) string {
	names := make([]string, len(specs))
	for i, s := range specs {
		names[i] = s.String()
	}
	return strings.Join(names, ", ")
}
