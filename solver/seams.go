package solver

import (
	"context"

	"github.com/kiln-build/kiln/exec"
)

// Executor runs one RUN step's process in a rootfs with its mounts, as BuildKit's
// executor does: the engine says what to run (exec.Spec), the executor owns the
// sandbox. It returns nil when the process exited 0, an *exec.ExitError when it
// exited otherwise or was killed, and leaves no process, mount or cgroup behind.
// Cancelling ctx kills the step.
type Executor interface {
	Run(ctx context.Context, spec exec.Spec) error
}

// SandboxExecutor is kiln's own sandbox (package exec): namespaces, pivot_root and
// cgroup limits.
type SandboxExecutor struct{}

// Run implements Executor.
func (SandboxExecutor) Run(ctx context.Context, spec exec.Spec) error { return exec.Run(ctx, spec) }

// ExecutorFunc lets a function be an Executor (tests use it as the fake).
type ExecutorFunc func(ctx context.Context, spec exec.Spec) error

// Run implements Executor.
func (f ExecutorFunc) Run(ctx context.Context, spec exec.Spec) error { return f(ctx, spec) }
