package image

import (
	"bytes"
	"fmt"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// openStoreImage is the image whose manifest is blob digest in store; every read goes
// to the store. source, when set, is the repository the blobs came from, so that Push
// can mount them (see MountableFrom). It fails if any blob is missing, which callers
// use to decide the store does not have the image.
func openStoreImage(store BlobStore, digest v1.Hash, source string) (v1.Image, error) {
	if !store.HasBlob(digest) {
		return nil, fmt.Errorf("manifest %s not in store", digest)
	}
	raw, err := os.ReadFile(store.BlobPath(digest))
	if err != nil {
		return nil, fmt.Errorf("read manifest %s: %w", digest, err)
	}
	m, mt, err := parseImageManifest(raw, digest)
	if err != nil {
		return nil, err
	}
	core := &storeImageCore{store: store, raw: raw, manifest: m, mediaType: mt}
	rawCfg, err := core.RawConfigFile()
	if err != nil {
		return nil, err
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(rawCfg))
	if err != nil {
		return nil, fmt.Errorf("parse config %s: %w", m.Config.Digest, err)
	}
	if len(cfg.RootFS.DiffIDs) != len(m.Layers) {
		return nil, fmt.Errorf("image %s: %d layers but %d diff_ids in config", digest, len(m.Layers), len(cfg.RootFS.DiffIDs))
	}
	layers := make([]v1.Layer, len(m.Layers))
	for i, d := range m.Layers {
		if !store.HasBlob(d.Digest) {
			return nil, fmt.Errorf("layer %s not in store", d.Digest)
		}
		layers[i] = MountableFrom(StoreLayer(store, d.Digest, cfg.RootFS.DiffIDs[i], d.Size, d.MediaType), source)
	}
	return newStoreImage(core, layers, cfg.RootFS.DiffIDs)
}

// newStoreImage is the image of core (its manifest and config) with layers, which
// are returned as they are (see storeImage).
func newStoreImage(core *storeImageCore, layers []v1.Layer, diffIDs []v1.Hash) (v1.Image, error) {
	core.layers = layers
	img, err := partial.CompressedToImage(core)
	if err != nil {
		return nil, err
	}
	return &storeImage{Image: img, layers: layers, diffIDs: diffIDs, manifest: core.manifest}, nil
}

// storeImageCore is the minimum partial.CompressedToImage needs.
type storeImageCore struct {
	store     BlobStore
	raw       []byte
	rawConfig []byte // the config when it is not in the store (a lazy pull's)
	manifest  *v1.Manifest
	mediaType types.MediaType
	layers    []v1.Layer
}

func (c *storeImageCore) RawConfigFile() ([]byte, error) {
	if c.rawConfig != nil {
		return c.rawConfig, nil
	}
	b, err := os.ReadFile(c.store.BlobPath(c.manifest.Config.Digest))
	if err != nil {
		return nil, fmt.Errorf("read config %s: %w", c.manifest.Config.Digest, err)
	}
	return b, nil
}

func (c *storeImageCore) MediaType() (types.MediaType, error) { return c.mediaType, nil }
func (c *storeImageCore) RawManifest() ([]byte, error)        { return c.raw, nil }

func (c *storeImageCore) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	for i, d := range c.manifest.Layers {
		if d.Digest == h {
			return c.layers[i], nil
		}
	}
	return nil, fmt.Errorf("layer %s not in image", h)
}

// storeImage returns its layers as built (store layers, possibly mountable) instead of
// partial's wrappers, which would hide the remote.MountableLayer type Push looks for.
type storeImage struct {
	v1.Image
	layers   []v1.Layer
	diffIDs  []v1.Hash
	manifest *v1.Manifest
}

func (i *storeImage) Layers() ([]v1.Layer, error) {
	return append([]v1.Layer(nil), i.layers...), nil
}

func (i *storeImage) LayerByDigest(h v1.Hash) (v1.Layer, error) {
	for n, d := range i.manifest.Layers {
		if d.Digest == h {
			return i.layers[n], nil
		}
	}
	return i.Image.LayerByDigest(h) // the config blob
}

func (i *storeImage) LayerByDiffID(h v1.Hash) (v1.Layer, error) {
	for n, d := range i.diffIDs {
		if d == h {
			return i.layers[n], nil
		}
	}
	return nil, fmt.Errorf("diff id %s not in image", h)
}

// parseImageManifest parses the image manifest raw (of digest) and its media type,
// refusing anything but an image manifest.
func parseImageManifest(raw []byte, digest v1.Hash) (*v1.Manifest, types.MediaType, error) {
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, "", fmt.Errorf("parse manifest %s: %w", digest, err)
	}
	mt := m.MediaType
	if mt == "" {
		// The OCI spec lets mediaType be omitted; Docker schema 2 always sets it.
		mt = types.OCIManifestSchema1
	}
	if !mt.IsImage() {
		return nil, "", fmt.Errorf("manifest %s: media type %s is not an image manifest", digest, mt)
	}
	return m, mt, nil
}
