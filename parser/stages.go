package parser

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	bkparser "github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// graphBuilder resolves collected stages into a Graph: expanded bases and
// platforms, names, dependencies, the target and what it needs.
type graphBuilder struct {
	src    *source
	opts   Options
	g      *Graph
	escape rune
	lex    *shell.Lex
	lint   *linter.Linter // the build checks, configured by the check directive
	raw    []*rawStage
	byName map[string]int // lower-cased stage name → index
	// deferred holds, per stage, the first error that matters only if the stage
	// is built: like BuildKit, a broken stage the target does not need is no error.
	deferred map[int]error
}

// deferErr keeps err for stage i unless it already has one.
func (b *graphBuilder) deferErr(i int, err error) {
	if b.deferred == nil {
		b.deferred = map[int]error{}
	}
	if _, ok := b.deferred[i]; !ok {
		b.deferred[i] = err
	}
}

func (b *graphBuilder) build(raw []*rawStage, metaArgs []*instructions.ArgCommand) error {
	b.lex = shell.NewLex(b.escape)
	b.raw = raw
	env, err := b.globalEnv(metaArgs)
	if err != nil {
		return err
	}
	b.g.BuildArgs = b.buildArgs()

	// A name two stages have is the later one's wherever the whole file is read
	// (--from, mounts, --target), as in BuildKit, which warns (DuplicateStageName,
	// runChecks); a FROM builds on the latest earlier stage of that name.
	b.byName = map[string]int{}
	for i, rs := range raw {
		if name := rs.from.Name; name != "" { // buildkit lower-cases and validates it
			b.byName[name] = i
		}
	}

	for i, rs := range raw {
		st, err := b.stage(i, rs, env)
		if err != nil {
			return err
		}
		b.g.Stages = append(b.g.Stages, st)
	}
	for i, st := range b.g.Stages {
		for _, c := range st.Commands {
			if err := b.commandDeps(st, c.Command, c.Line); err != nil {
				return err
			}
		}
		if err := b.onbuildDeps(i); err != nil {
			return err
		}
	}

	if err := b.selectTarget(); err != nil {
		return err
	}
	for _, i := range b.g.Needed {
		if err := b.deferred[i]; err != nil {
			return err
		}
	}
	b.g.UnusedBuildArgs = b.unusedBuildArgs(raw)
	b.runChecks(raw, env)
	return nil
}

// stage expands a FROM line with the global args and finds the stage it builds on.
func (b *graphBuilder) stage(i int, rs *rawStage, env argEnv) (*Stage, error) {
	from := rs.from
	st := &Stage{Index: i, Name: from.Name, BaseStage: -1, Line: rs.line, Commands: rs.commands}

	res, err := b.expand(from.BaseName, env)
	if err != nil {
		return nil, b.src.wrap(err, rs.line)
	}
	if res.Result == "" {
		return nil, b.src.errorf(rs.line, "base name (%s) should not be blank: declare its ARGs before the first FROM or pass them with --build-arg", from.BaseName)
	}
	st.Base = res.Result

	// Like BuildKit, only an earlier stage's exact name counts: `FROM alpine AS
	// alpine` builds on the image, and so does a name only a later stage has.
	if j, ok := b.stageBefore(st.Base, i); ok {
		st.BaseStage = j
	} else if j, ok := b.byName[st.Base]; ok {
		if j > i {
			b.g.Warnings = append(b.g.Warnings, fmt.Sprintf(
				"%s:%d: FROM %s names the stage defined on line %d, after this one; it is pulled as an image instead (stages can only build on earlier stages)",
				b.src.file, rs.line, st.Base, b.raw[j].line))
		}
	} else if n, ok := stageIndex(st.Base); ok {
		if n >= i {
			return nil, b.src.errorf(rs.line, "FROM %s: stage index %d is not an earlier stage (this is stage %d)", st.Base, n, i)
		}
		st.BaseStage = n
	}
	if st.BaseStage >= 0 {
		st.Deps = append(st.Deps, st.BaseStage)
	}

	if from.Platform != "" {
		res, err := b.expand(from.Platform, env)
		if err != nil {
			return nil, b.src.wrap(fmt.Errorf("failed to process arguments for platform %s: %w", from.Platform, err), rs.line)
		}
		if res.Result == "" {
			return nil, b.src.errorf(rs.line, "empty platform value from expression %s", from.Platform)
		}
		p, err := ParsePlatform(res.Result)
		if err != nil {
			return nil, b.src.wrap(fmt.Errorf("failed to parse platform %s: %w", from.Platform, err), rs.line)
		}
		st.Platform = p.String()
	}
	return st, nil
}

// expand expands word with buildkit's lexer. Invalid UTF-8 is refused first:
// the lexer's text/scanner would print a complaint to stderr and carry on.
func (b *graphBuilder) expand(word string, env argEnv) (shell.ProcessWordResult, error) {
	if !utf8.ValidString(word) {
		return shell.ProcessWordResult{}, fmt.Errorf("invalid UTF-8 in %q", word)
	}
	var res shell.ProcessWordResult
	err := callBuildkit(func() (err error) {
		res, err = b.lex.ProcessWordWithMatches(word, env)
		return err
	})
	return res, err
}

// stageIndex reports whether s is a plain decimal stage index.
func stageIndex(s string) (int, bool) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	return n, err == nil
}

// commandDeps adds the stages cmd reads from to st.Deps: COPY --from (a name or
// an index) and RUN --mount from= (a name). A value naming no stage is an image,
// which the solver pulls.
func (b *graphBuilder) commandDeps(st *Stage, cmd instructions.Command, line int) error {
	switch c := cmd.(type) {
	case *instructions.CopyCommand:
		if c.From == "" {
			return nil
		}
		// BuildKit resolves --from before any ARG is known, so it refuses variables.
		res, err := b.expand(c.From, argEnv{})
		if err != nil || res.Result != c.From {
			return b.src.errorf(line, "COPY --from=%s: variable expansion is not supported for --from, define a new stage with FROM using ARG from global scope as a workaround", c.From)
		}
		if n, ok := stageIndex(c.From); ok {
			if n >= len(b.raw) {
				return b.src.errorf(line, "COPY --from=%s: invalid stage index %d (the Dockerfile has %d stages)", c.From, n, len(b.raw))
			}
			return b.addDep(st, n, "COPY --from="+c.From, line)
		}
		if j, ok := b.byName[strings.ToLower(c.From)]; ok {
			return b.addDep(st, j, "COPY --from="+c.From, line)
		}
	case *instructions.RunCommand:
		for _, m := range instructions.GetMounts(c) {
			if m.From == "" {
				continue
			}
			if j, ok := b.byName[strings.ToLower(m.From)]; ok {
				if err := b.addDep(st, j, "RUN --mount from="+m.From, line); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// stageBefore is the latest stage before stage i named name: what a FROM of stage i
// builds on (BuildKit resolves a FROM against the stages added so far).
func (b *graphBuilder) stageBefore(name string, i int) (int, bool) {
	for j := i - 1; j >= 0; j-- {
		if b.raw[j].from.Name == name {
			return j, true
		}
	}
	return 0, false
}

// addDep records that st reads stage j, which must come before it: stages build
// in file order, so a later stage (or st itself) cannot be read yet. That error
// is deferred until st turns out to be needed.
func (b *graphBuilder) addDep(st *Stage, j int, what string, line int) error {
	if j >= st.Index {
		rel := "is defined after it"
		if j == st.Index {
			rel = "is the current stage"
		}
		b.deferErr(st.Index, b.src.errorf(line, "%s: cannot read stage %s, it %s; a stage can only read stages defined before it", what, stageLabel(b.raw, j), rel))
		return nil
	}
	if !slices.Contains(st.Deps, j) {
		st.Deps = append(st.Deps, j)
	}
	return nil
}

func stageLabel(raw []*rawStage, j int) string {
	if n := raw[j].from.Name; n != "" {
		return strconv.Quote(n)
	}
	return strconv.Itoa(j)
}

// onbuildDeps adds the dependencies of the ONBUILD triggers a stage inherits from
// its base stage: BuildKit runs those triggers in the child, so an
// `ONBUILD COPY --from=x` makes the child read x. Only the direct base's own
// triggers fire, as in BuildKit.
func (b *graphBuilder) onbuildDeps(i int) error {
	st := b.g.Stages[i]
	if st.BaseStage < 0 {
		return nil
	}
	for _, c := range b.g.Stages[st.BaseStage].Commands {
		ob, ok := c.Command.(*instructions.OnbuildCommand)
		if !ok {
			continue
		}
		var res *bkparser.Result
		err := callBuildkit(func() (err error) {
			res, err = bkparser.Parse(strings.NewReader(ob.Expression))
			return err
		})
		if err != nil {
			b.deferErr(i, b.src.errorf(st.Line, "ONBUILD trigger from line %d: %v", c.Line, cleanMessage(err)))
			return nil
		}
		for _, node := range res.AST.Children {
			var cmd instructions.Command
			err := callBuildkit(func() (err error) {
				cmd, err = instructions.ParseCommand(node)
				return err
			})
			if err != nil {
				b.deferErr(i, b.src.errorf(st.Line, "ONBUILD trigger from line %d: %v", c.Line, cleanMessage(err)))
				return nil
			}
			if err := b.commandDeps(st, cmd, st.Line); err != nil {
				return err
			}
		}
	}
	return nil
}
