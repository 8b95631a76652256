package solver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/kiln-build/kiln/exec"
)

// RunInputs is what a RUN op's process gets beyond its op: what never enters a key.
type RunInputs struct {
	// Env is added to the op's env for the process only: proxy build args, secrets
	// as env, SSH_AUTH_SOCK.
	Env []string
	// Mounts are the op's mounts resolved to host paths, in the order written.
	Mounts []exec.Mount
	// CacheMounts are the identities of its cache mounts (Store.CacheMountDir), for a
	// CacheMountRestorer.
	CacheMounts []string
}

// Run executes a RUN op (s.Op.Run) on st through the Executor: its argv, env, user,
// workdir and network from the op, the sandbox limits from the engine's Options
// (which it puts in the op), the mounts from in. Output goes out as StepLog events;
// a failure is an *ExecError naming the exit code or signal with the output's last
// lines.
func (e *Engine) Run(ctx context.Context, st State, s Step, in RunInputs) (StepResult, error) {
	run := s.Op.Run
	run.Limits = limitsOp(e.opts.Limits)
	run.ExtraHosts, run.ShmSize, run.Ulimits = nil, e.opts.ShmSize, nil
	for _, h := range e.opts.ExtraHosts {
		run.ExtraHosts = append(run.ExtraHosts, h.Name+"="+h.IP)
	}
	for _, u := range e.opts.Ulimits {
		run.Ulimits = append(run.Ulimits, fmt.Sprintf("%d=%d:%d", u.Resource, u.Soft, u.Hard))
	}
	return e.step(ctx, st, &stepExec{Step: s, do: func(ctx context.Context, root string) error {
		if r, ok := e.opts.Store.(CacheMountRestorer); ok {
			for _, id := range in.CacheMounts {
				if err := r.RestoreCacheMount(ctx, id); err != nil {
					return err
				}
			}
		}
		out := newTailWriter(e, s, 1)
		errOut := newTailWriter(e, s, 2)
		err := e.opts.Executor.Run(ctx, exec.Spec{
			Rootfs: root, Args: run.Args, Env: slices.Concat(run.Env, in.Env), Cwd: run.Workdir, User: run.User,
			Network: exec.NetworkMode(run.Network), Mounts: in.Mounts, Limits: e.opts.Limits,
			ExtraHosts: e.opts.ExtraHosts, ShmSize: e.opts.ShmSize, Ulimits: e.opts.Ulimits,
			Hostname: run.Hostname, Arch: e.opts.Platform.Architecture, Stdout: out, Stderr: errOut,
		})
		if err == nil {
			return nil
		}
		return runError(run.Args, err, out, errOut)
	}})
}

// limitsOp is the build's RUN limits as key material.
func limitsOp(l exec.Limits) LimitsOp {
	return LimitsOp{MemoryBytes: l.MemoryBytes, MilliCPUs: int64(l.CPUs*1000 + 0.5), Pids: l.Pids}
}

// ExecError is a RUN whose process failed: Msg says how in the user's words, Err is
// the executor's error (an *exec.ExitError for errors.As when the process ran).
type ExecError struct {
	Msg string
	Err error
	// Tail is the last lines of the step's output (progress shows them with the
	// error, as BuildKit does; they are not part of the message).
	Tail []string
}

func (e *ExecError) Error() string { return e.Msg }
func (e *ExecError) Unwrap() error { return e.Err }

// runError turns a failed RUN into the error the user sees: the command, the exit
// code or what killed it, and the tail of its output.
func runError(args []string, err error, out, errOut *tailWriter) error {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return fmt.Errorf("RUN failed: %w", err)
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
	return &ExecError{Msg: msg, Err: err, Tail: append(out.Tail(), errOut.Tail()...)}
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
	e      *Engine
	s      Step
	stream int

	mu    sync.Mutex
	lines []string
	part  []byte
}

const tailLines = 10

func newTailWriter(e *Engine, s Step, stream int) *tailWriter {
	return &tailWriter{e: e, s: s, stream: stream}
}

func (w *tailWriter) Write(p []byte) (int, error) {
	w.e.Emit(Event{Kind: StepLog, ID: w.s.ID, Name: w.s.Name, Data: append([]byte(nil), p...), Stream: w.stream})
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
