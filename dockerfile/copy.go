package dockerfile

import (
	"context"
	"encoding/hex"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/kiln-build/kiln/source/remote"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"

	"github.com/kiln-build/kiln/internal/rootpath"
	"github.com/kiln-build/kiln/solver"
	"github.com/kiln-build/kiln/source"
)

// copySpec is a COPY or ADD after expansion.
type copySpec struct {
	sd       instructions.SourcesAndDest
	from     string
	chown    string
	chmod    string
	link     bool
	parents  bool
	excludes []string
	add      bool
	name     string // "COPY" or "ADD"

	checksum   string // ADD --checksum
	keepGitDir *bool  // ADD --keep-git-dir
	unpack     *bool  // ADD --unpack
}

// copyCreatedBy is the history line of a COPY or ADD, spelled as BuildKit's
// dispatchCopy does (docker history shows it): the flags that change the files,
// the sources as written (after expansion), heredocs as <<NAME, then dest.
func copyCreatedBy(cs copySpec) string {
	var b strings.Builder
	b.WriteString(cs.name)
	if cs.parents {
		b.WriteString(" --parents")
	}
	if cs.chown != "" {
		b.WriteString(" --chown=" + cs.chown)
	}
	if cs.chmod != "" {
		b.WriteString(" --chmod=" + cs.chmod)
	}
	for _, src := range cs.sd.SourcePaths {
		b.WriteString(" " + src)
	}
	for _, c := range cs.sd.SourceContents {
		b.WriteString(" <<" + c.Path)
	}
	b.WriteString(" " + cs.sd.DestPath + " # buildkit")
	return b.String()
}

// copySource is where a COPY reads from, mounted for the duration of the step.
type copySource struct {
	src     source.Source
	content string // cache-key content when known without hashing (a stage's key)
	release func()
	// lazy, when set, mounts src (a stage's or an image's tree) when called: open
	// does, for the callers that read the files at once.
	lazy func(ctx context.Context) (source.Source, func(), error)
}

// copyPart is a run of a COPY/ADD's sources read from one place: the local sources
// (context, stage, image) between remote ones, or one URL or git repository.
type copyPart struct {
	opts    source.CopyOptions
	src     source.Source
	content string // cache-key content of what the part reads
	// Per-path digests, to explain a cache miss: files for a remote source,
	// fileSums for a tree that was digested.
	files    map[string]string
	fileSums []source.FileSum
	// fetch, when set, materialises src on a cache miss: a URL pinned by --checksum
	// or a git commit is keyed before it is downloaded.
	fetch   func(ctx context.Context) (source.Source, error)
	release func()
	// fromContext says the part reads the build context (for the provenance).
	fromContext bool
}

func (b *build) dispatchCopy(ctx context.Context, sc *stepCtx, cs copySpec) error {
	if err := b.checkCopyFlags(sc, cs); err != nil {
		return err
	}
	var mode *source.Chmod
	if cs.chmod != "" {
		m, err := source.ParseChmod(cs.chmod)
		if err != nil {
			return sc.errorf(b.opts.Filename, "%s --chmod: %v", cs.name, err)
		}
		mode = m
	}
	dest := b.copyDest(sc.st, cs.sd.DestPath)
	parts, err := b.copyParts(ctx, sc, cs, source.CopyOptions{
		Dest: dest, Chmod: mode, Add: cs.add, Excludes: cs.excludes, Line: sc.cmd.Line,
	})
	defer func() {
		for _, p := range parts {
			p.release()
		}
	}()
	if err != nil {
		return err
	}

	var srcNames []string
	for _, p := range parts {
		srcNames = append(srcNames, p.opts.Sources...)
	}
	cop := &solver.CopyOp{
		Add: cs.add, Sources: srcNames, Dest: dest, Chown: cs.chown,
		Link: cs.link, Parents: cs.parents, Excludes: cs.excludes,
		Unpack: optBool(cs.unpack), KeepGitDir: optBool(cs.keepGitDir), Checksum: cs.checksum,
	}
	if mode != nil {
		cop.Chmod = mode.String()
	}
	in := solver.CopyInputs{
		Name: cs.name, Pending: b.pendingOK(sc),
		// BuildKit links a layer only without --chmod (its MergeOp path); with
		// --chmod it copies onto the stage as usual.
		Link: cs.link && cs.chmod == "",
	}
	for _, p := range parts {
		if p.fromContext {
			sc.reads = append(sc.reads, b.recordContextRead(p.content))
		}
		cop.Content = append(cop.Content, p.content)
		in.Parts = append(in.Parts, solver.CopyPart{Source: p.src, Options: p.opts, Fetch: p.fetch})
	}
	createdBy := copyCreatedBy(cs)
	op := &solver.Op{Copy: cop}
	r, err := sc.st.eng.Copy(ctx, sc.st.fs, b.step(ctx, sc, op, explainFiles(parts)), in)
	return b.fsStep(sc, op, sc.st, createdBy, r, err)
}

// explainFiles gives a COPY's per-file digests as a miss explanation compares
// them, sorted by path. A digested tree's are the first 8 bytes of each digest in
// hex, which tell a change as surely as the whole and keep the recorded inputs of a
// 200,000-file COPY small. A later source's path wins, as its copy overwrites the
// earlier one. The engine calls it once (solver.Step.Files), and the parts' digests
// are let go then: the step that runs next holds its own per-file state.
func explainFiles(parts []*copyPart) func() []solver.FileDigest {
	return func() []solver.FileDigest {
		var files []solver.FileDigest
		for _, p := range parts {
			for _, path := range slices.Sorted(maps.Keys(p.files)) {
				files = append(files, solver.FileDigest{Path: path, Digest: p.files[path]})
			}
			for _, f := range p.fileSums { // sorted by path (source.Sum)
				files = append(files, solver.FileDigest{Path: f.Path, Digest: hex.EncodeToString(f.Sum[:8])})
			}
			p.fileSums = nil
		}
		if len(parts) > 1 {
			// Stable, and the last of each path kept: the later source's.
			slices.SortStableFunc(files, func(a, b solver.FileDigest) int { return strings.Compare(a.Path, b.Path) })
			slices.Reverse(files)
			files = slices.CompactFunc(files, func(a, b solver.FileDigest) bool { return a.Path == b.Path })
			slices.Reverse(files)
		}
		return files
	}
}

// copyDest resolves a COPY/ADD destination against the stage's working directory,
// keeping a trailing "/".
func (b *build) copyDest(st *stageState, dest string) string {
	if path.IsAbs(dest) {
		return dest
	}
	workdir := st.cfg.Config.WorkingDir
	if workdir == "" {
		workdir = "/"
	}
	if dest == "." || dest == "" {
		dest = "./"
	}
	keepSlash := strings.HasSuffix(dest, "/")
	dest = path.Join(workdir, dest)
	if keepSlash && !strings.HasSuffix(dest, "/") {
		dest += "/"
	}
	return dest
}

// checkCopyFlags refuses flag combinations as BuildKit's dispatchCopy does.
func (b *build) checkCopyFlags(sc *stepCtx, cs copySpec) error {
	if cs.link && cs.chown != "" && chownByName(cs.chown) {
		return sc.errorf(b.opts.Filename, "%s --chown=%s: user and group names can't be resolved when used with --link, use numeric uid[:gid] instead", cs.name, cs.chown)
	}
	if cs.checksum != "" {
		if !cs.add {
			return sc.errorf(b.opts.Filename, "checksum can't be specified for COPY")
		}
		if len(cs.sd.SourcePaths) != 1 {
			return sc.errorf(b.opts.Filename, "checksum can't be specified for multiple sources")
		}
		if k, _, _ := remote.Classify(cs.sd.SourcePaths[0]); k == remote.KindLocal {
			return sc.errorf(b.opts.Filename, "checksum requires HTTP(S) or Git sources")
		}
	}
	return nil
}

// chownByName reports whether a --chown value names a user or group instead of
// giving numbers (BuildKit refuses names with --link: there is no /etc/passwd to
// read in the empty layer).
func chownByName(chown string) bool {
	user, group, _ := strings.Cut(chown, ":")
	for _, s := range []string{user, group} {
		if s == "" {
			continue
		}
		if _, err := strconv.ParseUint(s, 10, 32); err != nil {
			return true
		}
	}
	return false
}

// copyParts prepares what a COPY/ADD reads, in source order, the heredocs last (as
// BuildKit's dispatchCopy orders its copies). Local sources next to each other share
// one part (one source.Copy, so wildcards and the dest rules work across them), and
// the heredocs one more. Remote sources are resolved to something the cache key can
// name: the downloaded content's digest, the --checksum, or the git commit.
func (b *build) copyParts(ctx context.Context, sc *stepCtx, cs copySpec, base source.CopyOptions) ([]*copyPart, error) {
	var parts []*copyPart
	var local []string
	flush := func() error {
		if len(local) == 0 {
			return nil
		}
		p, err := b.localPart(ctx, sc, cs, base, local, false)
		if p != nil {
			parts = append(parts, p)
		}
		local = nil
		return err
	}
	for _, s := range cs.sd.SourcePaths {
		kind, ref, err := remote.Classify(s)
		if err != nil {
			return parts, sc.errorf(b.opts.Filename, "%s: %w", cs.name, err)
		}
		if kind == remote.KindLocal {
			local = append(local, s)
			continue
		}
		if err := flush(); err != nil {
			return parts, err
		}
		var p *copyPart
		switch {
		case kind == remote.KindGit && !cs.add:
			return parts, sc.errorf(b.opts.Filename, "source can't be a git ref for COPY")
		case kind == remote.KindHTTP && !cs.add:
			return parts, sc.errorf(b.opts.Filename, "source can't be a URL for COPY")
		case kind == remote.KindGit:
			p, err = b.gitPart(ctx, cs, base, s, ref)
		default:
			p, err = b.urlPart(ctx, cs, base, s)
		}
		if p != nil {
			parts = append(parts, p)
		}
		if err != nil {
			return parts, sc.errorf(b.opts.Filename, "%s %s: %w", cs.name, s, err)
		}
	}
	if err := flush(); err != nil || len(cs.sd.SourceContents) == 0 {
		return parts, err
	}
	p, err := b.localPart(ctx, sc, cs, base, nil, true)
	if p != nil {
		parts = append(parts, p)
	}
	return parts, err
}

// localPart reads sources from the context, another stage, an image or a named
// context, or (heredocs) the heredoc files of the COPY/ADD.
func (b *build) localPart(ctx context.Context, sc *stepCtx, cs copySpec, base source.CopyOptions, sources []string, heredocs bool) (*copyPart, error) {
	var from *copySource
	var err error
	if heredocs {
		for _, c := range cs.sd.SourceContents {
			sources = append(sources, c.Path)
		}
		from, err = b.heredocSource(cs)
	} else {
		from, err = b.copySource(ctx, sc, cs)
	}
	if err != nil {
		return nil, err
	}
	opts := base
	opts.Sources = sources
	// BuildKit copies heredocs without --parents and never unpacks them.
	opts.Parents = cs.parents && !heredocs
	if heredocs || cs.unpack != nil && !*cs.unpack {
		opts.KeepArchives = true
	}
	p := &copyPart{opts: opts, src: from.src, release: from.release}
	if from.lazy != nil {
		if d, ok := b.eng.HashCache().Get(selectionMemo(from, opts)); ok {
			// Keyed without reading the files: they are mounted if the step runs.
			p.content = d
			p.fetch = func(ctx context.Context) (source.Source, error) {
				if err := from.open(ctx); err != nil {
					return source.Source{}, err
				}
				p.src, p.release = from.src, from.release
				return from.src, nil
			}
			return p, nil
		}
		if err := from.open(ctx); err != nil {
			return p, err
		}
		p.src, p.release = from.src, from.release
	}
	sum, err := b.selectionDigest(ctx, from, opts)
	if err != nil {
		return p, b.copyError(sc, cs, err)
	}
	p.content = sum.Digest
	if from.src.Context != nil {
		p.fromContext = !heredocs
		p.fileSums = sum.Files
	}
	return p, nil
}

func (b *build) copyError(sc *stepCtx, cs copySpec, err error) error {
	return sc.errorf(b.opts.Filename, "%s failed: %w", cs.name, err)
}

// heredocSource writes the heredoc files of a COPY/ADD into a temporary directory of
// the store (removed at the next start if kiln is killed).
func (b *build) heredocSource(cs copySpec) (*copySource, error) {
	dir, err := b.eng.TempDir("kiln-heredoc-")
	if err != nil {
		return nil, err
	}
	for _, c := range cs.sd.SourceContents {
		p, err := rootpath.Resolve(dir, c.Path)
		if err == nil {
			err = os.MkdirAll(filepath.Dir(p), 0o755)
		}
		if err == nil {
			err = os.WriteFile(p, []byte(c.Data), 0o644)
		}
		if err == nil {
			// The copy keeps the file's mode: 0644 as BuildKit's Mkfile, whatever
			// the umask.
			err = os.Chmod(p, 0o644)
		}
		if err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("write heredoc %s: %w", c.Path, err)
		}
	}
	// The heredocs' text is the identity of the tree: their digest is memoised by
	// it (selectionDigest), and the temp dir's metadata never fills the file cache.
	var texts []string
	for _, c := range cs.sd.SourceContents {
		texts = append(texts, c.Path, c.Data)
	}
	return &copySource{src: source.Source{Root: dir}, content: digestOf(append([]string{"heredocs"}, texts...)...),
		release: func() { os.RemoveAll(dir) }}, nil
}

// copySource mounts what a COPY reads: another stage's or an image's rootfs for
// --from, or the build context.
func (b *build) copySource(ctx context.Context, sc *stepCtx, cs copySpec) (*copySource, error) {
	noop := func() {}
	if cs.from == "" {
		return &copySource{src: source.Source{Root: b.opts.Context.Dir, Context: b.opts.Context}, release: noop}, nil
	}
	var tree solver.State
	var content string
	if nc, ok := b.namedContext(cs.from); ok {
		switch nc.Kind {
		case remote.ContextDir:
			bctx, err := source.Open(nc.Ref, "")
			if err != nil {
				return nil, sc.errorf(b.opts.Filename, "%s --from=%s: %w", cs.name, cs.from, err)
			}
			return &copySource{src: source.Source{Root: bctx.Dir, Context: bctx}, release: noop}, nil
		case remote.ContextGit, remote.ContextURL:
			src, err := b.remoteContext(ctx, nc)
			if err != nil {
				return nil, sc.errorf(b.opts.Filename, "%s --from=%s: %w", cs.name, cs.from, err)
			}
			return src, nil
		}
	}
	if idx := b.stageIndex(cs.from); idx >= 0 {
		if idx == sc.stage.Index {
			return nil, sc.errorf(b.opts.Filename, "%s --from=%s refers to the stage itself", cs.name, cs.from)
		}
		other, err := b.wait(ctx, idx)
		if err != nil {
			return nil, err
		}
		tree, content = other.fs, "stage:"+other.fs.Key
		sc.reads = append(sc.reads, other.fs.Key) // the provenance's input of the step
	} else {
		base, err := b.baseImage(ctx, sc.st.eng, cs.from, "", sc.cmd.Line, nil, func(msg string) {
			b.emit(solver.Event{Kind: solver.StepInfo, ID: sc.id, Name: sc.name, Message: msg})
		})
		if err != nil {
			return nil, sc.errorf(b.opts.Filename, "%s --from=%s: %w", cs.name, cs.from, err)
		}
		tree, content = base.State, "image:"+base.Manifest.String()
		sc.reads = append(sc.reads, base.State.Key)
	}
	// Mounted (its layers unpacked first if they have no snapshot yet) only when
	// something reads the files: a COPY whose selection digest is memoised, by this
	// root or a remote cache, and whose step hits never does.
	mount := func(ctx context.Context) (source.Source, func(), error) {
		root, release, err := b.eng.View(ctx, tree)
		if err != nil {
			return source.Source{}, nil, fmt.Errorf("mount %s --from=%s: %w", cs.name, cs.from, err)
		}
		return source.Source{Root: root}, func() { _ = release() }, nil
	}
	return &copySource{content: content, release: noop, lazy: mount}, nil
}

// open mounts a lazy source now.
func (c *copySource) open(ctx context.Context) error {
	if c.lazy == nil {
		return nil
	}
	src, release, err := c.lazy(ctx)
	if err != nil {
		return err
	}
	c.src, c.release, c.lazy = src, release, nil
	return nil
}

// stageIndex finds a stage by name or index, -1 when the name is not a stage.
func (b *build) stageIndex(ref string) int {
	if n, err := strconv.Atoi(ref); err == nil {
		if n >= 0 && n < len(b.g.Stages) {
			return n
		}
		return -1
	}
	// The last stage of that name, as BuildKit resolves --from (and the parser).
	for _, s := range slices.Backward(b.g.Stages) {
		if s.Name != "" && strings.EqualFold(s.Name, ref) {
			return s.Index
		}
	}
	return -1
}

// unixPerm is the inverse of fileModeFromUnix.
func unixPerm(m fs.FileMode) uint32 {
	u := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		u |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		u |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		u |= 0o1000
	}
	return u
}

// optBool renders a tri-state flag as the key keeps it: "" when not given.
func optBool(v *bool) string {
	if v == nil {
		return ""
	}
	return strconv.FormatBool(*v)
}

// fileModeFromUnix converts permission and special bits from their unix values.
func fileModeFromUnix(m uint32) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	if m&0o4000 != 0 {
		mode |= fs.ModeSetuid
	}
	if m&0o2000 != 0 {
		mode |= fs.ModeSetgid
	}
	if m&0o1000 != 0 {
		mode |= fs.ModeSticky
	}
	return mode
}

// dispatchWorkdir sets the working dir (relative to the previous one) and has the
// engine create it, owned by the current USER (solver.Engine.Workdir).
func (b *build) dispatchWorkdir(ctx context.Context, sc *stepCtx, c *instructions.WorkdirCommand) error {
	st := sc.st
	// As BuildKit's NormalizeWorkdir: an absolute path is kept as written ("/tmp/"
	// stays "/tmp/" in the config and the history), a relative one is joined to the
	// current dir, which cleans it.
	wd := c.Path
	if !path.IsAbs(wd) {
		cur := st.cfg.Config.WorkingDir
		if cur == "" {
			cur = "/"
		}
		wd = path.Join("/", cur, wd)
	}
	st.cfg.Config.WorkingDir = wd
	if path.Clean(wd) == "/" {
		b.history(st, "WORKDIR /")
		return nil
	}
	op := &solver.Op{Workdir: &solver.WorkdirOp{Path: wd, User: st.cfg.Config.User}}
	r, err := st.eng.Workdir(ctx, st.fs, b.step(ctx, sc, op, nil))
	return b.fsStep(sc, op, st, "WORKDIR "+wd, r, err)
}
