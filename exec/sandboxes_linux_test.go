package exec

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// waitReady waits for s to hold a sandbox started ahead and returns it.
func waitReady(t *testing.T, s *Sandboxes) *sandbox {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		s.mu.Lock()
		next := s.next
		s.mu.Unlock()
		if next != nil {
			select {
			case <-next.done:
				if next.sb != nil {
					return next.sb
				}
			default:
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("no sandbox was started ahead")
	return nil
}

func runThrough(t *testing.T, s *Sandboxes, spec Spec, script string) string {
	t.Helper()
	var out, errb bytes.Buffer
	spec.Args = []string{"/bin/sh", "-c", script}
	spec.Stdout, spec.Stderr = &out, &errb
	if err := s.Run(context.Background(), spec); err != nil {
		t.Fatalf("run %q: %v\nstderr: %s", script, err, errb.String())
	}
	return out.String()
}

// A sandbox started ahead runs the next step as its own would: the step sees its
// rootfs and bind mounts even when they were mounted after the sandbox started, its
// own cgroup as its root, its output and its exit status; a step of another network
// mode, or after the sandbox kept was killed, gets a fresh one; and Close leaves no
// process and no cgroup of any of them.
func TestSandboxesStartStepsAhead(t *testing.T) {
	s := &Sandboxes{}
	closed := false
	defer func() {
		if !closed {
			s.Close()
		}
	}()
	var used []*sandbox // every sandbox a step was seen to take

	first := newSandboxFS(t)
	if out := runThrough(t, s, Spec{Rootfs: first.merged}, "echo one"); out != "one\n" {
		t.Fatalf("first step: %q", out)
	}
	ahead := waitReady(t, s)

	// Mounted only now, after the sandbox of the next step started.
	second := newSandboxFS(t)
	if err := os.WriteFile(filepath.Join(second.merged, "marker"), []byte("second rootfs\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	if err := unix.Mount("tmpfs", data, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(data, unix.MNT_DETACH)
	if err := os.WriteFile(filepath.Join(data, "f"), []byte("late mount\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	spec := Spec{Rootfs: second.merged, Mounts: []Mount{{Type: "bind", Source: data, Target: "/data"}}}
	out := runThrough(t, s, spec, "cat /marker /data/f; grep -v ':/$' /proc/self/cgroup; echo $$")
	if out != "second rootfs\nlate mount\n1\n" {
		t.Errorf("step in the sandbox started ahead: %q", out)
	}
	if !ahead.waited {
		t.Fatal("the second step did not take the sandbox started ahead of it")
	}
	used = append(used, ahead)
	var errb bytes.Buffer
	err := s.Run(context.Background(), Spec{Rootfs: second.merged, Args: []string{"/bin/sh", "-c", "exit 7"}, Stderr: &errb})
	if ee := exitCode(t, err); ee.Code != 7 {
		t.Errorf("exit status through a sandbox started ahead: %+v", ee)
	}

	ahead = waitReady(t, s)
	if out := runThrough(t, s, Spec{Rootfs: second.merged, Network: NetworkNone}, "ls /sys/class/net"); out != "lo\n" {
		t.Errorf("network none after host steps: %q (want only lo)", out)
	}
	if !ahead.waited {
		t.Error("the sandbox started for a host-network step was not removed when a network none step came")
	}
	used = append(used, ahead)

	ahead = waitReady(t, s)
	if err := ahead.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); ahead.alive() && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if out := runThrough(t, s, Spec{Rootfs: second.merged, Network: NetworkNone}, "echo after kill"); out != "after kill\n" {
		t.Errorf("step after the sandbox started ahead was killed: %q", out)
	}
	used = append(used, ahead, waitReady(t, s))

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	closed = true
	for _, sb := range used {
		if !sb.waited {
			t.Errorf("sandbox init %d was not reaped", sb.cmd.Process.Pid)
		}
		for _, d := range sb.cg.dirs() {
			if _, err := os.Stat(d); !os.IsNotExist(err) {
				t.Errorf("cgroup %s left after Close (%v)", d, err)
			}
		}
	}
	if out := runThrough(t, s, Spec{Rootfs: second.merged}, "echo closed"); out != "closed\n" {
		t.Errorf("Run after Close: %q", out)
	}
	s.mu.Lock()
	if s.next != nil {
		t.Error("a sandbox was started ahead after Close")
	}
	s.mu.Unlock()
}

// Prestart starts the first step's sandbox: a step that comes while it is still
// starting waits for it and runs in it, a second Prestart starts no other, a step of
// another network mode discards it, and Close removes one no step took.
func TestSandboxesPrestart(t *testing.T) {
	fs := newSandboxFS(t)
	gone := func(sb *sandbox) {
		t.Helper()
		if !sb.waited {
			t.Errorf("sandbox init %d was not reaped", sb.cmd.Process.Pid)
		}
		for _, d := range sb.cg.dirs() {
			if _, err := os.Stat(d); !os.IsNotExist(err) {
				t.Errorf("cgroup %s left (%v)", d, err)
			}
		}
	}

	s, other := &Sandboxes{}, &Sandboxes{}
	t.Cleanup(func() { s.Close(); other.Close() }) // when the test fails early
	s.Prestart(Spec{})
	s.mu.Lock()
	first := s.next
	s.mu.Unlock()
	s.Prestart(Spec{})
	s.mu.Lock()
	again := s.next
	s.mu.Unlock()
	if first == nil || again != first {
		t.Fatalf("Prestart: %p, then %p", first, again)
	}
	// At once, before it can have started: the step waits for it.
	if out := runThrough(t, s, Spec{Rootfs: fs.merged}, "echo $$"); out != "1\n" {
		t.Errorf("step after Prestart: %q", out)
	}
	<-first.done
	if first.sb == nil {
		t.Fatal("the sandbox Prestart started failed to start")
	}
	first.sb.stdout.mu.Lock()
	used := first.sb.stdout.w != nil // given the step's output: it ran the step
	first.sb.stdout.mu.Unlock()
	if !used || !first.sb.waited {
		t.Fatal("the first step did not run in the sandbox Prestart started")
	}

	other.Prestart(Spec{Network: NetworkNone})
	unused := waitReady(t, other)
	if out := runThrough(t, other, Spec{Rootfs: fs.merged}, "echo host"); out != "host\n" {
		t.Errorf("host step after a network none Prestart: %q", out)
	}
	kept := waitReady(t, other) // started for the next host step
	if err := other.Close(); err != nil {
		t.Fatal(err)
	}
	gone(unused)
	gone(kept)

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	gone(first.sb)
	closed := &Sandboxes{}
	if err := closed.Close(); err != nil {
		t.Fatal(err)
	}
	closed.Prestart(Spec{})
	if closed.next != nil {
		t.Error("Prestart after Close started a sandbox")
	}
}

// Steps running at once through one Sandboxes each get a sandbox of their own.
func TestSandboxesConcurrent(t *testing.T) {
	s := &Sandboxes{}
	var wg sync.WaitGroup
	for i := range 4 {
		fs := newSandboxFS(t)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 3 {
				var out strings.Builder
				err := s.Run(context.Background(), Spec{Rootfs: fs.merged, Args: []string{"/bin/sh", "-c", "echo $$ > /pid; cat /pid"}, Stdout: &out})
				if err != nil || out.String() != "1\n" {
					t.Errorf("step %d.%d: %q %v", i, j, out.String(), err)
				}
			}
		}()
	}
	wg.Wait()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// The seccomp program compiled for a build's first step filters every later one:
// each step through Sandboxes runs in seccomp filter mode, and the filter decides as
// Docker's profile does (unshare of a user namespace refused with EPERM).
func TestSandboxesSeccompEveryStep(t *testing.T) {
	s := &Sandboxes{}
	defer s.Close()
	fs := newSandboxFS(t)
	script := `grep '^Seccomp:' /proc/self/status | tr -d '\t'; unshare -U true 2>/dev/null && echo userns || echo no-userns`
	for i := range 3 {
		if out := runThrough(t, s, Spec{Rootfs: fs.merged}, script); out != "Seccomp:2\nno-userns\n" {
			t.Errorf("step %d: %q, want seccomp filter mode and no user namespace", i+1, out)
		}
	}
}
