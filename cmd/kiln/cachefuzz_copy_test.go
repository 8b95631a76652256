package main

import (
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"
)

// The COPY and ADD instructions of the random pair generator (cachefuzz_test.go): of
// the context (files, directories, patterns, ".", through an ARG), of an earlier
// stage, an image, the named context "other", a heredoc, a URL of the pair's http
// server; into a new directory, a file path, a dest relative to WORKDIR or under a
// variable, an earlier dest, a directory of the base, or through a symlink a RUN
// made; with --chmod, --chown (numbers, names, variables), --link, --exclude and
// --parents, and B's variants of each flag.

// dest picks where a COPY puts its files: a new directory (absolute, relative to
// WORKDIR, or under a variable), an earlier directory dest, or (one file) a file
// path.
func (g *fzGen) dest(st *fzStage, dirOnly bool, base string) (string, *fzDest) {
	n := g.next()
	d := &fzDest{epoch: st.epoch, alive: true, dir: true}
	if len(st.links) > 0 && g.chance(0.3) {
		// Through a symlink of the stage (--link does not follow it).
		d.path = fzPick(g, st.links)
		for _, e := range st.dests {
			if e.path == st.linkTo[d.path] {
				e.origin = fzOrigin{} // new files in it, through the link
			}
		}
		return d.path + "/", d
	}
	switch x := g.r.Float64(); {
	case x < 0.15 && !dirOnly:
		d.path, d.dir = fmt.Sprintf("/%s%d", base, n), false
		return d.path, d
	case x < 0.3:
		d.path, d.rel = fmt.Sprintf("%s%d", base, n), true
		if !dirOnly && g.chance(0.5) {
			d.dir = false
			return d.path, d
		}
		return d.path + "/", d
	case x < 0.4:
		var earlier []*fzDest
		for _, e := range g.observable(st) {
			if e.dir && !e.rel {
				earlier = append(earlier, e)
			}
		}
		if len(earlier) > 0 {
			e := fzPick(g, earlier)
			e.origin = fzOrigin{} // one tree of two COPYs now
			if _, ok := st.exports[e.path]; ok {
				st.exports[e.path] = fzOrigin{}
			}
			return e.path + "/", nil
		}
	case x < 0.47:
		v := g.variable(st, g.two([]string{"one", "two", "three", "sub/dir"}))
		d.path = fmt.Sprintf("/%s%d/%s", base, n, v)
		return d.path + "/", d
	case x < 0.68:
		// Into a directory of the base, over what it has (not /tmp: a RUN that
		// looks at it would see its own output being written, or not).
		d.path = fzPick(g, []string{"/etc", "/home/app", "/usr", "/var"})
		d.origin = fzOrigin{}
		return d.path + "/", d
	}
	d.path = fmt.Sprintf("/%s%d", base, n)
	return d.path + "/", d
}

var (
	fzChmods = []string{"644", "0755", "600", "u+x", "go-w", "a+rX", "750", "0444", "4755"}
	fzChowns = []string{"1000:1000", "1234:5678", "0:0", "1000", "65534:65534"}
	fzNames  = []string{"app", "app:app", "nobody", "1000:app", "root:1000"}
	fzExcl   = []string{"*.log", "**/*.log", "tmp", "**/tmp"}
)

// copyFlags are the flags of a COPY/ADD.
type copyFlags struct {
	chmod, chown, exclude string
	link, parents         bool
}

func (f copyFlags) String() string {
	var parts []string
	for _, s := range []string{f.chmod, f.chown, f.exclude} {
		if s != "" {
			parts = append(parts, s)
		}
	}
	if f.link {
		parts = append(parts, "--link")
	}
	if f.parents {
		parts = append(parts, "--parents")
	}
	if len(parts) == 0 {
		return ""
	}
	return strings.Join(parts, " ") + " "
}

// byName says whether a --chown names a user or group (refused with --link).
func (f copyFlags) byName() bool {
	return strings.ContainsAny(strings.TrimPrefix(f.chown, "--chown="), "abcdefghijklmnopqrstuvwxyz")
}

// randFlags picks a COPY's flags; a value may come from a variable declared before it.
func (g *fzGen) randFlags(st *fzStage, dirLike, parentsOK bool) copyFlags {
	var f copyFlags
	f.link = g.chance(0.2)
	if g.chance(0.25) {
		if g.chance(0.3) {
			f.chmod = "--chmod=" + g.variable(st, g.two(fzChmods))
		} else {
			f.chmod = "--chmod=" + fzPick(g, fzChmods)
		}
	}
	if g.chance(0.25) {
		switch x := g.r.Float64(); {
		case x < 0.25:
			f.chown = "--chown=" + g.variable(st, g.two(fzChowns))
		case x < 0.4 && !f.link && !st.noNames:
			f.chown = "--chown=" + fzPick(g, fzNames)
		default:
			f.chown = "--chown=" + fzPick(g, fzChowns)
		}
	}
	if dirLike && g.chance(0.2) {
		if g.chance(0.3) {
			f.exclude = "--exclude=" + g.variable(st, g.two(fzExcl))
		} else {
			f.exclude = "--exclude=" + fzPick(g, fzExcl)
		}
	}
	f.parents = parentsOK && g.chance(0.15)
	return f
}

// flagAlts are B's variants of f, each with one flag changed.
func (g *fzGen) flagAlts(st *fzStage, f copyFlags, dirLike, parentsOK bool) []copyFlags {
	var out []copyFlags
	if x := f; !f.byName() {
		x.link = !f.link
		out = append(out, x)
	}
	x := f
	if x.chmod = ""; f.chmod == "" || g.chance(0.5) {
		x.chmod = "--chmod=" + fzPick(g, fzChmods)
	}
	out = append(out, x)
	x = f
	if x.chown = ""; f.chown == "" || g.chance(0.5) {
		x.chown = "--chown=" + fzPick(g, fzChowns)
		if !f.link && !st.noNames && g.chance(0.3) {
			x.chown = "--chown=" + fzPick(g, fzNames)
		}
	}
	out = append(out, x)
	if dirLike {
		x = f
		if x.exclude = ""; f.exclude == "" || g.chance(0.5) {
			x.exclude = "--exclude=" + fzPick(g, fzExcl)
		}
		out = append(out, x)
	}
	if parentsOK {
		x = f
		x.parents = !f.parents
		out = append(out, x)
	}
	return out
}

func (g *fzGen) genCopy(st *fzStage) {
	srcs, dirLike, parentsOK := g.copySources()
	var argSrc string
	if files := g.ctxFiles(false); len(srcs) == 1 && !dirLike && len(files) >= 2 && g.chance(0.2) {
		// The source from a variable, whose value B may change.
		two := g.two(files)
		g.c.protectPath(two[0])
		g.c.protectPath(two[1])
		argSrc = g.variable(st, two)
		srcs, parentsOK = []string{argSrc}, false
	}
	json := false
	if g.c.visible("sp ace.txt") && g.chance(0.3) {
		srcs = append(srcs, "sp ace.txt")
		g.c.protectPath("sp ace.txt")
		json, dirLike = true, true
	}
	dest, d := g.dest(st, dirLike, "c")
	parentsOK = parentsOK && strings.HasSuffix(dest, "/")
	f := g.randFlags(st, dirLike, parentsOK)
	line := func(f copyFlags, srcs []string) string {
		if json {
			return "COPY " + f.String() + `["` + strings.Join(append(slices.Clone(srcs), dest), `", "`) + `"]`
		}
		return "COPY " + f.String() + strings.Join(srcs, " ") + " " + dest
	}
	l := &fzLine{text: line(f, srcs)}
	for _, a := range g.flagAlts(st, f, dirLike, parentsOK) {
		l.alts = append(l.alts, line(a, srcs))
	}
	if len(srcs) > 1 {
		rev := slices.Clone(srcs)
		slices.Reverse(rev)
		l.alts = append(l.alts, line(f, rev))
	}
	if parentsOK {
		g.watchParents(srcs)
	}
	if argSrc == "" && !dirLike && g.c.nodes[srcs[0]].kind != 'l' && st == g.stages[len(g.stages)-1] {
		g.failSrcs = append(g.failSrcs, srcs[0])
	}
	g.addDest(st, l, d, fzOrigin{files: true, dirs: true})
}

// addDest adds a COPY/ADD line and records its dest; B may insert an observer of it
// right after (a RUN after a COPY that was the stage's last step).
func (g *fzGen) addDest(st *fzStage, l *fzLine, d *fzDest, origin fzOrigin) {
	g.add(st, l)
	if d == nil || fzBaseDir(d.path) {
		// A RUN does not look at a directory of the base: the sandbox mounts the
		// host's /etc/hosts and /etc/resolv.conf there, read-only.
		return
	}
	d.origin = origin
	st.dests = append(st.dests, d)
	if !d.rel {
		if p, _, ok := strings.Cut(d.path, "/$"); ok {
			st.exports[p] = fzOrigin{}
		} else {
			st.exports[d.path], st.files[d.path] = origin, !d.dir
		}
	}
	if st.root {
		l.insert = observer(d, fmt.Sprintf("/tmp/x%d", g.next()), true)
		if g.chance(0.5) {
			// Every file copied up into the RUN's layer, with what the copy gave it.
			l.insert = "RUN chmod -R u+w " + d.path + " && " + strings.TrimPrefix(l.insert, "RUN ")
		}
	}
}

// fzBaseDir says whether p is a directory of the base image.
func fzBaseDir(p string) bool {
	return slices.Contains([]string{"/etc", "/home/app", "/usr", "/var"}, p)
}

func (g *fzGen) genAdd(st *fzStage) {
	tar := g.c.nodes["t.tar"] != nil && g.chance(0.7)
	src := "t.tar"
	if !tar {
		src = fzPick(g, g.ctxFiles(false))
	}
	g.c.protectPath(src)
	dest, d := g.dest(st, tar, "a")
	f := g.randFlags(st, false, false)
	unpack := ""
	if tar && g.chance(0.15) {
		unpack = "--unpack=false "
	}
	line := func(f copyFlags, unpack string) string { return "ADD " + unpack + f.String() + src + " " + dest }
	l := &fzLine{text: line(f, unpack)}
	for _, a := range g.flagAlts(st, f, false, false) {
		l.alts = append(l.alts, line(a, unpack))
	}
	if tar {
		l.alts = append(l.alts, line(f, map[string]string{"": "--unpack=false ", "--unpack=false ": ""}[unpack]))
		l.alts = append(l.alts, "COPY "+f.String()+src+" "+dest)
	}
	if st == g.stages[len(g.stages)-1] {
		g.failSrcs = append(g.failSrcs, src)
	}
	g.addDest(st, l, d, fzOrigin{files: true, dirs: true})
}

func (g *fzGen) genHeredoc(st *fzStage) {
	n := g.next()
	chmod := ""
	if g.chance(0.3) {
		chmod = "--chmod=" + fzPick(g, fzChmods) + " "
	}
	dest := fmt.Sprintf("/h%d.txt", n)
	line := func(body string) string { return "COPY " + chmod + "<<EOF " + dest + "\n" + body + "\nEOF" }
	if g.chance(0.3) {
		dest = fmt.Sprintf("/h%d/", n)
		line = func(body string) string {
			return "COPY " + chmod + "<<A <<B " + dest + "\n" + body + "\nA\nsecond\nB"
		}
	}
	l := &fzLine{text: line(g.word()), alts: []string{line(g.word() + " changed")}}
	g.addDest(st, l, &fzDest{path: strings.TrimSuffix(dest, "/"), epoch: st.epoch, alive: true, dir: strings.HasSuffix(dest, "/")}, fzOrigin{})
}

func (g *fzGen) genCopyFrom(st, from *fzStage) {
	src := fzPick(g, slices.Sorted(maps.Keys(from.exports)))
	dest, d := g.dest(st, !from.files[src], "f")
	f := g.randFlags(st, true, false)
	name := from.name
	if g.chance(0.2) {
		name = strings.TrimPrefix(from.name, "s") // the stage's index
	}
	line := func(f copyFlags) string { return "COPY --from=" + name + " " + f.String() + src + " " + dest }
	l := &fzLine{text: line(f)}
	for _, a := range g.flagAlts(st, f, true, false) {
		l.alts = append(l.alts, line(a))
	}
	if name != from.name {
		l.alts = append(l.alts, "COPY --from="+from.name+" "+f.String()+src+" "+dest)
	}
	g.addDest(st, l, d, from.exports[src])
}

func (g *fzGen) genCopyImage(st *fzStage) {
	v := g.two([]string{"layer", "layer2", "plain"})
	dest, d := g.dest(st, true, "i")
	line := func(v string) string { return "COPY --from={host}/busybox:" + v + " /etc " + dest }
	g.addDest(st, &fzLine{text: line(v[0]), alts: []string{line(v[1])}}, d, fzOrigin{})
}

// genAddURL adds a file (or a tar) of the pair's http server, which B may change.
func (g *fzGen) genAddURL(st *fzStage) {
	if g.http == nil {
		g.http = map[string]string{"f.txt": g.word() + "\n", "t.tar": g.tarSpec()}
	}
	name := fzPick(g, []string{"f.txt", "t.tar"})
	dest, d := g.dest(st, true, "u")
	unpack := ""
	if name == "t.tar" && g.chance(0.5) {
		unpack = "--unpack=true "
	}
	f := g.randFlags(st, false, false)
	line := func(f copyFlags, unpack string) string {
		return "ADD " + unpack + f.String() + "{http}/" + name + " " + dest
	}
	l := &fzLine{text: line(f, unpack)}
	for _, a := range g.flagAlts(st, f, false, false) {
		l.alts = append(l.alts, line(a, unpack))
	}
	if name == "t.tar" {
		l.alts = append(l.alts, line(f, map[string]string{"": "--unpack=true ", "--unpack=true ": ""}[unpack]))
	}
	g.addDest(st, l, d, fzOrigin{})
}

// genCopyOther copies from the named context "other".
func (g *fzGen) genCopyOther(st *fzStage) {
	srcs := []string{"x.txt", "sub", "sub/", ".", "sub/y.txt", "*.txt", "sub/*"}
	src := fzPick(g, srcs)
	for p := range g.c.other {
		if m, _ := pathMatchPrefix(src, p); m {
			g.c.otherProtect[p] = true
		}
	}
	dest, d := g.dest(st, true, "o")
	f := g.randFlags(st, true, false)
	line := func(f copyFlags) string { return "COPY --from=other " + f.String() + src + " " + dest }
	l := &fzLine{text: line(f)}
	for _, a := range g.flagAlts(st, f, true, false) {
		l.alts = append(l.alts, line(a))
	}
	g.addDest(st, l, d, fzOrigin{files: true, dirs: true})
}

// pathMatchPrefix says whether p is src, under it, or matched by it.
func pathMatchPrefix(src, p string) (bool, error) {
	src = strings.TrimSuffix(src, "/")
	if src == "." || p == src || strings.HasPrefix(p, src+"/") {
		return true, nil
	}
	return path.Match(src, p)
}
