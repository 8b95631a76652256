package parser

import (
	"fmt"
	"strings"

	"github.com/moby/buildkit/util/suggest"
)

// selectTarget picks the target stage and lists, dependencies first, every stage
// it needs. Dependencies always point at earlier stages, so file order restricted
// to the needed stages is a valid build order and keeps independent stages in the
// order the file gives them.
func (b *graphBuilder) selectTarget() error {
	g := b.g
	g.Target = len(g.Stages) - 1
	if b.opts.Target != "" {
		j, ok := b.byName[strings.ToLower(b.opts.Target)]
		if !ok {
			return b.targetNotFound()
		}
		g.Target = j
	}

	needed := make([]bool, len(g.Stages))
	var visit func(int)
	visit = func(i int) {
		if needed[i] {
			return
		}
		needed[i] = true
		for _, d := range g.Stages[i].Deps {
			visit(d)
		}
	}
	visit(g.Target)
	g.Needed = nil
	for i, n := range needed {
		if n {
			g.Needed = append(g.Needed, i)
		}
	}
	return nil
}

func (b *graphBuilder) targetNotFound() error {
	var names []string
	for _, st := range b.g.Stages {
		if st.Name != "" {
			names = append(names, st.Name)
		}
	}
	msg := fmt.Sprintf("target stage %q could not be found", b.opts.Target)
	if m, ok := suggest.Search(b.opts.Target, names, false); ok {
		msg += fmt.Sprintf(" (did you mean %s?)", m)
	}
	if len(names) == 0 {
		msg += "; the Dockerfile names no stages (use FROM image AS name)"
	} else {
		msg += "; stages: " + strings.Join(names, ", ")
	}
	return &Error{File: b.src.file, Msg: msg, Err: fmt.Errorf("target stage %q could not be found", b.opts.Target)}
}
