package exec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	osexec "os/exec"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/sandboxinit"
)

// sandboxKey is what a sandbox init is started with, before it has its step: the
// binary, the cgroup's limits and whether it has a network namespace of its own.
type sandboxKey struct {
	init   string
	limits Limits
	newNet bool
}

// sandbox is a sandbox init started in new namespaces and moved into its own step
// cgroup, waiting on its socket for the config of the step it is to run.
type sandbox struct {
	key  sandboxKey
	cmd  *osexec.Cmd
	sock *os.File
	cg   stepCgroup
	// The init's output goes to the step's writers, which are known only once
	// the sandbox has its step; it writes nothing before.
	stdout, stderr *switchWriter

	waited  bool
	waitErr error
}

// startSandbox creates a step cgroup, starts the init and moves it into the cgroup.
func startSandbox(key sandboxKey) (*sandbox, error) {
	cg, err := stepCgroupFor(key.limits)
	if err != nil {
		return nil, err
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("socketpair: %w", err), cg.delete())
	}
	parentSock := os.NewFile(uintptr(fds[0]), "kiln-sandbox-parent")
	childSock := os.NewFile(uintptr(fds[1]), "kiln-sandbox-child")
	sb := &sandbox{key: key, sock: parentSock, cg: cg, stdout: &switchWriter{}, stderr: &switchWriter{}}
	sb.cmd = &osexec.Cmd{
		Path:       key.init,
		Args:       []string{sandboxinit.Arg0},
		Env:        []string{sandboxinit.Env + "=1"},
		Stdout:     sb.stdout,
		Stderr:     sb.stderr,
		ExtraFiles: []*os.File{childSock},
		SysProcAttr: &syscall.SysProcAttr{
			// The cgroup namespace is unshared by the init once it is in its
			// cgroup, so that the step sees that cgroup as its root; the mount
			// namespace once it has its config, so that it holds the mounts made
			// for the step after the init started (its rootfs among them).
			Cloneflags: syscall.CLONE_NEWPID | syscall.CLONE_NEWUTS | syscall.CLONE_NEWIPC,
			Pdeathsig:  syscall.SIGKILL,
			// A session of its own: the terminal's Ctrl-C (sent to its foreground
			// process group) reaches kiln, which cancels the build and stops the
			// step, rather than killing the step under it.
			Setsid: true,
		},
	}
	if key.newNet {
		sb.cmd.SysProcAttr.Cloneflags |= syscall.CLONE_NEWNET
	}
	err = sb.cmd.Start()
	childSock.Close()
	if err != nil {
		parentSock.Close()
		return nil, errors.Join(fmt.Errorf("start sandbox: %w", err), cg.delete())
	}
	if err := cg.add(sb.cmd.Process.Pid); err != nil {
		return nil, errors.Join(err, sb.release())
	}
	return sb, nil
}

// alive reports whether the init has not exited, without reaping it.
func (sb *sandbox) alive() bool {
	if sb.waited {
		return false
	}
	var info unix.Siginfo
	err := unix.Waitid(unix.P_PID, sb.cmd.Process.Pid, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil)
	// With WNOHANG a child that has not exited leaves info zero.
	return err == nil && info.Signo == 0
}

// wait reaps the init (once) and waits for its output to be copied.
func (sb *sandbox) wait() error {
	if !sb.waited {
		sb.waitErr, sb.waited = sb.cmd.Wait(), true
	}
	return sb.waitErr
}

// release kills the init if it is still there, reaps it, and empties and deletes its
// cgroup.
func (sb *sandbox) release() error {
	return errors.Join(sb.stop(), sb.cg.delete())
}

// stop kills the init if it is still there, reaps it, and empties its cgroup: what
// is left of the sandbox is the empty cgroup.
func (sb *sandbox) stop() error {
	if !sb.waited {
		_ = sb.cmd.Process.Kill()
	}
	_ = sb.wait()
	sb.sock.Close()
	return sb.cg.killAll()
}

// switchWriter is an io.Writer whose destination is set later; until then, and
// when it is set to nil, what is written is dropped.
type switchWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *switchWriter) set(w io.Writer) {
	s.mu.Lock()
	s.w = w
	s.mu.Unlock()
}

func (s *switchWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	w := s.w
	s.mu.Unlock()
	if w == nil {
		return len(p), nil
	}
	return w.Write(p)
}

// ahead is a sandbox being started, or started, for a next step of its key.
type ahead struct {
	key  sandboxKey
	done chan struct{} // closed once sb is set
	sb   *sandbox      // nil when it failed to start: the step starts its own and reports why
}

// keyOf is the kind of sandbox spec's step runs in.
func keyOf(spec Spec) sandboxKey {
	init := spec.Init
	if init == "" {
		init = "/proc/self/exe"
	}
	return sandboxKey{init: init, limits: spec.Limits, newNet: spec.Network == NetworkNone}
}

// startAhead starts a sandbox for key in the background; s.mu is held.
func (s *Sandboxes) startAhead(key sandboxKey) *ahead {
	a := &ahead{key: key, done: make(chan struct{})}
	s.pending.Add(1)
	go func() {
		defer s.pending.Done()
		a.sb, _ = startSandbox(key)
		close(a.done)
	}()
	return a
}

// discard removes a's sandbox once it has started: now when it has, else in the
// background; s.mu is not held. Only while a is still starting is pending sure to
// be above zero (its start goroutine counts until after done closes), so that a
// Close waiting on pending can never see an Add from zero.
func (s *Sandboxes) discard(a *ahead) {
	select {
	case <-a.done:
		if a.sb != nil {
			_ = a.sb.release()
		}
		return
	default:
	}
	s.pending.Add(1)
	go func() {
		defer s.pending.Done()
		<-a.done
		if a.sb != nil {
			_ = a.sb.release()
		}
	}()
}

// take hands out the sandbox started ahead when it was started for key, waiting for
// it if it is still starting, and starts the next one for the same key: the steps of
// a build mostly share it. A nil Sandboxes has none (Run).
func (s *Sandboxes) take(ctx context.Context, key sandboxKey) *sandbox {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	prev := s.next
	s.next = s.startAhead(key)
	s.mu.Unlock()
	if prev == nil {
		return nil
	}
	if prev.key == key {
		select {
		case <-prev.done:
			if prev.sb != nil && prev.sb.alive() {
				return prev.sb
			}
			// Killed while it waited (by its parent thread's end, through
			// Pdeathsig): this step starts its own.
		case <-ctx.Done():
		}
	}
	// Started for another kind of step, or not wanted any more.
	s.discard(prev)
	return nil
}

// prestart starts a sandbox for spec's kind of step unless one is started already
// or the Sandboxes are closed.
func (s *Sandboxes) prestart(spec Spec) {
	key := keyOf(spec)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.next != nil {
		return
	}
	s.next = s.startAhead(key)
}

// retire stops a step's sandbox and removes its empty cgroup in the background: a
// cgroup's removal, as its creation, waits on the kernel, and the next step need not.
// Close waits for it and reports what failed. A nil Sandboxes removes it now (Run).
func (s *Sandboxes) retire(sb *sandbox) error {
	if s == nil {
		return sb.release()
	}
	if err := sb.stop(); err != nil {
		return errors.Join(err, sb.cg.delete())
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return sb.cg.delete()
	}
	s.pending.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.pending.Done()
		if err := sb.cg.delete(); err != nil {
			s.mu.Lock()
			s.errs = append(s.errs, err)
			s.mu.Unlock()
		}
	}()
	return nil
}

func (s *Sandboxes) run(ctx context.Context, spec Spec) error { return runIn(ctx, spec, s) }

// seccompProgram is the steps' seccomp program, compiled on the first call; a nil
// Sandboxes (Run) compiles it each time.
func (s *Sandboxes) seccompProgram() ([]byte, error) {
	if s == nil {
		return stepSeccomp()
	}
	s.seccompOnce.Do(func() { s.seccompProg, s.seccompErr = stepSeccomp() })
	return s.seccompProg, s.seccompErr
}

func (s *Sandboxes) close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.pending.Wait()
	s.mu.Lock()
	next, errs := s.next, s.errs
	s.next, s.errs = nil, nil
	s.mu.Unlock()
	if next != nil && next.sb != nil {
		if err := next.sb.release(); err != nil {
			errs = append(errs, fmt.Errorf("remove the sandbox started ahead: %w", err))
		}
	}
	return errors.Join(errs...)
}
