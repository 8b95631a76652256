package snapshottest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/snapshot"
)

// The environment of the second kiln process NewCleansLeftovers starts: the snapshot
// root, whether to use the copy fallback, and the parent to prepare on.
const (
	childRootEnv   = "KILN_SNAPSHOTTEST_CHILD_ROOT"
	childCopyEnv   = "KILN_SNAPSHOTTEST_CHILD_COPY"
	childParentEnv = "KILN_SNAPSHOTTEST_CHILD_PARENT"
)

// Main runs m's tests, unless this process is the second kiln process that
// NewCleansLeftovers starts from the test binary, which it then becomes. Call it from
// the TestMain of every test binary that calls Run.
func Main(m *testing.M) {
	if root := os.Getenv(childRootEnv); root != "" {
		if err := runChild(root); err != nil {
			fmt.Fprintln(os.Stderr, "snapshottest child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runChild leaves work in progress of every kind: an Active with a write in its Root
// (mounted, with overlay) and an Ingest whose fill never returns. It says "ready" on
// stdout, then waits to be killed, or exits when its stdin closes (the test died).
func runChild(root string) error {
	ctx := context.Background()
	var opts []snapshot.Option
	if os.Getenv(childCopyEnv) == "1" {
		opts = append(opts, snapshot.WithoutOverlay())
	}
	s, err := snapshot.New(ctx, root, opts...)
	if err != nil {
		return err
	}
	a, err := s.Prepare(ctx, []string{os.Getenv(childParentEnv)})
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(a.Root, "child"), []byte("child"), 0o644); err != nil {
		return err
	}
	filling := make(chan error, 1)
	go func() {
		filling <- s.Ingest(ctx, "from-child", func(dir string) error {
			if err := os.WriteFile(filepath.Join(dir, "f"), []byte("partial"), 0o644); err != nil {
				return err
			}
			filling <- nil
			select {} // killed mid-fill
		})
	}()
	if err := <-filling; err != nil {
		return err
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
	return nil
}

// New removes what a killed process left in active/ and tmp/, unmounting first so
// the parents survive, and never touches the work of a live process: neither
// another process's nor the caller's own from an earlier Snapshotter.
func testNewCleansLeftovers(e *env) {
	e.ingest("base", baseTree...)
	base := describe(e.t, e.s.Path("base"), WithTimes)
	mine := e.prepare("base")
	apply(e.t, mine.Root, WriteFile("mine", "m", 0o644))

	before := workDirs(e)
	child, _ := startChild(e, "base")
	theirs := newWorkDirs(e, before)
	if len(theirs) != 2 {
		e.t.Fatalf("the child's work dirs: %v, want one in active/ and one in tmp/", theirs)
	}
	e.newFunc(e.t, e.root)
	for _, d := range theirs {
		if _, err := os.Lstat(d); err != nil {
			e.t.Errorf("New removed live work dir %s: %v", d, err)
		}
	}
	childRoot := filepath.Join(theirs[0], "merged")
	if b, err := os.ReadFile(filepath.Join(childRoot, "child")); err != nil || string(b) != "child" {
		e.t.Errorf("the live child's Root after New: %q, %v", b, err)
	}
	if e.s.Overlay() && !mounted(e.t, childRoot) {
		e.t.Error("New unmounted a live process's Root")
	}

	if err := child.Process.Kill(); err != nil {
		e.t.Fatal(err)
	}
	child.Wait()
	e.newFunc(e.t, e.root)
	if left := newWorkDirs(e, before); len(left) > 0 {
		e.t.Errorf("New left the dead process's work dirs: %v", left)
	}
	if mps, _ := snapshot.MountsUnder(filepath.Join(e.root, "active")); len(mps) > 1 || (len(mps) == 1) != e.s.Overlay() {
		e.t.Errorf("mounts under active/ after New: %v, want only this process's own", mps)
	}
	if e.s.Exists("from-child") {
		e.t.Error("the killed Ingest left a snapshot")
	}
	checkTree(e.t, "parent of the dead Active", describe(e.t, e.s.Path("base"), WithTimes), base)
	if b, err := os.ReadFile(filepath.Join(mine.Root, "mine")); err != nil || string(b) != "m" {
		e.t.Errorf("this process's Active after New: %q, %v", b, err)
	}
	if err := mine.Unmount(e.ctx); err != nil {
		e.t.Fatal(err)
	}
	checkTree(e.t, "this process's Upper after New", describe(e.t, mine.Upper), Build(e.t, WriteFile("mine", "m", 0o644)))
}

// startChild runs the test binary as a second kiln process (see Main) on e's root and
// waits until it has its work in progress. The child is killed at cleanup.
func startChild(e *env, parent string) (*exec.Cmd, int) {
	e.t.Helper()
	copyMode := "0"
	if !e.s.Overlay() {
		copyMode = "1"
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childRootEnv+"="+e.root, childCopyEnv+"="+copyMode, childParentEnv+"="+parent)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		e.t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		e.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		stdin.Close()
		cmd.Process.Kill()
		cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if strings.TrimSpace(line) != "ready" {
		e.t.Fatalf("child said %q, %v: the test binary's TestMain must call snapshottest.Main", line, err)
	}
	return cmd, cmd.Process.Pid
}

// workDirs lists the work dirs in active/ and tmp/.
func workDirs(e *env) map[string]bool {
	e.t.Helper()
	out := map[string]bool{}
	for _, sub := range []string{"active", "tmp"} {
		for _, name := range entries(e.t, filepath.Join(e.root, sub)) {
			out[filepath.Join(e.root, sub, name)] = true
		}
	}
	return out
}

// newWorkDirs lists the work dirs in active/ and tmp/ that were not there before
// (work dirs are named at random and told apart by their lease, not by a pid).
func newWorkDirs(e *env, before map[string]bool) []string {
	e.t.Helper()
	var out []string
	for _, sub := range []string{"active", "tmp"} {
		for _, name := range entries(e.t, filepath.Join(e.root, sub)) {
			if p := filepath.Join(e.root, sub, name); !before[p] {
				out = append(out, p)
			}
		}
	}
	sort.Strings(out) // active/ before tmp/
	return out
}
