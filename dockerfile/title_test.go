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
		{`RUN echo "v=$V" $W $UNSET '$V' \$V`, 3, `[s 2/3] RUN echo "v=1" two $UNSET '$V' \$V`},
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
		if got := stepTitle("s", 2, c.total, cmd, env, '\\'); got != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.line, got, c.want)
		}
	}
}
