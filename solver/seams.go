package solver

import (
	"context"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/cache"
	"github.com/kiln-build/kiln/exec"
	"github.com/kiln-build/kiln/image"
	"github.com/kiln-build/kiln/layers"
	"github.com/kiln-build/kiln/snapshot"
)

// Executor runs one RUN step's process in a rootfs with its mounts, as BuildKit's
// executor does: the engine says what to run (exec.Spec), the executor owns the
// sandbox. It returns nil when the process exited 0, an *exec.ExitError when it
// exited otherwise or was killed, and leaves no process, mount or cgroup behind.
// Cancelling ctx kills the step.
type Executor interface {
	Run(ctx context.Context, spec exec.Spec) error
}

// Prestarter is an Executor that can start a step's sandbox before the step comes
// (while a base image unpacks): the first RUN of a build then finds it started.
// Prestart must return at once; what it started and no step took, the executor
// removes when it is closed.
type Prestarter interface {
	Prestart(spec exec.Spec)
}

// SandboxExecutor is kiln's own sandbox (package exec): namespaces, pivot_root and
// cgroup limits.
type SandboxExecutor struct {
	// Init is the small sandbox init to start (nil: kiln itself).
	Init *exec.InitBinary
	// Sandboxes, when set, starts each step's sandbox while the step before it
	// runs; its owner closes it when the build is done.
	Sandboxes *exec.Sandboxes
}

// Run implements Executor.
func (e SandboxExecutor) Run(ctx context.Context, spec exec.Spec) error {
	if spec.Init == "" {
		spec.Init = e.Init.Path()
	}
	if e.Sandboxes != nil {
		return e.Sandboxes.Run(ctx, spec)
	}
	return exec.Run(ctx, spec)
}

// Prestart implements Prestarter when e has Sandboxes; it opens the init binary
// too, off the step's path.
func (e SandboxExecutor) Prestart(spec exec.Spec) {
	if e.Sandboxes == nil {
		return
	}
	if spec.Init == "" {
		spec.Init = e.Init.Path()
	}
	e.Sandboxes.Prestart(spec)
}

// ExecutorFunc lets a function be an Executor (tests use it as the fake).
type ExecutorFunc func(ctx context.Context, spec exec.Spec) error

// Run implements Executor.
func (f ExecutorFunc) Run(ctx context.Context, spec exec.Spec) error { return f(ctx, spec) }

// Store is what the engine keeps across builds: step entries (cache.Entry, by key),
// content-addressed blobs, resolved refs, file and selection digests, cache-mount
// dirs. The local store (*cache.Store) is one; a remote cache is another.
type Store interface {
	image.BlobStore
	// GetStep returns the entry of key (and marks it used); ok is false on a miss.
	GetStep(ctx context.Context, key string) (e *cache.Entry, ok bool, err error)
	// PutStep records e, replacing an entry of its key.
	PutStep(ctx context.Context, e *cache.Entry) error
	// PutStepIfAbsent records e unless its key has an entry, and returns the entry
	// the key has after the call.
	PutStepIfAbsent(ctx context.Context, e *cache.Entry) (*cache.Entry, error)
	// LastInputs and SetLastInputs keep the last op recorded at a step's position,
	// to explain a miss.
	LastInputs(ctx context.Context, scope string) ([]byte, bool)
	SetLastInputs(ctx context.Context, scope string, inputs []byte) error
	// HashCache remembers digests by key: of files by their metadata, of
	// selections by their tree's identity.
	HashCache() interface {
		Get(key string) (string, bool)
		GetMany(keys []string) []string
		Put(key, digest string)
	}
	// NewBlobWriter writes a blob, named by its digest on Commit.
	NewBlobWriter() (cache.BlobWriter, error)
	// TempDir makes a scratch dir in the store's tmp/, removed by the next build
	// to open the store if this one is killed.
	TempDir(pattern string) (string, error)
	// CacheMountDir is the directory of the cache mount of identity.
	CacheMountDir(ctx context.Context, identity string) (string, error)
}

// LazyStore is a Store that can answer for step entries whose layer blobs it does not
// hold yet, as a remote cache in front of the local store does: the engine asks it for
// a step's layer instead of reading the blob file, and the bytes are fetched (and
// verified) only when something reads them. A Store that is not one has every blob
// of its entries on disk.
type LazyStore interface {
	Store
	// StepLayer is the layer l of a step entry; ok is false when neither the store
	// nor anything behind it can produce its bytes (the step is made again).
	StepLayer(l *cache.Layer) (layer v1.Layer, ok bool)
	// Origin names where the entry of key came from, "" for the local store: plain
	// progress shows it beside CACHED.
	Origin(key string) string
}

// MemberStore is a Store that indexes the gzip members of its layer blobs, so that a
// step's layer copies the compressed members it shares with an earlier layer instead
// of compressing them again (package layers, members.go); the blob is the same. The
// local store (*cache.Store) is one.
type MemberStore interface {
	layers.MemberSource
	PutMembers(ctx context.Context, blob v1.Hash, members []layers.Member) error
}

// CacheMountRestorer is a Store that can fill a cache mount's dir from elsewhere (a
// remote cache exported with cache-mounts=true): the engine calls it for each cache
// mount of a RUN it executes, before the process starts, never for a step that hits.
type CacheMountRestorer interface {
	RestoreCacheMount(ctx context.Context, identity string) error
}

// Snapshotter keeps one directory per step's tree and stacks them (package
// snapshot has the vocabulary: committed snapshots by id, an Active on top of
// parents, a read-only View). *snapshot.Snapshotter, with overlayfs or its copy
// fallback, is the implementation.
type Snapshotter interface {
	// Prepare makes a writable snapshot over parents (bottom first).
	Prepare(ctx context.Context, parents []string) (*snapshot.Active, error)
	// View mounts parents read-only; release unmounts.
	View(ctx context.Context, parents []string) (root string, release func() error, err error)
	// Ingest creates committed snapshot id from what fill writes into a dir.
	Ingest(ctx context.Context, id string, fill func(dir string) error) error
	// IngestLayer makes committed snapshot id hold layer l's tree unless it exists:
	// a snapshot whose files live in its layer until something needs them.
	IngestLayer(ctx context.Context, id string, l v1.Layer) error
	// Exists reports whether committed snapshot id is there.
	Exists(id string) bool
	// Verify checks that committed snapshot id's tree is as it was committed: a
	// *snapshot.DamagedError if not.
	Verify(ctx context.Context, id string) error
	// Rebuild makes damaged snapshot id again with fill, in place of the old tree
	// in one rename; rebuilt is false when it was intact by then (another build
	// rebuilt it).
	Rebuild(ctx context.Context, id string, fill func(dir string) error) (rebuilt bool, err error)
	// Overlay reports whether layers stack with overlayfs (its upper dir is the
	// step's diff as it happens), not by copying.
	Overlay() bool
}

var (
	_ Store       = (*cache.Store)(nil)
	_ Snapshotter = (*snapshot.Snapshotter)(nil)
)
