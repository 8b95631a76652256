package remote

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// maxConfigSize bounds the cache config read from an untrusted remote: a cache of
// thousands of steps is a few MiB.
const maxConfigSize = 64 << 20

// source is one --cache-from, its records read.
type source struct {
	spec    Spec
	be      backend
	records map[string]*record        // by kiln key
	layers  map[v1.Hash]v1.Descriptor // the manifest's layers, by digest
	mounts  map[string]mountRecord    // cache mounts, by mountID
	memos   map[string]string         // selection digests (selections.go)
	// memosRaw are the config's memos before Open keeps the shared kind.
	memosRaw map[string]string
}

// record is one step entry of a remote cache.
type record struct {
	kiln  kilnRecord
	layer *v1.Descriptor // nil for a step without a layer
}

// load reads the cache of s: its root, its config (verified), its records of
// keyVersion. A record whose layer is not in the root is dropped (a miss); note
// receives what the user should know (no cache yet, another key version).
func load(ctx context.Context, s Spec, be backend, keyVersion string, epoch *time.Time, note func(string)) (*source, error) {
	src := &source{spec: s, be: be, records: map[string]*record{}, layers: map[v1.Hash]v1.Descriptor{}, mounts: map[string]mountRecord{}, memos: map[string]string{}}
	raw, mt, err := be.manifest(ctx)
	if errors.Is(err, errNoCache) {
		note(fmt.Sprintf("cache-from %s: no cache there yet", s))
		return src, nil
	}
	if err != nil {
		return nil, err
	}
	var cfgDesc *v1.Descriptor
	var descs []v1.Descriptor
	switch mt {
	case types.OCIImageIndex, types.DockerManifestList:
		var idx v1.IndexManifest
		if err := json.Unmarshal(raw, &idx); err != nil {
			return nil, fmt.Errorf("cache-from %s: read index: %w", s, err)
		}
		for _, d := range idx.Manifests {
			if d.MediaType == ConfigMediaType {
				cfgDesc = &d
			} else {
				descs = append(descs, d)
			}
		}
	case types.OCIManifestSchema1, types.DockerManifestSchema2:
		var m v1.Manifest
		if err := json.Unmarshal(raw, &m); err != nil {
			return nil, fmt.Errorf("cache-from %s: read manifest: %w", s, err)
		}
		if m.Config.MediaType == types.OCIConfigJSON || m.Config.MediaType == types.DockerConfigJSON {
			if err := loadInline(ctx, src, &m, keyVersion, epoch, note); err != nil {
				return nil, fmt.Errorf("cache-from %s: %w", s, err)
			}
			return src, nil
		}
		if m.Config.MediaType == ConfigMediaType {
			cfgDesc = &m.Config
		}
		descs = m.Layers
	default:
		return nil, fmt.Errorf("cache-from %s: %s is not a cache (media type %s)", s, s, mt)
	}
	if cfgDesc == nil {
		return nil, fmt.Errorf("cache-from %s: not a cache: no %s config (an image, not a cache?)", s, ConfigMediaType)
	}
	cfg, err := readConfig(ctx, be, *cfgDesc)
	if err != nil {
		return nil, fmt.Errorf("cache-from %s: %w", s, err)
	}
	switch {
	case cfg.Kiln == nil:
		note(fmt.Sprintf("cache-from %s: written by another builder (no kiln records); skipped", s))
		return src, nil
	case cfg.Kiln.KeyVersion != keyVersion:
		note(fmt.Sprintf("cache-from %s: its %d records use step keys %s, this kiln makes %s; skipped", s, len(cfg.Records), cfg.Kiln.KeyVersion, keyVersion))
		return src, nil
	}
	for _, d := range descs {
		src.layers[d.Digest] = d
	}
	loadMounts(src, cfg)
	src.memosRaw = cfg.Kiln.Memos
	for _, r := range cfg.Records {
		if r.Kiln == nil || r.Kiln.Key == "" || recordDigest(r.Kiln.Key) != r.Digest {
			continue
		}
		rec := &record{kiln: *r.Kiln}
		if len(r.Results) > 0 {
			i := r.Results[0].LayerIndex
			if i < 0 || i >= len(cfg.Layers) {
				continue
			}
			h, err := v1.NewHash(cfg.Layers[i].Blob)
			if err != nil {
				continue
			}
			d, ok := src.layers[h]
			if _, err := v1.NewHash(r.Kiln.DiffID); !ok || err != nil {
				continue // points at a blob the cache does not hold: a miss
			}
			rec.layer = &d
		}
		src.records[r.Kiln.Key] = rec
	}
	return src, nil
}

// readConfig fetches the config blob and checks it against its descriptor.
func readConfig(ctx context.Context, be backend, d v1.Descriptor) (*cacheConfig, error) {
	if d.Size > maxConfigSize {
		return nil, fmt.Errorf("cache config of %d bytes is over the limit of %d", d.Size, maxConfigSize)
	}
	rc, err := be.blob(ctx, d.Digest)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, maxConfigSize+1))
	if err != nil {
		return nil, fmt.Errorf("read cache config: %w", err)
	}
	sum := sha256.Sum256(data)
	if got := "sha256:" + hex.EncodeToString(sum[:]); got != d.Digest.String() {
		return nil, fmt.Errorf("cache config %s is corrupt (its bytes hash to %s); refused", d.Digest, got)
	}
	var cfg cacheConfig
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&cfg); err != nil {
		return nil, fmt.Errorf("read cache config: %w", err)
	}
	return &cfg, nil
}
