package image

import (
	"context"
	"errors"
	"fmt"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
)

// LoadOCILayout resolves an image inside an OCI layout dir (path[:tag|@digest]) and
// copies its blobs into store (for --build-context NAME=oci-layout://).
//
// A tag matches the org.opencontainers.image.ref.name annotation of an index.json
// entry (or the tag part of io.containerd.image.name); without a tag or digest the
// layout's only entry is used, else the one tagged "latest", or, when index.json lists
// one untagged image per platform, the one for opts.Platform. An entry that is itself
// an index is resolved for opts.Platform.
func LoadOCILayout(ctx context.Context, store BlobStore, path string, opts PullOptions) (*Pulled, error) {
	dir, tag, dgst, err := splitLayoutRef(path)
	if err != nil {
		return nil, err
	}
	p, err := layout.FromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("oci layout %s: %w", dir, err)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		return nil, fmt.Errorf("oci layout %s: %w", dir, err)
	}
	plat := hostPlatform(opts.Platform)
	var desc v1.Descriptor
	if tag == "" && dgst == nil && isPlatformIndex(idx) {
		// index.json lists one image per platform, untagged (as crane and ggcr's
		// layout.Write leave a multi-platform image): it is the image's index.
		im, _ := idx.IndexManifest()
		desc, err = selectPlatform("oci layout "+path, im, plat)
	} else {
		desc, err = selectManifest(idx, tag, dgst)
	}
	var npe *NoPlatformError
	if errors.As(err, &npe) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("oci layout %s: %w", path, err)
	}
	img, err := layoutImage("oci layout "+path, idx, desc, plat)
	if errors.As(err, &npe) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("oci layout %s: %w", path, err)
	}
	digest, err := copyToStore(ctx, store, img, opts.Progress, nil)
	if err != nil {
		return nil, fmt.Errorf("oci layout %s: %w", path, err)
	}
	stored, err := openStoreImage(store, digest, "")
	if err != nil {
		return nil, fmt.Errorf("oci layout %s: %w", path, err)
	}
	return &Pulled{Ref: path, ManifestDigest: digest, Image: stored}, nil
}

// isPlatformIndex reports whether a layout's index.json lists several images, each
// with a platform and none tagged.
func isPlatformIndex(idx v1.ImageIndex) bool {
	im, err := idx.IndexManifest()
	if err != nil || len(im.Manifests) < 2 {
		return false
	}
	for _, d := range im.Manifests {
		if d.Platform == nil || !d.MediaType.IsImage() || d.Annotations[annotationRefName] != "" || d.Annotations[annotationImageName] != "" {
			return false
		}
	}
	return true
}

// splitLayoutRef splits path[:tag|@digest]; a colon only starts a tag after the last
// slash, so relative and absolute directory names need no quoting.
func splitLayoutRef(s string) (dir, tag string, dgst *v1.Hash, err error) {
	if i := strings.LastIndex(s, "@"); i > strings.LastIndex(s, "/") {
		h, err := v1.NewHash(s[i+1:])
		if err != nil {
			return "", "", nil, fmt.Errorf("oci layout %s: invalid digest: %w", s, err)
		}
		return s[:i], "", &h, nil
	}
	if i := strings.LastIndex(s, ":"); i > strings.LastIndex(s, "/") {
		return s[:i], s[i+1:], nil, nil
	}
	return s, "", nil, nil
}

func selectManifest(idx v1.ImageIndex, tag string, dgst *v1.Hash) (v1.Descriptor, error) {
	im, err := idx.IndexManifest()
	if err != nil {
		return v1.Descriptor{}, err
	}
	if dgst != nil {
		for _, d := range im.Manifests {
			if d.Digest == *dgst {
				return d, nil
			}
		}
		return v1.Descriptor{}, fmt.Errorf("no manifest %s in index.json", dgst)
	}
	if tag == "" {
		if len(im.Manifests) == 1 {
			return im.Manifests[0], nil
		}
		tag = "latest"
	}
	var tags []string
	for _, d := range im.Manifests {
		t := d.Annotations[annotationRefName]
		if t == "" {
			if n, err := normaliseTag(d.Annotations[annotationImageName]); err == nil {
				t = n.Tag
			}
		}
		if t == tag {
			return d, nil
		}
		if t != "" {
			tags = append(tags, t)
		}
	}
	return v1.Descriptor{}, fmt.Errorf("tag %q not found (tags: %s)", tag, strings.Join(tags, ", "))
}

// layoutImage is the image desc names, resolving a nested index for plat.
func layoutImage(ref string, idx v1.ImageIndex, desc v1.Descriptor, plat v1.Platform) (v1.Image, error) {
	for depth := 0; depth < 4; depth++ {
		if desc.MediaType.IsImage() {
			return idx.Image(desc.Digest)
		}
		if !desc.MediaType.IsIndex() {
			return nil, fmt.Errorf("manifest %s: unsupported media type %s", desc.Digest, desc.MediaType)
		}
		child, err := idx.ImageIndex(desc.Digest)
		if err != nil {
			return nil, err
		}
		im, err := child.IndexManifest()
		if err != nil {
			return nil, err
		}
		d, err := selectPlatform(ref, im, plat)
		if err != nil {
			return nil, err
		}
		idx, desc = child, d
	}
	return nil, fmt.Errorf("manifest %s: indexes nested too deep", desc.Digest)
}
