package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Pull resolves ref (name[:tag|@digest], docker.io normalised) for the platform and
// stores every blob (verified) in store. As BuildKit, a tag is resolved with the
// registry at every pull (one manifest HEAD): when it still names an image the store
// has, nothing more is fetched; when it moved, the new image is pulled. A digest
// reference is immutable and never asks the registry once stored. ForcePull fetches
// the manifest again even so; Offline never asks the registry and uses the image
// the tag named when it was last pulled. Errors name the ref and say whether it was
// not found, unauthorized or unreachable.
func Pull(ctx context.Context, store BlobStore, ref string, opts PullOptions) (*Pulled, error) {
	r, err := parseRef(ref, opts.InsecureRegistry)
	if err != nil {
		return nil, err
	}
	plat := hostPlatform(opts.Platform)
	refName := r.Name()
	key := refName + "@" + plat.String()
	source := r.Context().Name()
	fromStore := func(key string) (*Pulled, bool) {
		d, ok := store.GetRef(ctx, key)
		if !ok {
			return nil, false
		}
		h, err := v1.NewHash(d)
		if err != nil {
			return nil, false
		}
		// A store that lost a blob (prune, crash) falls through to the network.
		img, err := openStoreImage(store, h, source)
		if err != nil {
			return nil, false
		}
		return &Pulled{Ref: refName, ManifestDigest: h, Image: img}, true
	}
	_, byDigest := r.(name.Digest)
	var top *v1.Descriptor // what the tag names now, when asked
	switch {
	case opts.Offline:
		if p, ok := fromStore(key); ok {
			progress(opts.Progress, "offline: using the stored %s (%s), not asking the registry", refName, p.ManifestDigest)
			return p, nil
		}
		return nil, fmt.Errorf("pull %s: not in the store and --offline forbids asking the registry; build once without --offline", refName)
	case byDigest && !opts.ForcePull:
		if p, ok := fromStore(key); ok {
			return p, nil
		}
	case !byDigest:
		// What the tag names now: the store keeps which platform manifest each
		// (immutable) top-level digest resolved to.
		if top, err = resolveTag(ctx, r, opts); err != nil {
			rerr := registryError("pull", refName, r.Context().RegistryStr(), err)
			if _, ok := fromStore(key); ok && errors.Is(rerr, ErrUnreachable) {
				return nil, fmt.Errorf("%w; to build from the image the store has, pass --offline", rerr)
			}
			return nil, rerr
		}
		if opts.ForcePull {
			break
		}
		if p, ok := fromStore(top.Digest.String() + "@" + plat.String()); ok {
			// The tag's last image is what --offline uses; rewritten only when it
			// moved, so a warm build writes nothing here.
			if d, _ := store.GetRef(ctx, key); d != p.ManifestDigest.String() {
				if err := store.PutRef(ctx, key, p.ManifestDigest.String()); err != nil {
					return nil, fmt.Errorf("pull %s: record ref: %w", refName, err)
				}
			}
			return p, nil
		}
	}

	progress(opts.Progress, "resolving %s for %s", refName, plat.String())
	// A lazy pull's layers are read after Pull returns (by later steps and the
	// outputs): ggcr's layers keep the context they were made with.
	fetchCtx := ctx
	if opts.Lazy != nil {
		fetchCtx = opts.Lazy
	}
	ropts := opts.Client.Options(fetchCtx, 4, opts.StallTimeout)
	// Pull what the tag was resolved to, so that a tag moving meanwhile cannot
	// give this build another image than the one recorded for the digest.
	var pullRef name.Reference = r
	if top != nil {
		pullRef = r.Context().Digest(top.Digest.String())
	}
	img, err := remoteImage(pullRef, refName, plat, ropts)
	var npe *NoPlatformError
	if errors.As(err, &npe) {
		return nil, err
	}
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
	if opts.Lazy != nil || opts.Stream {
		// A lazy pull records nothing: the store does not hold the image
		// (lazypull.go). A streamed one records it in Finish (streampull.go).
		var keep *streamPull
		if opts.Lazy == nil {
			keep = &streamPull{refs: []string{key}, ref: refName, host: r.Context().RegistryStr()}
			if top != nil {
				keep.refs = append(keep.refs, top.Digest.String()+"@"+plat.String())
			}
		}
		p, err := pullLazy(ctx, store, img, source, opts.Progress, keep, refetchConfig)
		if err != nil {
			return nil, registryError("pull", refName, r.Context().RegistryStr(), err)
		}
		p.Ref = refName
		return p, nil
	}
	digest, err := copyToStore(ctx, store, img, opts.Progress, refetchConfig)
	if err != nil {
		return nil, registryError("pull", refName, r.Context().RegistryStr(), err)
	}
	if err := store.PutRef(ctx, key, digest.String()); err != nil {
		return nil, fmt.Errorf("pull %s: record ref: %w", refName, err)
	}
	if top != nil {
		if err := store.PutRef(ctx, top.Digest.String()+"@"+plat.String(), digest.String()); err != nil {
			return nil, fmt.Errorf("pull %s: record ref: %w", refName, err)
		}
	}
	stored, err := openStoreImage(store, digest, source)
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", refName, err)
	}
	return &Pulled{Ref: refName, ManifestDigest: digest, Image: stored}, nil
}

// remoteImage is the image r names for plat: an index (nested ones too) is resolved
// by selectPlatform; a single manifest is taken whatever its platform, as BuildKit
// does.
func remoteImage(r name.Reference, refName string, plat v1.Platform, ropts []remote.Option) (v1.Image, error) {
	desc, err := remote.Get(r, ropts...)
	if err != nil {
		return nil, err
	}
	for depth := 0; desc.MediaType.IsIndex(); depth++ {
		if depth == 4 {
			return nil, fmt.Errorf("%s: indexes nested too deep", refName)
		}
		idx, err := desc.ImageIndex()
		if err != nil {
			return nil, err
		}
		im, err := idx.IndexManifest()
		if err != nil {
			return nil, err
		}
		d, err := selectPlatform(refName, im, plat)
		if err != nil {
			return nil, err
		}
		if desc, err = remote.Get(r.Context().Digest(d.Digest.String()), ropts...); err != nil {
			return nil, err
		}
	}
	return desc.Image()
}

// resolveTag asks the registry what r names now: a HEAD of the manifest, or a GET
// where the registry answers HEAD without a digest.
func resolveTag(ctx context.Context, r name.Reference, opts PullOptions) (*v1.Descriptor, error) {
	ropts := opts.Client.Options(ctx, 1, opts.StallTimeout)
	desc, err := remote.Head(r, ropts...)
	if err == nil {
		return desc, nil
	}
	if classify(err) != nil {
		return nil, err // not found, unauthorized, unreachable: GET says no more
	}
	d, gerr := remote.Get(r, ropts...)
	if gerr != nil {
		return nil, gerr
	}
	return &d.Descriptor, nil
}

// retryBackoff bounds ggcr's retries of transient failures (5xx, 429, resets, a
// connection dropped mid-request) to eight tries over about 6 s. ggcr retries a blob
// upload as a whole (its POST, PATCH and PUT), so against a registry that fails one
// request in five a try succeeds about half the time: three tries left a push of ten
// blobs failing in most runs (TestFlakyRegistryPush), eight finish it. A
// registry that refuses connections is not retried and fails at once.
func retryBackoff() remote.Backoff {
	return remote.Backoff{Duration: 100 * time.Millisecond, Factor: 1.5, Jitter: 0.1, Steps: 8}
}

// retryable says ggcr should retry the operation that failed with err as a whole (a
// blob download, or an upload's HEAD, POST, PATCH and PUT again): its connection went
// away (reset, closed, cut short), or a request other than a GET got a transient
// status (5xx, 429). A GET's status is left to ggcr's transport, which has retried it
// already with the same backoff: a second level multiplied the tries (a registry that
// always answers 500 took 24 requests and 11 s); idempotentRetry retries GET and HEAD
// statuses below both. Uploads cannot be resent by the
// transport (their body is a stream), and the blob HEADs of a push are not retried
// there either; without this a registry failing one request in five failed most
// pushes (TestFlakyRegistryPush).
func retryable(err error) bool {
	if isRetried(err) {
		return false // a GET or HEAD that idempotentRetry has sent its tries already
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed) {
		return true
	}
	var terr *transport.Error
	if errors.As(err, &terr) && terr.Temporary() {
		return terr.Request == nil || terr.Request.Method != http.MethodGet
	}
	return false
}

// remoteOptions are the options every registry call uses: the caller's context, a
// transport that gives up on a silent registry, the docker keychain
// (~/.docker/config.json and credential helpers), bounded retries. A call made this
// way has a transport of its own; a Client's calls share one.
func remoteOptions(ctx context.Context, jobs int, stall time.Duration, updates chan<- v1.Update, extra ...remote.Option) []remote.Option {
	_, rt := registryTransport(stall)
	return append(remoteOptionsWith(ctx, rt, jobs, updates), extra...)
}

// remoteOptionsWith is remoteOptions over the transport rt.
func remoteOptionsWith(ctx context.Context, rt http.RoundTripper, jobs int, updates chan<- v1.Update) []remote.Option {
	o := baseOptions(ctx, rt)
	if jobs > 0 {
		o = append(o, remote.WithJobs(jobs))
	}
	if updates != nil {
		o = append(o, remote.WithProgress(updates))
	}
	return o
}

// baseOptions are what every registry call has: its context, the transport, the
// keychain and the retries.
func baseOptions(ctx context.Context, rt http.RoundTripper) []remote.Option {
	return []remote.Option{
		remote.WithContext(ctx),
		remote.WithTransport(rt),
		remote.WithAuthFromKeychain(authn.DefaultKeychain),
		remote.WithRetryBackoff(retryBackoff()),
		remote.WithRetryPredicate(retryable),
		remote.WithRetryStatusCodes(http.StatusRequestTimeout, http.StatusTooManyRequests,
			http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable,
			http.StatusGatewayTimeout),
	}
}

func progress(f func(string), format string, args ...any) {
	if f != nil {
		f(fmt.Sprintf(format, args...))
	}
}
