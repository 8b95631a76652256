package main

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
)

// The Dockerfile grammar of the random pair generator (cachefuzz_test.go): one to
// three stages over {base} (or an earlier stage, or an image named by a global ARG),
// each a random run of COPY/ADD (cachefuzz_copy_test.go), RUN (looking at what was
// copied or mounted, echoing variables, changing the tree, with cache and bind
// mounts), ARG/ENV (also inside flags, dests and mount options), WORKDIR, USER,
// LABEL, SHELL, ONBUILD and config instructions. Each instruction carries the
// variants B may use instead, and a COPY the RUN B may insert after it.
//
// A RUN writes only what is deterministic: paths, types, modes, owners, link counts,
// sizes and contents it sees, sorted; mtimes only of files (and of directories inside
// a dest) copied from the context, whose mtimes the harness fixes, and never of
// anything a RUN made (the wall clock). It writes into /tmp, which any uid may.

// fzLine is one instruction of Dockerfile A, with what B may make of it.
type fzLine struct {
	text   string
	alts   []string // other valid texts
	insert string   // a valid instruction to insert after it
}

// fzOrigin says which mtimes of a tree are the context's (fixed by the harness).
type fzOrigin struct{ files, dirs bool }

// fzDest is where a COPY/ADD put its files, for a RUN to look at.
type fzDest struct {
	path   string // as the COPY wrote it, without a trailing "/"; may name a variable
	rel    bool
	epoch  int // the WORKDIR it is relative to
	origin fzOrigin
	dir    bool
	alive  bool
}

// fzStage is the model of one stage.
type fzStage struct {
	name    string
	lines   []*fzLine
	root    bool // no USER of another uid yet
	noNames bool // /etc/passwd or /etc/group removed: no user or group names
	epoch   int  // bumped by each WORKDIR
	dests   []*fzDest
	exports map[string]fzOrigin // absolute paths that exist at the stage's end
	files   map[string]bool     // the exports that are files
	links   []string            // symlinks a RUN made to a directory dest
	linkTo  map[string]string   // what each of links points to
	vars    []string            // ARGs and ENVs in scope
	envs    []string            // ENVs (a stage FROM this one has them too)
}

// fzArg is a build argument, with the values B may give it.
type fzArg struct {
	name   string
	values []string
}

type fzGen struct {
	r       *rand.Rand
	c       *fzCtx
	stages  []*fzStage
	globals []*fzLine // ARGs before the first FROM
	n       int
	args    []*fzArg
	argsA   []string
	// mtimeObs are the files RUNs wrote from mtimes they saw (mtimesNotKeyed).
	mtimeObs []string
	// failSrcs are explicit context sources of the final stage: B without one fails.
	failSrcs []string
	// patterns are the wildcards COPYs give: B makes no symlink they match.
	patterns []string
	http     map[string]string // what the pair's http server serves (nil: none)
	renamed  bool              // B renamed a stage
}

func (g *fzGen) next() int { g.n++; return g.n }

func (g *fzGen) chance(p float64) bool { return g.r.Float64() < p }

func fzPick[T any](g *fzGen, xs []T) T { return xs[g.r.IntN(len(xs))] }

func (g *fzGen) word() string {
	return fzPick(g, []string{"alpha", "beta", "gamma", "delta", "omega", "one", "two"}) + fmt.Sprint(g.r.IntN(10))
}

func (g *fzGen) add(st *fzStage, l *fzLine) { st.lines = append(st.lines, l) }

// genDockerfile makes Dockerfile A: one to three stages, the last one the target,
// and every stage needed by it.
func (g *fzGen) genDockerfile() {
	if g.chance(0.15) {
		a := &fzArg{name: "G1", values: []string{g.word(), g.word()}}
		g.globals = append(g.globals, &fzLine{text: "ARG G1=" + a.values[0], alts: []string{"ARG G1=" + a.values[1]}})
		g.args = append(g.args, a)
	}
	nst := 1 + g.r.IntN(3)
	for i := range nst {
		g.genStage(i, i == nst-1)
	}
	final := g.stages[len(g.stages)-1]
	for {
		need := g.needed(final)
		i := slices.IndexFunc(g.stages, func(st *fzStage) bool { return !need[st.name] })
		if i < 0 {
			break
		}
		src := "/etc"
		if e := slices.Sorted(maps.Keys(g.stages[i].exports)); len(e) > 0 {
			src = fzPick(g, e)
		}
		g.add(final, &fzLine{text: fmt.Sprintf("COPY --from=%s %s /f%d/", g.stages[i].name, src, g.next())})
	}
}

// needed are the stages target needs: FROM, COPY --from, a mount's from=.
func (g *fzGen) needed(target *fzStage) map[string]bool {
	need := map[string]bool{}
	var visit func(st *fzStage)
	visit = func(st *fzStage) {
		if need[st.name] {
			return
		}
		need[st.name] = true
		for i, o := range g.stages {
			for _, l := range st.lines {
				if l.text == "FROM "+o.name+" AS "+st.name || strings.Contains(l.text, "from="+o.name+" ") ||
					strings.Contains(l.text, "from="+o.name+",") || strings.Contains(l.text, fmt.Sprintf("--from=%d ", i)) {
					visit(o)
				}
			}
		}
	}
	visit(target)
	return need
}

func (g *fzGen) genStage(i int, final bool) {
	st := &fzStage{name: fmt.Sprintf("s%d", i), root: true, exports: map[string]fzOrigin{}, files: map[string]bool{}}
	var parents []*fzStage
	for _, o := range g.stages {
		if o.root {
			parents = append(parents, o)
		}
	}
	from := &fzLine{text: "FROM {base} AS " + st.name}
	if len(parents) > 0 && g.chance(0.3) {
		p := fzPick(g, parents)
		from.text = "FROM " + p.name + " AS " + st.name
		maps.Copy(st.exports, p.exports)
		maps.Copy(st.files, p.files)
		st.noNames = p.noNames
		st.vars, st.envs = slices.Clone(p.envs), slices.Clone(p.envs)
		for _, d := range p.dests {
			// What p copied is there, relative to p's last WORKDIR.
			if d.alive && !strings.Contains(d.path, "$") && (!d.rel || d.epoch == p.epoch) {
				x := *d
				x.epoch = 0
				st.dests = append(st.dests, &x)
			}
		}
	} else if x := g.r.Float64(); x < 0.15 {
		from.alts = []string{"FROM {host}/busybox:" + fzPick(g, []string{"plain2", "layer"}) + " AS " + st.name}
	} else if x < 0.25 {
		// The base from a global ARG, which B may change.
		name := fmt.Sprintf("IMG%d", i)
		a := &fzArg{name: name, values: []string{"{base}", "{host}/busybox:plain2", "{host}/busybox:layer"}}
		g.args = append(g.args, a)
		g.globals = append(g.globals, &fzLine{text: "ARG " + name + "={base}", alts: []string{"ARG " + name + "={host}/busybox:layer2"}})
		from.text = "FROM ${" + name + "} AS " + st.name
	}
	st.lines = append(st.lines, from)
	g.stages = append(g.stages, st)

	copied := false
	for k := 2 + g.r.IntN(6); k > 0 || (final && !copied); k-- {
		if g.instruction(st, final) == "copy" {
			copied = true
		}
	}
}

// instruction adds one random instruction to st and says which kind it was.
func (g *fzGen) instruction(st *fzStage, final bool) string {
	var others []*fzStage
	for _, o := range g.stages {
		if o != st && len(o.exports) > 0 {
			others = append(others, o)
		}
	}
	type choice struct {
		kind string
		w    int
		ok   bool
	}
	choices := []choice{
		{"copy", 30, true},
		{"add", 6, true},
		{"heredoc", 2, true},
		{"copyfrom", 8, len(others) > 0},
		{"copyimage", 2, true},
		{"copyother", 4, g.c.other != nil},
		{"addurl", 2, true},
		{"observe", 14, st.root && len(g.observable(st)) > 0},
		{"echo", 6, true},
		{"mutate", 9, st.root},
		{"cache", 5, true},
		{"bind", 6, st.root},
		{"arg", 5, true},
		{"env", 3, true},
		{"workdir", 5, true},
		{"user", 3, true},
		{"label", 2, true},
		{"shell", 1, true},
		{"onbuild", 1, !final},
		{"config", 2, true},
	}
	total := 0
	for _, c := range choices {
		if c.ok {
			total += c.w
		}
	}
	x, kind := g.r.IntN(total), ""
	for _, c := range choices {
		if c.ok && x < c.w {
			kind = c.kind
			break
		} else if c.ok {
			x -= c.w
		}
	}
	switch kind {
	case "copy":
		g.genCopy(st)
	case "add":
		g.genAdd(st)
	case "heredoc":
		g.genHeredoc(st)
	case "copyfrom":
		g.genCopyFrom(st, fzPick(g, others))
	case "copyimage":
		g.genCopyImage(st)
	case "copyother":
		g.genCopyOther(st)
	case "addurl":
		g.genAddURL(st)
	case "observe":
		g.genObserve(st, fzPick(g, g.observable(st)))
	case "echo":
		g.genEcho(st)
	case "mutate":
		g.genMutate(st)
	case "cache":
		g.genCache(st)
	case "bind":
		g.genBind(st, others)
	case "arg":
		g.genArg(st)
	case "env":
		g.genEnv(st)
	case "workdir":
		g.genWorkdir(st)
	case "user":
		g.genUser(st)
	case "label":
		g.genLabel(st)
	case "shell":
		g.genShell(st)
	case "onbuild":
		g.add(st, &fzLine{text: fmt.Sprintf("ONBUILD RUN echo %s > /tmp/onb%d", g.word(), g.next()), alts: []string{"ONBUILD RUN echo changed > /tmp/onb0"}})
	case "config":
		g.genConfig(st)
	}
	return kind
}

// variable declares an ARG (or an ENV) whose values are all valid where the caller
// uses it, and returns how to refer to it: ${K}, or ${K:-default} for an ARG
// without one.
func (g *fzGen) variable(st *fzStage, values []string) string {
	n := g.next()
	if g.chance(0.2) {
		name := fmt.Sprintf("E%d", n)
		g.add(st, &fzLine{text: "ENV " + name + "=" + values[0], alts: []string{"ENV " + name + "=" + values[1]}})
		st.vars, st.envs = append(st.vars, name), append(st.envs, name)
		return "${" + name + "}"
	}
	name := fmt.Sprintf("K%d", n)
	g.args = append(g.args, &fzArg{name: name, values: values})
	st.vars = append(st.vars, name)
	if g.chance(0.25) {
		g.add(st, &fzLine{text: "ARG " + name, alts: []string{"ARG " + name + "=" + values[1]}})
		return "${" + name + ":-" + values[0] + "}"
	}
	g.add(st, &fzLine{text: "ARG " + name + "=" + values[0], alts: []string{"ARG " + name + "=" + values[1]}})
	if g.chance(0.2) {
		g.argsA = append(g.argsA, "--build-arg", name+"="+values[1])
	}
	return "${" + name + "}"
}

// two is two different values of pool.
func (g *fzGen) two(pool []string) []string {
	i := g.r.IntN(len(pool))
	j := (i + 1 + g.r.IntN(len(pool)-1)) % len(pool)
	return []string{pool[i], pool[j]}
}

// observable are the dests a RUN may look at now.
func (g *fzGen) observable(st *fzStage) []*fzDest {
	var out []*fzDest
	for _, d := range st.dests {
		if d.alive && (!d.rel || d.epoch == st.epoch) {
			out = append(out, d)
		}
	}
	return out
}

// observer is a RUN (as root) that writes what it sees of d into out: each entry's
// type, mode, owner, link count and size (not a directory's: they depend on the
// filesystem), each file's sha256, and with mtimes those of d's context files (and
// directories inside d) when they are fixed.
func observer(d *fzDest, out string, mtimes bool) string {
	cmd := fmt.Sprintf("RUN find %[1]s ! -type d -exec stat -c '%%n %%F %%a %%u:%%g %%h %%s' {} + | sort > %[2]s"+
		" && find %[1]s -type d -exec stat -c '%%n %%a %%u:%%g' {} + | sort >> %[2]s"+
		" && find %[1]s -type f -exec sha256sum {} + | sort >> %[2]s", d.path, out)
	if mtimes && d.origin.files {
		cmd += fmt.Sprintf(" && find %s ! -type d -exec stat -c '%%n %%y' {} + | sort >> %s", d.path, out)
	}
	if mtimes && d.origin.dirs {
		cmd += fmt.Sprintf(" && find %s -mindepth 1 -type d -exec stat -c '%%n %%y' {} + | sort >> %s", d.path, out)
	}
	return cmd
}

// genObserve adds an observer RUN of d; its output is exported when it holds no
// mtimes (those are listed for mtimesNotKeyed).
func (g *fzGen) genObserve(st *fzStage, d *fzDest) {
	out := fmt.Sprintf("/tmp/o%d", g.next())
	mtimes := (d.origin.files || d.origin.dirs) && g.chance(0.5)
	if mtimes {
		g.mtimeObs = append(g.mtimeObs, out)
	} else {
		st.exports[out], st.files[out] = fzOrigin{}, true
	}
	g.add(st, g.runLine(observer(d, out, mtimes)))
}

// runLine is a RUN line, sometimes with B's variant under --network=none.
func (g *fzGen) runLine(text string, alts ...string) *fzLine {
	l := &fzLine{text: text, alts: alts}
	if g.chance(0.1) {
		l.alts = append(l.alts, "RUN --network=none "+strings.TrimPrefix(text, "RUN "))
	}
	return l
}

// vals is an expression of some variables in scope, for an echo.
func (g *fzGen) vals(st *fzStage) string {
	var parts []string
	for _, v := range st.vars {
		if g.chance(0.5) {
			parts = append(parts, "$"+v)
		}
	}
	return strings.Join(parts, " ")
}

func (g *fzGen) genEcho(st *fzStage) {
	out := fmt.Sprintf("/tmp/o%d", g.next())
	st.exports[out], st.files[out] = fzOrigin{}, true
	w, v := g.word(), g.vals(st)
	switch x := g.r.Float64(); {
	case x < 0.15:
		g.add(st, g.runLine("RUN (env | grep -E '^[KEGF][0-9]' || true) | sort > "+out))
	case x < 0.25:
		g.add(st, g.runLine("RUN id -u > "+out+" && id -g >> "+out))
	case x < 0.35:
		body := func(w string) string { return "RUN <<EOF\necho \"" + w + " " + v + "\" > " + out + "\nEOF" }
		g.add(st, &fzLine{text: body(w), alts: []string{body(w + "b")}})
	default:
		body := func(w string) string { return "RUN echo \"" + w + " " + v + "\" > " + out }
		g.add(st, g.runLine(body(w), body(w+"b")))
	}
}

// genMutate is a RUN (as root) that changes the image: makes a tree, changes modes,
// contents or entries of a dest (then its mtimes are the wall clock's), replaces a
// dest by a directory of its own (an opaque one), hard links a copied file, or
// removes a file of the base.
func (g *fzGen) genMutate(st *fzStage) {
	n := g.next()
	ds := g.observable(st)
	var d *fzDest
	if len(ds) > 0 {
		d = fzPick(g, ds)
	}
	switch x := g.r.Float64(); {
	case x < 0.25 || d == nil:
		extra := fzPick(g, []string{"",
			" && mkfifo /r%[1]d/fifo && mknod /r%[1]d/null c 1 3",
			" && truncate -s 5M /r%[1]d/sparse && head -c 3000000 /dev/zero > /r%[1]d/zero",
			" && echo long > /r%[1]d/" + strings.Repeat("long-name-", 12) + "end && ln -s " + strings.Repeat("t/", 60) + "x /r%[1]d/longlink",
			" && echo u > /r%[1]d/é-ü.txt && mkdir -m 2775 /r%[1]d/setgid && chmod 1777 /r%[1]d/sub",
			" && ln /r%[1]d/sub/f /r%[1]d/hard && touch /r%[1]d/.wh.nothing"})
		body := func(w string) string {
			return fmt.Sprintf("RUN mkdir -p /r%[1]d/sub && echo %[2]s > /r%[1]d/sub/f && chmod 640 /r%[1]d/sub/f && ln -s sub/f /r%[1]d/l && touch /r%[1]d/t"+extra, n, w)
		}
		w := g.word()
		g.add(st, g.runLine(body(w), body(w+"b")))
		st.exports[fmt.Sprintf("/r%d", n)] = fzOrigin{}
	case g.chance(0.15) && d.dir && !d.rel && !strings.Contains(d.path, "$"):
		// A symlink to the dest, which a later COPY may copy through.
		g.add(st, g.runLine(fmt.Sprintf("RUN ln -s %s /r%d", d.path, n)))
		l := fmt.Sprintf("/r%d", n)
		st.links, st.exports[l] = append(st.links, l), fzOrigin{}
		if st.linkTo == nil {
			st.linkTo = map[string]string{}
		}
		st.linkTo[l] = d.path
		g.taint(st, d)
	case x < 0.4:
		mode := fzPick(g, []string{"-R go-w", "700", "-R a+rX", "4755", "1777"})
		g.add(st, g.runLine(fmt.Sprintf("RUN chmod %s %s", mode, d.path)))
	case x < 0.5:
		g.add(st, g.runLine(fmt.Sprintf("RUN find %s -type f -exec sh -c 'echo more >> \"$1\"' _ {} \\;", d.path)))
		g.taint(st, d)
	case x < 0.6 && d.dir:
		g.add(st, g.runLine(fmt.Sprintf("RUN rm -rf %[1]s/*.txt %[1]s/sub %[1]s/.wh.*", d.path)))
		g.taint(st, d)
	case x < 0.7 && d.dir:
		g.add(st, g.runLine(fmt.Sprintf("RUN rm -rf %[1]s && mkdir -p %[1]s/new && echo %[2]s > %[1]s/new/f", d.path, g.word())))
		g.taint(st, d)
	case x < 0.72:
		g.add(st, g.runLine("RUN rm -rf "+d.path))
		d.alive = false
		delete(st.exports, d.path)
		// A symlink to it dangles now: no COPY reads through it.
		st.links = slices.DeleteFunc(st.links, func(l string) bool {
			if st.linkTo[l] == d.path {
				delete(st.exports, l)
				return true
			}
			return false
		})
	case x < 0.76 && d.dir:
		// A directory becomes a file.
		g.add(st, g.runLine(fmt.Sprintf("RUN rm -rf %[1]s && echo %[2]s > %[1]s", d.path, g.word())))
		d.dir = false
		g.taint(st, d)
		if _, ok := st.exports[d.path]; ok {
			st.files[d.path] = true
		}
	case x < 0.8 && d.dir:
		// A .wh. name in a dest: what kiln makes of it must not depend on the cache.
		g.add(st, g.runLine(fmt.Sprintf("RUN touch %[1]s/.wh.a %[1]s/.wh.b.txt %[1]s/.wh..wh..opq 2>/dev/null; true", d.path)))
		g.taint(st, d)
	case x < 0.9 && !d.dir:
		g.add(st, g.runLine(fmt.Sprintf("RUN ln %s /r%d", d.path, n)))
		st.exports[fmt.Sprintf("/r%d", n)], st.files[fmt.Sprintf("/r%d", n)] = fzOrigin{}, true
	default:
		g.add(st, g.runLine("RUN rm -f /etc/group", "RUN rm -f /etc/passwd"))
		st.noNames = true
	}
}

// taint says a RUN changed d: its mtimes are the wall clock's now.
func (g *fzGen) taint(st *fzStage, d *fzDest) {
	d.origin = fzOrigin{}
	if _, ok := st.exports[d.path]; ok {
		st.exports[d.path] = fzOrigin{}
	}
}

// genCache is a RUN with a cache mount that writes a value into it and reads it back:
// what it writes into the image never depends on what the cache held.
func (g *fzGen) genCache(st *fzStage) {
	n := g.next()
	opts := ""
	if !st.root {
		opts += ",mode=0777"
	} else if g.chance(0.2) {
		opts += ",uid=" + g.variable(st, g.two([]string{"0", "1000", "1234"}))
	}
	if g.chance(0.3) {
		opts += ",sharing=" + fzPick(g, []string{"shared", "locked", "private"})
	}
	if g.chance(0.2) {
		opts += ",id=" + g.variable(st, []string{fmt.Sprintf("c%da", n), fmt.Sprintf("c%db", n)})
	}
	out := fmt.Sprintf("/tmp/o%d", n)
	st.exports[out], st.files[out] = fzOrigin{}, true
	v := g.vals(st)
	body := func(w string) string {
		return fmt.Sprintf("RUN --mount=type=cache,target=/cache/%[1]d%[2]s echo \"%[3]s %[4]s\" > /cache/%[1]d/v.$(id -u) && cat /cache/%[1]d/v.$(id -u) > %[5]s",
			n, opts, w, v, out)
	}
	w := g.word()
	g.add(st, &fzLine{text: body(w), alts: []string{body(w + "b")}})
}

// genBind is a RUN that looks at a bind mount: of the context (a directory, a file,
// all of it; maybe named by a variable), of another stage's path, of an image's, or
// of the named context.
func (g *fzGen) genBind(st *fzStage, others []*fzStage) {
	n := g.next()
	target := fmt.Sprintf("/mnt/%d", n)
	var src string
	switch x := g.r.Float64(); {
	case x < 0.25 && len(others) > 0:
		o := fzPick(g, others)
		src = "from=" + o.name + ",source=" + fzPick(g, slices.Sorted(maps.Keys(o.exports)))
	case x < 0.3:
		src = "from={host}/busybox:" + fzPick(g, []string{"layer", "layer2"}) + ",source=/etc"
	case x < 0.37 && g.c.other != nil:
		src = "from=other"
		for p := range g.c.other {
			g.c.otherProtect[p] = true
		}
	default:
		// ASCII names only: BuildKit's parser (which kiln uses) re-encodes each
		// byte of an instruction's flags as a rune, so "é" becomes "Ã©".
		cands := slices.DeleteFunc(append(g.ctxDirs(false), g.ctxFiles(false)...), func(p string) bool {
			return strings.ContainsFunc(p, func(r rune) bool { return r > 0x7f })
		})
		switch {
		case g.chance(0.15):
			src = "source=."
		case g.chance(0.2) && len(cands) > 1:
			two := g.two(cands)
			g.c.protectPath(two[0])
			g.c.protectPath(two[1])
			src = "source=" + g.variable(st, two)
		default:
			s := fzPick(g, cands)
			g.c.protectPath(s)
			src = "source=" + s
		}
	}
	out := fmt.Sprintf("/tmp/o%d", n)
	st.exports[out], st.files[out] = fzOrigin{}, true
	run := func(rw string) string {
		return fmt.Sprintf("RUN --mount=type=bind,%[1]s,target=%[2]s%[3]s find %[2]s ! -type d -exec stat -c '%%n %%F %%a %%u:%%g %%h %%s' {} + | sort > %[4]s"+
			" && find %[2]s -type d -exec stat -c '%%n %%a %%u:%%g' {} + | sort >> %[4]s"+
			" && find %[2]s -type f -exec sha256sum {} + | sort >> %[4]s", src, target, rw, out)
	}
	rw := ""
	if g.chance(0.2) {
		rw = ",rw"
	}
	g.add(st, &fzLine{text: run(rw), alts: []string{run(map[string]string{"": ",rw", ",rw": ""}[rw])}})
}

func (g *fzGen) genArg(st *fzStage) {
	if len(g.globals) > 0 && !slices.Contains(st.vars, "G1") && g.chance(0.5) {
		g.add(st, &fzLine{text: "ARG G1"})
		st.vars = append(st.vars, "G1")
		return
	}
	a := &fzArg{name: fmt.Sprintf("K%d", g.next()), values: []string{g.word(), g.word(), "x y", ""}}
	g.args = append(g.args, a)
	st.vars = append(st.vars, a.name)
	def := "=" + a.values[0]
	if g.chance(0.25) {
		def = ""
	}
	l := &fzLine{text: "ARG " + a.name + def, alts: []string{"ARG " + a.name + "=" + a.values[1], "ARG " + a.name + "=\"" + a.values[2] + "\""}}
	if def != "" {
		l.alts = append(l.alts, "ARG "+a.name)
	}
	if g.chance(0.3) {
		g.argsA = append(g.argsA, "--build-arg", a.name+"="+a.values[1])
	}
	g.add(st, l)
}

func (g *fzGen) genEnv(st *fzStage) {
	name := fmt.Sprintf("E%d", g.next())
	w := g.word()
	val := w
	if v := g.vals(st); v != "" && g.chance(0.5) {
		val = "\"" + w + "-" + v + "\""
	}
	g.add(st, &fzLine{text: "ENV " + name + "=" + val, alts: []string{"ENV " + name + "=" + w + "b"}})
	st.vars, st.envs = append(st.vars, name), append(st.envs, name)
}

// genWorkdir changes the working directory: absolute, relative, or from a variable.
func (g *fzGen) genWorkdir(st *fzStage) {
	n := g.next()
	switch x := g.r.Float64(); {
	case x < 0.5:
		g.add(st, &fzLine{text: fmt.Sprintf("WORKDIR /w%d", n), alts: []string{fmt.Sprintf("WORKDIR /w%db", n)}})
	case x < 0.75:
		g.add(st, &fzLine{text: fmt.Sprintf("WORKDIR w%d", n), alts: []string{fmt.Sprintf("WORKDIR /w%d", n)}})
	default:
		v := g.variable(st, g.two([]string{"one", "two", "a/b", "three"}))
		g.add(st, &fzLine{text: fmt.Sprintf("WORKDIR /w%d/%s", n, v)})
	}
	st.epoch++
}

// genUser switches to another uid (maybe from a variable); from then on the stage
// runs only what any uid may.
func (g *fzGen) genUser(st *fzStage) {
	users := []string{"1000", "1000:1000", "1234", "1234:5678", "app", "nobody:app"}
	if st.noNames {
		users = users[:4]
	}
	two := g.two(users)
	if g.chance(0.25) {
		g.add(st, &fzLine{text: "USER " + g.variable(st, two)})
	} else {
		g.add(st, &fzLine{text: "USER " + two[0], alts: []string{"USER " + two[1]}})
	}
	st.root = false
}

func (g *fzGen) genLabel(st *fzStage) {
	name := fmt.Sprintf("l%d", g.next())
	w := g.word()
	if v := g.vals(st); v != "" {
		w = "\"" + w + " " + v + "\""
	}
	g.add(st, &fzLine{text: "LABEL " + name + "=" + w, alts: []string{"LABEL " + name + "=" + g.word() + "b"}})
}

func (g *fzGen) genShell(st *fzStage) {
	shells := []string{`SHELL ["/bin/sh", "-c"]`, `SHELL ["/bin/busybox", "sh", "-c"]`, `SHELL ["/bin/sh", "-o", "pipefail", "-c"]`}
	two := g.two(shells)
	g.add(st, &fzLine{text: two[0], alts: []string{two[1]}})
}

func (g *fzGen) genConfig(st *fzStage) {
	n := g.next()
	pairs := [][2]string{
		{`CMD ["echo", "one"]`, `CMD ["echo", "two"]`},
		{`ENTRYPOINT ["/bin/echo"]`, `ENTRYPOINT ["/bin/true"]`},
		{"EXPOSE 8080", "EXPOSE 8081/udp"},
		{"STOPSIGNAL SIGTERM", "STOPSIGNAL SIGKILL"},
		{"HEALTHCHECK CMD true", "HEALTHCHECK --interval=5s CMD true"},
		{fmt.Sprintf("VOLUME /vol%d", n), fmt.Sprintf("VOLUME /vol%db", n)},
		{"MAINTAINER one", "MAINTAINER two"},
	}
	p := fzPick(g, pairs)
	g.add(st, &fzLine{text: p[0], alts: []string{p[1]}})
}

// render is the Dockerfile text.
func (g *fzGen) render() string {
	var sb strings.Builder
	for _, l := range g.globals {
		sb.WriteString(l.text + "\n")
	}
	for _, st := range g.stages {
		for _, l := range st.lines {
			sb.WriteString(l.text + "\n")
		}
	}
	return sb.String()
}
