package main

import (
	"bytes"
	"fmt"
	"io"
	"path"
	"regexp"
	"slices"
	"text/tabwriter"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	bkparser "github.com/moby/buildkit/frontend/dockerfile/parser"

	"github.com/kiln-build/kiln/parser"
)

// runCall is --call outline|targets, as buildx prints them (BuildKit's subrequests'
// text form): the Dockerfile read, nothing built.
func runCall(o buildOptions, contextDir string, stdout io.Writer, stdin io.Reader) error {
	_, dfName, dfData, err := readDockerfile(o.file, contextDir, stdin)
	if err != nil {
		return err
	}
	res, err := bkparser.Parse(bytes.NewReader(dfData))
	if err != nil {
		return &parser.Error{File: dfName, Msg: err.Error(), Err: err}
	}
	stages, metaArgs, err := instructions.Parse(res.AST, nil)
	if err != nil {
		return &parser.Error{File: dfName, Msg: err.Error(), Err: err}
	}
	if len(stages) == 0 {
		return &parser.Error{File: dfName, Msg: "the Dockerfile has no FROM"}
	}
	if o.call == "targets" {
		return printTargets(stdout, stages)
	}
	return printOutline(stdout, o.target, stages, metaArgs)
}

// printTargets lists the stages, the last one the default, with the comment above
// each FROM that starts with its name (BuildKit's doc comment).
func printTargets(w io.Writer, stages []instructions.Stage) error {
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
	fmt.Fprint(tw, "TARGET\tDESCRIPTION\n")
	for i, s := range stages {
		name := s.Name
		if i == len(stages)-1 {
			if name == "" {
				name = "(default)"
			} else {
				name += " (default)"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\n", name, s.DocComment)
	}
	return tw.Flush()
}

// outlineArg is a build arg of the outline: its name, default and doc comment, in
// the order of the Dockerfile.
type outlineArg struct {
	name, value, doc string
	line             int
}

// printOutline shows what the target can be given: its args (the global ones and
// those of the stages it builds, with their defaults and doc comments), the secrets
// and ssh agents its RUN steps mount, in the shape of BuildKit's outline.
func printOutline(w io.Writer, target string, stages []instructions.Stage, metaArgs []instructions.ArgCommand) error {
	ti := len(stages) - 1
	if target != "" {
		// The last stage of the name, as the build takes --target (parser).
		ti = -1
		for i, s := range slices.Backward(stages) {
			if s.Name == target {
				ti = i
				break
			}
		}
		if ti < 0 {
			return fmt.Errorf("--target %s: no stage of that name", target)
		}
	}
	needed := neededStages(stages, ti)
	var args []outlineArg
	seen := map[string]bool{}
	addArgs := func(c *instructions.ArgCommand) {
		for _, a := range c.Args {
			if seen[a.Key] {
				continue
			}
			seen[a.Key] = true
			v := ""
			if a.Value != nil {
				v = *a.Value
			}
			args = append(args, outlineArg{name: a.Key, value: v, doc: a.DocComment, line: lineOf(c.Location())})
		}
	}
	for i := range metaArgs {
		addArgs(&metaArgs[i])
	}
	type mount struct {
		name     string
		required bool
		line     int
	}
	var secrets, ssh []mount
	seenMount := map[string]bool{}
	for _, i := range needed {
		for _, cmd := range stages[i].Commands {
			switch c := cmd.(type) {
			case *instructions.ArgCommand:
				addArgs(c)
			case *instructions.RunCommand:
				// The mounts are parsed when the command is expanded.
				_ = c.Expand(func(w string) (string, error) { return w, nil })
				for _, m := range instructions.GetMounts(c) {
					switch m.Type {
					case instructions.MountTypeSecret, instructions.MountTypeSSH:
						id := m.CacheID
						switch {
						case id == "" && m.Type == instructions.MountTypeSSH:
							id = "default"
						case id == "" && m.Target != "":
							id = path.Base(m.Target) // as BuildKit names a secret without id
						}
						key := string(m.Type) + "/" + id
						if id == "" || seenMount[key] {
							continue
						}
						seenMount[key] = true
						mm := mount{name: id, required: m.Required, line: lineOf(c.Location())}
						if m.Type == instructions.MountTypeSecret {
							secrets = append(secrets, mm)
						} else {
							ssh = append(ssh, mm)
						}
					}
				}
			}
		}
	}
	// As BuildKit's outline, only the args something refers to: a FROM or an
	// instruction of a stage the target builds.
	var texts []string
	for _, i := range needed {
		texts = append(texts, stages[i].BaseName, stages[i].Platform)
		for _, cmd := range stages[i].Commands {
			if _, isArg := cmd.(*instructions.ArgCommand); !isArg {
				texts = append(texts, fmt.Sprint(cmd))
			}
		}
	}
	args = slices.DeleteFunc(args, func(a outlineArg) bool { return !referenced(a.name, texts) })
	t := stages[ti]
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
	name := t.Name
	if name == "" {
		name = "(default)"
	}
	fmt.Fprintf(tw, "TARGET:\t%s\n", name)
	if t.DocComment != "" {
		fmt.Fprintf(tw, "DESCRIPTION:\t%s\n", t.DocComment)
	}
	tw.Flush()
	fmt.Fprintln(w)
	if len(args) > 0 {
		slices.SortStableFunc(args, func(a, b outlineArg) int { return a.line - b.line })
		tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
		fmt.Fprint(tw, "BUILD ARG\tVALUE\tDESCRIPTION\n")
		for _, a := range args {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", a.name, a.value, a.doc)
		}
		tw.Flush()
		fmt.Fprintln(w)
	}
	for _, sec := range []struct {
		title string
		list  []mount
	}{{"SECRET", secrets}, {"SSH", ssh}} {
		if len(sec.list) == 0 {
			continue
		}
		tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
		fmt.Fprintf(tw, "%s\tREQUIRED\n", sec.title)
		for _, m := range sec.list {
			req := ""
			if m.required {
				req = "true"
			}
			fmt.Fprintf(tw, "%s\t%s\n", m.name, req)
		}
		tw.Flush()
		fmt.Fprintln(w)
	}
	return nil
}

// neededStages is the indices of the stages stage ti builds on or copies from, and
// ti, in file order.
func neededStages(stages []instructions.Stage, ti int) []int {
	byName := map[string]int{}
	for i, s := range stages {
		if s.Name != "" {
			byName[s.Name] = i
		}
	}
	ref := func(name string, before int) (int, bool) {
		if i, ok := byName[name]; ok && i < before {
			return i, true
		}
		var n int
		if _, err := fmt.Sscanf(name, "%d", &n); err == nil && fmt.Sprint(n) == name && n < before {
			return n, true
		}
		return 0, false
	}
	// A FROM builds on the latest earlier stage of the name; --from names the last
	// stage of the name, which must come before (parser/stages.go).
	fromRef := func(name string, before int) (int, bool) {
		for j := before - 1; j >= 0; j-- {
			if stages[j].Name == name {
				return j, true
			}
		}
		return ref(name, before)
	}
	need := map[int]bool{}
	var visit func(i int)
	visit = func(i int) {
		if need[i] {
			return
		}
		need[i] = true
		if j, ok := fromRef(stages[i].BaseName, i); ok {
			visit(j)
		}
		for _, cmd := range stages[i].Commands {
			switch c := cmd.(type) {
			case *instructions.CopyCommand:
				if j, ok := ref(c.From, i); ok {
					visit(j)
				}
			case *instructions.RunCommand:
				_ = c.Expand(func(w string) (string, error) { return w, nil })
				for _, m := range instructions.GetMounts(c) {
					if j, ok := ref(m.From, i); ok {
						visit(j)
					}
				}
			}
		}
	}
	visit(ti)
	var out []int
	for i := range stages {
		if need[i] {
			out = append(out, i)
		}
	}
	return out
}

func lineOf(r []bkparser.Range) int {
	if len(r) == 0 {
		return 0
	}
	return r[0].Start.Line
}

// referenced says whether $name or ${name…} appears in one of texts.
func referenced(name string, texts []string) bool {
	re := regexp.MustCompile(`\$(` + regexp.QuoteMeta(name) + `\b|\{` + regexp.QuoteMeta(name) + `\b)`)
	for _, t := range texts {
		if re.MatchString(t) {
			return true
		}
	}
	return false
}
