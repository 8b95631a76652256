package image

import (
	"context"
	"errors"
	"fmt"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"golang.org/x/sync/errgroup"
)

// layerJobs bounds concurrent layer downloads: a few streams saturate most links and
// more would only contend for the disk and the shared CPUs hashing them.
const layerJobs = 3

// layerTries is how often one layer download is attempted: a stream that breaks after
// the response started is not retried by ggcr's transport.
const layerTries = 3

// configFetcher fetches a config blob afresh, for a retry after a broken download.
type configFetcher func(ctx context.Context, h v1.Hash) ([]byte, error)

// copyToStore writes img's layers, config and, last, manifest into store, verifying
// each against its digest; blobs already present are skipped. The manifest goes last so
// that a manifest in the store implies its blobs are too. It returns the manifest
// digest.

func copyToStore(ctx context.Context, store BlobStore, img v1.Image, prog func(string), refetch configFetcher) (v1.Hash, error) {
	rawManifest, err := img.RawManifest()
	if err != nil {
		return v1.Hash{}, err
	}
	// A registry's manifest was limited as it was read; a layout's is checked here.
	if err := checkMetadataSize("manifest", int64(len(rawManifest))); err != nil {
		return v1.Hash{}, err
	}
	digest, err := img.Digest()
	if err != nil {
		return v1.Hash{}, err
	}
	m, err := img.Manifest()
	if err != nil {
		return v1.Hash{}, err
	}
	if mt := m.MediaType; mt != "" && !mt.IsImage() {
		return v1.Hash{}, fmt.Errorf("unsupported manifest media type %s", mt)
	}
	// Refused by its declared size before a byte is fetched: go-containerregistry reads
	// a config blob no further than that size.
	if err := checkMetadataSize("config", m.Config.Size); err != nil {
		return v1.Hash{}, err
	}
	// The config is a blob too, and go-containerregistry retries requests but not a
	// body cut off mid-way (and keeps what it read): retry it with fresh requests.
	rawCfg, err := rawConfig(ctx, img, m.Config.Digest, refetch)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("config: %w", err)
	}
	if err := writeSmallBlob(store, m.Config.Digest, rawCfg); err != nil {
		return v1.Hash{}, fmt.Errorf("config: %w", err)
	}

	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(layerJobs)
	seen := map[v1.Hash]bool{}
	for _, d := range m.Layers {
		if seen[d.Digest] || store.HasBlob(d.Digest) {
			continue
		}
		seen[d.Digest] = true
		l, err := img.LayerByDigest(d.Digest)
		if err != nil {
			return v1.Hash{}, fmt.Errorf("layer %s: %w", d.Digest, err)
		}
		g.Go(func() error {
			progress(prog, "pulling layer %s (%d bytes)", d.Digest, d.Size)
			return fetchLayer(gctx, store, l, d)
		})
	}
	if err := g.Wait(); err != nil {
		return v1.Hash{}, err
	}
	if err := writeSmallBlob(store, digest, rawManifest); err != nil {
		return v1.Hash{}, fmt.Errorf("manifest: %w", err)
	}
	return digest, nil
}

// rawConfig is img's config, fetched again with fresh requests (refetch, when set)
// if its body is cut off: go-containerregistry retries requests but not a body cut
// off mid-way.
func rawConfig(ctx context.Context, img v1.Image, d v1.Hash, refetch configFetcher) ([]byte, error) {
	raw, err := img.RawConfigFile()
	for try := 1; err != nil && refetch != nil && try < layerTries && !retriedBelow(err); try++ {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Duration(try) * 500 * time.Millisecond):
		}
		raw, err = refetch(ctx, d)
	}
	return raw, err
}

// fetchLayer downloads one layer blob into the store, retrying a broken stream.
func fetchLayer(ctx context.Context, store BlobStore, l v1.Layer, d v1.Descriptor) error {
	var err error
	for try := 1; try <= layerTries; try++ {
		if try > 1 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Duration(try-1) * 500 * time.Millisecond):
			}
		}
		if err = fetchLayerOnce(ctx, store, l, d); err == nil || ctx.Err() != nil {
			break
		}
		if classify(err) != nil { // not found, denied or unreachable: retrying will not help
			break
		}
		if retriedBelow(err) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("layer %s: %w", d.Digest, err)
	}
	return nil
}

// retriedBelow says err is a registry's status answer or a broken connection that
// the transport (idempotentRetry) has retried already: a stream cut mid-body is what
// the loops above retry, and retrying these too multiplied the requests to a registry
// that keeps failing (TestPullRegistryFaults).
func retriedBelow(err error) bool {
	var status *transport.Error
	return errors.As(err, &status) || isRetried(err)
}

func fetchLayerOnce(ctx context.Context, store BlobStore, l v1.Layer, d v1.Descriptor) error {
	rc, err := l.Compressed()
	if err != nil {
		return err
	}
	defer rc.Close()
	return writeBlobStream(ctx, store, d.Digest, d.Size, rc)
}
