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
		if cfgDesc == nil && inlineIndex(descs) {
			// An image index (several platforms, or an image with its attestations):
			// each platform's image may carry its own inline cache, keyed for its
			// platform, so all are read.
			if err := loadInlineIndex(ctx, src, be, descs, keyVersion, epoch, note); err != nil {
				return nil, fmt.Errorf("cache-from %s: %w", s, err)
			}
			return src, nil
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

// inlineIndex says an index lists images (not a cache's layers).
func inlineIndex(descs []v1.Descriptor) bool {
	for _, d := range descs {
		if d.MediaType == types.OCIManifestSchema1 || d.MediaType == types.DockerManifestSchema2 {
			return true
		}
	}
	return false
}

// loadInlineIndex reads the inline cache of every image an index lists; an
// attestation manifest has none and is skipped.
func loadInlineIndex(ctx context.Context, src *source, be backend, descs []v1.Descriptor, keyVersion string, epoch *time.Time, note func(string)) error {
	found := false
	for _, d := range descs {
		if d.MediaType != types.OCIManifestSchema1 && d.MediaType != types.DockerManifestSchema2 {
			continue
		}
		if d.Annotations["vnd.docker.reference.type"] == "attestation-manifest" {
			continue
		}
		raw, err := childManifest(ctx, be, d)
		if err != nil {
			return err
		}
		var m v1.Manifest
		if err := json.Unmarshal(raw, &m); err != nil {
			return fmt.Errorf("read manifest %s: %w", d.Digest, err)
		}
		if m.Config.MediaType != types.OCIConfigJSON && m.Config.MediaType != types.DockerConfigJSON {
			continue
		}
		found = true
		if err := loadInline(ctx, src, &m, keyVersion, epoch, note); err != nil {
			return fmt.Errorf("image %s: %w", d.Digest, err)
		}
	}
	if !found {
		return fmt.Errorf("not a cache: an index of no image and no %s config", ConfigMediaType)
	}
	return nil
}

// childManifest fetches a manifest an index lists, verified against its digest: a
// registry serves it from /manifests/, a layout or a bucket as a blob.
func childManifest(ctx context.Context, be backend, d v1.Descriptor) ([]byte, error) {
	var rc io.ReadCloser
	var err error
	if mf, ok := be.(interface {
		manifestByDigest(ctx context.Context, d v1.Hash) (io.ReadCloser, error)
	}); ok {
		rc, err = mf.manifestByDigest(ctx, d.Digest)
	} else {
		rc, err = be.blob(ctx, d.Digest)
	}
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	raw, err := io.ReadAll(io.LimitReader(rc, maxConfigSize+1))
	if err != nil {
		return nil, fmt.Errorf("read manifest %s: %w", d.Digest, err)
	}
	if len(raw) > maxConfigSize {
		return nil, fmt.Errorf("manifest %s is larger than %d bytes", d.Digest, maxConfigSize)
	}
	if got, _, _ := v1.SHA256(bytes.NewReader(raw)); got != d.Digest {
		return nil, fmt.Errorf("manifest %s: its bytes hash to %s", d.Digest, got)
	}
	return raw, nil
}
