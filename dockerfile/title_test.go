package dockerfile

import (
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"

	"github.com/kiln-build/kiln/parser"
)

// Step titles as BuildKit's front end names its vertices.
func TestStepTitle(t *testing.T) {
	env := []string{"V=1", "W=two", "PATH=/bin"}
	for _, c := range []struct {
		line  string
		total int
		want  string
	}{
		{`RUN echo "v=$V" $W $UNSET '$V' \$V`, 3, `[s 2/3] RUN echo "v=1" two $UNSET '$V' $V`},
		{`RUN --mount=type=secret,id=s,env=TOKEN echo $TOKEN`, 3, `[s 2/3] RUN --mount=type=secret,id=s,env=TOKEN echo ****`},
		{`COPY $W* /x/`, 3, `[s 2/3] COPY two* /x/`},
		{`WORKDIR /a/$W`, 3, `[s 2/3] WORKDIR /a/two`},
		{`RUN true`, 12, `[s  2/12] RUN true`},
		{`RUN echo ${V:?}`, 3, `[s 2/3] RUN echo 1`},
	} {
		g, err := parser.Parse(strings.NewReader("FROM scratch\n"+c.line+"\n"), parser.Options{Filename: "Dockerfile"})
		if err != nil {
			t.Fatalf("%s: %v", c.line, err)
		}
		cmd, err := g.Stages[0].Commands[0].Instantiate()
		if err != nil {
			t.Fatal(err)
		}
		if ex, ok := cmd.Command.(instructions.SupportsSingleWordExpansion); ok {
			_ = ex.Expand(func(w string) (string, error) { return w, nil })
		}
		sc := &stepCtx{stage: &parser.Stage{Name: "s"}, stageTitle: "s", cmd: cmd, index: 2, total: c.total}
		if got := stepTitle(sc, env, '\\'); got != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.line, got, c.want)
		}
	}
}

// Only the instructions that are steps are counted in "[stage N/M]", as BuildKit
// counts them: FROM of an image, RUN, COPY, ADD, WORKDIR.
func TestStepCount(t *testing.T) {
	for _, c := range []struct {
		df           string
		first, total int
	}{
		{"FROM busybox\nARG V\nENV W=1\nRUN a\nLABEL x=y\nCOPY a b\nWORKDIR /w\nCMD x\n", 1, 4},
		{"FROM scratch\nENV W=1\nCOPY a b\n", 0, 1},
		{"FROM busybox AS a\nFROM a\nRUN x\n", 0, 1},
	} {
		g, err := parser.Parse(strings.NewReader(c.df), parser.Options{Filename: "Dockerfile"})
		if err != nil {
			t.Fatal(err)
		}
		s := g.Stages[len(g.Stages)-1]
		if first, total := stepCount(s, s.Commands); first != c.first || total != c.total {
			t.Errorf("%q: stepCount = %d, %d, want %d, %d", c.df, first, total, c.first, c.total)
		}
	}
}
