package remote

import (
	"bytes"
	"context"
	"errors"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/kiln-build/kiln/image"
)

// errNoCache is a cache location that holds no cache yet: the first build of a
// branch, not a failure.
var errNoCache = errors.New("no cache there yet")

// backend is where one cache lives: a registry repository, an OCI layout or an S3
// bucket. It moves bytes only; what they mean is checked by the callers, and whether
// they hash to their names too, unless verifiesBlobs.
type backend interface {
	// manifest is the cache's root: an image manifest or an index. errNoCache when
	// there is none.
	manifest(ctx context.Context) ([]byte, types.MediaType, error)
	// blob opens blob d (the caller verifies it, unless verifiesBlobs).
	blob(ctx context.Context, d v1.Hash) (io.ReadCloser, error)
	// verifiesBlobs says whether blob's readers fail the read that reaches their
	// end unless the bytes are d's (go-containerregistry's do): a copy into the
	// store then need not hash them again.
	verifiesBlobs() bool
	// hasBlob reports whether the cache holds blob d already.
	hasBlob(ctx context.Context, d v1.Hash) bool
	// putLayer stores layer l (of digest d); a registry mounts a layer marked
	// mountable from another of its repositories instead of uploading it.
	putLayer(ctx context.Context, l v1.Layer, d v1.Hash) error
	// putBlob stores a small blob (the config).
	putBlob(ctx context.Context, d v1.Hash, data []byte) error
	// putManifest stores the root and names it.
	putManifest(ctx context.Context, raw []byte, mt types.MediaType) error
	// mountSource is the repository a push to the same registry can mount this
	// cache's blobs from ("" when it is not a registry).
	mountSource() string
}

// newBackend opens the location of s; a registry's calls go through client (nil:
// each starts afresh).
func newBackend(ctx context.Context, s Spec, insecure []string, client *image.Client) (backend, error) {
	switch s.Type {
	case "local":
		return &layoutBackend{dir: s.Dir, tag: s.Tag}, nil
	case "s3":
		return newS3Backend(ctx, s)
	}
	return newRegistryBackend(s, insecure, client)
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }
