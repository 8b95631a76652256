package main

import (
	"fmt"
	"maps"
	"path"
	"slices"
	"sort"
	"strings"
)

// The context of the random pair generator (cachefuzz_test.go): a random tree, and a
// model of it that B's mutations change as the harness changes the real one, so that
// the generator knows what exists, what .dockerignore hides, and what must not change.
//
// Two rules keep every pair meaningful:
//   - what A reads by name (a COPY/ADD/bind source, a symlink it follows, what a
//     wildcard matches, their parents) is protected: B keeps it, with its kind;
//   - mtimes are not part of COPY/ADD keys (Docker's rule), and a directory's mtime
//     changes when an entry is added, removed or renamed in it. Such a change is made
//     only where every COPY of the directory sees it: never to a name .dockerignore
//     or an --exclude may hide (*.log, tmp: fzHidden), nor in a directory --parents
//     copies as a parent (watched), whose other entries are not in its key.

// fzNode is a path of the context.
type fzNode struct {
	kind    byte   // 'f' file, 'd' directory, 'l' symlink, 'h' hard link
	content string // a file's content; a link's target
	opts    []string
}

// fzCtx is the model of the context (and of the named context "other").
type fzCtx struct {
	nodes   map[string]*fzNode
	ignore  []string        // .dockerignore lines (nil: none)
	protect map[string]bool // paths A and B read by name: kept, with their kind
	watched map[string]bool // directories whose entries must not change
	// created are the paths B's mutations made: removing, replacing or ignoring one
	// again would leave its directory changed in its mtime alone.
	created map[string]bool

	other        map[string]string // the named context: path → content (nil: none)
	otherProtect map[string]bool
}

func (c *fzCtx) sorted() []string { return slices.Sorted(maps.Keys(c.nodes)) }

// ignored says whether .dockerignore hides p (the patterns the generator writes:
// exact paths, "*.log", "**/*.log", "tmp" and "!path").
func (c *fzCtx) ignored(p string) bool {
	out := false
	for _, l := range c.ignore {
		neg := strings.HasPrefix(l, "!")
		pat := strings.TrimPrefix(l, "!")
		for q := p; q != "." && q != "/"; q = path.Dir(q) {
			if fzMatch(pat, q) {
				out = !neg
				break
			}
		}
	}
	return out
}

func fzMatch(pat, p string) bool {
	if rest, ok := strings.CutPrefix(pat, "**/"); ok {
		m, _ := path.Match(rest, path.Base(p))
		return m
	}
	m, _ := path.Match(pat, p)
	return m
}

// visible says whether p exists and .dockerignore does not hide it.
func (c *fzCtx) visible(p string) bool { return c.nodes[p] != nil && !c.ignored(p) }

// fzHidden says whether a name may be hidden by .dockerignore or an --exclude.
func fzHidden(p string) bool {
	for _, part := range strings.Split(p, "/") {
		if strings.HasSuffix(part, ".log") || part == "tmp" {
			return true
		}
	}
	return false
}

// protectPath protects p, its parents, and what a symlink p points to.
func (c *fzCtx) protectPath(p string) {
	for q := p; q != "."; q = path.Dir(q) {
		if c.protect[q] && q != p {
			break
		}
		c.protect[q] = true
	}
	if n := c.nodes[p]; n != nil && n.kind == 'l' {
		if t := path.Clean(path.Join(path.Dir(p), n.content)); !c.protect[t] {
			c.protectPath(t)
		}
	}
}

// entryFree says whether adding, removing or renaming p shows in every COPY of its
// directory.
func (c *fzCtx) entryFree(p string) bool {
	return !fzHidden(p) && !c.watched[path.Dir(p)] && !c.ignored(p)
}

// free says whether p may be removed, renamed or replaced: nothing protected is p or
// under it, and its directory's COPYs all see the change.
func (c *fzCtx) free(p string) bool {
	if p == "Dockerfile" || !c.entryFree(p) || c.created[p] {
		return false
	}
	for q := range c.protect {
		if q == p || strings.HasPrefix(q, p+"/") {
			return false
		}
	}
	return true
}

func (c *fzCtx) remove(p string) {
	for q := range c.nodes {
		if q == p || strings.HasPrefix(q, p+"/") {
			delete(c.nodes, q)
		}
	}
}

// ctxMap is the context as cachePair.ctx spells it.
func (c *fzCtx) ctxMap() map[string]string {
	m := map[string]string{}
	for p, n := range c.nodes {
		if p == "Dockerfile" {
			continue
		}
		key, val := p, n.content
		opts := slices.Clone(n.opts)
		switch n.kind {
		case 'd':
			key, val = p+"/", ""
		case 'l':
			opts = append(opts, "->")
		case 'h':
			opts = append(opts, "=>")
		}
		if len(opts) > 0 {
			key += "|" + strings.Join(opts, ",")
		}
		m[key] = val
	}
	if c.ignore != nil {
		m[".dockerignore"] = strings.Join(c.ignore, "\n") + "\n"
	}
	for p, v := range c.other {
		m["../other/"+p] = v
	}
	return m
}

// genContext makes a random context: a few files at the top, one to three
// directories (a subdirectory, an empty one), modes, xattrs, symlinks (to a file, to
// a directory, dangling), a hard link, a tar, a large file, a name with a space, a
// .wh. name, a .dockerignore; sometimes a named context "other" beside it.
func (g *fzGen) genContext() {
	c := &fzCtx{nodes: map[string]*fzNode{}, protect: map[string]bool{}, watched: map[string]bool{}, created: map[string]bool{}}
	g.c = c
	c.nodes["Dockerfile"] = &fzNode{kind: 'f'}
	c.protect["Dockerfile"] = true
	file := func(p string) *fzNode {
		n := &fzNode{kind: 'f', content: g.word() + "\n"}
		if g.chance(0.05) {
			n.content = ""
		}
		if g.chance(0.2) {
			n.opts = append(n.opts, fzPick(g, []string{"0600", "0755", "0640", "0444", "4755"}))
		}
		if g.chance(0.08) {
			n.opts = append(n.opts, "xattr:user.k="+g.word())
		}
		c.nodes[p] = n
		return n
	}
	for _, f := range []string{"a.txt", "b.txt", "c.md", "run.sh", "notes.log"} {
		if f == "a.txt" || g.chance(0.5) {
			file(f)
		}
	}
	if g.chance(0.1) {
		file("sp ace.txt")
	}
	if g.chance(0.05) {
		file("é-" + strings.Repeat("long-", 25) + ".txt")
	}
	if g.chance(0.08) {
		c.nodes["big.bin"] = &fzNode{kind: 'f', content: fmt.Sprintf("@repeat:%d:%s", 1<<20+g.r.IntN(1<<20), g.word())}
	}
	dirs := []string{"d1", "d2", "src"}
	g.r.Shuffle(len(dirs), func(i, j int) { dirs[i], dirs[j] = dirs[j], dirs[i] })
	dirs = dirs[:1+g.r.IntN(3)]
	sort.Strings(dirs)
	for _, d := range dirs {
		n := &fzNode{kind: 'd'}
		if g.chance(0.2) {
			n.opts = append(n.opts, fzPick(g, []string{"0700", "0750", "1777"}))
		}
		if g.chance(0.05) {
			n.opts = append(n.opts, "xattr:user.d="+g.word())
		}
		c.nodes[d] = n
		for _, f := range []string{"a", "b.txt", "c.md", "x.log"} {
			if f == "a" || g.chance(0.4) {
				file(d + "/" + f)
			}
		}
		if g.chance(0.5) {
			c.nodes[d+"/sub"] = &fzNode{kind: 'd'}
			file(d + "/sub/f.txt")
			if g.chance(0.4) {
				file(d + "/sub/g.md")
			}
		}
		if g.chance(0.15) {
			c.nodes[d+"/empty"] = &fzNode{kind: 'd'}
		}
		if g.chance(0.25) {
			c.nodes[d+"/l"] = &fzNode{kind: 'l', content: "a"}
		}
		if g.chance(0.1) {
			c.nodes[d+"/dangling"] = &fzNode{kind: 'l', content: "missing"}
		}
		if g.chance(0.2) {
			c.nodes[d+"/h"] = &fzNode{kind: 'h', content: d + "/a"}
		}
		if g.chance(0.05) {
			file(d + "/.wh.b.txt")
		}
	}
	if g.chance(0.3) {
		c.nodes["l"] = &fzNode{kind: 'l', content: "a.txt"}
	}
	if g.chance(0.15) {
		// A pattern matching both ld and its target reaches each file twice.
		c.nodes["ld"] = &fzNode{kind: 'l', content: dirs[0]}
	}
	if g.chance(0.35) {
		c.nodes["t.tar"] = &fzNode{kind: 'f', content: g.tarSpec()}
	}
	if g.chance(0.2) {
		c.nodes["tmp"] = &fzNode{kind: 'd'}
		file("tmp/scratch")
	}
	if g.chance(0.35) {
		c.ignore = []string{}
		for _, l := range []string{"*.log", "**/*.log", "tmp"} {
			if g.chance(0.5) {
				c.ignore = append(c.ignore, l)
			}
		}
		if len(c.ignore) > 0 && g.chance(0.3) && c.nodes[dirs[0]+"/x.log"] != nil {
			c.ignore = append(c.ignore, "!"+dirs[0]+"/x.log")
		}
	}
	if g.chance(0.15) {
		c.other = map[string]string{"x.txt": g.word() + "\n", "sub/y.txt": g.word() + "\n"}
		c.otherProtect = map[string]bool{}
		if g.chance(0.5) {
			c.other["sub/z.md"] = g.word() + "\n"
		}
		g.argsA = append(g.argsA, "--build-context", "other={tmp}/other")
	}
}

func (g *fzGen) tarSpec() string {
	spec := "@tar:m1.txt=" + g.word() + "\n;md/=;md/m2.txt=" + g.word() + "\n"
	if g.chance(0.3) {
		spec += ";md/m3=" + g.word()
	}
	return spec
}

// ctxFiles are the visible regular files (with links: also top-level symlinks to
// one), for sources named one by one.
func (g *fzGen) ctxFiles(withLinks bool) []string {
	var out []string
	for _, p := range g.c.sorted() {
		n := g.c.nodes[p]
		if !g.c.visible(p) || fzHidden(p) || p == "Dockerfile" || strings.Contains(p, " ") {
			continue
		}
		switch {
		case n.kind == 'f', n.kind == 'h':
			out = append(out, p)
		case n.kind == 'l' && withLinks && !strings.Contains(p, "/"):
			if t := g.c.nodes[n.content]; t != nil && t.kind == 'f' && g.c.visible(n.content) {
				out = append(out, p)
			}
		}
	}
	return out
}

// ctxDirs are the visible directories (with links: also top-level symlinks to one).
func (g *fzGen) ctxDirs(withLinks bool) []string {
	var out []string
	for _, p := range g.c.sorted() {
		n := g.c.nodes[p]
		if !g.c.visible(p) || fzHidden(p) {
			continue
		}
		switch {
		case n.kind == 'd':
			out = append(out, p)
		case n.kind == 'l' && withLinks && !strings.Contains(p, "/"):
			if t := g.c.nodes[n.content]; t != nil && t.kind == 'd' && g.c.visible(n.content) {
				out = append(out, p)
			}
		}
	}
	return out
}

// wildMatches is what a pattern matches among the visible paths, none hidden.
func (g *fzGen) wildMatches(pat string) []string {
	var out []string
	for _, p := range g.c.sorted() {
		if m, _ := path.Match(pat, p); m && g.c.visible(p) && !fzHidden(p) && p != "Dockerfile" {
			out = append(out, p)
		}
	}
	return out
}

// allMatches is what pattern matches among all paths (a COPY follows a symlink it
// matches, and fails on a dangling one).
func (c *fzCtx) allMatches(pattern string) []string {
	var out []string
	for _, p := range c.sorted() {
		if m, _ := path.Match(pattern, p); m && !c.ignored(p) {
			out = append(out, p)
		}
	}
	return out
}

// dangling says whether p is a symlink to nothing visible.
func (c *fzCtx) dangling(p string) bool {
	n := c.nodes[p]
	if n == nil || n.kind != 'l' {
		return false
	}
	return !c.visible(path.Clean(path.Join(path.Dir(p), n.content)))
}

// protectSource keeps what a source names in B; a pattern keeps what it matches.
func (g *fzGen) protectSource(s string) {
	s = strings.TrimSuffix(s, "/")
	switch {
	case s == ".":
	case strings.ContainsAny(s, "*?["):
		for _, p := range g.wildMatches(s) {
			g.c.protectPath(p)
		}
	default:
		g.c.protectPath(s)
	}
}

// watchParents: --parents copies the parents of what it selects with their metadata,
// while their other entries are not in its key.
func (g *fzGen) watchParents(srcs []string) {
	for _, s := range srcs {
		s = strings.TrimSuffix(s, "/")
		sel := []string{s}
		if strings.ContainsAny(s, "*?[") {
			sel = g.wildMatches(s)
		}
		for _, p := range sel {
			for q := path.Dir(p); q != "."; q = path.Dir(q) {
				g.c.watched[q] = true
			}
		}
	}
}

// copySources picks the sources of a context COPY: one to three files, directories,
// patterns or ".". dirLike says the dest must be a directory; parentsOK that
// --parents may be given.
func (g *fzGen) copySources() (srcs []string, dirLike, parentsOK bool) {
	k := 1
	if g.chance(0.3) {
		k = 2 + g.r.IntN(2)
	}
	parentsOK = true
	for range k {
		var s string
		switch x := g.r.Float64(); {
		case x < 0.45:
			s = fzPick(g, g.ctxFiles(true))
			if g.c.nodes[s].kind == 'l' {
				parentsOK = false
			}
		case x < 0.7:
			dirs := g.ctxDirs(true)
			if len(dirs) == 0 {
				continue
			}
			s = fzPick(g, dirs)
			if g.c.nodes[s].kind == 'l' {
				parentsOK = false
			}
			if g.chance(0.5) {
				s += "/"
			}
			dirLike = true
		case x < 0.92:
			var ok []string
			for _, p := range []string{"*.txt", "*.md", "d*/a*", "*/*.txt", "*/sub/*", "d?/*.md", "src/*", "*/a", "*"} {
				if m := g.wildMatches(p); len(m) > 0 && !slices.ContainsFunc(g.c.allMatches(p), g.c.dangling) {
					ok = append(ok, p)
				}
			}
			s = fzPick(g, ok)
			g.patterns = append(g.patterns, s)
			dirLike = true
		default:
			s = "."
			dirLike = true
			parentsOK = false
		}
		if !slices.Contains(srcs, s) {
			srcs = append(srcs, s)
		}
	}
	if len(srcs) == 0 {
		srcs = []string{"a.txt"}
	}
	for _, s := range srcs {
		g.protectSource(s)
	}
	return srcs, dirLike || len(srcs) > 1, parentsOK
}
