package image

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Pull resolves ref (name[:tag|@digest], docker.io normalised) for the platform and
// stores every blob (verified) in store; a ref already resolved is not fetched again
// unless ForcePull. Errors name the ref and say whether it was not found, unauthorized
// or unreachable.
func Pull(ctx context.Context, store BlobStore, ref string, opts PullOptions) (*Pulled, error) {
	r, err := parseRef(ref, opts.InsecureRegistry)
	if err != nil {
		return nil, err
	}
	plat := hostPlatform(opts.Platform)
	refName := r.Name()
	key := refName + "@" + plat.String()
	source := r.Context().Name()

	if !opts.ForcePull {
		if d, ok := store.GetRef(ctx, key); ok {
			if h, err := v1.NewHash(d); err == nil {
				// A store that lost a blob (prune, crash) falls through to the network.
				if img, err := openStoreImage(store, h, source); err == nil {
					return &Pulled{Ref: refName, ManifestDigest: h, Image: img}, nil
				}
			}
		}
	}

	progress(opts.Progress, "resolving %s for %s", refName, plat.String())
	ropts := remoteOptions(ctx, 4, opts.StallTimeout, nil, remote.WithPlatform(plat))
	img, err := remote.Image(r, ropts...)
	if err != nil {
		return nil, registryError("pull", refName, r.Context().RegistryStr(), err)
	}
	refetchConfig := func(ctx context.Context, h v1.Hash) ([]byte, error) {
		l, err := remote.Layer(r.Context().Digest(h.String()), ropts...)
		if err != nil {
			return nil, err
		}
		rc, err := l.Compressed() // verifies the digest as it is read
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		return io.ReadAll(rc)
	}
	digest, err := copyToStore(ctx, store, img, opts.Progress, refetchConfig)
	if err != nil {
		return nil, registryError("pull", refName, r.Context().RegistryStr(), err)
	}
	if err := store.PutRef(ctx, key, digest.String()); err != nil {
		return nil, fmt.Errorf("pull %s: record ref: %w", refName, err)
	}
	stored, err := openStoreImage(store, digest, source)
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", refName, err)
	}
	return &Pulled{Ref: refName, ManifestDigest: digest, Image: stored}, nil
}

// retryBackoff bounds ggcr's retries of transient failures (5xx, 429, resets) to three
// tries over about 1.5s: enough for a flaky proxy, short enough to fail a build fast.
func retryBackoff() remote.Backoff {
	return remote.Backoff{Duration: 500 * time.Millisecond, Factor: 2, Jitter: 0.1, Steps: 3}
}

// remoteOptions are the options every registry call uses: the caller's context, a
// transport that gives up on a silent registry, the docker keychain
// (~/.docker/config.json and credential helpers), bounded retries.
func remoteOptions(ctx context.Context, jobs int, stall time.Duration, updates chan<- v1.Update, extra ...remote.Option) []remote.Option {
	o := []remote.Option{
		remote.WithContext(ctx),
		remote.WithTransport(registryTransport(stall)),
		remote.WithAuthFromKeychain(authn.DefaultKeychain),
		remote.WithRetryBackoff(retryBackoff()),
		remote.WithRetryStatusCodes(http.StatusRequestTimeout, http.StatusTooManyRequests,
			http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable,
			http.StatusGatewayTimeout),
	}
	if jobs > 0 {
		o = append(o, remote.WithJobs(jobs))
	}
	if updates != nil {
		o = append(o, remote.WithProgress(updates))
	}
	return append(o, extra...)
}

func progress(f func(string), format string, args ...any) {
	if f != nil {
		f(fmt.Sprintf(format, args...))
	}
}
