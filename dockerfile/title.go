package dockerfile

import (
	"fmt"
	"math"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/shell"

	"github.com/kiln-build/kiln/parser"
)

// stepTitle is how progress names an instruction, as BuildKit's front end names its
// vertices: "[stage-0 2/5] RUN make VERSION=1.2": the position padded to the width of
// the stage's count, the instruction's first line with the stage's variables expanded.
// RUN keeps its quotes and leaves unset variables as written (they are the shell's),
// as the reference BuildKit v0.32 does (v0.34 also keeps escapes); a secret mounted
// as an environment variable shows as ****. Other instructions are expanded as their
// arguments are.
func stepTitle(sc *stepCtx, env []string, escape rune) string {
	c := sc.cmd
	text := displayInstruction(c)
	lex := shell.NewLex(escape)
	vars := shell.EnvsFromSlice(env)
	if run, ok := c.Command.(*instructions.RunCommand); ok {
		lex.RawQuotes, lex.SkipUnsetEnv = true, true
		vars = shell.EnvsFromSlice(maskSecretEnv(run, env))
	}
	switch c.Command.(type) {
	case *instructions.RunCommand, *instructions.CopyCommand, *instructions.AddCommand, *instructions.WorkdirCommand:
		// An expansion error (a bad ${x:?}) is the instruction's to report when it
		// runs; the title stays as written.
		if w, _, err := lex.ProcessWord(text, vars); err == nil {
			text = w
		}
	}
	if sc.onbuild {
		text = "ONBUILD " + text
	}
	return stepPrefix(sc.stageTitle, sc.index, sc.total) + text
}

// isStep says whether an instruction is a step of its own in progress (the others
// change only the image config).
func isStep(c parser.Command) bool {
	switch c.Command.(type) {
	case *instructions.RunCommand, *instructions.CopyCommand, *instructions.AddCommand, *instructions.WorkdirCommand:
		return true
	}
	return false
}

// stepCount is the number of the stage's first step after FROM (1 when FROM is an
// image, which is a step, else 0) and how many steps cmds make with it.
func stepCount(s *parser.Stage, cmds []parser.Command) (first, total int) {
	if s.BaseStage < 0 && !strings.EqualFold(s.Base, "scratch") {
		first = 1
	}
	total = first
	for _, c := range cmds {
		if isStep(c) {
			total++
		}
	}
	return first, total
}

// stepPrefix is "[stage-0 2/5] " ("[2/5] " without a stage), the position padded to
// the width of total.
func stepPrefix(stage string, pos, total int) string {
	if total <= 0 {
		return ""
	}
	if stage != "" {
		stage += " "
	}
	width := int(1 + math.Log10(float64(total)))
	return fmt.Sprintf("[%s%*d/%d] ", stage, width, pos, total)
}

// maskSecretEnv is env with every variable a secret mount of run sets replaced by ****.
func maskSecretEnv(run *instructions.RunCommand, env []string) []string {
	out := env
	for _, m := range instructions.GetMounts(run) {
		if m.Type == instructions.MountTypeSecret && m.Env != nil {
			out = setEnv(append([]string(nil), out...), *m.Env, "****")
		}
	}
	return out
}
