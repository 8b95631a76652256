package image

import (
	"bytes"
	"encoding/json"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Assemble builds the image from a config (whose rootfs.diff_ids and history the caller
// has filled) and the layers in order, with an OCI manifest.
//
// The config is serialised once, here (encoding/json: struct field order, sorted map
// keys), so its digest is a function of cfg alone; an empty rootfs.type becomes
// "layers" and nil diff_ids an empty list, as the image spec requires. Layers keep their
// bytes and digests; Docker layer media types are renamed to their OCI equivalents, as
// BuildKit's OCI export does, since an OCI manifest must not list Docker types.
func Assemble(cfg *v1.ConfigFile, layers []v1.Layer) (v1.Image, error) {
	return AssembleWith(cfg, layers, AssembleOptions{})
}

// AssembleOptions add to the config JSON what v1.ConfigFile cannot hold.
type AssembleOptions struct {
	// Extras are the Docker config members v1.ConfigFile lacks.
	Extras ConfigExtras
	// Field, when not empty, is one more top-level member, with the JSON value
	// FieldValue (BuildKit's inline cache, "moby.buildkit.cache.v0", is one).
	Field      string
	FieldValue json.RawMessage
}

// AssembleWith is Assemble with the config members of opts.
func AssembleWith(cfg *v1.ConfigFile, layers []v1.Layer, opts AssembleOptions) (v1.Image, error) {
	if cfg == nil {
		return nil, fmt.Errorf("assemble image: no config")
	}
	c := *cfg
	if c.RootFS.Type == "" {
		c.RootFS.Type = "layers"
	}
	if c.RootFS.DiffIDs == nil {
		c.RootFS.DiffIDs = []v1.Hash{}
	}
	if len(c.RootFS.DiffIDs) != len(layers) {
		return nil, fmt.Errorf("assemble image: %d layers but %d diff_ids in config", len(layers), len(c.RootFS.DiffIDs))
	}
	rawCfg, err := json.Marshal(&c)
	if err != nil {
		return nil, fmt.Errorf("assemble image: config: %w", err)
	}
	if rawCfg, err = opts.Extras.write(rawCfg, &c); err != nil {
		return nil, fmt.Errorf("assemble image: config: %w", err)
	}
	if opts.Field != "" {
		if rawCfg, err = withMember(rawCfg, opts.Field, opts.FieldValue); err != nil {
			return nil, fmt.Errorf("assemble image: config: %w", err)
		}
	}
	cfgDigest, cfgSize, err := v1.SHA256(bytes.NewReader(rawCfg))
	if err != nil {
		return nil, err
	}
	a := &assembled{rawConfig: rawCfg, layers: make([]v1.Layer, len(layers))}
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		Config:        v1.Descriptor{MediaType: types.OCIConfigJSON, Size: cfgSize, Digest: cfgDigest},
		Layers:        make([]v1.Descriptor, 0, len(layers)),
	}
	for i, l := range layers {
		d, err := layerDescriptor(l)
		if err != nil {
			return nil, fmt.Errorf("assemble image: layer %d: %w", i, err)
		}
		diffID, err := l.DiffID()
		if err != nil {
			return nil, fmt.Errorf("assemble image: layer %d: %w", i, err)
		}
		if diffID != c.RootFS.DiffIDs[i] {
			return nil, fmt.Errorf("assemble image: layer %d has diff id %s but config says %s", i, diffID, c.RootFS.DiffIDs[i])
		}
		a.layers[i] = l
		if oci := ociMediaType(d.MediaType); oci != d.MediaType {
			d.MediaType = oci
			a.layers[i] = retype(l, oci)
		}
		m.Layers = append(m.Layers, d)
	}
	if a.rawManifest, err = json.Marshal(&m); err != nil {
		return nil, fmt.Errorf("assemble image: manifest: %w", err)
	}
	a.manifest = &m
	a.diffIDs = c.RootFS.DiffIDs
	core, err := partial.CompressedToImage(a)
	if err != nil {
		return nil, err
	}
	a.ext = core
	return &assembledImage{Image: core, a: a}, nil
}

// layerDescriptor is the manifest entry of l: digest, size and media type. (URLs of
// foreign layers are not carried over: kiln pulls and pushes every blob.)
func layerDescriptor(l v1.Layer) (v1.Descriptor, error) {
	d, err := l.Digest()
	if err != nil {
		return v1.Descriptor{}, err
	}
	size, err := l.Size()
	if err != nil {
		return v1.Descriptor{}, err
	}
	mt, err := l.MediaType()
	if err != nil {
		return v1.Descriptor{}, err
	}
	return v1.Descriptor{MediaType: mt, Size: size, Digest: d}, nil
}

// ociMediaType maps a Docker layer media type to the OCI one for the same bytes.
func ociMediaType(mt types.MediaType) types.MediaType {
	switch mt {
	case types.DockerLayer:
		return types.OCILayer
	case types.DockerUncompressedLayer:
		return types.OCIUncompressedLayer
	case types.DockerForeignLayer:
		return types.OCIRestrictedLayer
	}
	return mt
}

// retype gives l another media type, keeping a mountable layer mountable.
func retype(l v1.Layer, mt types.MediaType) v1.Layer {
	if ml, ok := l.(*remote.MountableLayer); ok {
		return &remote.MountableLayer{Layer: &retypedLayer{Layer: ml.Layer, mt: mt}, Reference: ml.Reference}
	}
	return &retypedLayer{Layer: l, mt: mt}
}

type retypedLayer struct {
	v1.Layer
	mt types.MediaType
}

func (l *retypedLayer) MediaType() (types.MediaType, error) { return l.mt, nil }

// assembled is the partial.CompressedImageCore of an assembled image: everything is
// computed once in Assemble, so its digests never change between calls.
type assembled struct {
	rawConfig   []byte
	rawManifest []byte
	manifest    *v1.Manifest
	layers      []v1.Layer
	diffIDs     []v1.Hash
	ext         v1.Image
}

func (a *assembled) RawConfigFile() ([]byte, error)      { return a.rawConfig, nil }
func (a *assembled) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }
func (a *assembled) RawManifest() ([]byte, error)        { return a.rawManifest, nil }

func (a *assembled) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	for i, d := range a.manifest.Layers {
		if d.Digest == h {
			return a.layers[i], nil
		}
	}
	if h == a.manifest.Config.Digest {
		return partial.ConfigLayer(a.ext)
	}
	return nil, fmt.Errorf("blob %s not in image", h)
}

// assembledImage hands out the layers as given rather than partial's wrappers, which
// would hide the remote.MountableLayer type Push looks for.
type assembledImage struct {
	v1.Image
	a *assembled
}

func (i *assembledImage) Layers() ([]v1.Layer, error) {
	return append([]v1.Layer(nil), i.a.layers...), nil
}

func (i *assembledImage) LayerByDigest(h v1.Hash) (v1.Layer, error) {
	for n, d := range i.a.manifest.Layers {
		if d.Digest == h {
			return i.a.layers[n], nil
		}
	}
	return i.Image.LayerByDigest(h)
}

func (i *assembledImage) LayerByDiffID(h v1.Hash) (v1.Layer, error) {
	for n, d := range i.a.diffIDs {
		if d == h {
			return i.a.layers[n], nil
		}
	}
	return nil, fmt.Errorf("diff id %s not in image", h)
}

// withMember is the JSON object raw with member key set to value (members sorted, as
// encoding/json writes a map).
func withMember(raw []byte, key string, value json.RawMessage) ([]byte, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	m[key] = value
	return json.Marshal(m)
}
