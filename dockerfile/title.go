package dockerfile

import (
	"fmt"
	"math"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/shell"

	"github.com/kiln-build/kiln/parser"
)

// stepTitle is how progress names an instruction, as BuildKit's front end names its
// vertices: "[stage-0 2/5] RUN make VERSION=1.2": the position padded to the width of
// the stage's count, the instruction's first line with the stage's variables expanded.
// RUN keeps its quotes and escapes and leaves unset variables as written (they are
// the shell's); a secret mounted as an environment variable shows as ****. Other
// instructions are expanded as their arguments are.
func stepTitle(stage string, pos, total int, c parser.Command, env []string, escape rune) string {
	text := displayInstruction(c)
	lex := shell.NewLex(escape)
	vars := shell.EnvsFromSlice(env)
	if run, ok := c.Command.(*instructions.RunCommand); ok {
		lex.RawQuotes, lex.RawEscapes, lex.SkipUnsetEnv = true, true, true
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
	return stepPrefix(stage, pos, total) + text
}

// stepPrefix is "[stage-0 2/5] ", the position padded to the width of total.
func stepPrefix(stage string, pos, total int) string {
	width := int(1 + math.Log10(float64(total)))
	return fmt.Sprintf("[%s %*d/%d] ", stage, width, pos, total)
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
