package cache

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// holderEnv makes the test binary open a store and start the temp files and dirs of a
// build (see holdTemps), as a build that is then killed mid-way.
const holderEnv = "KILN_CACHE_TEST_HOLDER"

// holdTemps opens the store at root, makes a scratch dir, a pull's temp file and a
// blob half written, prints their names and sleeps until killed.
func holdTemps(root string) {
	fail := func(err error) { fmt.Fprintln(os.Stderr, err); os.Exit(1) }
	s, err := Open(context.Background(), root)
	if err != nil {
		fail(err)
	}
	dir, err := s.TempDir("kiln-git-")
	if err != nil {
		fail(err)
	}
	f, err := s.CreateTemp("incoming-")
	if err != nil {
		fail(err)
	}
	w, err := s.NewBlobWriter()
	if err != nil {
		fail(err)
	}
	w.Write([]byte("half a blob"))
	fmt.Printf("%s %s %s\n", filepath.Base(dir), filepath.Base(f.Name()), s.ownerID+ownerSuffix)
	time.Sleep(time.Hour)
	os.Exit(0)
}

// startHolder runs holdTemps in a child process and returns it and the names it made.
func startHolder(t *testing.T, root string) (*exec.Cmd, []string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), holderEnv+"="+root)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("holder: %v", err)
	}
	return cmd, strings.Fields(line)
}

func tmpNames(t *testing.T, root string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(root, "tmp"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

// Opening a store removes the temp files and dirs of builds that are gone (killed
// with SIGKILL, even while still unreaped zombies) and never those of a live build.
func TestOpenCleansTempOfDeadBuilds(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	live, liveNames := startHolder(t, root)
	defer live.Process.Kill()
	dead, deadNames := startHolder(t, root)
	if err := dead.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Not reaped until the end: the dead build is a zombie, which kill(pid, 0) would
	// have called alive. Its lease is free once its last thread has exited.
	defer dead.Wait()
	waitUntil(t, func() bool { return leaseFree(filepath.Join(root, "tmp", deadNames[2])) })

	// Leftovers of kiln versions before owner leases, and an entry whose owner file is
	// gone.
	oldTime := time.Now().Add(-2 * staleTempAge)
	legacyOld := filepath.Join(root, "tmp", "blob-1-123")
	legacyNew := filepath.Join(root, "tmp", "blob-1-456")
	incoming := filepath.Join(root, "blobs", "sha256", ".incoming-789")
	orphan := filepath.Join(root, "tmp", "0123456789abcdef-kiln-url-1")
	for _, p := range []string{legacyOld, legacyNew, incoming, orphan} {
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{legacyOld, incoming} {
		if err := os.Chtimes(p, oldTime, oldTime); err != nil {
			t.Fatal(err)
		}
	}

	s, err := Open(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	mine, err := s.TempDir("kiln-heredoc-")
	if err != nil {
		t.Fatal(err)
	}
	// A second store in this process (tests, or two builds in one binary) leaves the
	// first one's work alone.
	s2, err := Open(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	s2.Close()

	got := tmpNames(t, root)
	want := append(slices.Clone(liveNames[:2]), liveNames[2], filepath.Base(mine), s.ownerID+ownerSuffix, "blob-1-456")
	// The live holder's blob writer's file: the one other entry of its owner.
	liveID := strings.TrimSuffix(liveNames[2], ownerSuffix)
	for _, n := range got {
		if strings.HasPrefix(n, liveID+"-blob-") {
			want = append(want, n)
		}
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("tmp/ after Open:\n got %v\nwant %v\n(the dead build's %v must be gone, the live build's %v kept)", got, want, deadNames, liveNames)
	}
	if _, err := os.Stat(incoming); err == nil {
		t.Error("an old .incoming file in blobs/ was kept")
	}

	// Close removes what the store itself left, then its owner file.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{mine, filepath.Join(root, "tmp", s.ownerID+ownerSuffix)} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s kept after Close", p)
		}
	}
}

func leaseFree(p string) bool {
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
