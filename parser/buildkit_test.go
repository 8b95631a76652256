package parser

import (
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// panics reports whether fn panicked (and the error it returned otherwise).
func panics(fn func() error) (panicked bool, err error) {
	defer func() {
		if recover() != nil {
			panicked = true
		}
	}()
	return false, fn()
}

// Parse used to recover every panic of the parse and return it as an *Error, which hid
// kiln's own bugs from FuzzParse and the tests (none is known, so a body that panics as
// one would stands in). Only panics raised inside buildkit's packages become errors now.
func TestParseDoesNotHidePanics(t *testing.T) {
	kilnBug := func([]byte, *source, Options) (*Graph, error) {
		var byName map[string]int
		byName["x"] = 1 // assignment to a nil map
		return nil, nil
	}
	panicked, err := panics(func() error {
		_, err := parseFile(strings.NewReader("FROM scratch\n"), Options{}, kilnBug)
		return err
	})
	if !panicked {
		t.Fatalf("a panic in kiln's code became an error: %v", err)
	}
}

// panickingEnv is a kiln callback that buildkit's lexer calls.
type panickingEnv struct{}

func (panickingEnv) Get(string) (string, bool) { panic("a bug in a callback") }
func (panickingEnv) Keys() []string            { return nil }

func TestCallBuildkit(t *testing.T) {
	// buildkit dereferences the nil node: its panic, turned into an error.
	panicked, err := panics(func() error {
		return callBuildkit(func() error {
			_, err := instructions.ParseInstructionWithLinter(nil, nil)
			return err
		})
	})
	if panicked || err == nil || !strings.Contains(err.Error(), "internal error in buildkit's Dockerfile parser") {
		t.Errorf("a panic in buildkit: panicked %v, err %v; want an error", panicked, err)
	}
	// kiln's own code under callBuildkit, directly or called back by buildkit.
	for name, fn := range map[string]func() error{
		"kiln code": func() error { var m map[string]int; m["x"] = 1; return nil },
		"kiln callback": func() error {
			_, err := shell.NewLex('\\').ProcessWordWithMatches("$X", panickingEnv{})
			return err
		},
	} {
		if panicked, err := panics(func() error { return callBuildkit(fn) }); !panicked {
			t.Errorf("%s: a panic outside buildkit became an error: %v", name, err)
		}
	}
}
