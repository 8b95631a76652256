package parser

import (
	"fmt"

	"github.com/kiln-build/kiln/internal/panicsite"
)

// callBuildkit runs fn, one call into buildkit's Dockerfile packages (parser,
// instructions, shell). They are not written for hostile input, so a panic raised in
// them becomes an error and one bad Dockerfile fails its build instead of crashing
// kiln. A panic raised anywhere else, kiln's own code included (a callback buildkit
// calls), is a bug and is re-raised, so FuzzParse and the tests see it.
func callBuildkit(fn func() error) (err error) {
	defer func() {
		p := recover()
		if p == nil {
			return
		}
		if !panicsite.In("github.com/moby/buildkit") {
			panic(p)
		}
		err = fmt.Errorf("internal error in buildkit's Dockerfile parser: %v", p)
	}()
	return fn()
}
