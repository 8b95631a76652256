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
	"golang.org/x/sync/errgroup"

	"github.com/kiln-build/kiln/image"
)

// uploadJobs bounds the blob checks and uploads of one export that run at once.
const uploadJobs = 8

// registryBackend is a cache in a registry repository, named by a tag (or digest).
type registryBackend struct {
	ref name.Reference
}

func newRegistryBackend(s Spec, insecure []string) (*registryBackend, error) {
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
	return &registryBackend{ref: r}, nil
}

func (r *registryBackend) fail(op string, err error) error {
	return image.RegistryFailure(op, r.ref.String(), r.ref.Context().RegistryStr(), err)
}

func (r *registryBackend) manifest(ctx context.Context) ([]byte, types.MediaType, error) {
	desc, err := remote.Get(r.ref, image.RegistryOptions(ctx, 0)...)
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

func (r *registryBackend) blob(ctx context.Context, d v1.Hash) (io.ReadCloser, error) {
	l, err := remote.Layer(r.ref.Context().Digest(d.String()), image.RegistryOptions(ctx, 0)...)
	if err != nil {
		return nil, r.fail("cache blob", err)
	}
	rc, err := l.Compressed()
	if err != nil {
		return nil, r.fail("cache blob", err)
	}
	return rc, nil
}

func (r *registryBackend) putLayers(ctx context.Context, ls []v1.Layer, uploaded func(v1.Hash, int64)) error {
	repo := r.ref.Context()
	eg, egctx := errgroup.WithContext(ctx)
	eg.SetLimit(uploadJobs)
	for _, l := range ls {
		eg.Go(func() error {
			// ggcr asks with a HEAD first and skips what the repository has; a
			// layer marked mountable from another repository of this registry is
			// mounted, not uploaded.
			d, err := l.Digest()
			if err != nil {
				return err
			}
			opts := image.RegistryOptions(egctx, 1)
			if has, err := blobExists(egctx, repo, d, opts); err == nil && has {
				return nil
			}
			if err := remote.WriteLayer(repo, l, opts...); err != nil {
				return r.fail("cache export", err)
			}
			if uploaded != nil {
				size, _ := l.Size()
				uploaded(d, size)
			}
			return nil
		})
	}
	return eg.Wait()
}

// blobExists asks the registry whether repo has blob d.
func blobExists(ctx context.Context, repo name.Repository, d v1.Hash, opts []remote.Option) (bool, error) {
	l, err := remote.Layer(repo.Digest(d.String()), opts...)
	if err != nil {
		return false, err
	}
	// Size on a remote layer is a HEAD of the blob.
	if _, err := l.Size(); err != nil {
		return false, err
	}
	return true, nil
}

func (r *registryBackend) putBlob(ctx context.Context, d v1.Hash, data []byte) error {
	l := static.NewLayer(data, ConfigMediaType)
	if err := remote.WriteLayer(r.ref.Context(), l, image.RegistryOptions(ctx, 1)...); err != nil {
		return r.fail("cache export", err)
	}
	return nil
}

func (r *registryBackend) putManifest(ctx context.Context, raw []byte, mt types.MediaType) error {
	if err := remote.Put(r.ref, rawManifest{raw: raw, mt: mt}, image.RegistryOptions(ctx, 0)...); err != nil {
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
