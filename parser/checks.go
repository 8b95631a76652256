package parser

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	bkparser "github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	"github.com/moby/buildkit/util/suggest"
)

// The build checks BuildKit's Dockerfile frontend runs while converting a
// Dockerfile (dockerfile2llb/validations.go and its dispatchers), run here over the
// parsed stages with buildkit's own linter rules, so the rule names, texts and the
// check directive's skip/error/experimental handling are BuildKit's. What needs a
// base image's config (UndefinedVar against its env, InvalidBaseImagePlatform) is
// left to the solver, which has it; Options.Check adds a static UndefinedVar that
// treats an image's env as unknown (no finding in a stage built on an image).

// Check is one finding of a build check.
type Check struct {
	Rule    string
	Message string
	URL     string
	Line    int
}

// format is the finding as kiln prints it: "FILE:LINE: Rule: message".
func (c Check) format(file string) string {
	return fmt.Sprintf("%s:%d: %s: %s", file, c.Line, c.Rule, c.Message)
}

// NewLinter returns buildkit's linter configured by the check directive, reporting
// each finding to warn. The solver uses it for the checks it runs.
func NewLinter(checkDirective string, warn func(Check)) (*linter.Linter, error) {
	cfg, err := linter.ParseLintOptions(checkDirective)
	if err != nil {
		return linter.New(&linter.Config{}), err
	}
	cfg.ReturnAsError = false
	cfg.Warn = func(rule, _, url, msg string, loc []bkparser.Range) {
		warn(Check{Rule: rule, Message: msg, URL: url, Line: lineOf(loc)})
	}
	return linter.New(cfg), nil
}

// CheckErrors reports whether the check directive says error=true: a build with
// findings fails.
func CheckErrors(checkDirective string) bool {
	cfg, err := linter.ParseLintOptions(checkDirective)
	return err == nil && cfg.ReturnAsError
}

// reservedStageNames are names BuildKit warns about (ReservedStageName).
func reservedStageNames() []string { return []string{"context", "scratch"} }

// secretKey and secretAllow are BuildKit's SecretsUsedInArgOrEnv patterns.
var (
	secretKey   = regexp.MustCompile(`(?i)(?:_|^)(?:apikey|auth|credential|credentials|key|password|pword|passwd|secret|token)(?:_|$)`)
	secretAllow = regexp.MustCompile(`(?i)(?:_|^)(?:public|file|version)(?:_|$)`)
)

// stageCheck is what the checks know about a stage once it is walked: the names
// defined in it (nil when it builds on an image, whose env is unknown here) and
// whether a SHELL is set.
type stageCheck struct {
	env      map[string]bool
	shellSet bool
}

// runChecks runs the checks over the stages the build needs (every stage with
// Options.Check, as buildx --check does).
func (b *graphBuilder) runChecks(raw []*rawStage, env argEnv) {
	lint := b.lint
	if lint == nil {
		return
	}
	b.checkCasing(raw)
	stages := b.g.Needed
	if b.opts.Check {
		stages = nil
		for i := range raw {
			stages = append(stages, i)
		}
	}
	known := make([]*stageCheck, len(raw))
	names := map[string]bool{}
	for i, rs := range raw {
		st := b.g.Stages[i]
		sl := lint.WithMergedConfigFromComments(rs.from.Comments)
		if slices.Contains(reservedStageNames(), rs.from.Name) {
			sl.Run(&linter.RuleReservedStageName, rs.from.Location, linter.RuleReservedStageName.Format(rs.from.Name))
		}
		if n := rs.from.Name; n != "" {
			if names[n] {
				sl.Run(&linter.RuleDuplicateStageName, rs.from.Location, linter.RuleDuplicateStageName.Format(n))
			}
			names[n] = true
		}
		b.checkFrom(rs, env, sl)

		sc := &stageCheck{}
		if st.BaseStage >= 0 && known[st.BaseStage] != nil {
			base := known[st.BaseStage]
			sc.shellSet = base.shellSet
			if base.env != nil {
				sc.env = map[string]bool{}
				for k := range base.env {
					sc.env[k] = true
				}
			}
		} else if st.Base == "scratch" {
			sc.env = map[string]bool{}
		}
		known[i] = sc
		if slices.Contains(stages, i) {
			b.checkCommands(rs, sc)
		}
	}
}

// checkFrom runs the FROM checks: undefined args and constant platforms.
func (b *graphBuilder) checkFrom(rs *rawStage, env argEnv, lint *linter.Linter) {
	from := rs.from
	keys := env.Keys()
	report := func(unmatched map[string]struct{}) {
		for _, arg := range slices.Sorted(mapKeysOf(unmatched)) {
			s, _ := suggest.Search(arg, keys, true)
			lint.Run(&linter.RuleUndefinedArgInFrom, from.Location, linter.RuleUndefinedArgInFrom.Format(arg, s))
		}
	}
	if res, err := b.expand(from.BaseName, env); err == nil {
		report(res.Unmatched)
	}
	if from.Platform == "" {
		return
	}
	res, err := b.expand(from.Platform, env)
	if err != nil {
		return
	}
	report(res.Unmatched)
	if len(res.Matched) == 1 && len(res.Unmatched) == 0 {
		if _, ok := res.Matched["TARGETPLATFORM"]; ok {
			if v, _ := env.Get("TARGETPLATFORM"); v == res.Result {
				lint.Run(&linter.RuleRedundantTargetPlatform, from.Location, linter.RuleRedundantTargetPlatform.Format(from.Platform))
			}
		}
	}
	if len(res.Matched) > 0 || len(res.Unmatched) > 0 {
		return // not a constant
	}
	p, err := ParsePlatform(res.Result)
	if err != nil {
		return
	}
	if strings.Contains(from.Name, p.OS) || strings.Contains(from.Name, p.Architecture) {
		return
	}
	lint.Run(&linter.RuleFromPlatformFlagConstDisallowed, from.Location, linter.RuleFromPlatformFlagConstDisallowed.Format(res.Result))
}

// checkCommands runs the per-instruction checks of one stage.
func (b *graphBuilder) checkCommands(rs *rawStage, sc *stageCheck) {
	lex := shell.NewLex(b.escape)
	var declared []string // ARG keys, defined or not: never "undefined"
	used := map[string][]bkparser.Range{}
	workdirSet := false
	for _, c := range rs.commands {
		lint := b.lint.WithMergedConfigFromComments(c.Comments())
		loc := c.Location()
		if b.opts.Check && sc.env != nil {
			b.staticUndefinedVars(c.Command, lex, sc, declared, lint)
		}
		switch c := c.Command.(type) {
		case *instructions.EnvCommand:
			for _, kv := range c.Env {
				if kv.NoDelim {
					lint.Run(&linter.RuleLegacyKeyValueFormat, loc, linter.RuleLegacyKeyValueFormat.Format(c.Name()))
				}
				checkSecretKey("ENV", kv.Key, loc, lint)
				sc.define(kv.Key)
			}
		case *instructions.LabelCommand:
			for _, kv := range c.Labels {
				if kv.NoDelim {
					lint.Run(&linter.RuleLegacyKeyValueFormat, loc, linter.RuleLegacyKeyValueFormat.Format(c.Name()))
				}
			}
		case *instructions.ArgCommand:
			for _, kv := range c.Args {
				checkSecretKey("ARG", kv.Key, loc, lint)
				declared = append(declared, kv.Key)
				if kv.Value != nil {
					sc.define(kv.Key)
				}
			}
		case *instructions.ShellCommand:
			sc.shellSet = true
		case *instructions.WorkdirCommand:
			if !workdirSet && !strings.HasPrefix(c.Path, "/") && !strings.HasPrefix(c.Path, "$") {
				lint.Run(&linter.RuleWorkdirRelativePath, loc, linter.RuleWorkdirRelativePath.Format(c.Path))
			}
			workdirSet = true
		case *instructions.CmdCommand:
			b.usedOnce(c, used, lint)
			if c.PrependShell && !sc.shellSet {
				lint.Run(&linter.RuleJSONArgsRecommended, loc, linter.RuleJSONArgsRecommended.Format(c.Name()))
			}
		case *instructions.EntrypointCommand:
			b.usedOnce(c, used, lint)
			if c.PrependShell && !sc.shellSet {
				lint.Run(&linter.RuleJSONArgsRecommended, loc, linter.RuleJSONArgsRecommended.Format(c.Name()))
			}
		case *instructions.HealthCheckCommand:
			b.usedOnce(c, used, lint)
		case *instructions.ExposeCommand:
			for _, p := range c.Ports {
				checkExpose(p, loc, lint)
			}
		}
	}
}

func (sc *stageCheck) define(k string) {
	if sc.env != nil {
		sc.env[k] = true
	}
}

// usedOnce is MultipleInstructionsDisallowed: reported at the earlier instruction,
// the one that has no effect.
func (b *graphBuilder) usedOnce(c instructions.Command, used map[string][]bkparser.Range, lint *linter.Linter) {
	if prev, ok := used[c.Name()]; ok {
		lint.Run(&linter.RuleMultipleInstructionsDisallowed, prev, linter.RuleMultipleInstructionsDisallowed.Format(c.Name()))
	}
	used[c.Name()] = c.Location()
}

func checkSecretKey(instruction, key string, loc []bkparser.Range, lint *linter.Linter) {
	if secretKey.MatchString(key) && !secretAllow.MatchString(key) {
		lint.Run(&linter.RuleSecretsUsedInArgOrEnv, loc, linter.RuleSecretsUsedInArgOrEnv.Format(instruction, key))
	}
}

// checkExpose is ExposeProtoCasing and ExposeInvalidFormat (an IP or host port).
func checkExpose(raw string, loc []bkparser.Range, lint *linter.Linter) {
	if strings.Contains(raw, "$") {
		return // its value is known at build time only
	}
	port, proto, _ := strings.Cut(raw, "/")
	if proto != strings.ToLower(proto) {
		lint.Run(&linter.RuleExposeProtoCasing, loc, linter.RuleExposeProtoCasing.Format(raw))
	}
	if strings.Contains(port, ":") {
		lint.Run(&linter.RuleExposeInvalidFormat, loc, linter.RuleExposeInvalidFormat.Format(raw))
	}
}

// checkCasing is ConsistentInstructionCasing: each keyword in one case, and the
// case most keywords of the file use.
func (b *graphBuilder) checkCasing(raw []*rawStage) {
	consistent := func(s string) bool { return s == strings.ToLower(s) || s == strings.ToUpper(s) }
	lower, upper := 0, 0
	count := func(s string) {
		if consistent(s) {
			if s == strings.ToLower(s) {
				lower++
			} else {
				upper++
			}
		}
	}
	for _, rs := range raw {
		count(rs.from.OrigCmd)
		for _, c := range rs.commands {
			count(c.Name())
		}
	}
	isLower := lower > upper
	match := func(name string, loc []bkparser.Range) {
		want := ""
		if isLower && strings.ToLower(name) != name {
			want = "lowercase"
		} else if !isLower && strings.ToUpper(name) != name {
			want = "uppercase"
		}
		if want != "" {
			b.lint.Run(&linter.RuleConsistentInstructionCasing, loc, linter.RuleConsistentInstructionCasing.Format(name, want))
		}
	}
	for _, rs := range raw {
		match(rs.from.OrigCmd, rs.from.Location)
		for _, c := range rs.commands {
			match(c.Name(), c.Location())
		}
	}
}

// staticUndefinedVars is UndefinedVar with the names the Dockerfile defines: it
// expands the command's words without changing them (the expander returns each
// word as it was) and reports names neither defined nor declared by an ARG.
func (b *graphBuilder) staticUndefinedVars(cmd instructions.Command, lex *shell.Lex, sc *stageCheck, declared []string, lint *linter.Linter) {
	env := argEnv{}
	for k := range sc.env {
		env[k] = "x"
	}
	unmatched := map[string]struct{}{}
	collect := func(l *shell.Lex) func(string) (string, error) {
		return func(word string) (string, error) {
			if res, err := l.ProcessWordWithMatches(word, env); err == nil {
				for k := range res.Unmatched {
					unmatched[k] = struct{}{}
				}
			}
			return word, nil
		}
	}
	// Only for warnings: what buildkit's lexer fails on is reported by expand.
	_ = callBuildkit(func() error {
		if _, isArg := cmd.(*instructions.ArgCommand); !isArg {
			if ex, ok := cmd.(instructions.SupportsSingleWordExpansion); ok {
				_ = ex.Expand(collect(lex))
			}
		} else {
			for _, kv := range cmd.(*instructions.ArgCommand).Args {
				if kv.Value != nil {
					_, _ = collect(lex)(*kv.Value)
				}
			}
		}
		if ex, ok := cmd.(instructions.SupportsSingleWordExpansionRaw); ok {
			raw := shell.NewLex('\\')
			raw.SkipProcessQuotes = true
			_ = ex.ExpandRaw(collect(raw))
		}
		return nil
	})
	ReportUndefinedVars(cmd.Location(), unmatched, declared, env.Keys(), lint)
}

// ReportUndefinedVars is BuildKit's reportUnmatchedVariables: each name left
// unexpanded that no ARG of the stage declares is an UndefinedVar, with a
// suggestion from the names that are defined.
func ReportUndefinedVars(loc []bkparser.Range, unmatched map[string]struct{}, declared, defined []string, lint *linter.Linter) {
	for _, k := range slices.Sorted(mapKeysOf(unmatched)) {
		if slices.Contains(declared, k) || k == "BUILDKIT_SBOM_SCAN_CONTEXT" || k == "BUILDKIT_SBOM_SCAN_STAGE" {
			continue
		}
		s, _ := suggest.Search(k, defined, true)
		lint.Run(&linter.RuleUndefinedVar, loc, linter.RuleUndefinedVar.Format(k, s))
	}
}

func mapKeysOf(m map[string]struct{}) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}
