package image

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/containerd/platforms"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// PlatformImage is one platform's image of a multi-platform build, with its
// filesystem for the outputs that write files (nil when none does).
type PlatformImage struct {
	Platform v1.Platform
	Image    v1.Image
	Rootfs   Rootfs
}

// NewIndex is the OCI image index of a multi-platform build: one manifest per
// platform, in order, each descriptor carrying its platform, as BuildKit's image
// exporter writes it.
func NewIndex(imgs []PlatformImage) (v1.ImageIndex, error) {
	var idx v1.ImageIndex = mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	adds := make([]mutate.IndexAddendum, len(imgs))
	for i, pi := range imgs {
		mt, err := pi.Image.MediaType()
		if err != nil {
			return nil, fmt.Errorf("image index: %w", err)
		}
		size, err := pi.Image.Size()
		if err != nil {
			return nil, fmt.Errorf("image index: %w", err)
		}
		digest, err := pi.Image.Digest()
		if err != nil {
			return nil, fmt.Errorf("image index: %w", err)
		}
		p := pi.Platform
		desc := v1.Descriptor{MediaType: mt, Size: size, Digest: digest, Platform: &p}
		adds[i] = mutate.IndexAddendum{Add: describedImage{Image: pi.Image, desc: desc}, Descriptor: desc}
	}
	return mutate.AppendManifests(idx, adds...), nil
}

// describedImage is an image with the descriptor the index lists it by. Without it
// ggcr derives one with an artifactType (the config's media type), which an image,
// unlike an artifact, has no use for and BuildKit's indexes do not carry.
type describedImage struct {
	v1.Image
	desc v1.Descriptor
}

// Descriptor implements partial.withDescriptor.
func (i describedImage) Descriptor() (*v1.Descriptor, error) {
	d := i.desc
	return &d, nil
}

// PlatformDir is the directory a platform's files get in a multi-platform local
// output, as buildx names it: linux_arm64, linux_arm_v7.
func PlatformDir(p v1.Platform) string {
	return strings.ReplaceAll(platforms.FormatAll(specPlatform(p)), "/", "_")
}

// WriteOCIIndexArchive writes idx, every manifest it lists and their blobs as an OCI
// image-layout tar to w, as WriteOCIArchive does for one image: index.json has one
// entry per tag, the index.
func WriteOCIIndexArchive(ctx context.Context, idx v1.ImageIndex, tags []string, w io.Writer) error {
	names, err := archiveNames(tags)
	if err != nil {
		return err
	}
	raw, err := idx.RawManifest()
	if err != nil {
		return fmt.Errorf("write archive: index: %w", err)
	}
	digest, err := idx.Digest()
	if err != nil {
		return fmt.Errorf("write archive: index: %w", err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return fmt.Errorf("write archive: index: %w", err)
	}
	small := map[string][]byte{
		"oci-layout":     []byte(`{"imageLayoutVersion":"1.0.0"}`),
		blobName(digest): raw,
	}
	if small["index.json"], err = indexJSON(digest, int64(len(raw)), types.OCIImageIndex, names); err != nil {
		return err
	}
	layerByName := map[string]archiveLayer{}
	for _, d := range im.Manifests {
		img, err := idx.Image(d.Digest)
		if err != nil {
			return fmt.Errorf("write archive: manifest %s: %w", d.Digest, err)
		}
		rawManifest, err := img.RawManifest()
		if err != nil {
			return fmt.Errorf("write archive: manifest %s: %w", d.Digest, err)
		}
		m, err := img.Manifest()
		if err != nil {
			return fmt.Errorf("write archive: manifest %s: %w", d.Digest, err)
		}
		rawCfg, err := img.RawConfigFile()
		if err != nil {
			return fmt.Errorf("write archive: config of %s: %w", d.Digest, err)
		}
		small[blobName(d.Digest)] = rawManifest
		small[blobName(m.Config.Digest)] = rawCfg
		for _, l := range m.Layers {
			layerByName[blobName(l.Digest)] = archiveLayer{img: img, desc: l}
		}
	}
	return writeLayoutTar(ctx, w, small, layerByName)
}
