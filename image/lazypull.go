package image

import (
	"bytes"
	"context"
	"fmt"
	"io"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// A lazy pull (PullOptions.Lazy) is for builds whose steps may all come from a remote
// cache: an ephemeral CI runner then needs the base image's manifest and config (for
// the image it writes) but none of its layer bytes unless a step runs on them, and a
// push to the base's registry mounts them. A layer that is read (by an output, or to
// unpack it for a step) is streamed from the registry, verified by its digest as it
// goes, and not kept in the store: keeping it costs writing and fsyncing the whole
// blob, 0.3 s of W5's 95 MB debian layer on the bench machine, and an ephemeral
// runner never reads it twice. Measured on W5 (every step from a registry cache, OCI
// tarball out): the eager pull and unpack were 0.3-0.5 s of a 0.40-0.65 s build.
//
// Not done: a broken stream is not retried (the reader has consumed its start), and
// a root that is kept between builds downloads the base again whenever an output
// reads it; without --cache-from the pull is eager and stores everything.

// pullLazy returns img (its manifest and config checked as an eager pull checks
// them) with each layer the store does not hold streamed from the registry when read.
// With keep (a streamed pull, streampull.go), the config is stored now and each such
// layer is stored by its first reader; keep.Finish does the rest.
func pullLazy(ctx context.Context, store BlobStore, img v1.Image, source string, prog func(string), keep *streamPull, refetch configFetcher) (*Pulled, error) {
	raw, err := img.RawManifest()
	if err != nil {
		return nil, err
	}
	if err := checkMetadataSize("manifest", int64(len(raw))); err != nil {
		return nil, err
	}
	digest, err := img.Digest()
	if err != nil {
		return nil, err
	}
	m, mt, err := parseImageManifest(raw, digest)
	if err != nil {
		return nil, err
	}
	if err := checkMetadataSize("config", m.Config.Size); err != nil {
		return nil, err
	}
	rawCfg, err := rawConfig(ctx, img, m.Config.Digest, refetch) // ggcr checks it against its digest
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(rawCfg))
	if err != nil {
		return nil, fmt.Errorf("parse config %s: %w", m.Config.Digest, err)
	}
	if len(cfg.RootFS.DiffIDs) != len(m.Layers) {
		return nil, fmt.Errorf("image %s: %d layers but %d diff_ids in config", digest, len(m.Layers), len(cfg.RootFS.DiffIDs))
	}
	if keep != nil {
		if err := writeSmallBlob(store, m.Config.Digest, rawCfg); err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		keep.store, keep.manifest, keep.raw, keep.prog = store, digest, raw, prog
		keep.layers = map[v1.Hash]*pullLayer{}
	}
	layers := make([]v1.Layer, len(m.Layers))
	missing := 0
	for i, d := range m.Layers {
		sl := StoreLayer(store, d.Digest, cfg.RootFS.DiffIDs[i], d.Size, d.MediaType)
		if store.HasBlob(d.Digest) {
			layers[i] = MountableFrom(sl, source)
			continue
		}
		rl, err := img.LayerByDigest(d.Digest)
		if err != nil {
			return nil, fmt.Errorf("layer %s: %w", d.Digest, err)
		}
		missing++
		var pl *pullLayer
		if keep != nil {
			if pl = keep.layers[d.Digest]; pl == nil {
				pl = &pullLayer{remote: rl, desc: d, prog: prog}
				keep.layers[d.Digest] = pl
			}
		}
		layers[i] = MountableFrom(&streamedLayer{Layer: sl, store: store, remote: rl, source: source, keep: pl}, source)
	}
	if missing > 0 && keep == nil {
		progress(prog, "%d of the %d layers of %s are fetched only if a step or an output reads them", missing, len(m.Layers), digest)
	}
	core := &storeImageCore{store: store, raw: raw, rawConfig: rawCfg, manifest: m, mediaType: mt}
	stored, err := newStoreImage(core, layers, cfg.RootFS.DiffIDs)
	if err != nil {
		return nil, err
	}
	return &Pulled{ManifestDigest: digest, Image: stored, stream: keep}, nil
}

// streamedLayer is a base layer still in the registry: its metadata comes from the
// manifest and config (the embedded store layer), its bytes from the store if they
// are there by the time it is read, else from the registry, verified against the
// digest as they stream (ggcr fails the read that reaches the end of a blob that
// does not match). A push mounts it (MountableFrom) without reading it.
type streamedLayer struct {
	v1.Layer // the same layer in the store: metadata, and the bytes once there
	store    BlobStore
	remote   v1.Layer
	source   string
	keep     *pullLayer // a streamed pull's: the first reader stores the blob
}

var _ v1.Layer = (*streamedLayer)(nil)

// Compressed streams the blob from the store, else from the registry.
func (l *streamedLayer) Compressed() (io.ReadCloser, error) {
	d, _ := l.Digest()
	if l.store.HasBlob(d) {
		return l.Layer.Compressed()
	}
	rc, err := l.remote.Compressed()
	if err != nil {
		// As a pull's errors: not found, unauthorized or unreachable, and what to do.
		host := l.source
		if r, perr := name.ParseReference(l.source); perr == nil {
			host = r.Context().RegistryStr()
		}
		how := "pulled lazily (a --cache-from build)"
		if l.keep != nil {
			how = "pulled as it is unpacked"
		}
		return nil, fmt.Errorf("fetch base layer %s, %s: %w", d, how, registryError("pull", l.source, host, err))
	}
	if l.keep != nil && l.keep.claim() {
		progress(l.keep.prog, "pulling layer %s (%d bytes), unpacked as it downloads", d, l.keep.desc.Size)
		w, err := newBlobWriter(l.store, d, l.keep.desc.Size)
		if err != nil {
			l.keep.release()
			rc.Close()
			return nil, err
		}
		return newKeepingReader(rc, w, l.keep), nil
	}
	return rc, nil
}

// Uncompressed decompresses Compressed, as a store layer does.
func (l *streamedLayer) Uncompressed() (io.ReadCloser, error) {
	d, _ := l.Digest()
	return uncompressedOf(l.Compressed, d)
}
