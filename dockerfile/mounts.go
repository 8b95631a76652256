package dockerfile

import (
	"context"
	"fmt"
	"os"
	"path"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"

	"github.com/kiln-build/kiln/exec"
	"github.com/kiln-build/kiln/internal/rootpath"
	"github.com/kiln-build/kiln/solver"
	"github.com/kiln-build/kiln/source"
)

// runMounts is what a RUN's --mount flags resolved to.
type runMounts struct {
	list     []exec.Mount
	releases []func()
	// ops are the mounts as the step's key sees them, in the order written.
	ops []solver.MountOp
	// env is what the mounts add to the step's environment (secrets as env,
	// SSH_AUTH_SOCK); it is never part of the cache key or the image.
	env  []string
	priv *privateDir // the step's secret files and agent sockets, made on first use
	// cacheIDs are the identities of the cache mounts' dirs (solver.RunInputs).
	cacheIDs []string
}

func (m *runMounts) cleanup() {
	for i := len(m.releases) - 1; i >= 0; i-- {
		m.releases[i]()
	}
}

// runMounts resolves RUN --mount flags into sandbox mounts and the MountOps the
// step's key is made of (every option that changes what the step sees, and the
// digest of the content a bind mount shows or a cache mount is seeded from; never a
// cache mount's contents).
func (b *build) runMounts(ctx context.Context, sc *stepCtx, specs []*instructions.Mount) (*runMounts, error) {
	rm := &runMounts{}
	workdir := sc.workdir()
	fail := func(err error) (*runMounts, error) {
		rm.cleanup()
		return nil, err
	}
	var sshTargets []string
	for _, m := range specs {
		switch m.Type {
		case instructions.MountTypeSecret:
			if err := b.secretMount(sc, m, rm); err != nil {
				return fail(err)
			}
			continue
		case instructions.MountTypeSSH:
			t, err := b.sshMount(ctx, sc, m, len(sshTargets), rm)
			if err != nil {
				return fail(err)
			}
			sshTargets = append(sshTargets, t)
			continue
		}
		target := m.Target
		if target == "" {
			return fail(sc.errorf(b.opts.Filename, "RUN --mount=type=%s needs a target", m.Type))
		}
		if !path.IsAbs(target) {
			target = path.Join(workdir, target)
		}
		switch m.Type {
		case instructions.MountTypeBind:
			op, err := b.bindMount(ctx, sc, m, target, rm)
			if err != nil {
				return fail(err)
			}
			rm.ops = append(rm.ops, op)
		case instructions.MountTypeCache:
			dir, op, err := b.cacheMount(ctx, sc, m, rm)
			if err != nil {
				return fail(err)
			}
			op.Target = target
			rm.ops = append(rm.ops, op)
			rm.list = append(rm.list, exec.Mount{Type: "bind", Source: dir, Target: target, ReadOnly: m.ReadOnly})
		case instructions.MountTypeTmpfs:
			var opts []string
			if m.SizeLimit > 0 {
				opts = append(opts, fmt.Sprintf("size=%d", m.SizeLimit))
			}
			rm.list = append(rm.list, exec.Mount{Type: "tmpfs", Target: target, Options: opts})
			rm.ops = append(rm.ops, solver.MountOp{Type: "tmpfs", Target: target, Size: m.SizeLimit})
		default:
			return fail(sc.errorf(b.opts.Filename, "RUN --mount=type=%s is not supported by kiln yet", m.Type))
		}
	}
	// As BuildKit's llb: the first agent socket is SSH_AUTH_SOCK unless the step's
	// environment sets it already.
	if len(sshTargets) > 0 {
		if _, set := lookupEnv(sc.st.env, "SSH_AUTH_SOCK"); !set {
			rm.env = append(rm.env, "SSH_AUTH_SOCK="+sshTargets[0])
		}
	}
	return rm, nil
}

// bindMount resolves a type=bind mount. What the step sees is exactly what its key
// digests: a stage or image is shown as its committed tree (read-only) or a private
// copy of the selection (rw, whose writes are discarded); the build context and other
// directories are always shown as a copy of the selection, as COPY would make it
// (.dockerignore applied, owners 0:0, a socket as an empty file), never as the live
// host directory.
func (b *build) bindMount(ctx context.Context, sc *stepCtx, m *instructions.Mount, target string, rm *runMounts) (solver.MountOp, error) {
	src, err := b.copySource(ctx, sc, copySpec{from: m.From, name: "RUN --mount=type=bind"})
	if err == nil {
		err = src.open(ctx)
	}
	if err != nil {
		return solver.MountOp{}, err
	}
	rm.releases = append(rm.releases, src.release)
	srcPath := m.Source
	if srcPath == "" {
		srcPath = "/"
	}
	errorf := func(err error) error {
		return sc.errorf(b.opts.Filename, "RUN --mount=type=bind,source=%s: %w", m.Source, err)
	}
	host, err := bindSourcePath(src.src, srcPath)
	if err != nil {
		return solver.MountOp{}, errorf(err)
	}
	sel := source.CopyOptions{Sources: []string{srcPath}, Dest: "/", Line: sc.cmd.Line}
	sum, err := b.selectionDigest(ctx, src, sel)
	if err != nil {
		return solver.MountOp{}, errorf(err)
	}
	if !m.ReadOnly || src.content == "" {
		tmp, err := b.eng.TempDir("kiln-bind-")
		if err != nil {
			return solver.MountOp{}, err
		}
		rm.releases = append(rm.releases, func() { os.RemoveAll(tmp) })
		sel.Dest = "/data"
		if err := source.Copy(ctx, src.src, tmp, sel); err != nil {
			return solver.MountOp{}, errorf(err)
		}
		host = tmp + "/data"
	}
	rm.list = append(rm.list, exec.Mount{Type: "bind", Source: host, Target: target, ReadOnly: m.ReadOnly})
	return solver.MountOp{Type: "bind", Target: target, ReadOnly: m.ReadOnly, Source: path.Clean("/" + srcPath), Content: sum.Digest}, nil
}

// workdir is the stage's working directory, "/" when unset.
func (sc *stepCtx) workdir() string {
	if w := sc.st.cfg.Config.WorkingDir; w != "" {
		return w
	}
	return "/"
}

// bindSourcePath resolves a bind mount's source inside its root.
func bindSourcePath(src source.Source, srcPath string) (string, error) {
	p, err := rootpath.Resolve(src.Root, srcPath)
	if err != nil {
		return "", err
	}
	if _, err := os.Lstat(p); err != nil {
		return "", fmt.Errorf("source not found: %w", err)
	}
	return p, nil
}
