package parser

import (
	"bytes"
	"fmt"
	"io"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	bkparser "github.com/moby/buildkit/frontend/dockerfile/parser"
)

// Parse reads a Dockerfile and builds its Graph. It honours the escape and syntax
// directives (docker/dockerfile 1.x frontends are built natively; others refused).
// Every error it returns is an *Error naming the file and, where there is one,
// the line.
//
// Panics are not recovered here: only those raised inside buildkit's packages become
// errors (callBuildkit), so a bug in kiln's own code still crashes FuzzParse and the
// tests instead of reading as a parse error.
func Parse(r io.Reader, opts Options) (*Graph, error) {
	return parseFile(r, opts, parse)
}

// parseFile reads the Dockerfile and hands it to body (parse; a test passes another).
func parseFile(r io.Reader, opts Options, body func(dt []byte, src *source, opts Options) (*Graph, error)) (*Graph, error) {
	file := opts.Filename
	if file == "" {
		file = "Dockerfile"
	}
	dt, err := io.ReadAll(r)
	if err != nil {
		return nil, &Error{File: file, Msg: fmt.Sprintf("read: %v", err), Err: err}
	}
	return body(dt, newSource(file, dt), opts)
}

func parse(dt []byte, src *source, opts Options) (*Graph, error) {
	for _, p := range []struct{ flag, v string }{{"target platform", opts.TargetPlatform}, {"build platform", opts.BuildPlatform}} {
		if _, err := ParsePlatform(p.v); err != nil {
			return nil, &Error{File: src.file, Msg: fmt.Sprintf("%s: %v", p.flag, err), Err: err}
		}
	}

	// A NUL byte means a binary file, not a Dockerfile; refusing it here also keeps
	// buildkit's lexer from printing scanner errors to stderr.
	if i := bytes.IndexByte(dt, 0); i >= 0 {
		n := bytes.Count(dt[:i], []byte("\n")) + 1
		return nil, src.errorf(n, "invalid character NUL: is this a binary file rather than a Dockerfile?")
	}

	dirs, err := readDirectives(dt, opts.BuildArgs, src)
	if err != nil {
		return nil, err
	}
	if dirs.syntax != "" {
		if err := checkSyntax(dirs.syntax); err != nil {
			e := src.wrap(err, dirs.syntaxLine)
			return nil, e
		}
	}

	g := &Graph{Syntax: dirs.syntax, CheckDirective: dirs.check}
	var res *bkparser.Result
	err = callBuildkit(func() (err error) {
		res, err = bkparser.Parse(bytes.NewReader(dt))
		return err
	})
	if err != nil {
		e := src.wrap(err, 0)
		if e.Msg == "file with no instructions" {
			e.Msg = "the Dockerfile has no instructions (file with no instructions)"
			e.Line, e.Src = 0, ""
		}
		return nil, e
	}
	g.EscapeToken = res.EscapeToken
	for _, w := range res.Warnings {
		line := 0
		if w.Location != nil {
			line = w.Location.Start.Line
		}
		g.Warnings = append(g.Warnings, fmt.Sprintf("%s:%d: %s", src.file, line, w.Short))
	}

	lint := newLinter(dirs.check, src, g)
	stages, metaArgs, err := collect(res.AST, src, lint)
	if err != nil {
		return nil, err
	}

	b := &graphBuilder{src: src, opts: opts, g: g, escape: res.EscapeToken, lint: lint}
	if err := b.build(stages, metaArgs); err != nil {
		return nil, err
	}
	return g, nil
}

// newLinter runs buildkit's inline checks (the ones it runs while parsing) and
// records what they report as warnings. The check directive configures it the way
// it configures BuildKit; a linter is needed even when nothing is reported, since
// buildkit dereferences it when an instruction carries a "# check=" comment.
func newLinter(check string, src *source, g *Graph) *linter.Linter {
	lint, err := NewLinter(check, func(c Check) {
		g.Checks = append(g.Checks, c)
		g.Warnings = append(g.Warnings, c.format(src.file))
	})
	if err != nil {
		g.Warnings = append(g.Warnings, fmt.Sprintf("%s: ignoring check directive: %v", src.file, err))
	}
	return lint
}

// rawStage is a FROM with its commands, before names and args are resolved.
type rawStage struct {
	from     *instructions.Stage
	line     int
	commands []Command
}

// collect turns the AST into stages of typed commands, one node at a time so
// each command keeps the node's lines and original text.
func collect(ast *bkparser.Node, src *source, lint *linter.Linter) ([]*rawStage, []*instructions.ArgCommand, error) {
	var stages []*rawStage
	var metaArgs []*instructions.ArgCommand
	for _, node := range ast.Children {
		var v any
		err := callBuildkit(func() (err error) {
			v, err = instructions.ParseInstructionWithLinter(node, lint)
			return err
		})
		if err != nil {
			return nil, nil, src.wrap(err, node.StartLine)
		}
		switch c := v.(type) {
		case *instructions.Stage:
			stages = append(stages, &rawStage{from: c, line: node.StartLine})
		case instructions.Command:
			if len(stages) == 0 {
				if a, ok := c.(*instructions.ArgCommand); ok {
					metaArgs = append(metaArgs, a)
					continue
				}
				return nil, nil, src.errorf(node.StartLine,
					"no build stage in current context: %s must come after a FROM (only ARG may precede the first FROM)", strings.ToUpper(c.Name()))
			}
			st := stages[len(stages)-1]
			st.commands = append(st.commands, Command{
				Command:  c,
				Line:     node.StartLine,
				EndLine:  node.EndLine,
				Original: node.Original,
				node:     node,
			})
		default:
			return nil, nil, src.errorf(node.StartLine, "%T is not a command type", v)
		}
	}
	if len(stages) == 0 {
		return nil, nil, &Error{File: src.file, Msg: "the Dockerfile has no FROM: it contains no stages to build"}
	}
	return stages, metaArgs, nil
}
