package solver

import (
	"context"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/exec"
	"github.com/kiln-build/kiln/image"
	"github.com/kiln-build/kiln/layers"
	"github.com/kiln-build/kiln/source"
)

// Options is what the engine needs for one build: its parts (Store, Snapshots,
// Executor) and what applies to every op of it.
type Options struct {
	Store     Store
	Snapshots Snapshotter
	// Executor runs RUN ops (nil: SandboxExecutor).
	Executor Executor

	Platform v1.Platform // the target platform: part of every key
	Pull     image.PullOptions
	// Limits are the sandbox's cgroup limits of every RUN, part of its key.
	Limits exec.Limits
	// ExtraHosts (--add-host), ShmSize (--shm-size) and Ulimits (--ulimit) are the
	// rest of every RUN's sandbox, part of its key as in BuildKit's ExecOp.
	ExtraHosts []exec.Host
	ShmSize    int64
	Ulimits    []exec.Ulimit

	Compression layers.Compression
	// CompressionLevel is the codec's level of the step layers the outputs get (0:
	// the codec's default). A step's cached layer is made at the default level and
	// another level is an export transform, so that an image does not depend on the
	// level of the build that first made a step (BuildKit keeps a cached layer's).
	CompressionLevel int
	// ForceCompression recompresses every layer of the image, base layers too, with
	// Compression and CompressionLevel (BuildKit's force-compression=true).
	ForceCompression bool
	SourceDateEpoch  *time.Time
	// KeepFileTimes leaves the step layers' file times as the steps wrote them:
	// SOURCE_DATE_EPOCH then sets only the image's created and history times
	// (BuildKit's rewrite-timestamp=false). kiln's default clamps them too.
	KeepFileTimes bool

	// Jobs bounds how many ops execute at once, across every caller of the engine.
	Jobs     int
	Progress Progress
	// Warn shows what the build repaired on its way (nil: nothing is shown).
	Warn func(string)
}

// Engine runs ops for one build: each op is keyed, looked up in the Store and, on a
// miss, executed over a snapshot of the state it applies to and committed. Its
// methods are safe to call from several goroutines (one per stage): the --jobs bound
// holds across them. An Engine keeps per-build state (base images pulled once, step
// numbers), so make one per build.
//
// One build can target several platforms (kiln build --platform a,b): ForPlatform
// gives a view of the engine for another platform that shares everything per build
// (the --jobs bound, step numbers, base images, the ops already resolved), so that an
// op two platforms' solves share (a stage pinned to $BUILDPLATFORM) runs once.
type Engine struct {
	opts Options
	*shared
}

// shared is an Engine's per-build state, common to its platform views.
type shared struct {
	sem chan struct{} // bounds executing ops

	nextID atomic.Int64

	mu      sync.Mutex
	images  map[string]*imageOnce // base images pulled once per build, by ImageRef.id
	steps   []UsedStep            // entries used, for Result.Steps
	ops     map[string]*opOnce    // ops resolved in this build, by key (merge.go)
	reports map[string]bool       // what FirstReport has seen
	// checked are the snapshots this build found intact, made or is checking
	// (intact), by id.
	checked map[string]*snapCheck
}

// UsedStep is one step entry a build used (hit or made).
type UsedStep struct {
	Key   string // the entry's key in the Store
	Group int    // the Step's Group; OutputGroup for the output's layer transforms
}

// OutputGroup is the Group of the entries Export makes: the output's layer
// transforms (SOURCE_DATE_EPOCH clamping, recompression).
const OutputGroup = -1

// KeyVersion is the version every step key is made with: a remote cache records it,
// and entries of another version are not looked up.
const KeyVersion = opKeyVersion

// usedStep records that the build used the entry of key (Result.Steps).
func (e *Engine) usedStep(group int, key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.steps = append(e.steps, UsedStep{Key: key, Group: group})
}

// New makes an engine, with defaults for what opts leaves unset.
func New(opts Options) *Engine {
	if opts.Jobs <= 0 {
		opts.Jobs = runtime.NumCPU()
	}
	if opts.Compression == "" {
		opts.Compression = layers.Gzip
	}
	if opts.Platform.OS == "" {
		opts.Platform = v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
	}
	if opts.Progress == nil {
		opts.Progress = func(Event) {}
	}
	if opts.Executor == nil {
		opts.Executor = SandboxExecutor{}
	}
	return &Engine{opts: opts, shared: &shared{
		sem: make(chan struct{}, opts.Jobs), images: map[string]*imageOnce{},
		ops: map[string]*opOnce{}, reports: map[string]bool{},
	}}
}

// Platform is the platform of the engine (view): of every op it keys and runs, of
// Scratch, and the default of Image.
func (e *Engine) Platform() v1.Platform { return e.opts.Platform }

// ForPlatform is a view of the engine whose ops are for p: it shares the build's
// state (--jobs, step numbers, base images, resolved ops and used steps) with e.
func (e *Engine) ForPlatform(p v1.Platform) *Engine {
	if p.OS == "" {
		return e
	}
	opts := e.opts
	opts.Platform = p
	return &Engine{opts: opts, shared: e.shared}
}

// FirstReport reports whether this is the first time the build asks about what: a
// front end shows a step that several platforms' solves share (a FROM of a stage
// pinned to $BUILDPLATFORM) once, as BuildKit merges identical vertices.
func (e *Engine) FirstReport(what string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.reports[what] {
		return false
	}
	e.reports[what] = true
	return true
}

// State is a tree as the engine builds it: its layers (each with its committed
// snapshot), the key the next op is keyed on, and the time a history entry of it
// gets. It is a value: an op returns a new State and leaves its input as it was.
type State struct {
	Layers []Layer
	// Key is the identity of the tree: the parent of the next op.
	Key string
	// Created is when the last op that changed the tree ran (SOURCE_DATE_EPOCH when
	// set), so a fully cached rebuild gives the same image.
	Created time.Time
}

// Layer is one layer of a State.
type Layer struct {
	Layer    v1.Layer
	Snapshot string
	// Step says the layer is a step's (not a base image's): outputs get it through
	// the export transform (export.go).
	Step bool
}

// Snapshots lists the state's committed snapshot ids, lowest first.
func (st State) Snapshots() []string {
	ids := make([]string, len(st.Layers))
	for i, l := range st.Layers {
		ids[i] = l.Snapshot
	}
	return ids
}

// Scratch is the empty state of the build's platform.
func (e *Engine) Scratch() State {
	return State{Key: digestOf("scratch", e.opts.Platform.String()), Created: e.epochOr(time.Unix(0, 0).UTC())}
}

// Step is one op as the engine runs it, with what the engine reports about it.
type Step struct {
	Op *Op
	// ID numbers the step in progress events (NextID); Name is how they call it,
	// e.g. "[build 2/5] RUN make"; Display is what a cache-miss note calls it.
	ID      int
	Name    string
	Display string
	// Scope names the step's position across builds: the op last built there is
	// kept to explain a later miss (Store.LastInputs).
	Scope string
	// Files gives the per-file digests of what the op reads, sorted by path, each
	// path once, kept only to explain a later miss. It is called only on a miss,
	// and at most once: a big COPY has hundreds of thousands of them, which its
	// caller can let go of then. nil: none.
	Files func() []FileDigest
	// NoCache executes the op whatever the store holds.
	NoCache bool
	// Group is the caller's label of the op, returned with its key in Result.Steps
	// (the front end gives the Dockerfile stage's index).
	Group int
	// Annotate gives an error of the step its caller's context (a Dockerfile line)
	// before it is reported and returned; nil leaves errors as they are.
	Annotate func(error) error
}

// StepResult is what an op did to its state.
type StepResult struct {
	State State
	// DiffID is the layer the op added: the empty layer when it changed no file,
	// as in BuildKit (execStep); nil only for an entry recorded without one.
	DiffID *v1.Hash
}

// NextID numbers a step for progress events.
func (e *Engine) NextID() int { return int(e.nextID.Add(1)) }

// Emit reports a progress event (stamped now unless it has a time).
func (e *Engine) Emit(ev Event) {
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	e.opts.Progress(ev)
}

// acquire takes an execution slot; the returned func releases it.
func (e *Engine) acquire(ctx context.Context) (func(), error) {
	select {
	case e.sem <- struct{}{}:
		return func() { <-e.sem }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (e *Engine) epochOr(t time.Time) time.Time {
	if e.opts.SourceDateEpoch != nil {
		return *e.opts.SourceDateEpoch
	}
	return t
}

// digestOf hashes its parts, separated so that ("ab","c") and ("a","bc") differ.
func digestOf(parts ...string) string { return source.DigestOf(parts...) }

// withLayer is st with l on top, in a new slice: states share no backing array.
func (st State) withLayer(l Layer) []Layer {
	return append(slices.Clip(st.Layers), l)
}

// TempDir makes a scratch dir in the store's tmp/ (see Store.TempDir).
func (e *Engine) TempDir(pattern string) (string, error) { return e.opts.Store.TempDir(pattern) }

// CacheMountDir is the store's dir of the cache mount of identity.
func (e *Engine) CacheMountDir(ctx context.Context, identity string) (string, error) {
	return e.opts.Store.CacheMountDir(ctx, identity)
}

// HashCache is the store's digest memo (files by metadata, selections by tree).
func (e *Engine) HashCache() interface {
	Get(key string) (string, bool)
	GetMany(keys []string) []string
	Put(key, digest string)
} {
	return e.opts.Store.HashCache()
}

// Overlay reports whether the snapshotter stacks with overlayfs.
func (e *Engine) Overlay() bool { return e.opts.Snapshots.Overlay() }

// Materialize makes sure every layer of st has its snapshot (see materialize).
func (e *Engine) Materialize(ctx context.Context, st State) error {
	return e.materialize(ctx, st.Layers)
}

// View mounts st's snapshots read-only, unpacking the layers that have none yet
// (a lazily pulled base's); release unmounts.
func (e *Engine) View(ctx context.Context, st State) (string, func() error, error) {
	if err := e.materialize(ctx, st.Layers); err != nil {
		return "", nil, err
	}
	return e.opts.Snapshots.View(ctx, st.Snapshots())
}
