package main

import (
	"fmt"
	"maps"
	"path"
	"regexp"
	"slices"
	"strings"
)

// B of the random pair generator (cachefuzz_test.go): one to three changes to A's
// context or the named context (the harness's ctxMut ops, applied to the generator's
// model too), Dockerfile (an instruction's variant, an inserted RUN, a stage renamed),
// build args (--build-arg, SOURCE_DATE_EPOCH, --target), the base image, what the
// http server serves, and the output's compression and timestamps. Or, in an
// mtime-only pair (mtimesNotKeyed), touches alone. Or, in a failing pair (fail), a
// source of a COPY of the target removed as well.

// genB fills in B of p.
func (g *fzGen) genB(p *cachePair) {
	if g.chance(0.08) {
		for range 1 + g.r.IntN(2) {
			p.mut = append(p.mut, g.touchMut())
		}
		p.mtimesNotKeyed = append([]string{}, g.mtimeObs...)
		return
	}
	dfB := g.clone()
	for k := 1 + g.r.IntN(3); k > 0; k-- {
		switch x := g.r.Float64(); {
		case x < 0.55:
			if m, ok := g.ctxMutation(); ok {
				p.mut = append(p.mut, m)
			}
		case x < 0.85:
			dfB.dfMutation()
		case x < 0.93 && g.http != nil:
			if g.chance(0.7) {
				p.httpB = maps.Clone(g.http)
				k := fzPick(g, []string{"f.txt", "t.tar"})
				if k == "f.txt" {
					p.httpB[k] = g.content()
				} else {
					p.httpB[k] = g.tarSpec() + ";n=" + g.word()
				}
			} else {
				// Last-Modified only with new content: its mtime alone would not
				// reach past a COPY --from, which is keyed by content (BuildKit
				// reuses even the ADD then).
				p.httpModB = "2022-05-06T07:08:09Z"
				p.httpB = map[string]string{"f.txt": g.content(), "t.tar": g.tarSpec() + ";n=" + g.word()}
			}
		case x < 0.95:
			p.argsB = g.argsMutation(p.argsA)
		default:
			p.baseB = fzPick(g, []string{"plain2", "layer", "env", "label", "cmd", "workdir", "shell", "onbuild", "stopsignal", "passwd"})
		}
	}
	if g.chance(0.08) {
		outs := slices.DeleteFunc([]string{",compression=zstd", ",compression=uncompressed", ",compression=gzip",
			",rewrite-timestamp=false", ",rewrite-timestamp=true", ",force-compression=true", ",compression-level=9",
			",compression=zstd,compression-level=3", ",compression=zstd,compression-level=3,force-compression=true"},
			func(o string) bool { return o == p.outA })
		p.outB = fzPick(g, outs)
	}
	argsB := p.argsA
	if p.argsB != nil {
		argsB = p.argsB
	}
	if len(g.failSrcs) > 0 && !slices.Contains(argsB, "--target") && g.chance(0.05) {
		src := fzPick(g, g.failSrcs)
		p.mut = append(p.mut, ctxMut{"rm", src, ""})
		g.c.remove(src)
		p.fail = true
	}
	if i := slices.Index(p.argsB, "--target"); dfB.renamed && i >= 0 {
		p.argsB = slices.Delete(slices.Clone(p.argsB), i, i+2) // it may name the old name
	}
	if df := dfB.render(); df != g.render() {
		p.dfB = df
	}
	if p.dfB == "" && p.mut == nil && (p.argsB == nil || slices.Equal(p.argsB, p.argsA)) && p.baseB == "" && p.outB == "" &&
		p.httpB == nil && p.httpModB == "" {
		p.mut = append(p.mut, ctxMut{"write", "a.txt", g.content()})
	}
}

// content is a file content no earlier one has.
func (g *fzGen) content() string { return fmt.Sprintf("%s-m%d\n", g.word(), g.next()) }

// touchMut changes one path's mtime alone.
func (g *fzGen) touchMut() ctxMut {
	var paths []string
	for _, p := range g.c.sorted() {
		if p != "Dockerfile" {
			paths = append(paths, p)
		}
	}
	for _, p := range slices.Sorted(maps.Keys(g.c.other)) {
		paths = append(paths, "../other/"+p)
	}
	t := fzPick(g, []string{"+1s", "+3s", "+1h", "+-2s", "+250ms", "2022-02-02T02:02:02.5Z", "2019-05-05T05:05:05Z"})
	return ctxMut{"touch", fzPick(g, paths), t}
}

// newPath is a path nothing has, in a directory of the context (or a new one)
// where adding it is visible.
func (g *fzGen) newPath(ext string) (string, bool) {
	dirs := []string{"."}
	for _, p := range g.c.sorted() {
		if g.c.nodes[p].kind == 'd' {
			dirs = append(dirs, p)
		}
	}
	d := fzPick(g, dirs)
	p := path.Join(d, fmt.Sprintf("n%d%s", g.next(), ext))
	if g.chance(0.2) {
		p = path.Join(d, fmt.Sprintf("nd%d", g.next()), "f"+ext)
		if !g.c.entryFree(path.Dir(p)) {
			return "", false
		}
	}
	return p, g.c.entryFree(p)
}

// nodesOf are the context's paths of those kinds (fzNode.kind) for which ok holds.
func (g *fzGen) nodesOf(kinds string, ok func(string) bool) []string {
	var out []string
	for _, p := range g.c.sorted() {
		if strings.IndexByte(kinds, g.c.nodes[p].kind) >= 0 && p != "Dockerfile" && (ok == nil || ok(p)) {
			out = append(out, p)
		}
	}
	return out
}

// ctxMutation is one random change of the context, applied to the model too.
func (g *fzGen) ctxMutation() (ctxMut, bool) {
	c := g.c
	ops := []string{"write", "write", "keep", "append", "new", "chmod", "rm", "mkdir", "symlink", "mv", "hardlink", "xattr", "ignore", "tar", "chown"}
	if c.other != nil {
		ops = append(ops, "other", "other")
	}
	for range 10 {
		switch op := fzPick(g, ops); op {
		case "write", "keep", "append":
			files := g.nodesOf("fh", nil)
			if len(files) == 0 {
				continue
			}
			f := fzPick(g, files)
			s := g.content()
			if old := c.nodes[f].content; op == "keep" && c.nodes[f].kind == 'f' && g.chance(0.5) {
				// The same size: only the content (and ctime) changes.
				s = sameSize(old)
			}
			if c.nodes[f].kind == 'f' {
				c.nodes[f].content = s
			}
			return ctxMut{op, f, s}, true
		case "tar":
			if n := c.nodes["t.tar"]; n != nil && n.kind == 'f' {
				n.content = g.tarSpec()
				return ctxMut{"write", "t.tar", n.content}, true
			}
		case "new":
			p, ok := g.newPath(fzPick(g, []string{".txt", ".md", ""}))
			if !ok {
				continue
			}
			c.nodes[p] = &fzNode{kind: 'f', content: g.content()}
			g.addParents(p)
			return ctxMut{"write", p, c.nodes[p].content}, true
		case "mkdir":
			p, ok := g.newPath("")
			if !ok {
				continue
			}
			c.nodes[p] = &fzNode{kind: 'd'}
			g.addParents(p)
			return ctxMut{"mkdir", p, ""}, true
		case "chmod":
			ps := g.nodesOf("fhd", nil)
			p := fzPick(g, ps)
			mode := fzPick(g, []string{"0600", "0755", "0640", "4755", "0700"})
			if c.nodes[p].kind == 'd' {
				mode = fzPick(g, []string{"0700", "0750", "0755", "1777", "0711"})
			}
			return ctxMut{"chmod", p, mode}, true
		case "chown":
			ps := g.nodesOf("fhd", nil)
			return ctxMut{"chown", fzPick(g, ps), fzPick(g, []string{"1000:1000", "0:0", "1234:5678"})}, true
		case "xattr":
			ps := g.nodesOf("fhd", nil)
			return ctxMut{"xattr", fzPick(g, ps), fzPick(g, []string{"user.k=", "user.j="}) + g.word()}, true
		case "rm":
			ps := g.nodesOf("fhdl", c.free)
			if len(ps) == 0 {
				continue
			}
			p := fzPick(g, ps)
			c.remove(p)
			return ctxMut{"rm", p, ""}, true
		case "mv":
			ps := g.nodesOf("fhdl", c.free)
			if len(ps) == 0 {
				continue
			}
			p := fzPick(g, ps)
			to, ok := g.newPath(path.Ext(p))
			if !ok || strings.HasPrefix(to, p+"/") || g.matched(to) {
				continue
			}
			for q, n := range c.nodes {
				if q == p || strings.HasPrefix(q, p+"/") {
					delete(c.nodes, q)
					c.nodes[to+strings.TrimPrefix(q, p)] = n
					c.created[to+strings.TrimPrefix(q, p)] = true
				}
			}
			g.addParents(to)
			return ctxMut{"mv", p, to}, true
		case "symlink":
			ps := g.nodesOf("fhl", c.free)
			var p string
			if len(ps) > 0 && g.chance(0.6) {
				p = fzPick(g, ps)
			} else if q, ok := g.newPath(""); ok {
				p = q
			} else {
				continue
			}
			if g.matched(p) {
				continue
			}
			target := fzPick(g, []string{"a", "../a.txt", "missing", "sub", "."})
			if n := c.nodes[p]; n != nil && n.kind == 'l' && n.content == target {
				continue // the same link again: its mtime alone would change
			}
			c.nodes[p] = &fzNode{kind: 'l', content: target}
			g.addParents(p)
			return ctxMut{"symlink", p, target}, true
		case "hardlink":
			ps := g.nodesOf("fh", func(q string) bool { return c.free(q) || c.protect[q] && c.entryFree(q) })
			var p string
			if len(ps) > 0 && g.chance(0.6) {
				p = fzPick(g, ps)
			} else if q, ok := g.newPath(".txt"); ok {
				p = q
			} else {
				continue
			}
			targets := g.nodesOf("f", func(t string) bool { return t != p })
			if len(targets) == 0 {
				continue
			}
			t := fzPick(g, targets)
			if c.inode(p) == c.inode(t) {
				continue // linked already: only mtimes would change
			}
			c.nodes[p] = &fzNode{kind: 'h', content: t}
			g.addParents(p)
			return ctxMut{"hardlink", p, t}, true
		case "other":
			return g.otherMutation(), true
		case "ignore":
			ps := g.nodesOf("fhdl", func(q string) bool { return c.free(q) && !strings.ContainsAny(q, "*?[!") })
			if len(ps) == 0 {
				continue
			}
			p := fzPick(g, ps)
			if c.ignore == nil {
				c.ignore = []string{}
			}
			c.ignore = append(c.ignore, p)
			if len(c.ignore) == 1 {
				return ctxMut{"write", ".dockerignore", p + "\n"}, true
			}
			return ctxMut{"append", ".dockerignore", p + "\n"}, true
		}
	}
	return ctxMut{}, false
}

// sameSize is a content of the same size as old (for @repeat:N:s, of N bytes).
func sameSize(old string) string {
	if rest, ok := strings.CutPrefix(old, "@repeat:"); ok {
		n, pat, _ := strings.Cut(rest, ":")
		return "@repeat:" + n + ":" + strings.ToUpper(pat[:1]) + pat[1:]
	}
	if old == "" || strings.HasPrefix(old, "@") {
		return old + "x"
	}
	b := []byte(old)
	b[0] ^= 1
	return string(b)
}

// otherMutation changes the named context "other": a file's content, mode, a new
// file, a file removed.
func (g *fzGen) otherMutation() ctxMut {
	c := g.c
	files := slices.Sorted(maps.Keys(c.other))
	f := fzPick(g, files)
	switch x := g.r.Float64(); {
	case x < 0.35:
		c.other[f] = g.content()
		return ctxMut{"write", "../other/" + f, c.other[f]}
	case x < 0.5:
		c.other[f] = sameSize(c.other[f])
		return ctxMut{"keep", "../other/" + f, c.other[f]}
	case x < 0.65:
		return ctxMut{"chmod", "../other/" + f, fzPick(g, []string{"0600", "0755", "4755"})}
	case x < 0.85 || c.otherProtect[f] || c.created["../other/"+f]:
		p := fmt.Sprintf("%sn%d.txt", fzPick(g, []string{"", "sub/"}), g.next())
		c.other[p] = g.content()
		c.created["../other/"+p] = true // not removed again (its directory's mtime alone would change)
		return ctxMut{"write", "../other/" + p, c.other[p]}
	default:
		delete(c.other, f)
		return ctxMut{"rm", "../other/" + f, ""}
	}
}

// inode names p's inode: the file a hard link was made to, or p.
func (c *fzCtx) inode(p string) string {
	if n := c.nodes[p]; n != nil && n.kind == 'h' {
		return n.content
	}
	return p
}

// matched says whether a wildcard of A matches p.
func (g *fzGen) matched(p string) bool {
	for _, pat := range g.patterns {
		if m, _ := path.Match(pat, p); m {
			return true
		}
	}
	return false
}

// addParents records the directories applyMut makes for p, and that B made p.
func (g *fzGen) addParents(p string) {
	g.c.created[p] = true
	for q := path.Dir(p); q != "."; q = path.Dir(q) {
		if g.c.nodes[q] == nil {
			g.c.nodes[q] = &fzNode{kind: 'd'}
			g.c.created[q] = true
		}
	}
}

// clone is a copy of g's Dockerfile, for B's changes.
func (g *fzGen) clone() *fzGen {
	c := &fzGen{r: g.r, n: g.n, argsA: g.argsA}
	cp := func(ls []*fzLine) []*fzLine {
		var out []*fzLine
		for _, l := range ls {
			x := *l
			out = append(out, &x)
		}
		return out
	}
	c.globals = cp(g.globals)
	for _, st := range g.stages {
		c.stages = append(c.stages, &fzStage{name: st.name, lines: cp(st.lines)})
	}
	return c
}

// dfMutation changes B's Dockerfile: an instruction becomes one of its variants, the
// RUN A's generator made to look at a COPY is inserted after it, or a RUN is inserted
// anywhere after a FROM.
func (g *fzGen) dfMutation() bool {
	type at struct {
		lines *[]*fzLine
		i     int
	}
	var alts, inserts, all []at
	add := func(ls *[]*fzLine) {
		for i, l := range *ls {
			if len(l.alts) > 0 {
				alts = append(alts, at{ls, i})
			}
			if l.insert != "" {
				inserts = append(inserts, at{ls, i})
			}
			all = append(all, at{ls, i})
		}
	}
	add(&g.globals)
	for _, st := range g.stages {
		add(&st.lines)
	}
	switch x := g.r.Float64(); {
	case x < 0.06 && len(g.stages) > 1 && !slices.Contains(g.argsA, "--target"):
		// A stage renamed, and every reference by name to it.
		st := fzPick(g, g.stages[:len(g.stages)-1])
		old, name := st.name, "t"+strings.TrimPrefix(st.name, "s")
		re := regexp.MustCompile(`\b` + old + `\b`)
		for _, o := range g.stages {
			for _, l := range o.lines {
				l.text = re.ReplaceAllString(l.text, name)
				l.alts, l.insert = nil, ""
			}
		}
		st.name = name
		g.renamed = true
	case x < 0.65 && len(alts) > 0:
		a := fzPick(g, alts)
		l := (*a.lines)[a.i]
		l.text = fzPick(g, l.alts)
		l.alts = nil
	case x < 0.85 && len(inserts) > 0:
		a := fzPick(g, inserts)
		l := (*a.lines)[a.i]
		*a.lines = slices.Insert(*a.lines, a.i+1, &fzLine{text: l.insert})
		l.insert = ""
	default:
		var afterFrom []at
		for _, a := range all {
			if a.lines != &g.globals {
				afterFrom = append(afterFrom, a)
			}
		}
		a := fzPick(g, afterFrom)
		*a.lines = slices.Insert(*a.lines, a.i+1, &fzLine{text: fmt.Sprintf("RUN echo extra > /tmp/y%d", g.next())})
	}
	return true
}

// argsMutation is B's flags: a --build-arg of a declared ARG given, changed or
// dropped, an unused one added, or SOURCE_DATE_EPOCH changed.
func (g *fzGen) argsMutation(argsA []string) []string {
	args := slices.Clone(argsA)
	set := func(name, val string) {
		for i := 0; i+1 < len(args); i += 2 {
			if args[i] == "--build-arg" && strings.HasPrefix(args[i+1], name+"=") {
				args[i+1] = name + "=" + val
				return
			}
		}
		args = append(args, "--build-arg", name+"="+val)
	}
	switch x := g.r.Float64(); {
	case x < 0.7 && len(g.args) > 0:
		a := fzPick(g, g.args)
		for i := 0; i+1 < len(args); i += 2 {
			if strings.HasPrefix(args[i+1], a.name+"=") && g.chance(0.4) {
				return slices.Delete(args, i, i+2)
			}
		}
		set(a.name, fzPick(g, a.values))
	case x < 0.78:
		set("SOURCE_DATE_EPOCH", fmt.Sprint(1600000000+g.r.IntN(3)*100000000))
	case x < 0.9 && len(g.stages) > 1:
		if i := slices.Index(args, "--target"); i >= 0 {
			return slices.Delete(args, i, i+2)
		}
		args = append(args, "--target", g.stages[g.r.IntN(len(g.stages)-1)].name)
	default:
		set(fmt.Sprintf("UNUSED%d", g.next()), "1")
	}
	if args == nil {
		args = []string{}
	}
	return args
}
