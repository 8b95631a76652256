//go:build linux && cgo

package main

import (
	"fmt"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Root's kiln build is in its private mount namespace from its first instruction:
// the process the user started is the one that builds (no second kiln beside it),
// its RUN step's overlay is in its own mount table, and the host never sees it.
func TestBuildIsolatedWithoutReexec(t *testing.T) {
	root, out := e2e(t)
	host := busyboxRegistry(t)
	dir := project(t, map[string]string{
		"Dockerfile": fmt.Sprintf("FROM %s/busybox\nRUN sleep 2; echo done > /done\n", host),
	})
	cmd := osexec.Command(os.Args[0], "build", "--root", root, "--progress", "plain", "--no-cache",
		"-o", "type=oci,dest="+filepath.Join(out, "img.tar"), ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "KILN_E2E_MAIN=1")
	var log strings.Builder
	cmd.Stderr = &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
	})
	ours, err := os.Readlink("/proc/self/ns/mnt")
	if err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	// Poll until the RUN's overlay shows in kiln's own mount table.
	var sawOverlay bool
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline) && !sawOverlay; time.Sleep(20 * time.Millisecond) {
		select {
		case err := <-done:
			done <- err
			t.Fatalf("build ended before its RUN was seen running (%v):\n%s", err, log.String())
		default:
		}
		mounts, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", pid))
		if err != nil {
			continue
		}
		sawOverlay = strings.Contains(string(mounts), root)
	}
	if !sawOverlay {
		t.Fatalf("no mount under the root in kiln's (pid %d) mount table:\n%s", pid, log.String())
	}
	theirs, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", pid))
	if err != nil {
		t.Fatal(err)
	}
	if theirs == ours {
		t.Errorf("kiln (pid %d) builds in the host's mount namespace %s: it re-executed itself instead of isolating before main", pid, ours)
	}
	noKilnMounts(t, root)
	if err := <-done; err != nil {
		t.Fatalf("build: %v\n%s", err, log.String())
	}
	done <- nil
	files := flatten(t, readOCI(t, filepath.Join(out, "img.tar")))
	if got := files["/done"].content; got != "done\n" {
		t.Errorf("/done: %q", got)
	}
	noKilnMounts(t, root)
}
