package dockerfile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/containerd/platforms"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	dfparser "github.com/moby/buildkit/frontend/dockerfile/parser"
	specs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/image"
	"github.com/kiln-build/kiln/parser"
	"github.com/kiln-build/kiln/solver"
	"github.com/kiln-build/kiln/source"
)

// defaultPath is the PATH an image without one gets, as in BuildKit (system.DefaultPathEnv).
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// stageState is a stage as it is being built, and once done, its result.
type stageState struct {
	done chan struct{}
	err  error

	cfg *v1.ConfigFile
	// cfgExtras are the members of the config that cfg cannot hold, inherited
	// with it (HEALTHCHECK --start-interval).
	cfgExtras image.ConfigExtras
	// platform is the stage's: FROM --platform, else its base stage's, else the
	// target's. eng is the engine for it: every op of the stage is of that platform.
	platform v1.Platform
	eng      *solver.Engine
	// fs is the stage's filesystem as the engine built it so far: layers, key (the
	// parent of the next op; metadata steps do not change it) and the time of the
	// last filesystem step, stamped on history entries of metadata steps so a fully
	// cached rebuild gives the same image digest.
	fs solver.State
	// env is what the expansion and RUN see: the image's Env plus ARG values, in order
	// of definition (BuildKit's llb state env). ARG values never reach cfg.
	env []string
	// args are the ARGs declared so far (history "RUN |N K=V ..." needs them).
	args []instructions.KeyValuePairOptional
	// cmdSet records a CMD in this stage: ENTRYPOINT resets an inherited CMD only.
	cmdSet bool
	// triggers are ONBUILD expressions recorded in this stage, run by child stages.
	triggers []string
}

// stepCtx is one instruction being dispatched.
type stepCtx struct {
	stage *parser.Stage
	st    *stageState
	cmd   parser.Command
	id    int    // progress step number
	name  string // "[stage 2/5] RUN make"
	pos   int    // position in the stage (1 is FROM)
	// index and total number the stage's steps in titles, as BuildKit's: only the
	// instructions that are steps (FROM of an image, RUN, COPY, ADD, WORKDIR) count.
	index, total int
	onbuild      bool             // an ONBUILD trigger of the base
	stageTitle   string           // the stage in titles: its name, stage-N, "" in a one-stage file
	rest         []parser.Command // the stage's commands after this one
	// reads are the identities of the sources the step reads besides its parent
	// (the build context), for the provenance.
	reads []string
}

// errorf is an error of the step's Dockerfile line. format may wrap a cause with
// %w: errors.Is and errors.As reach it through the *parser.Error.
func (sc *stepCtx) errorf(file string, format string, args ...any) error {
	cause := fmt.Errorf(format, args...)
	return &parser.Error{File: file, Line: sc.cmd.Line,
		Msg: cause.Error(), Src: firstLine(sc.cmd.Original), Err: errors.Unwrap(cause)}
}

// atLine gives err the step's line unless it has one (an error made by errorf) or
// the build was cancelled: the one place errors of a step are wrapped with it.
func (b *build) atLine(ctx context.Context, sc *stepCtx, err error) error {
	var pe *parser.Error
	if err == nil || ctx.Err() != nil || errors.As(err, &pe) {
		return err
	}
	return sc.errorf(b.opts.Filename, "%w", err)
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

func (b *build) runStage(ctx context.Context, s *parser.Stage) error {
	st := b.states[s.Index]
	triggers, err := b.initStage(ctx, s, st)
	if err != nil {
		return err
	}
	cmds := append(triggers, s.Commands...)
	index, total := stepCount(s, cmds)
	for i, parsed := range cmds {
		// The solve expands its own copy of each instruction: the Graph stays as
		// parsed, for the next solve of it.
		c, err := parsed.Instantiate()
		if err != nil {
			return &parser.Error{File: b.opts.Filename, Line: parsed.Line, Msg: err.Error(), Err: err}
		}
		if isStep(c) {
			index++
		}
		sc := &stepCtx{stage: s, st: st, cmd: c, pos: i + 2, index: index, total: total, onbuild: i < len(triggers),
			stageTitle: b.stageTitle(st, s), rest: cmds[i+1:]}
		sc.name = stepTitle(sc, st.env, b.g.EscapeToken)
		if err := b.dispatch(ctx, sc); err != nil {
			return b.atLine(ctx, sc, err)
		}
	}
	return b.scanStage(ctx, s, st)
}

// stageTitle is how step titles name stage s: as stageDisplayName, except that a
// Dockerfile of one stage names none ("[2/3] RUN make"), as BuildKit's titles; in a
// multi-platform build after the stage's platform, as BuildKit's "[linux/arm64 build
// 2/3] RUN make".
func (b *build) stageTitle(st *stageState, s *parser.Stage) string {
	name := stageDisplayName(s)
	if len(b.g.Stages) == 1 {
		name = ""
	}
	if !b.opts.multiPlatform {
		return name
	}
	p := platforms.FormatAll(specs.Platform{OS: st.platform.OS, Architecture: st.platform.Architecture, Variant: st.platform.Variant})
	if name == "" {
		return p
	}
	return p + " " + name
}

func stageDisplayName(s *parser.Stage) string {
	if s.Name != "" {
		return s.Name
	}
	return fmt.Sprintf("stage-%d", s.Index)
}

// displayInstruction is the instruction as progress shows it: its first line, with a
// heredoc summarised.
func displayInstruction(c parser.Command) string {
	return strings.TrimSpace(firstLine(c.Original))
}

// initStage gives st the stage's base: scratch, an image, or an earlier stage. It
// returns the ONBUILD triggers to run before the stage's own commands.
func (b *build) initStage(ctx context.Context, s *parser.Stage, st *stageState) ([]parser.Command, error) {
	var parent *stageState
	st.platform = b.opts.Platform
	if s.BaseStage >= 0 {
		var err error
		if parent, err = b.wait(ctx, s.BaseStage); err != nil {
			return nil, err
		}
		st.platform = parent.platform
	} else if s.Platform != "" {
		p, err := parser.ParsePlatform(s.Platform)
		if err != nil {
			return nil, &parser.Error{File: b.opts.Filename, Line: s.Line, Msg: fmt.Sprintf("FROM --platform=%s: %v", s.Platform, err), Err: err}
		}
		st.platform = p
	}
	st.eng = b.eng.ForPlatform(st.platform)
	id := b.eng.NextID()
	_, total := stepCount(s, s.Commands)
	name := stepPrefix(b.stageTitle(st, s), 1, total) + "FROM " + s.Base
	// A stage several platforms' solves share (pinned to $BUILDPLATFORM) shows its
	// FROM once; its ops are merged by the engine.
	report := b.eng.FirstReport("from\x00" + name)
	emit := func(e solver.Event) {
		if report {
			b.emit(e)
		}
	}
	start := time.Now()
	var triggerExprs []string
	switch {
	case parent != nil:
		st.cfg = cloneConfig(parent.cfg)
		st.cfgExtras = parent.cfgExtras
		st.cfg.Config.OnBuild = nil
		st.fs = parent.fs // a value: ops return new states
		st.env = append([]string(nil), parent.env...)
		st.args = append([]instructions.KeyValuePairOptional(nil), parent.args...)
		triggerExprs = parent.triggers
		emit(solver.Event{Kind: solver.StepDone, ID: id, Name: name, Duration: time.Since(start)})
	case strings.EqualFold(s.Base, "scratch"):
		st.cfg = &v1.ConfigFile{
			OS:           st.platform.OS,
			Architecture: st.platform.Architecture,
			Variant:      st.platform.Variant,
			RootFS:       v1.RootFS{Type: "layers"},
			Config:       v1.Config{WorkingDir: "/", Env: []string{"PATH=" + defaultPath}},
		}
		st.fs = st.eng.Scratch()
	default:
		emit(solver.Event{Kind: solver.StepStarted, ID: id, Name: name, Time: start})
		base, err := b.baseImage(ctx, st.eng, s.Base, "", s.Line, b.firstRun(s), func(msg string) {
			emit(solver.Event{Kind: solver.StepInfo, ID: id, Name: name, Message: msg})
		})
		if err != nil {
			emit(solver.Event{Kind: solver.StepFailed, ID: id, Name: name, Message: err.Error(), Canceled: ctx.Err() != nil})
			return nil, &parser.Error{File: b.opts.Filename, Line: s.Line, Msg: err.Error(), Err: err}
		}
		st.cfg = cloneConfig(base.Config)
		st.cfgExtras = base.ConfigExtras
		st.fs = base.State
		triggerExprs = st.cfg.Config.OnBuild
		st.cfg.Config.OnBuild = nil
		emit(solver.Event{Kind: solver.StepDone, ID: id, Name: name, Duration: time.Since(start)})
	}
	// An image without PATH gets the default one, in its config too (as BuildKit does).
	if _, ok := lookupEnv(st.cfg.Config.Env, "PATH"); !ok {
		st.cfg.Config.Env = append(st.cfg.Config.Env, "PATH="+defaultPath)
	}
	for _, kv := range st.cfg.Config.Env {
		k, v, _ := strings.Cut(kv, "=")
		st.env = setEnv(st.env, k, v)
	}
	return b.parseTriggers(s, triggerExprs)
}

// parseTriggers turns ONBUILD expressions into commands located at the stage's FROM line.
func (b *build) parseTriggers(s *parser.Stage, exprs []string) ([]parser.Command, error) {
	var out []parser.Command
	for _, expr := range exprs {
		res, err := dfparser.Parse(strings.NewReader(expr))
		if err != nil || len(res.AST.Children) != 1 {
			return nil, &parser.Error{File: b.opts.Filename, Line: s.Line,
				Msg: fmt.Sprintf("invalid ONBUILD trigger %q inherited by this stage", expr)}
		}
		node := res.AST.Children[0]
		node.StartLine, node.EndLine = s.Line, s.Line
		c, err := parser.NewCommand(node, s.Line)
		if err != nil {
			return nil, &parser.Error{File: b.opts.Filename, Line: s.Line,
				Msg: fmt.Sprintf("ONBUILD trigger %q: %v", expr, err), Err: err}
		}
		c.Original = expr
		out = append(out, c)
	}
	return out, nil
}

// cloneConfig deep-copies a config through JSON: configs are small and this keeps
// stages from sharing maps and slices.
func cloneConfig(c *v1.ConfigFile) *v1.ConfigFile {
	data, err := json.Marshal(c)
	if err != nil {
		panic(fmt.Sprintf("marshal image config: %v", err)) // a ConfigFile always marshals
	}
	var out v1.ConfigFile
	if err := json.Unmarshal(data, &out); err != nil {
		panic(fmt.Sprintf("unmarshal image config: %v", err))
	}
	return &out
}

// digestOf hashes its parts, separated so that ("ab","c") and ("a","bc") differ.
func digestOf(parts ...string) string { return source.DigestOf(parts...) }

// scope names a step's position across builds (same context, Dockerfile, stage and
// step), under which the engine keeps its last op to explain a later miss.
func (b *build) scope(sc *stepCtx) string {
	dir := ""
	if b.opts.Context != nil {
		dir = b.opts.Context.Dir
	}
	return digestOf("scope", dir, b.opts.Filename, sc.stage.Name, fmt.Sprint(sc.stage.Index), fmt.Sprint(sc.pos))
}

// step is the engine's Step of sc's op: its progress name, position, whether the
// cache applies, and errors given the instruction's line.
func (b *build) step(ctx context.Context, sc *stepCtx, op *solver.Op, files func() []solver.FileDigest) solver.Step {
	sc.id = b.eng.NextID()
	return solver.Step{
		Op: op, ID: sc.id, Name: sc.name, Display: displayInstruction(sc.cmd),
		Scope: b.scope(sc), Files: files, NoCache: b.noCacheFor(sc.stage), Group: sc.stage.Index,
		Annotate: func(err error) error { return b.atLine(ctx, sc, err) },
	}
}

// apply records what an op did in the stage: its state, and in the config its
// layer's diff ID and a history entry.
func (b *build) apply(st *stageState, r solver.StepResult, createdBy string) {
	st.fs = r.State
	h := v1.History{Created: v1.Time{Time: st.fs.Created}, CreatedBy: createdBy, Comment: historyComment}
	if r.DiffID == nil {
		h.EmptyLayer = true
	} else {
		st.cfg.RootFS.DiffIDs = append(st.cfg.RootFS.DiffIDs, *r.DiffID)
	}
	st.cfg.History = append(st.cfg.History, h)
}

// fsStep hands an op's result to the stage (apply), or its error back.
func (b *build) fsStep(sc *stepCtx, op *solver.Op, st *stageState, createdBy string, r solver.StepResult, err error) error {
	if err != nil {
		return err
	}
	b.recordStep(sc, op, r)
	b.apply(st, r, createdBy)
	return nil
}

// epochOr is t, or SOURCE_DATE_EPOCH when set.
func (b *build) epochOr(t time.Time) time.Time {
	if b.opts.SourceDateEpoch != nil {
		return *b.opts.SourceDateEpoch
	}
	return t
}

// lookupEnv finds key in a KEY=VALUE list (the last definition wins).
func lookupEnv(env []string, key string) (string, bool) {
	for i := len(env) - 1; i >= 0; i-- {
		k, v, _ := strings.Cut(env[i], "=")
		if k == key {
			return v, true
		}
	}
	return "", false
}

// setEnv sets key in a KEY=VALUE list in place, keeping its position if present.
func setEnv(env []string, key, value string) []string {
	for i, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); k == key {
			env[i] = key + "=" + value
			return env
		}
	}
	return append(env, key+"="+value)
}
