package solver

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"

	"github.com/kiln-build/kiln/buildctx"
	"github.com/kiln-build/kiln/exec"
	"github.com/kiln-build/kiln/internal/rootpath"
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
}

// copySource is where a COPY reads from, mounted for the duration of the step.
type copySource struct {
	src     buildctx.Source
	content string // cache-key content when known without hashing (a stage's key)
	release func()
}

func (b *build) dispatchCopy(ctx context.Context, sc *stepCtx, cs copySpec) error {
	st := sc.st
	if cs.parents {
		return sc.errorf(b.opts.Filename, "%s --parents is not supported by kiln yet", cs.name)
	}
	for _, s := range cs.sd.SourcePaths {
		if isRemote(s) {
			return sc.errorf(b.opts.Filename, "%s of a URL or git source (%s) is not supported by kiln yet: download it in a RUN step or into the context", cs.name, s)
		}
	}
	var mode *fs.FileMode
	if cs.chmod != "" {
		m, err := strconv.ParseUint(cs.chmod, 8, 32)
		if err != nil || m > 0o7777 {
			return sc.errorf(b.opts.Filename, "%s --chmod=%s: invalid mode, use octal like 0755", cs.name, cs.chmod)
		}
		fm := fileModeFromUnix(uint32(m))
		mode = &fm
	}
	workdir := st.cfg.Config.WorkingDir
	if workdir == "" {
		workdir = "/"
	}
	dest := cs.sd.DestPath
	if !path.IsAbs(dest) {
		if dest == "." || dest == "" {
			dest = "./"
		}
		keepSlash := strings.HasSuffix(dest, "/")
		dest = path.Join(workdir, dest)
		if keepSlash && !strings.HasSuffix(dest, "/") {
			dest += "/"
		}
	}
	srcPaths := cs.sd.SourcePaths
	var names []string
	for _, c := range cs.sd.SourceContents {
		names = append(names, c.Path)
	}
	if len(cs.sd.SourceContents) > 0 {
		srcPaths = names
	}

	source, err := b.copySource(ctx, sc, cs)
	if err != nil {
		return err
	}
	defer source.release()

	opts := buildctx.CopyOptions{
		Sources: srcPaths, Dest: dest, Chmod: mode, Add: cs.add,
		Excludes: cs.excludes, Line: sc.cmd.Line,
	}
	in := &keyInputs{
		Op:    fmt.Sprintf("%s from=%q chown=%q chmod=%q excludes=%q %q -> %q", cs.name, cs.from, cs.chown, cs.chmod, cs.excludes, srcPaths, dest),
		User:  "", // USER does not affect COPY
		Extra: map[string]string{},
	}
	if cs.chown != "" {
		in.Extra["chown"] = cs.chown
	}
	if source.content != "" {
		in.Content = source.content
	} else {
		sum, err := buildctx.Digest(ctx, source.src, opts, b.opts.Store.HashCache())
		if err != nil {
			return b.copyError(sc, cs, err)
		}
		in.Content = sum.Digest
		if source.src.Context != nil {
			in.Files = make(map[string]string, len(sum.Files))
			for _, f := range sum.Files {
				in.Files[f.Path] = f.Digest
			}
		}
	}
	createdBy := fmt.Sprintf("%s %s %s # buildkit", cs.name, strings.Join(srcPaths, " "), cs.sd.DestPath)
	return b.fsStep(ctx, sc, in, createdBy, func(ctx context.Context, root string) error {
		if cs.chown != "" {
			u, err := exec.ResolveUser(root, cs.chown)
			if err != nil {
				return sc.errorf(b.opts.Filename, "%s --chown=%s: %v", cs.name, cs.chown, err)
			}
			opts.Chown = &buildctx.Owner{UID: int(u.UID), GID: int(u.GID)}
		}
		if err := buildctx.Copy(ctx, source.src, root, opts); err != nil {
			return b.copyError(sc, cs, err)
		}
		return nil
	})
}

func (b *build) copyError(sc *stepCtx, cs copySpec, err error) error {
	return sc.errorf(b.opts.Filename, "%s failed: %v", cs.name, err)
}

// copySource mounts what a COPY reads: another stage's or an image's rootfs for
// --from, the heredoc files, or the build context.
func (b *build) copySource(ctx context.Context, sc *stepCtx, cs copySpec) (*copySource, error) {
	noop := func() {}
	if len(cs.sd.SourceContents) > 0 {
		dir, err := os.MkdirTemp("", "kiln-heredoc-")
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
			if err != nil {
				os.RemoveAll(dir)
				return nil, fmt.Errorf("write heredoc %s: %w", c.Path, err)
			}
		}
		return &copySource{src: buildctx.Source{Root: dir}, release: func() { os.RemoveAll(dir) }}, nil
	}
	if cs.from == "" {
		return &copySource{src: buildctx.Source{Root: b.opts.Context.Dir, Context: b.opts.Context}, release: noop}, nil
	}
	var snaps []string
	var content string
	if nc, ok := b.namedContext(cs.from); ok && nc.Kind == ContextDir {
		bctx, err := buildctx.Open(nc.Ref, "")
		if err != nil {
			return nil, sc.errorf(b.opts.Filename, "%s --from=%s: %v", cs.name, cs.from, err)
		}
		return &copySource{src: buildctx.Source{Root: bctx.Dir, Context: bctx}, release: noop}, nil
	}
	if idx := b.stageIndex(cs.from); idx >= 0 {
		if idx == sc.stage.Index {
			return nil, sc.errorf(b.opts.Filename, "%s --from=%s refers to the stage itself", cs.name, cs.from)
		}
		other, err := b.wait(ctx, idx)
		if err != nil {
			return nil, err
		}
		snaps, content = other.snapshots(), "stage:"+other.key
	} else {
		base, err := b.baseImage(ctx, cs.from, "")
		if err != nil {
			return nil, sc.errorf(b.opts.Filename, "%s --from=%s: %v", cs.name, cs.from, err)
		}
		for _, l := range base.layers {
			snaps = append(snaps, l.snapshot)
		}
		content = "image:" + base.manifest.String()
	}
	root, release, err := b.opts.Snapshots.View(ctx, snaps)
	if err != nil {
		return nil, fmt.Errorf("mount %s --from=%s: %w", cs.name, cs.from, err)
	}
	return &copySource{src: buildctx.Source{Root: root}, content: content, release: func() { _ = release() }}, nil
}

// stageIndex finds a stage by name or index, -1 when the name is not a stage.
func (b *build) stageIndex(ref string) int {
	if n, err := strconv.Atoi(ref); err == nil {
		if n >= 0 && n < len(b.g.Stages) {
			return n
		}
		return -1
	}
	for _, s := range b.g.Stages {
		if s.Name != "" && strings.EqualFold(s.Name, ref) {
			return s.Index
		}
	}
	return -1
}

func isRemote(src string) bool {
	for _, p := range []string{"http://", "https://", "git@", "git://"} {
		if strings.HasPrefix(src, p) {
			return true
		}
	}
	return false
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

// dispatchWorkdir sets the working dir (relative to the previous one) and creates it,
// owned by the current USER, as BuildKit does.
func (b *build) dispatchWorkdir(ctx context.Context, sc *stepCtx, c *instructions.WorkdirCommand) error {
	st := sc.st
	wd := c.Path
	if !path.IsAbs(wd) {
		cur := st.cfg.Config.WorkingDir
		if cur == "" {
			cur = "/"
		}
		wd = path.Join(cur, wd)
	}
	wd = path.Clean(wd)
	st.cfg.Config.WorkingDir = wd
	if wd == "/" {
		b.history(st, "WORKDIR /")
		return nil
	}
	user := st.cfg.Config.User
	in := &keyInputs{Op: "WORKDIR " + wd, User: user}
	return b.fsStep(ctx, sc, in, "WORKDIR "+wd, func(ctx context.Context, root string) error {
		uid, gid := -1, -1
		if user != "" {
			u, err := exec.ResolveUser(root, user)
			if err != nil {
				return sc.errorf(b.opts.Filename, "WORKDIR %s: %v", wd, err)
			}
			uid, gid = int(u.UID), int(u.GID)
		}
		return mkdirAllOwned(root, wd, uid, gid)
	})
}

// mkdirAllOwned creates dir (and missing parents) inside root, resolving symlinks inside
// root, and chowns the dirs it created when uid >= 0.
func mkdirAllOwned(root, dir string, uid, gid int) error {
	var created []string
	cur := "/"
	for _, part := range strings.Split(strings.Trim(dir, "/"), "/") {
		cur = path.Join(cur, part)
		p, err := rootpath.Resolve(root, cur)
		if err != nil {
			return err
		}
		fi, err := os.Stat(p)
		if err == nil {
			if !fi.IsDir() {
				return fmt.Errorf("%s exists and is not a directory", cur)
			}
			continue
		}
		if err := os.Mkdir(p, 0o755); err != nil {
			return err
		}
		created = append(created, p)
	}
	if uid >= 0 {
		for _, p := range created {
			if err := os.Lchown(p, uid, gid); err != nil {
				return err
			}
		}
	}
	return nil
}
