package exec

import (
	"context"
	"sync"
)

// Sandboxes runs RUN steps as Run does, and starts the sandbox of the next step
// while one runs. Starting one is mostly waiting: a new step cgroup, the init's
// start, and its move into the cgroup, which on cgroup v1 waits for an RCU grace
// period of the kernel (2–12 ms while a build runs; v1 cannot clone into a cgroup).
// Done ahead, a step's sandbox is ready when the step comes, and only its config is
// sent; a step that comes while it is still starting waits for it, which is sooner
// than a start of its own. The sandbox started ahead is a fresh one, with its own
// cgroup, used by one step and removed with it, exactly as Run's own. Prestart
// starts the first one ahead of the first step.
//
// A step's cgroup is removed in the background after the step, and Close waits for
// it; Close also removes the sandbox kept for a next step. A Sandboxes must be
// closed when the build's RUN steps are done. The zero value is ready to use.
type Sandboxes struct {
	mu     sync.Mutex
	next   *ahead // the sandbox started for the next step, nil before the first
	closed bool
	errs   []error // of cgroups removed in the background
	// pending counts the sandboxes being started or discarded and the cgroups
	// being removed.
	pending sync.WaitGroup

	// The seccomp program is the same for every step of a build: compiled once
	// (0.5 ms and 430 kB of garbage a step otherwise).
	seccompOnce sync.Once
	seccompProg []byte
	seccompErr  error
}

// Run runs spec as Run does.
func (s *Sandboxes) Run(ctx context.Context, spec Spec) error { return s.run(ctx, spec) }

// Prestart starts the sandbox of a step of spec's kind (its Init, Limits and
// Network decide it) for the next step to take, unless one is started already: a
// build calls it when a RUN is coming, while it does something else (a base image
// unpacks). A step of another kind discards it.
func (s *Sandboxes) Prestart(spec Spec) { s.prestart(spec) }

// Close waits for the sandboxes being started and the cgroups being removed, and
// removes the sandbox kept; Run after Close starts and removes each step's own.
func (s *Sandboxes) Close() error { return s.close() }
