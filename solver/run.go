package solver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	dfparser "github.com/moby/buildkit/frontend/dockerfile/parser"

	"github.com/kiln-build/kiln/exec"
	"github.com/kiln-build/kiln/parser"
)

// proxyArgs are passed to RUN when given as build args, without being declared, and
// never persisted (BuildKit's llb.WithProxy).
var proxyArgs = []string{"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy",
	"FTP_PROXY", "ftp_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"}

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
	network := b.opts.Network
	switch n := instructions.GetNetwork(c); n {
	case "", "default":
	case "none":
		network = exec.NetworkNone
	case "host":
		network = exec.NetworkHost
	default:
		return sc.errorf(b.opts.Filename, "RUN --network=%s is not supported (use default, none or host)", n)
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
		dir, err := b.opts.Store.TempDir("kiln-heredoc-")
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
		mounts.ops = append(mounts.ops, MountOp{Type: "heredoc", Target: path.Join("/dev/pipes", name), ReadOnly: true, Content: digestOf(heredocFile.Data)})
		args = []string{path.Join("/dev/pipes", name)}
	}

	env := append([]string(nil), st.env...)
	// As BuildKit's llb.WithProxy: proxy build args reach the process but not the
	// key, so a build behind a proxy shares its cache with one without.
	var proxyEnv []string
	for _, k := range proxyArgs {
		if v, ok := b.g.BuildArgs[k]; ok {
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
	op := &Op{Run: &RunOp{
		Args: args, Env: env, User: st.cfg.Config.User, Workdir: workdir,
		Network: string(network), Security: security, Limits: b.limitsOp(), Mounts: mounts.ops,
	}}
	createdBy := "RUN " + runCommandString(args, st.args, st.env) + " # buildkit"
	return b.fsStep(ctx, sc, op, nil, createdBy, func(ctx context.Context, root string) error {
		out := newTailWriter(b, sc, 1)
		errOut := newTailWriter(b, sc, 2)
		err := b.opts.Executor.Run(ctx, exec.Spec{
			Rootfs: root, Args: args, Env: slices.Concat(env, proxyEnv, mounts.env), Cwd: workdir, User: st.cfg.Config.User,
			Network: network, Mounts: mounts.list, Limits: b.opts.Limits,
			Stdout: out, Stderr: errOut,
		})
		if err == nil {
			return nil
		}
		return b.runError(sc, args, err, out, errOut)
	})
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

// runError turns a failed RUN into the error the user sees: the line, the command,
// the exit code or what killed it, and the tail of its output.
func (b *build) runError(sc *stepCtx, args []string, err error, out, errOut *tailWriter) error {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return sc.errorf(b.opts.Filename, "RUN failed: %w", err)
	}
	cmd := strings.Join(args, " ")
	var msg string
	switch {
	case ee.OOMKilled:
		msg = fmt.Sprintf("RUN was killed: out of memory (limit %s)", humanBytes(ee.MemoryLimit))
	case ee.Signal != 0:
		msg = fmt.Sprintf("process %q was killed by signal %v", cmd, ee.Signal)
	case errors.Unwrap(err) == error(ee):
		// exec wraps the ExitError when the command could not be started (not
		// found, not executable, sandbox setup failed): only its message says why.
		msg = fmt.Sprintf("process %q could not be started: %v", cmd, err)
	default:
		msg = fmt.Sprintf("process %q did not complete successfully: exit code: %d", cmd, ee.Code)
	}
	if ee.PidsLimited {
		msg += " (the step hit its process limit; raise it with --pids-limit)"
	}
	tail := append(out.Tail(), errOut.Tail()...)
	if len(tail) > 0 {
		msg += "\n--- last output lines ---\n" + strings.Join(tail, "\n")
	}
	e := sc.errorf(b.opts.Filename, "%s", msg).(*parser.Error)
	e.Err = err // errors.As(err, **exec.ExitError) for callers
	return e
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%dGiB", n>>30)
	case n >= 1<<20:
		return fmt.Sprintf("%dMiB", n>>20)
	case n >= 1<<10:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}

// tailWriter forwards a step's output as events and keeps its last lines.
type tailWriter struct {
	b      *build
	sc     *stepCtx
	stream int

	mu    sync.Mutex
	lines []string
	part  []byte
}

const tailLines = 10

func newTailWriter(b *build, sc *stepCtx, stream int) *tailWriter {
	return &tailWriter{b: b, sc: sc, stream: stream}
}

func (w *tailWriter) Write(p []byte) (int, error) {
	w.b.emit(Event{Kind: StepLog, ID: w.sc.id, Name: w.sc.name, Data: append([]byte(nil), p...), Stream: w.stream})
	w.mu.Lock()
	defer w.mu.Unlock()
	data := append(w.part, p...)
	for {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			break
		}
		w.lines = append(w.lines, string(data[:i]))
		if len(w.lines) > tailLines {
			w.lines = w.lines[len(w.lines)-tailLines:]
		}
		data = data[i+1:]
	}
	if len(data) > 4096 {
		data = data[len(data)-4096:]
	}
	w.part = append(w.part[:0], data...)
	return len(p), nil
}

// Tail returns the last lines written, including an unterminated last line.
func (w *tailWriter) Tail() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := append([]string(nil), w.lines...)
	if len(w.part) > 0 {
		out = append(out, string(w.part))
	}
	return out
}
