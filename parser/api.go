package parser

import (
	"fmt"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	bkparser "github.com/moby/buildkit/frontend/dockerfile/parser"
)

// Options are the inputs of Parse besides the Dockerfile text.
type Options struct {
	Filename  string            // for error messages, e.g. "Dockerfile"
	BuildArgs map[string]string // --build-arg values (already resolved from the env for bare K)
	Target    string            // --target stage name; "" means the last stage
	// Platform args: TARGETPLATFORM etc. are derived from these ("linux/amd64" style).
	TargetPlatform string // "" means the host's
	BuildPlatform  string // "" means the host's
	// Check is kiln build --check: the build checks cover every stage, not only
	// those the target needs, and include a static UndefinedVar (a build leaves
	// that check to the solver, which knows each base image's env).
	Check bool
}

// Graph is a parsed Dockerfile: its stages, what the target needs, and the global args.
type Graph struct {
	Stages []*Stage // every stage in file order
	Target int      // index of the target stage
	// Needed lists, in a valid build order (dependencies first), the indices of the
	// stages the target needs, the target last. Stages not listed are never built.
	Needed []int // ascending: file order is a valid build order
	// GlobalArgs are the ARGs declared before the first FROM with their values after
	// applying BuildArgs (nil value: declared without a default and not given).
	GlobalArgs []Arg
	// BuildArgs are Options.BuildArgs on top of the predefined platform args and
	// TARGETSTAGE (see PlatformArgs), kept for the solver's expansion of stage ARGs.
	// Proxy args are here only when given; IsProxyArg tells which pass to RUN
	// without an ARG declaration.
	BuildArgs map[string]string
	// UnusedBuildArgs are --build-arg keys no ARG consumed (BuildKit warns about them).
	UnusedBuildArgs []string
	Warnings        []string
	// EscapeToken is the escape character from the escape directive ('\\' or '`');
	// the solver's shell.NewLex needs it to expand instructions the same way.
	EscapeToken rune
	// Syntax is the frontend named by the syntax directive (or BUILDKIT_SYNTAX),
	// "" if none. Only docker/dockerfile 1.x frontends get this far.
	Syntax string
	// CheckDirective is the value of the "# check=" directive, "" if absent.
	CheckDirective string
	// Checks are the findings of the build checks (BuildKit's linter rules) that
	// parsing can make, in the order found; each is also in Warnings.
	Checks []Check
}

// Arg is one declared ARG.
type Arg struct {
	Key   string
	Value *string
}

// Stage is one FROM and the instructions under it.
type Stage struct {
	Index int
	Name  string // lower-cased AS name, "" if none
	// Base is the FROM argument after expanding the global args: "scratch", an image
	// reference, or the name/index of an earlier stage (then BaseStage >= 0).
	Base      string
	BaseStage int    // index of the stage it builds on, or -1
	Platform  string // FROM --platform expanded and normalised (os/arch[/variant]), "" if none
	Line      int    // line of the FROM
	// Commands are buildkit's parsed instructions, NOT yet expanded: expansion needs
	// the base image's env, so the solver expands each one when it runs it.
	Commands []Command
	// Deps are indices of other stages this one reads from (FROM, COPY --from,
	// RUN --mount from=, and the ONBUILD triggers of a base stage), without
	// duplicates, in first-use order. Every dep is an earlier stage.
	Deps []int
}

// Command is one instruction with where it came from.
type Command struct {
	instructions.Command
	Line     int    // first line in the Dockerfile (1-based)
	EndLine  int    // last line
	Original string // the instruction's text as written, for history and errors

	// node is the instruction's syntax tree, from which Instantiate makes a fresh
	// Command: expansion edits a command in place, and a Graph serves many solves.
	node *bkparser.Node
}

// NewCommand parses one instruction node (an ONBUILD trigger, say) as a Command
// located at line.
func NewCommand(node *bkparser.Node, line int) (Command, error) {
	c, err := instructions.ParseCommand(node)
	if err != nil {
		return Command{}, err
	}
	return Command{Command: c, Line: line, EndLine: line, Original: node.Original, node: node}, nil
}

// Instantiate returns a copy of c whose instruction is parsed afresh from its node,
// for one solve to expand as it likes: the Graph's own stays as parsed. A Command
// made without a node is returned as it is.
func (c Command) Instantiate() (Command, error) {
	if c.node == nil {
		return c, nil
	}
	cmd, err := instructions.ParseCommand(c.node)
	if err != nil {
		return Command{}, fmt.Errorf("line %d: %w", c.Line, err)
	}
	c.Command = cmd
	return c, nil
}
