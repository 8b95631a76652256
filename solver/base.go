package solver

import (
	"context"
	"fmt"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sync/errgroup"

	"github.com/kiln-build/kiln/cache"
	"github.com/kiln-build/kiln/exec"
	"github.com/kiln-build/kiln/image"
)

// baseSnapshotPrefix names a base image layer's snapshot, before its diffID. It carries
// the version of the unpack that makes the tree, so a tree an older kiln unpacked
// from the same layer may be another tree, and is not taken for this one (its tree
// record, kept under the id, neither). u2 applies a tar hard link's header to the
// inode it shares (layers.Unpack); u3 makes a directory that follows its own
// whiteout in one layer opaque.
const baseSnapshotPrefix = "l-u3-"

// ImageRef is a base image to pull: a registry reference, or an image in an OCI
// layout dir (path[:tag|@digest]), for the platform (the build's when zero).
type ImageRef struct {
	Ref      string
	Layout   bool
	Platform v1.Platform
	// ThenRun, when set, is the first RUN of the stage built on the image: a pull
	// that has layers to unpack starts that step's sandbox meanwhile (Prestarter).
	// Not part of the image's identity.
	ThenRun *RunAhead
}

// RunAhead is what decides the sandbox of a RUN to come.
type RunAhead struct {
	Network exec.NetworkMode
}

// Base is a pulled image ready to build on: its config and its layers, each
// unpacked into a committed snapshot (when first needed, after a lazy pull), as a State (keyed by the manifest digest,
// created when the image says, or at SOURCE_DATE_EPOCH). Config is shared by every
// caller of one ref: clone it before changing it.
type Base struct {
	Config *v1.ConfigFile
	// ConfigExtras are the members of its config that Config cannot hold.
	ConfigExtras image.ConfigExtras
	State        State
	Manifest     v1.Hash
}

// id names ref in the engine's pull memo.
func (r ImageRef) id() string {
	return fmt.Sprintf("%q %v %s", r.Ref, r.Layout, r.Platform.String())
}

// imageOnce dedupes concurrent pulls of one ref within a build.
type imageOnce struct {
	once sync.Once
	base *Base
	err  error
}

// Image pulls ref (once per build) and unpacks its layers into snapshots (once per
// store: a snapshot is named by the layer's diffID). note receives what the pull has
// to tell the user (offline use of a stored image), as a note of the calling step.
func (e *Engine) Image(ctx context.Context, ref ImageRef, note func(string)) (*Base, error) {
	if ref.Platform.OS == "" {
		ref.Platform = e.opts.Platform
	}
	e.mu.Lock()
	id := ref.id()
	once, ok := e.images[id]
	if !ok {
		once = &imageOnce{}
		e.images[id] = once
	}
	e.mu.Unlock()
	once.once.Do(func() { once.base, once.err = e.loadBase(ctx, ref, note) })
	return once.base, once.err
}

func (e *Engine) loadBase(ctx context.Context, ref ImageRef, note func(string)) (*Base, error) {
	opts := e.opts.Pull
	opts.Platform = ref.Platform
	opts.Progress = note
	// Not lazy: the layers are unpacked right below, as they download.
	opts.Stream = opts.Lazy == nil
	var pulled *image.Pulled
	var err error
	if ref.Layout {
		pulled, err = image.LoadOCILayout(ctx, e.opts.Store, ref.Ref, opts)
	} else {
		pulled, err = image.Pull(ctx, e.opts.Store, ref.Ref, opts)
	}
	if err != nil {
		return nil, err
	}
	return e.unpackBase(ctx, ref.Ref, pulled, ref.ThenRun)
}

// prestart has the executor start the sandbox of a RUN to come, when it can.
func (e *Engine) prestart(r RunAhead) {
	if p, ok := e.opts.Executor.(Prestarter); ok {
		p.Prestart(exec.Spec{Network: r.Network, Limits: e.opts.Limits})
	}
}

// unpackBase unpacks every layer of pulled into its snapshot. With a layer to unpack
// and a RUN to come (thenRun), the RUN's sandbox starts meanwhile: its step cannot
// be in the cache of a store that did not have the image's layers, or hardly.
func (e *Engine) unpackBase(ctx context.Context, ref string, pulled *image.Pulled, thenRun *RunAhead) (*Base, error) {
	cfg, err := pulled.Image.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("read config of %s: %w", ref, err)
	}
	rawCfg, err := pulled.Image.RawConfigFile()
	if err != nil {
		return nil, fmt.Errorf("read config of %s: %w", ref, err)
	}
	extras, err := image.ReadConfigExtras(rawCfg)
	if err != nil {
		return nil, fmt.Errorf("read config of %s: %w", ref, err)
	}
	ls, err := pulled.Image.Layers()
	if err != nil {
		return nil, fmt.Errorf("read layers of %s: %w", ref, err)
	}
	base := &Base{Config: cfg, ConfigExtras: extras, Manifest: pulled.ManifestDigest, State: State{
		Key: digestOf("image", pulled.ManifestDigest.String()), Created: e.epochOr(cfg.Created.Time),
	}}
	base.State.Layers = make([]Layer, len(ls))
	keepBlobs := []string{pulled.ManifestDigest.String()}
	if cd, err := pulled.Image.ConfigName(); err == nil {
		keepBlobs = append(keepBlobs, cd.String())
	}
	var keepSnaps []string

	eg, egctx := errgroup.WithContext(ctx)
	eg.SetLimit(e.opts.Jobs)
	for i, l := range ls {
		diffID, err := l.DiffID()
		if err != nil {
			return nil, fmt.Errorf("layer %d of %s: %w", i, ref, err)
		}
		d, err := l.Digest()
		if err != nil {
			return nil, fmt.Errorf("layer %d of %s: %w", i, ref, err)
		}
		id := baseSnapshotPrefix + diffID.Hex
		base.State.Layers[i] = Layer{Layer: l, Snapshot: id}
		keepBlobs = append(keepBlobs, d.String())
		keepSnaps = append(keepSnaps, id)
		// A lazy pull leaves the snapshots to be unpacked when a step or an output
		// needs the files (materialize): a build whose steps all hit never does.
		if e.opts.Pull.Lazy != nil || e.opts.Snapshots.Exists(id) {
			continue
		}
		if thenRun != nil {
			e.prestart(*thenRun)
			thenRun = nil
		}
		eg.Go(func() error {
			err := e.opts.Snapshots.IngestLayer(egctx, id, l)
			if err != nil && egctx.Err() == nil && !e.opts.Store.HasBlob(d) {
				// Its stream from the registry broke (or its bytes were wrong):
				// download it with retries, then unpack it from the store.
				if ferr := pulled.Fetch(egctx, d); ferr != nil {
					return ferr // names the image
				}
				err = e.opts.Snapshots.IngestLayer(egctx, id, l)
			}
			if err != nil {
				return fmt.Errorf("%s: %w", ref, err)
			}
			// Absent a moment ago and unpacked now: no check needed in this build.
			e.madeIntact(id)
			return nil
		})
	}
	if err := eg.Wait(); err != nil {
		return nil, err
	}
	if err := pulled.Finish(ctx); err != nil {
		return nil, err // names the image
	}
	// A FROM entry keeps the image's blobs and snapshots alive in GC. When it exists,
	// looking it up marks it used; rewriting it on every build would cost a write.
	fromKey := "from:" + pulled.ManifestDigest.String()
	if _, ok, err := e.opts.Store.GetStep(ctx, fromKey); err == nil && ok {
		return base, nil
	}
	err = e.opts.Store.PutStep(ctx, &cache.Entry{
		Key: fromKey, KeepBlobs: keepBlobs, KeepSnapshots: keepSnaps,
		Created: time.Now(), Used: time.Now(),
	})
	if err != nil {
		return nil, fmt.Errorf("record base image %s: %w", ref, err)
	}
	return base, nil
}
