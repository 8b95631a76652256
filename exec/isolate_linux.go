package exec

import (
	"errors"
	"fmt"
	"os"
	osexec "os/exec"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"
)

// isolateEnv marks the re-executed kiln as already in its private mount namespace.
const isolateEnv = "_KILN_ISOLATED"

func isolate() error {
	if isolatedAtStart() {
		return nil
	}
	if os.Getenv(isolateEnv) == "1" {
		// Not passed on: a kiln started by this one isolates itself again.
		os.Unsetenv(isolateEnv)
		// First thing: the namespace's mounts are copies of the host's, still
		// peers of them when "/" is shared (systemd makes it so).
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			return fmt.Errorf("isolate: make mounts private: %w", err)
		}
		return nil
	}
	cmd := &osexec.Cmd{
		Path:   "/proc/self/exe",
		Args:   os.Args,
		Env:    append(os.Environ(), isolateEnv+"=1"),
		Stdin:  os.Stdin,
		Stdout: os.Stdout,
		Stderr: os.Stderr,
		SysProcAttr: &syscall.SysProcAttr{
			Cloneflags: syscall.CLONE_NEWNS,
			Pdeathsig:  syscall.SIGKILL,
		},
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	if err := cmd.Start(); err != nil {
		signal.Stop(sigs)
		return fmt.Errorf("isolate: start kiln in a private mount namespace: %w", err)
	}
	go func() {
		for s := range sigs {
			_ = cmd.Process.Signal(s)
		}
	}()
	err := cmd.Wait()
	signal.Stop(sigs)
	var ee *osexec.ExitError
	switch {
	case err == nil:
		os.Exit(0)
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			os.Exit(128 + int(ws.Signal()))
		}
		os.Exit(ee.ExitCode())
	}
	fmt.Fprintf(os.Stderr, "kiln: %v\n", err)
	os.Exit(1)
	return nil
}
