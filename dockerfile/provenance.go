package dockerfile

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/util/urlutil"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/image/provenance"
	"github.com/kiln-build/kiln/parser"
	"github.com/kiln-build/kiln/solver"
)

// Result is one platform's image with what its build read and ran, for its
// provenance.
type Result struct {
	*solver.Result
	Sources provenance.Sources
	// ScanContext says the build asks for an SBOM of its context
	// (BUILDKIT_SBOM_SCAN_CONTEXT, or Options.ScanContext).
	ScanContext bool
}

// recorder collects a build's provenance sources as its stages run concurrently.
type recorder struct {
	mu  sync.Mutex
	src provenance.Sources
}

func (r *recorder) add(fn func(s *provenance.Sources)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fn(&r.src)
}

// sources is a copy of what was recorded, steps in the order they ran.
func (r *recorder) sources() provenance.Sources {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.src
	s.Images = slices.Clone(s.Images)
	s.Git = slices.Clone(s.Git)
	s.HTTP = slices.Clone(s.HTTP)
	s.Locals = slices.Clone(s.Locals)
	s.ContextReads = slices.Clone(s.ContextReads)
	s.Secrets = slices.Clone(s.Secrets)
	s.SSH = slices.Clone(s.SSH)
	s.Steps = slices.Clone(s.Steps)
	return s
}

func ociPlatform(p v1.Platform) *ocispecs.Platform {
	return &ocispecs.Platform{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant}
}

// recordBase records a base image (FROM, COPY --from) and its source step.
func (b *build) recordBase(ref string, layout bool, p v1.Platform, base *solver.Base, line int) {
	b.rec.add(func(s *provenance.Sources) {
		s.Images = append(s.Images, provenance.Image{Ref: ref, Platform: *ociPlatform(p), Digest: base.Manifest.String(), Local: layout})
		scheme := "docker-image://"
		if layout {
			scheme = "oci-layout://"
		}
		s.Steps = append(s.Steps, provenance.Step{
			ID: base.State.Key, Source: scheme + ref + "@" + base.Manifest.String(), Platform: ociPlatform(p), Line: line, EndLine: line,
		})
	})
}

// recordStep records a RUN, COPY, ADD or WORKDIR the engine ran or found cached:
// op (its Parent set by the engine) made the state r.
func (b *build) recordStep(sc *stepCtx, op *solver.Op, r solver.StepResult) {
	step := provenance.Step{ID: r.State.Key, Inputs: append([]string{op.Parent}, sc.reads...), Line: sc.cmd.Line, EndLine: sc.cmd.EndLine}
	if op.Platform != "" {
		if p, err := v1.ParsePlatform(op.Platform); err == nil {
			step.Platform = ociPlatform(*p)
		}
	}
	switch {
	case op.Run != nil:
		step.Exec = &provenance.Exec{Args: op.Run.Args, Env: op.Run.Env, Cwd: op.Run.Workdir, User: op.Run.User, Network: op.Run.Network}
	case op.Copy != nil:
		step.Copy = &provenance.Copy{Sources: op.Copy.Sources, Dest: op.Copy.Dest}
	case op.Workdir != nil:
		step.Mkdir = op.Workdir.Path
	}
	network := op.Run != nil && op.Run.Network != "none"
	var secrets, ssh []string
	if op.Run != nil {
		for _, m := range op.Run.Mounts {
			switch m.Type {
			case "secret":
				secrets = append(secrets, m.ID)
			case "ssh":
				ssh = append(ssh, m.ID)
			}
		}
	}
	b.rec.add(func(s *provenance.Sources) {
		s.Steps = append(s.Steps, step)
		s.Network = s.Network || network
		s.Secrets = append(s.Secrets, secrets...)
		s.SSH = append(s.SSH, ssh...)
	})
}

// recordGit records a git repository an ADD checked out, its credentials left out.
func (b *build) recordGit(url, commit string) {
	b.rec.add(func(s *provenance.Sources) {
		s.Git = append(s.Git, provenance.Git{URL: urlutil.RedactCredentials(url), Commit: commit})
	})
}

// recordHTTP records a file an ADD downloaded, by its content's digest.
func (b *build) recordHTTP(url, digest string) {
	b.rec.add(func(s *provenance.Sources) {
		s.HTTP = append(s.HTTP, provenance.HTTP{URL: urlutil.RedactCredentials(url), Digest: digest})
	})
}

// contextSource is the identity of the build context's source step.
const contextSource = "local://context"

// recordContextRead records that a step read content (a selection digest) from
// the build context, and returns the context's source step identity (recorded
// once).
func (b *build) recordContextRead(content string) string {
	b.rec.add(func(s *provenance.Sources) {
		s.ContextReads = append(s.ContextReads, content)
		if !slices.ContainsFunc(s.Steps, func(st provenance.Step) bool { return st.ID == contextSource }) {
			s.Steps = append(s.Steps, provenance.Step{ID: contextSource, Source: contextSource})
		}
	})
	return contextSource
}

// The build args that ask for SBOMs of more than the final image, as BuildKit reads
// them: true, false, or a comma-separated list of stage names.
const (
	sbomScanStageArg   = "BUILDKIT_SBOM_SCAN_STAGE"
	sbomScanContextArg = "BUILDKIT_SBOM_SCAN_CONTEXT"
)

// enabledFor is BuildKit's reading of an SBOM scan arg for stage.
func enabledFor(stage, value string) bool {
	if b, err := strconv.ParseBool(value); err == nil {
		return b
	}
	return slices.Contains(strings.Split(value, ","), stage)
}

// sbomArg is the value of an SBOM scan arg for stage st: its global value (a
// --build-arg or a global ARG's default), the stage's own ARG over it.
func (b *build) sbomArg(name string, s *parser.Stage, st *stageState) (string, bool) {
	v, ok := b.g.BuildArgs[name]
	for _, a := range b.g.GlobalArgs {
		if a.Key == name && a.Value != nil {
			v, ok = *a.Value, true
		}
	}
	for _, kv := range st.args {
		if kv.Key == name && kv.Value != nil {
			v, ok = *kv.Value, true
		}
	}
	return v, ok
}

// scanStage hands a finished stage other than the target to Options.ScanStage
// when BUILDKIT_SBOM_SCAN_STAGE (or Options.ScanAllStages) asks for its SBOM.
func (b *build) scanStage(ctx context.Context, s *parser.Stage, st *stageState) error {
	if b.opts.ScanStage == nil || s.Index == b.g.Target {
		return nil
	}
	name := stageDisplayName(s)
	v, ok := b.sbomArg(sbomScanStageArg, s, st)
	if !(ok && enabledFor(name, v)) && !(b.opts.ScanAllStages && !ok) {
		return nil
	}
	root, release, err := st.eng.View(ctx, st.fs)
	if err != nil {
		return fmt.Errorf("mount stage %s for its SBOM: %w", name, err)
	}
	defer release()
	return b.opts.ScanStage(ctx, b.opts.Platform, name, root)
}

// scanContext says BUILDKIT_SBOM_SCAN_CONTEXT (or Options.ScanContext) asks for
// an SBOM of the build context, as the target stage reads the arg.
func (b *build) scanContext() bool {
	s := b.g.Stages[b.g.Target]
	v, ok := b.sbomArg(sbomScanContextArg, s, b.states[b.g.Target])
	if !ok {
		return b.opts.ScanContext
	}
	return enabledFor(stageDisplayName(s), v)
}
