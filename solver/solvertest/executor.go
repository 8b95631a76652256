package solvertest

import (
	"context"
	"os"
	"path/filepath"
	"strings"

	"github.com/kiln-build/kiln/exec"
	"github.com/kiln-build/kiln/solver"
)

// Executor "runs" a RUN by writing what it saw (argv, env, user, cwd, network, one
// per line) to /out/<argv joined by "_"> in the rootfs, so what a step saw is what
// its layer holds, and printing "ran <argv>" to stdout. Hook, when set, is called
// first with the spec; its error fails the step.
func Executor(hook func(ctx context.Context, spec exec.Spec) error) solver.ExecutorFunc {
	return func(ctx context.Context, spec exec.Spec) error {
		if hook != nil {
			if err := hook(ctx, spec); err != nil {
				return err
			}
		}
		if spec.Stdout != nil {
			_, _ = spec.Stdout.Write([]byte("ran " + strings.Join(spec.Args, " ") + "\n"))
		}
		dir := filepath.Join(spec.Rootfs, "out")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		seen := strings.Join([]string{strings.Join(spec.Args, "\x00"), strings.Join(spec.Env, "\x00"),
			spec.User, spec.Cwd, string(spec.Network)}, "\n")
		name := strings.ReplaceAll(strings.Join(spec.Args, "_"), "/", "-")
		if len(name) > 200 {
			name = name[:200]
		}
		return os.WriteFile(filepath.Join(dir, name), []byte(seen), 0o644)
	}
}
