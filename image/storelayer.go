package image

import (
	"context"
	"fmt"
	"io"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/kiln-build/kiln/cache"
	"github.com/kiln-build/kiln/layers"
)

// StoreLayer is a layer whose compressed blob is in the store. It implements v1.Layer
// without re-reading the blob for Digest/DiffID/Size.
func StoreLayer(store BlobStore, digest, diffID v1.Hash, size int64, mt types.MediaType) v1.Layer {
	return &storeLayer{store: store, digest: digest, diffID: diffID, size: size, mediaType: mt}
}

// MountableFrom marks l as also present in the registry repository source (for example
// "127.0.0.1:5000/busybox"), so that Push to another repository of the same registry
// asks the registry to mount the blob instead of uploading it. An empty or unparsable
// source returns l unchanged: mounting is an optimisation, never a requirement.
func MountableFrom(l v1.Layer, source string) v1.Layer {
	if source == "" {
		return l
	}
	ref, err := name.ParseReference(source)
	if err != nil {
		return l
	}
	if ml, ok := l.(*remote.MountableLayer); ok {
		l = ml.Layer
	}
	return &remote.MountableLayer{Layer: l, Reference: ref}
}

// PartStore is a BlobStore that keeps part tables of the blobs it wrote in pieces
// (cache.Store.BlobParts), so that a copy of such a blob is checked a part at a time
// on every core.
type PartStore interface {
	BlobParts(ctx context.Context, h v1.Hash) ([]cache.BlobPart, bool)
}

// storeLayer answers metadata from its fields; only Compressed and Uncompressed open
// the blob, so listing a cached image's layers costs no I/O.
type storeLayer struct {
	store     BlobStore
	digest    v1.Hash
	diffID    v1.Hash
	size      int64
	mediaType types.MediaType
}

var _ v1.Layer = (*storeLayer)(nil)

func (l *storeLayer) Digest() (v1.Hash, error)            { return l.digest, nil }
func (l *storeLayer) DiffID() (v1.Hash, error)            { return l.diffID, nil }
func (l *storeLayer) Size() (int64, error)                { return l.size, nil }
func (l *storeLayer) MediaType() (types.MediaType, error) { return l.mediaType, nil }

// Compressed opens the stored blob as is.
//
// The reader verifies as it goes: the read that reaches the end fails with a
// *CorruptBlobError when the bytes do not hash to the layer's digest, so no reader
// that reads to the end passes damaged bytes on.
func (l *storeLayer) Compressed() (io.ReadCloser, error) {
	f, err := openVerified(l.store.BlobPath(l.digest), l.digest)
	if err != nil {
		return nil, fmt.Errorf("open layer %s: %w", l.digest, err)
	}
	if ps, ok := l.store.(PartStore); ok {
		f.parts = func(ctx context.Context) ([]cache.BlobPart, bool) { return ps.BlobParts(ctx, l.digest) }
	}
	return f, nil
}

// Uncompressed decompresses the stored blob (gzip, zstd or plain). The magic bytes
// decide rather than the media type, as containerd does, because registries hold
// images whose media type says gzip over a plain tar and the other way round.
func (l *storeLayer) Uncompressed() (io.ReadCloser, error) {
	return uncompressedOf(l.Compressed, l.digest)
}

// uncompressedOf decompresses the blob compressed opens (layer digest d).
func uncompressedOf(compressed func() (io.ReadCloser, error), d v1.Hash) (io.ReadCloser, error) {
	rc, err := compressed()
	if err != nil {
		return nil, err
	}
	r, err := decompress(rc)
	if err != nil {
		rc.Close()
		return nil, fmt.Errorf("decompress layer %s: %w", d, err)
	}
	return r, nil
}

// decompress is layers.Decompress (gzip, zstd with its window cap, bzip2, xz, or plain,
// told by the magic bytes) of rc, closing rc too. One decoder for every path, so a
// limit set for hostile input holds for all of them.
func decompress(rc io.ReadCloser) (io.ReadCloser, error) {
	r, err := layers.Decompress(rc)
	if err != nil {
		return nil, err
	}
	return &multiCloser{Reader: r, closers: []io.Closer{r, rc}}, nil
}

type multiCloser struct {
	io.Reader
	closers []io.Closer
}

func (m *multiCloser) Close() error {
	var first error
	for _, c := range m.closers {
		if err := c.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}
