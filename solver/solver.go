package solver

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sync/errgroup"

	"github.com/kiln-build/kiln/buildctx"
	"github.com/kiln-build/kiln/exec"
	"github.com/kiln-build/kiln/image"
	"github.com/kiln-build/kiln/layers"
	"github.com/kiln-build/kiln/parser"
)

// Options is everything one build needs besides the Dockerfile graph.
type Options struct {
	Graph     *parser.Graph
	Filename  string // the Dockerfile's name in errors, e.g. "Dockerfile"
	Context   *buildctx.Context
	Store     Store
	Snapshots Snapshotter
	// Executor runs RUN steps (nil: SandboxExecutor).
	Executor Executor

	// NoCache rebuilds every step; NoCacheFilter only the named stages.
	NoCache       bool
	NoCacheFilter []string

	Labels   map[string]string // --label, applied to the final image
	Platform v1.Platform       // the target platform
	Pull     image.PullOptions
	Limits   exec.Limits
	Network  exec.NetworkMode

	Compression     layers.Compression
	SourceDateEpoch *time.Time

	// NamedContexts are --build-context NAME=VALUE, by name.
	NamedContexts map[string]NamedContext

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

	// NeedRootfs says the caller reads the target stage's files (Result.Snapshots),
	// not only its layers: a local or tar output.
	NeedRootfs bool

	// Jobs bounds how many steps execute at once (stages still resolve concurrently).
	Jobs     int
	Progress Progress
}

// ContextKind says what a named build context is.
type ContextKind int

const (
	ContextDir       ContextKind = iota // a local directory (COPY --from=NAME)
	ContextOCILayout                    // an image in an OCI layout dir: path[:tag|@digest]
	ContextImage                        // an image reference in a registry
	ContextGit                          // a git repository (COPY --from=NAME): URL#ref:subdir
	ContextURL                          // a file at an http(s) URL, as /context (COPY --from=NAME)
)

// NamedContext is one --build-context value.
type NamedContext struct {
	Kind ContextKind
	Ref  string // the dir, the layout path with its tag/digest, or the image reference
}

// ParseNamedContext parses a --build-context value as buildx and BuildKit's dockerui
// do: oci-layout:///path[:tag|@digest], docker-image://REF, a git repository
// (git@host:repo, git://, ssh://, or http(s)://…/repo.git, with #ref:subdir), any
// other http(s) URL (a file, seen by COPY --from=NAME as /context, not extracted), or
// a local directory.
func ParseNamedContext(value string) (NamedContext, error) {
	switch {
	case strings.HasPrefix(value, "oci-layout://"):
		return NamedContext{Kind: ContextOCILayout, Ref: strings.TrimPrefix(value, "oci-layout://")}, nil
	case strings.HasPrefix(value, "docker-image://"):
		return NamedContext{Kind: ContextImage, Ref: strings.TrimPrefix(value, "docker-image://")}, nil
	}
	if kind, _, err := sourceKind(value); err != nil {
		return NamedContext{}, fmt.Errorf("build context %q: %w", value, err)
	} else if kind == sourceGit {
		return NamedContext{Kind: ContextGit, Ref: value}, nil
	} else if kind == sourceHTTP {
		return NamedContext{Kind: ContextURL, Ref: value}, nil
	}
	if strings.Contains(value, "://") {
		return NamedContext{}, fmt.Errorf("build context %q: only oci-layout://, docker-image://, git repositories, http(s) URLs and local directories are supported", value)
	}
	return NamedContext{Kind: ContextDir, Ref: value}, nil
}

// Result is a built image.
type Result struct {
	Image  v1.Image
	Config *v1.ConfigFile
	// Snapshots are the committed snapshot ids of the final rootfs, lowest first, for
	// outputs that need the flattened filesystem (snapshot.View).
	Snapshots []string
	// Steps are the step entries the build used (hit or made), in the order they
	// were resolved, with the stage of each: what a remote cache export records.
	// Layer transforms of the output ("export:" keys) count as the target stage's.
	Steps []UsedStep
}

// UsedStep is one step entry a build used.
type UsedStep struct {
	Key   string // the entry's key in the Store
	Stage int    // index of the stage (parser.Graph.Stages) that used it
}

// KeyVersion is the version every step key is made with: a remote cache records it,
// and entries of another version are not looked up.
const KeyVersion = opKeyVersion

// Solve builds opts.Graph's target.
func Solve(ctx context.Context, opts Options) (*Result, error) {
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
	b := &build{
		opts:   opts,
		g:      opts.Graph,
		states: make([]*stageState, len(opts.Graph.Stages)),
		sem:    make(chan struct{}, opts.Jobs),
		images: map[string]*imageOnce{},
	}
	for _, i := range b.g.Needed {
		b.states[i] = &stageState{done: make(chan struct{})}
	}

	eg, egctx := errgroup.WithContext(ctx)
	for _, i := range b.g.Needed {
		eg.Go(func() error {
			st := b.states[i]
			defer close(st.done)
			st.err = b.runStage(egctx, b.g.Stages[i])
			return st.err
		})
	}
	if err := eg.Wait(); err != nil {
		return nil, err
	}
	final := b.states[b.g.Target]
	return b.finish(ctx, final)
}

// build is the state of one Solve.
type build struct {
	opts   Options
	g      *parser.Graph
	states []*stageState
	sem    chan struct{} // bounds executing steps

	nextID atomic.Int64

	mu     sync.Mutex
	images map[string]*imageOnce // base images pulled once per build, by ref
	steps  []UsedStep            // entries used, for Result.Steps

	checks buildChecks
}

// imageOnce dedupes concurrent pulls of one ref within a build.
type imageOnce struct {
	once sync.Once
	base *baseImage
	err  error
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

// acquire takes an execution slot; the returned func releases it.
func (b *build) acquire(ctx context.Context) (func(), error) {
	select {
	case b.sem <- struct{}{}:
		return func() { <-b.sem }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
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
func (b *build) namedContext(ref string) (NamedContext, bool) {
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

func (b *build) emit(e Event) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	b.opts.Progress(e)
}
