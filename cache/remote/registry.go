package remote

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/kiln-build/kiln/image"
)

// registryBackend is a cache in a registry repository, named by a tag (or digest).
type registryBackend struct {
	ref    name.Reference
	client *image.Client // nil: each call starts afresh
}

func newRegistryBackend(s Spec, insecure []string, client *image.Client) (*registryBackend, error) {
	if s.Insecure {
		r, err := name.ParseReference(s.Ref)
		if err != nil {
			return nil, err
		}
		insecure = append(insecure, r.Context().RegistryStr())
	}
	r, err := image.ParseReference(s.Ref, insecure)
	if err != nil {
		return nil, err
	}
	return &registryBackend{ref: r, client: client}, nil
}

func (r *registryBackend) fail(op string, err error) error {
	return image.RegistryFailure(op, r.ref.String(), r.ref.Context().RegistryStr(), err)
}

func (r *registryBackend) manifest(ctx context.Context) ([]byte, types.MediaType, error) {
	desc, err := remote.Get(r.ref, r.client.Options(ctx, 0, 0)...)
	if err != nil {
		var terr *transport.Error
		if errors.As(err, &terr) && terr.StatusCode == http.StatusNotFound {
			return nil, "", errNoCache
		}
		if errors.Is(r.fail("cache import", err), image.ErrNotFound) {
			return nil, "", errNoCache
		}
		return nil, "", r.fail("cache import", err)
	}
	return desc.Manifest, desc.MediaType, nil
}

// manifestByDigest fetches a manifest the root index lists.
func (r *registryBackend) manifestByDigest(ctx context.Context, d v1.Hash) (io.ReadCloser, error) {
	desc, err := remote.Get(r.ref.Context().Digest(d.String()), r.client.Options(ctx, 0, 0)...)
	if err != nil {
		return nil, r.fail("cache import", err)
	}
	return io.NopCloser(bytes.NewReader(desc.Manifest)), nil
}

// verifiesBlobs: a remote layer's Compressed is ggcr's verifying reader (its size
// and sha256 are checked by the read that reaches the end).
func (r *registryBackend) verifiesBlobs() bool { return true }

func (r *registryBackend) blob(ctx context.Context, d v1.Hash) (io.ReadCloser, error) {
	l, err := remote.Layer(r.ref.Context().Digest(d.String()), r.client.Options(ctx, 0, 0)...)
	if err != nil {
		return nil, r.fail("cache blob", err)
	}
	rc, err := l.Compressed()
	if err != nil {
		return nil, r.fail("cache blob", err)
	}
	return rc, nil
}

func (r *registryBackend) hasBlob(ctx context.Context, d v1.Hash) bool {
	l, err := remote.Layer(r.ref.Context().Digest(d.String()), r.client.Options(ctx, 1, 0)...)
	if err != nil {
		return false
	}
	// Size on a remote layer is a HEAD of the blob.
	_, err = l.Size()
	return err == nil
}

func (r *registryBackend) putLayer(ctx context.Context, l v1.Layer, d v1.Hash) error {
	if err := remote.WriteLayer(r.ref.Context(), l, r.client.Options(ctx, 1, 0)...); err != nil {
		return r.fail("cache export", err)
	}
	return nil
}

func (r *registryBackend) putBlob(ctx context.Context, d v1.Hash, data []byte) error {
	l := static.NewLayer(data, ConfigMediaType)
	if err := remote.WriteLayer(r.ref.Context(), l, r.client.Options(ctx, 1, 0)...); err != nil {
		return r.fail("cache export", err)
	}
	return nil
}

func (r *registryBackend) putManifest(ctx context.Context, raw []byte, mt types.MediaType) error {
	if err := remote.Put(r.ref, rawManifest{raw: raw, mt: mt}, r.client.Options(ctx, 0, 0)...); err != nil {
		return r.fail("cache export", err)
	}
	return nil
}

func (r *registryBackend) mountSource() string { return r.ref.Context().String() }

// rawManifest is a manifest ggcr puts as it is.
type rawManifest struct {
	raw []byte
	mt  types.MediaType
}

func (m rawManifest) RawManifest() ([]byte, error)        { return bytes.Clone(m.raw), nil }
func (m rawManifest) MediaType() (types.MediaType, error) { return m.mt, nil }
