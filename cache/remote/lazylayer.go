package remote

import (
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/kiln-build/kiln/image"
)

// lazyLayer is a step's layer still in a remote cache: its metadata comes from the
// record, its bytes are downloaded into the local store (verified) the first time
// they are read: streamed to the reader of Compressed, else downloaded first and
// read from the store.
type lazyLayer struct {
	s         *Store
	src       *source
	digest    v1.Hash
	diffID    v1.Hash
	size      int64
	mediaType types.MediaType
}

var _ v1.Layer = (*lazyLayer)(nil)

func (l *lazyLayer) Digest() (v1.Hash, error)            { return l.digest, nil }
func (l *lazyLayer) DiffID() (v1.Hash, error)            { return l.diffID, nil }
func (l *lazyLayer) Size() (int64, error)                { return l.size, nil }
func (l *lazyLayer) MediaType() (types.MediaType, error) { return l.mediaType, nil }

func (l *lazyLayer) local() (v1.Layer, error) {
	if err := l.s.ensure(l.src, l.digest, l.size); err != nil {
		return nil, err
	}
	return image.StoreLayer(l.s.Store, l.digest, l.diffID, l.size, l.mediaType), nil
}

// Compressed streams the blob from the remote cache, storing it as it is read
// (lazystream.go), unless it is local or being downloaded already: then it is read
// from the local store, once there.
func (l *lazyLayer) Compressed() (io.ReadCloser, error) {
	if rc, ok, err := l.s.stream(l.src, l.digest, l.size); ok {
		return rc, err
	}
	ll, err := l.local()
	if err != nil {
		return nil, err
	}
	return ll.Compressed()
}

// Uncompressed downloads the blob if it is not local yet.
func (l *lazyLayer) Uncompressed() (io.ReadCloser, error) {
	ll, err := l.local()
	if err != nil {
		return nil, err
	}
	return ll.Uncompressed()
}
