package solver

import (
	"context"
	"fmt"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sync/errgroup"

	"github.com/kiln-build/kiln/cache"
	"github.com/kiln-build/kiln/image"
	"github.com/kiln-build/kiln/source"
)

// baseImage is a pulled image ready to build on: its config and its layers, each
// unpacked into a committed snapshot.
type baseImage struct {
	cfg      *v1.ConfigFile
	layers   []stageLayer
	manifest v1.Hash
	created  time.Time
}

// baseImage pulls ref (once per build) and unpacks its layers into snapshots (once per
// store: a snapshot is named by the layer's diffID). note receives what the pull has
// to tell the user (offline use of a stored image), as a note of the calling step.
func (b *build) baseImage(ctx context.Context, ref, platform string, note func(string)) (*baseImage, error) {
	key := ref + "|" + platform
	b.mu.Lock()
	once, ok := b.images[key]
	if !ok {
		once = &imageOnce{}
		b.images[key] = once
	}
	b.mu.Unlock()
	once.once.Do(func() { once.base, once.err = b.loadBase(ctx, ref, platform, note) })
	return once.base, once.err
}

func (b *build) loadBase(ctx context.Context, ref, platform string, note func(string)) (*baseImage, error) {
	pulled, err := b.resolveImage(ctx, ref, platform, note)
	if err != nil {
		return nil, err
	}
	return b.unpackBase(ctx, ref, pulled)
}

// resolveImage finds ref: a named build context of that name, else a registry image.
func (b *build) resolveImage(ctx context.Context, ref, platform string, note func(string)) (*image.Pulled, error) {
	opts := b.opts.Pull
	opts.Platform = b.opts.Platform
	opts.Progress = note
	if platform != "" {
		p, err := v1.ParsePlatform(platform)
		if err != nil {
			return nil, fmt.Errorf("FROM --platform=%s: %w", platform, err)
		}
		opts.Platform = *p
	}
	if nc, ok := b.namedContext(ref); ok {
		switch nc.Kind {
		case source.ContextOCILayout:
			return image.LoadOCILayout(ctx, b.opts.Store, nc.Ref, opts)
		case source.ContextImage:
			return image.Pull(ctx, b.opts.Store, nc.Ref, opts)
		default:
			return nil, fmt.Errorf("build context %s is a directory, a git repository or a URL: it can be used with COPY --from, not as an image", ref)
		}
	}
	return image.Pull(ctx, b.opts.Store, ref, opts)
}

// unpackBase unpacks every layer of pulled into its snapshot.
func (b *build) unpackBase(ctx context.Context, ref string, pulled *image.Pulled) (*baseImage, error) {
	cfg, err := pulled.Image.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("read config of %s: %w", ref, err)
	}
	ls, err := pulled.Image.Layers()
	if err != nil {
		return nil, fmt.Errorf("read layers of %s: %w", ref, err)
	}
	base := &baseImage{cfg: cfg, manifest: pulled.ManifestDigest, created: cfg.Created.Time}
	base.layers = make([]stageLayer, len(ls))
	keepBlobs := []string{pulled.ManifestDigest.String()}
	if cd, err := pulled.Image.ConfigName(); err == nil {
		keepBlobs = append(keepBlobs, cd.String())
	}
	var keepSnaps []string

	eg, egctx := errgroup.WithContext(ctx)
	eg.SetLimit(b.opts.Jobs)
	for i, l := range ls {
		diffID, err := l.DiffID()
		if err != nil {
			return nil, fmt.Errorf("layer %d of %s: %w", i, ref, err)
		}
		d, err := l.Digest()
		if err != nil {
			return nil, fmt.Errorf("layer %d of %s: %w", i, ref, err)
		}
		id := "l-" + diffID.Hex
		base.layers[i] = stageLayer{layer: l, snapshot: id}
		keepBlobs = append(keepBlobs, d.String())
		keepSnaps = append(keepSnaps, id)
		if b.opts.Snapshots.Exists(id) {
			continue
		}
		eg.Go(func() error {
			if err := b.unpackSnapshot(egctx, id, l); err != nil {
				return fmt.Errorf("%s: %w", ref, err)
			}
			return nil
		})
	}
	if err := eg.Wait(); err != nil {
		return nil, err
	}
	// A FROM entry keeps the image's blobs and snapshots alive in GC. When it exists,
	// looking it up marks it used; rewriting it on every build would cost a write.
	fromKey := "from:" + pulled.ManifestDigest.String()
	if _, ok, err := b.opts.Store.GetStep(ctx, fromKey); err == nil && ok {
		return base, nil
	}
	err = b.opts.Store.PutStep(ctx, &cache.Entry{
		Key: fromKey, KeepBlobs: keepBlobs, KeepSnapshots: keepSnaps,
		Created: time.Now(), Used: time.Now(),
	})
	if err != nil {
		return nil, fmt.Errorf("record base image %s: %w", ref, err)
	}
	return base, nil
}
