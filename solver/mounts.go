package solver

import (
	"context"
	"fmt"
	"os"
	"path"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"

	"github.com/kiln-build/kiln/buildctx"
	"github.com/kiln-build/kiln/exec"
	"github.com/kiln-build/kiln/internal/rootpath"
)

// runMounts is what a RUN's --mount flags resolved to.
type runMounts struct {
	list     []exec.Mount
	releases []func()
	// env is what the mounts add to the step's environment (secrets as env,
	// SSH_AUTH_SOCK); it is never part of the cache key or the image.
	env  []string
	priv *privateDir // the step's secret files and agent sockets, made on first use
}

func (m *runMounts) cleanup() {
	for i := len(m.releases) - 1; i >= 0; i-- {
		m.releases[i]()
	}
}

// runMounts resolves RUN --mount flags into sandbox mounts and the cache-key inputs
// they contribute (the content of bind sources; never cache-mount contents).
func (b *build) runMounts(ctx context.Context, sc *stepCtx, specs []*instructions.Mount) (*runMounts, map[string]string, error) {
	rm := &runMounts{}
	keys := map[string]string{}
	workdir := sc.workdir()
	fail := func(err error) (*runMounts, map[string]string, error) {
		rm.cleanup()
		return nil, nil, err
	}
	var sshTargets []string
	for _, m := range specs {
		switch m.Type {
		case instructions.MountTypeSecret:
			if err := b.secretMount(sc, m, rm, keys); err != nil {
				return fail(err)
			}
			continue
		case instructions.MountTypeSSH:
			t, err := b.sshMount(ctx, sc, m, len(sshTargets), rm, keys)
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
			cs := copySpec{from: m.From, name: "RUN --mount=type=bind"}
			src, err := b.copySource(ctx, sc, cs)
			if err != nil {
				return fail(err)
			}
			rm.releases = append(rm.releases, src.release)
			source := m.Source
			if source == "" {
				source = "/"
			}
			host, err := bindSourcePath(src.src, source)
			if err != nil {
				return fail(sc.errorf(b.opts.Filename, "RUN --mount=type=bind,source=%s: %v", m.Source, err))
			}
			content := src.content
			if content == "" {
				sum, err := buildctx.Digest(ctx, src.src, buildctx.CopyOptions{Sources: []string{source}, Dest: "/", Line: sc.cmd.Line}, b.opts.Store.HashCache())
				if err != nil {
					return fail(sc.errorf(b.opts.Filename, "RUN --mount=type=bind,source=%s: %v", m.Source, err))
				}
				content = sum.Digest
			}
			keys["bind "+target] = fmt.Sprintf("from=%s source=%s rw=%v %s", m.From, source, !m.ReadOnly, content)
			if !m.ReadOnly {
				// Writes to an rw bind mount are discarded: mount a private copy.
				tmp, err := b.opts.Store.TempDir("kiln-bind-rw-")
				if err != nil {
					return fail(err)
				}
				rm.releases = append(rm.releases, func() { os.RemoveAll(tmp) })
				if err := buildctx.Copy(ctx, src.src, tmp, buildctx.CopyOptions{Sources: []string{source}, Dest: "/data", Line: sc.cmd.Line}); err != nil {
					return fail(sc.errorf(b.opts.Filename, "RUN --mount=type=bind,rw: %v", err))
				}
				host = tmp + "/data"
			}
			rm.list = append(rm.list, exec.Mount{Type: "bind", Source: host, Target: target, ReadOnly: m.ReadOnly})
		case instructions.MountTypeCache:
			dir, err := b.cacheMount(ctx, sc, m, rm)
			if err != nil {
				return fail(err)
			}
			rm.list = append(rm.list, exec.Mount{Type: "bind", Source: dir, Target: target, ReadOnly: m.ReadOnly})
		case instructions.MountTypeTmpfs:
			var opts []string
			if m.SizeLimit > 0 {
				opts = append(opts, fmt.Sprintf("size=%d", m.SizeLimit))
			}
			rm.list = append(rm.list, exec.Mount{Type: "tmpfs", Target: target, Options: opts})
			keys["tmpfs "+target] = strings.Join(opts, ",")
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
	return rm, keys, nil
}

// workdir is the stage's working directory, "/" when unset.
func (sc *stepCtx) workdir() string {
	if w := sc.st.cfg.Config.WorkingDir; w != "" {
		return w
	}
	return "/"
}

// bindSourcePath resolves a bind mount's source inside its root.
func bindSourcePath(src buildctx.Source, source string) (string, error) {
	p, err := rootpath.Resolve(src.Root, source)
	if err != nil {
		return "", err
	}
	if _, err := os.Lstat(p); err != nil {
		return "", fmt.Errorf("source not found: %w", err)
	}
	return p, nil
}
