package dockerfile

import (
	"fmt"
	"sync"

	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/shell"

	"github.com/kiln-build/kiln/parser"
)

// buildChecks runs the build check that needs each step's real environment
// (UndefinedVar: the base image's env is only known once it is resolved), with
// buildkit's linter configured by the check directive, as BuildKit's dispatcher
// does.
type buildChecks struct {
	once sync.Once
	lint *linter.Linter

	mu       sync.Mutex
	findings []parser.Check
}

func (b *build) linter() *linter.Linter {
	c := &b.checks
	c.once.Do(func() {
		c.lint, _ = parser.NewLinter(b.g.CheckDirective, func(ch parser.Check) {
			c.mu.Lock()
			c.findings = append(c.findings, ch)
			c.mu.Unlock()
			if b.opts.Warn != nil {
				b.opts.Warn(fmt.Sprintf("%s:%d: %s: %s", b.opts.Filename, ch.Line, ch.Rule, ch.Message))
			}
		})
	})
	return c.lint
}

// reportUndefined reports the names an instruction's expansion left unmatched that
// no ARG of the stage declares (an ONBUILD trigger's finding is on the FROM line).
func (b *build) reportUndefined(sc *stepCtx, unmatched map[string]struct{}, env shell.EnvGetter) {
	if len(unmatched) == 0 || sc.cmd.Command == nil || len(sc.cmd.Location()) == 0 {
		return
	}
	declared := make([]string, 0, len(sc.st.args))
	for _, a := range sc.st.args {
		declared = append(declared, a.Key)
	}
	lint := b.linter().WithMergedConfigFromComments(sc.cmd.Comments())
	parser.ReportUndefinedVars(sc.cmd.Location(), unmatched, declared, env.Keys(), lint)
}
