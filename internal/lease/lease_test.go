package lease

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// holderEnv makes the test binary take a lease on the path it names and sleep, as a
// live build would (see TestMain).
const holderEnv = "KILN_LEASE_TEST_HOLD"

func TestMain(m *testing.M) {
	if p := os.Getenv(holderEnv); p != "" {
		if _, err := Take(p); err != nil {
			os.Exit(2)
		}
		os.Stdout.WriteString("held\n")
		time.Sleep(time.Hour)
	}
	os.Exit(m.Run())
}

// startHolder runs a process that holds path's lease and returns once it does.
func startHolder(t *testing.T, path string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), holderEnv+"="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := out.Read(buf); err != nil || string(buf) != "held\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("holder did not take the lease: %q %v", buf, err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd
}

// A lease held by a live process cannot be taken; once that process is killed with
// SIGKILL it can, at once, while the process is still a zombie nobody has reaped (which
// a kill(pid, 0) probe calls alive).
func TestLeaseOfKilledProcess(t *testing.T) {
	for _, kind := range []string{"file", "dir"} {
		t.Run(kind, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "x")
			var err error
			if kind == "dir" {
				err = os.Mkdir(p, 0o700)
			} else {
				err = os.WriteFile(p, nil, 0o600)
			}
			if err != nil {
				t.Fatal(err)
			}
			holder := startHolder(t, p)
			if _, err := Take(p); !errors.Is(err, ErrHeld) {
				t.Fatalf("Take of a live holder's path = %v, want ErrHeld", err)
			}
			if Abandoned(p) {
				t.Fatal("Abandoned of a live holder's path")
			}
			if err := holder.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			// Not reaped: the lease is free as soon as the last thread has exited,
			// while the process is still a zombie (no Wait yet).
			deadline := time.Now().Add(10 * time.Second)
			var l *Lease
			for l == nil {
				if l, err = Take(p); err != nil && time.Now().After(deadline) {
					t.Fatalf("Take after the holder was killed: %v", err)
				}
				time.Sleep(5 * time.Millisecond)
			}
			if !isZombie(holder.Process.Pid) || syscall.Kill(holder.Process.Pid, 0) != nil {
				t.Fatal("the holder should be an unreaped zombie that answers kill(pid, 0)")
			}
			if err := l.Release(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func isZombie(pid int) bool {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	// "pid (comm) S ...": the state follows the last ')'.
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] == ')' {
			return i+2 < len(b) && b[i+2] == 'Z'
		}
	}
	return false
}

// Within one process two open files conflict as two processes do, so a holder and a
// cleaner in one process (two stores in a test) do not take each other's paths.
func TestLeaseConflictsWithinProcess(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	l, err := Hold(f, p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Take(p); !errors.Is(err, ErrHeld) {
		t.Fatalf("Take of a held path = %v, want ErrHeld", err)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	if !Abandoned(p) {
		t.Fatal("released path is not abandoned")
	}
	if _, err := f.Write([]byte("x")); err != nil {
		t.Fatalf("Release of a Hold closed the caller's file: %v", err)
	}
}

// A holder that lost the race to a cleaner (the path was removed, or replaced, before
// its lock) is told so instead of holding a lock on a file that is no longer there.
func TestHoldAfterRemoval(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "x")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if _, err := Hold(f, p); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Hold of a removed path = %v, want ErrNotExist", err)
	}
	if err := os.WriteFile(p, nil, 0o600); err != nil { // another file took the name
		t.Fatal(err)
	}
	if _, err := Hold(f, p); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Hold of a replaced path = %v, want ErrNotExist", err)
	}
	if !Abandoned(p) {
		t.Error("a failed Hold left the lock on")
	}
}
