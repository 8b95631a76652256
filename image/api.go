package image

import (
	"context"
	"errors"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// BlobStore is the part of the cache store that image needs: content-addressed blobs
// on disk. *cache.Store implements it.
type BlobStore interface {
	BlobPath(h v1.Hash) string
	HasBlob(h v1.Hash) bool
	WriteBlob(b []byte) (v1.Hash, error)
	GetRef(ctx context.Context, ref string) (string, bool)
	PutRef(ctx context.Context, ref, digest string) error
}

// PullOptions control how a base image is resolved.
type PullOptions struct {
	Platform         v1.Platform // "" fields: the host's
	InsecureRegistry []string    // hosts spoken to over plain HTTP (localhost and 127.0.0.1 always are)
	ForcePull        bool        // re-resolve the tag even when the store has it
	Progress         func(msg string)
}

// Pulled is a base image whose manifest, config and layer blobs are all in the store.
type Pulled struct {
	Ref            string // normalised reference, e.g. index.docker.io/library/busybox:latest
	ManifestDigest v1.Hash
	Image          v1.Image // reads only from the store
}

// Pull resolves ref (name[:tag|@digest], docker.io normalised) for the platform and
// stores every blob (verified) in store; a ref already resolved is not fetched again
// unless ForcePull. Errors name the ref and say whether it was not found, unauthorized
// or unreachable.
func Pull(ctx context.Context, store BlobStore, ref string, opts PullOptions) (*Pulled, error) {
	return nil, errors.New("image: Pull not implemented")
}

// LoadOCILayout resolves an image inside an OCI layout dir (path[:tag|@digest]) and
// copies its blobs into store (for --build-context NAME=oci-layout://).
func LoadOCILayout(ctx context.Context, store BlobStore, path string, opts PullOptions) (*Pulled, error) {
	return nil, errors.New("image: LoadOCILayout not implemented")
}

// StoreLayer is a layer whose compressed blob is in the store. It implements v1.Layer
// without re-reading the blob for Digest/DiffID/Size.
func StoreLayer(store BlobStore, digest, diffID v1.Hash, size int64, mt types.MediaType) v1.Layer {
	return nil
}

// Assemble builds the image from a config (whose rootfs.diff_ids and history the caller
// has filled) and the layers in order, with an OCI manifest.
func Assemble(cfg *v1.ConfigFile, layers []v1.Layer) (v1.Image, error) {
	return nil, errors.New("image: Assemble not implemented")
}

// WriteOCIArchive writes img as an OCI image-layout tar to w; each tag is recorded as
// org.opencontainers.image.ref.name (and io.containerd.image.name) in index.json.
func WriteOCIArchive(ctx context.Context, img v1.Image, tags []string, w io.Writer) error {
	return errors.New("image: WriteOCIArchive not implemented")
}

// WriteDockerArchive writes the hybrid tarball of BuildKit's docker exporter: an OCI
// layout plus a docker manifest.json with RepoTags, accepted by docker/podman load and
// skopeo docker-archive:.
func WriteDockerArchive(ctx context.Context, img v1.Image, tags []string, w io.Writer) error {
	return errors.New("image: WriteDockerArchive not implemented")
}

// PushOptions control Push.
type PushOptions struct {
	InsecureRegistry []string
	Jobs             int
	Progress         func(msg string)
}

// Push uploads img under every tag: blobs the registry has are skipped, cross-repo
// mounts used where possible, uploads concurrent, bounded retries.
func Push(ctx context.Context, img v1.Image, tags []string, opts PushOptions) error {
	return errors.New("image: Push not implemented")
}
