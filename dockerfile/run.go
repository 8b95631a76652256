package dockerfile

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	dfparser "github.com/moby/buildkit/frontend/dockerfile/parser"

	"github.com/kiln-build/kiln/exec"
	"github.com/kiln-build/kiln/solver"
)

// sandboxHostnameArg is the build arg that sets every RUN's hostname (BuildKit's).
const sandboxHostnameArg = "BUILDKIT_SANDBOX_HOSTNAME"

// proxyArgs are passed to RUN when given as build args, without being declared, and
// never persisted (BuildKit's llb.WithProxy). Each is given in either spelling and
// set in both, as BuildKit's executor sets HTTP_PROXY and http_proxy from one value;
// where a build gives both spellings, the upper-case one is the value.
var proxyArgs = []string{"HTTP_PROXY", "HTTPS_PROXY", "FTP_PROXY", "NO_PROXY", "ALL_PROXY"}

// runNetwork is the network mode of RUN c: its --network, else the build's.
func (b *build) runNetwork(c *instructions.RunCommand) (exec.NetworkMode, error) {
	switch n := instructions.GetNetwork(c); n {
	case "", "default":
		return b.opts.Network, nil
	case "none":
		return exec.NetworkNone, nil
	case "host":
		// Docker's reference and BuildKit: the network.host entitlement, granted
		// with --allow (buildx's --network=host for the whole build grants it).
		if !slices.Contains(b.opts.Entitlements, EntitlementNetworkHost) {
			return "", fmt.Errorf("RUN --network=host is not allowed: it needs the network.host entitlement (kiln build --allow network.host)")
		}
		return exec.NetworkHost, nil
	default:
		return "", fmt.Errorf("RUN --network=%s is not supported (use default, none or host)", n)
	}
}

func (b *build) dispatchRun(ctx context.Context, sc *stepCtx, c *instructions.RunCommand) error {
	st := sc.st
	for _, f := range c.FlagsUsed {
		switch f {
		case "mount", "network", "security":
		default:
			return sc.errorf(b.opts.Filename, "RUN --%s is not supported by kiln yet", f)
		}
	}
	security := instructions.GetSecurity(c)
	if err := b.checkSecurity(sc, security); err != nil {
		return err
	}
	network, err := b.runNetwork(c)
	if err != nil {
		return sc.errorf(b.opts.Filename, "%w", err)
	}
	mounts, err := b.runMounts(ctx, sc, instructions.GetMounts(c))
	if err != nil {
		return err
	}
	defer mounts.cleanup()

	args, heredocFile, err := runArgs(st, c)
	if err != nil {
		return sc.errorf(b.opts.Filename, "%w", err)
	}
	if heredocFile != nil {
		dir, err := b.eng.TempDir("kiln-heredoc-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		name := filepath.Base(heredocFile.Name)
		script := filepath.Join(dir, name)
		if err := os.WriteFile(script, []byte(heredocFile.Data), 0o755); err != nil {
			return err
		}
		// Any USER must reach and run the script, whatever kiln's umask (MkdirTemp
		// makes the dir 0700): 0755 both, as BuildKit's /dev/pipes.
		for _, p := range []string{dir, script} {
			if err := os.Chmod(p, 0o755); err != nil {
				return err
			}
		}
		mounts.list = append(mounts.list, exec.Mount{Type: "bind", Source: dir, Target: "/dev/pipes", ReadOnly: true})
		mounts.ops = append(mounts.ops, solver.MountOp{Type: "heredoc", Target: path.Join("/dev/pipes", name), ReadOnly: true, Content: digestOf(heredocFile.Data)})
		args = []string{path.Join("/dev/pipes", name)}
	}

	env := append([]string(nil), st.env...)
	// As BuildKit's llb.WithProxy: proxy build args reach the process but not the
	// key, so a build behind a proxy shares its cache with one without.
	var proxyEnv []string
	for _, upper := range proxyArgs {
		lower := strings.ToLower(upper)
		v, ok := b.g.BuildArgs[upper]
		if !ok {
			v, ok = b.g.BuildArgs[lower]
		}
		if !ok {
			continue
		}
		for _, k := range []string{upper, lower} {
			if _, set := lookupEnv(env, k); !set {
				proxyEnv = append(proxyEnv, k+"="+v)
			}
		}
	}
	workdir := st.cfg.Config.WorkingDir
	if workdir == "" {
		workdir = "/"
	}
	if security == "" {
		security = instructions.SecuritySandbox
	}
	// The engine fills in the op's parent, platform and sandbox limits.
	op := &solver.Op{Run: &solver.RunOp{
		Args: args, Env: env, User: st.cfg.Config.User, Workdir: workdir,
		Network: string(network), Security: security, Mounts: mounts.ops,
		// BuildKit's dockerfile frontend takes the steps' hostname from this build
		// arg, which needs no ARG and reaches neither the env nor the image.
		Hostname: b.g.BuildArgs[sandboxHostnameArg],
	}}
	createdBy := "RUN " + runCommandString(args, st.args, st.env) + " # buildkit"
	r, err := st.eng.Run(ctx, st.fs, b.step(ctx, sc, op, nil), solver.RunInputs{
		Env: slices.Concat(proxyEnv, mounts.env), Mounts: mounts.list, CacheMounts: mounts.cacheIDs,
	})
	return b.fsStep(sc, op, st, createdBy, r, err)
}

// runArgs is the argv of a RUN, as BuildKit builds it: shell form through SHELL; a
// single heredoc starting with #! runs as a script file (returned for mounting); any
// other heredoc is handed to the shell.
func runArgs(st *stageState, c *instructions.RunCommand) ([]string, *instructions.ShellInlineFile, error) {
	args := c.CmdLine
	if len(c.Files) > 0 {
		if len(args) != 1 || !c.PrependShell {
			return nil, nil, errors.New("a heredoc needs the shell form of RUN")
		}
		if dfparser.MustParseHeredoc(args[0]) != nil {
			f := c.Files[0]
			data := f.Data
			if f.Chomp {
				data = dfparser.ChompHeredocContent(data)
			}
			if strings.HasPrefix(data, "#!") {
				f.Data = data
				return nil, &f, nil
			}
			args = []string{data}
		} else {
			var sb strings.Builder
			sb.WriteString(args[0])
			for _, f := range c.Files {
				sb.WriteString("\n" + f.Data + f.Name)
			}
			args = []string{sb.String()}
		}
	}
	if c.PrependShell {
		args = withShell(st.cfg, args)
	}
	return args, nil, nil
}

// runCommandString is the history text of a RUN: "|N K=V ... argv", as BuildKit writes
// it, so that build args used are visible in `docker history`.
func runCommandString(args []string, declared []instructions.KeyValuePairOptional, env []string) string {
	var kv []string
	index := map[string]int{}
	for _, a := range declared {
		v, ok := lookupEnv(env, a.Key)
		if !ok {
			v = a.ValueString()
		}
		if i, ok := index[a.Key]; ok {
			kv[i] = a.Key + "=" + v
			continue
		}
		index[a.Key] = len(kv)
		kv = append(kv, a.Key+"="+v)
	}
	if len(kv) > 0 {
		kv = append([]string{fmt.Sprintf("|%d", len(kv))}, kv...)
	}
	return strings.Join(append(kv, args...), " ")
}
