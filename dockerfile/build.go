package dockerfile

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kiln-build/kiln/source/remote"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sync/errgroup"

	"github.com/kiln-build/kiln/exec"
	"github.com/kiln-build/kiln/image"
	"github.com/kiln-build/kiln/layers"
	"github.com/kiln-build/kiln/parser"
	"github.com/kiln-build/kiln/solver"
	"github.com/kiln-build/kiln/source"
)

// Options is everything one build needs: the Dockerfile graph, the engine's parts
// and the build's flags.
type Options struct {
	Graph     *parser.Graph
	Filename  string // the Dockerfile's name in errors, e.g. "Dockerfile"
	Context   *source.Context
	Store     solver.Store
	Snapshots solver.Snapshotter
	// Executor runs RUN steps (nil: solver.SandboxExecutor).
	Executor solver.Executor

	// NoCache rebuilds every step; NoCacheFilter only the named stages.
	NoCache       bool
	NoCacheFilter []string

	Labels   map[string]string // --label, applied to the final image
	Platform v1.Platform       // the target platform
	Pull     image.PullOptions
	Limits   exec.Limits
	Network  exec.NetworkMode
	// ExtraHosts, ShmSize and Ulimits are --add-host, --shm-size and --ulimit.
	ExtraHosts []exec.Host
	ShmSize    int64
	Ulimits    []exec.Ulimit

	Compression      layers.Compression
	CompressionLevel int  // 0: the codec's default
	ForceCompression bool // recompress every layer, base layers too
	SourceDateEpoch  *time.Time
	KeepFileTimes    bool // rewrite-timestamp=false: the epoch sets created and history only

	// NamedContexts are --build-context NAME=VALUE, by name.
	NamedContexts map[string]remote.NamedContext

	// Secrets are the --secret values by id, SSH the --ssh agent sockets by id:
	// RUN --mount=type=secret|ssh reads them. Neither reaches a layer, the history
	// or a cache key.
	Secrets map[string]SecretSource
	SSH     map[string]string
	// Entitlements are the --allow values granted: security.insecure,
	// network.host.
	Entitlements []string
	// Warn receives the build checks' findings that need the build's state
	// (UndefinedVar), formatted as "FILE:LINE: Rule: message".
	Warn func(string)
	// Notice receives what the engine repaired or chose on its way (a damaged
	// snapshot rebuilt, a --chown name the image lacks): shown, never counted as
	// a build check's finding. It is called from several goroutines.
	Notice func(string)

	// ScanStage, when set, is given the tree of every stage other than the target
	// whose SBOM the build asks for (BUILDKIT_SBOM_SCAN_STAGE, or every stage the
	// target needs with ScanAllStages), mounted for the duration of the call.
	ScanStage     func(ctx context.Context, p v1.Platform, stage, root string) error
	ScanAllStages bool // --attest type=sbom,scan-stage=true
	ScanContext   bool // --attest type=sbom,scan-context=true

	// NeedRootfs says the caller reads the target stage's files (Result.Snapshots),
	// not only its layers: a local or tar output.
	NeedRootfs bool

	// Jobs bounds how many steps execute at once (stages still resolve concurrently),
	// across every platform of a BuildPlatforms.
	Jobs     int
	Progress solver.Progress

	// multiPlatform says the build has several target platforms: progress names
	// start with the stage's platform.
	multiPlatform bool
}

// Target is one platform a build produces, with the Dockerfile parsed for it: the
// platform args (TARGETARCH...) and so the FROM lines and the stages needed can
// differ between platforms.
type Target struct {
	Platform v1.Platform
	Graph    *parser.Graph
}

// Build builds opts.Graph's target: the stages the target needs run concurrently
// (each waits for the stages it reads), every instruction becomes ops the engine
// keys, looks up and executes.
func Build(ctx context.Context, opts Options) (*Result, error) {
	res, err := BuildPlatforms(ctx, opts, []Target{{Platform: opts.Platform, Graph: opts.Graph}})
	if err != nil {
		return nil, err
	}
	return res[0], nil
}

// BuildPlatforms builds each target's graph (opts.Graph and opts.Platform are
// ignored): one image per target, in order. The targets are solved concurrently by
// one engine under one --jobs bound, and an op two of them share (every op of a stage
// pinned to $BUILDPLATFORM that reads no TARGET* arg) runs once, as BuildKit merges
// identical vertices.
func BuildPlatforms(ctx context.Context, opts Options, targets []Target) ([]*Result, error) {
	if len(targets) == 0 {
		return nil, fmt.Errorf("internal error: no target platform")
	}
	opts.multiPlatform = len(targets) > 1
	if opts.multiPlatform && opts.Warn != nil {
		opts.Warn = onceEach(opts.Warn)
	}
	eng := solver.New(solver.Options{
		Store: opts.Store, Snapshots: opts.Snapshots, Executor: opts.Executor,
		Platform: targets[0].Platform, Pull: opts.Pull, Limits: opts.Limits,
		ExtraHosts: opts.ExtraHosts, ShmSize: opts.ShmSize, Ulimits: opts.Ulimits,
		Compression: opts.Compression, CompressionLevel: opts.CompressionLevel,
		ForceCompression: opts.ForceCompression, SourceDateEpoch: opts.SourceDateEpoch,
		KeepFileTimes: opts.KeepFileTimes,
		Jobs:          opts.Jobs, Progress: opts.Progress, Warn: opts.Notice,
	})
	eg, egctx := errgroup.WithContext(ctx)
	builds := make([]*build, len(targets))
	for t, target := range targets {
		peng := eng.ForPlatform(target.Platform)
		bopts := opts
		bopts.Graph, bopts.Platform = target.Graph, peng.Platform()
		b := &build{
			opts:   bopts,
			eng:    peng,
			g:      target.Graph,
			states: make([]*stageState, len(target.Graph.Stages)),
			rec:    &recorder{},
		}
		if opts.Context != nil {
			b.rec.src.Locals = []string{"context", "dockerfile"}
		}
		builds[t] = b
		for _, i := range b.g.Needed {
			b.states[i] = &stageState{done: make(chan struct{})}
		}
		for _, i := range b.g.Needed {
			eg.Go(func() error {
				st := b.states[i]
				defer close(st.done)
				st.err = b.runStage(egctx, b.g.Stages[i])
				return st.err
			})
		}
	}
	if err := eg.Wait(); err != nil {
		return nil, err
	}
	res := make([]*Result, len(builds))
	for t, b := range builds {
		r, err := b.finish(ctx, b.states[b.g.Target])
		if err != nil {
			return nil, err
		}
		res[t] = &Result{Result: r, Sources: b.rec.sources(), ScanContext: b.scanContext()}
	}
	return res, nil
}

// build is the state of one Build.
type build struct {
	opts   Options
	eng    *solver.Engine
	g      *parser.Graph
	states []*stageState
	rec    *recorder // what the build read and ran, for its provenance

	checks buildChecks
}

// wait blocks until stage i is built and returns its state.
func (b *build) wait(ctx context.Context, i int) (*stageState, error) {
	st := b.states[i]
	if st == nil {
		return nil, fmt.Errorf("stage %d is not part of this build", i)
	}
	select {
	case <-st.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if st.err != nil {
		return nil, fmt.Errorf("stage %s failed", b.stageLabel(i))
	}
	return st, nil
}

func (b *build) stageLabel(i int) string {
	if n := b.g.Stages[i].Name; n != "" {
		return n
	}
	return fmt.Sprint(i)
}

func (b *build) noCacheFor(stage *parser.Stage) bool {
	if b.opts.NoCache {
		return true
	}
	return stage.Name != "" && slices.ContainsFunc(b.opts.NoCacheFilter, func(s string) bool {
		return strings.EqualFold(s, stage.Name)
	})
}

// namedContext finds a --build-context by the name a FROM or --from used. As in
// BuildKit, an image name is looked up by its familiar form without ":latest", so
// "docker.io/library/alpine:latest" finds the context "alpine".
func (b *build) namedContext(ref string) (remote.NamedContext, bool) {
	if nc, ok := b.opts.NamedContexts[ref]; ok {
		return nc, true
	}
	nc, ok := b.opts.NamedContexts[familiarName(ref)]
	return nc, ok
}

// familiarName is docker's short spelling of an image reference (docker.io and
// library/ dropped) without a ":latest" tag; a string that is not a reference is
// returned as it is.
func familiarName(ref string) string {
	r, err := name.ParseReference(ref)
	if err != nil {
		return strings.TrimSuffix(ref, ":latest")
	}
	repo := r.Context().RepositoryStr()
	if reg := r.Context().RegistryStr(); reg == name.DefaultRegistry {
		repo = strings.TrimPrefix(repo, "library/")
	} else {
		repo = reg + "/" + repo
	}
	switch r := r.(type) {
	case name.Tag:
		if r.TagStr() != "latest" {
			repo += ":" + r.TagStr()
		}
	case name.Digest:
		repo += "@" + r.DigestStr()
	}
	return repo
}

func (b *build) emit(e solver.Event) { b.eng.Emit(e) }

// onceEach is warn called once per distinct message: each platform's solve finds
// the same problems of the Dockerfile.
func onceEach(warn func(string)) func(string) {
	var mu sync.Mutex
	seen := map[string]bool{}
	return func(w string) {
		mu.Lock()
		dup := seen[w]
		seen[w] = true
		mu.Unlock()
		if !dup {
			warn(w)
		}
	}
}
