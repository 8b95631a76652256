package solver

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiln-build/kiln/buildctx"
	"github.com/kiln-build/kiln/cache"
	"github.com/kiln-build/kiln/internal/testenv"
	"github.com/kiln-build/kiln/parser"
	"github.com/kiln-build/kiln/snapshot"
)

// A multi-stage FROM scratch build: no registry and no RUN, so Solve runs in-process.
const scratchStages = `FROM scratch AS a
COPY a.txt /a.txt
FROM scratch AS b
COPY b.txt /b.txt
FROM scratch AS unused
COPY missing /x
FROM scratch
COPY --from=a /a.txt /out/a.txt
COPY --from=b /b.txt /out/b.txt
COPY c.txt /out/c.txt
`

// solveOnce parses the Dockerfile and builds it on store.
func solveOnce(ctx context.Context, dir string, store *cache.Store, snaps *snapshot.Snapshotter, progress Progress) (*Result, error) {
	g, err := parser.Parse(strings.NewReader(scratchStages), parser.Options{Filename: "Dockerfile"})
	if err != nil {
		return nil, err
	}
	bctx, err := buildctx.Open(dir, "")
	if err != nil {
		return nil, err
	}
	epoch := time.Unix(1700000000, 0).UTC()
	return Solve(ctx, Options{
		Graph: g, Filename: "Dockerfile", Context: bctx, Store: store, Snapshots: snaps,
		SourceDateEpoch: &epoch, Jobs: 4, Progress: progress,
	})
}

// Two Solves of one multi-stage graph at once on one store (run under -race by make
// test) give the same image, and a third is all cached.
func TestSolveConcurrentOnOneStore(t *testing.T) {
	testenv.RequireRoot(t)
	ctx := context.Background()
	root := t.TempDir()
	dir := t.TempDir()
	for name, content := range map[string]string{"a.txt": "A", "b.txt": "B", "c.txt": "C"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	store, err := cache.Open(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	snaps, err := snapshot.New(ctx, store.SnapshotsDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { noMountsUnder(t, root) })

	var wg sync.WaitGroup
	digests := make([]string, 2)
	errs := make([]error, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := solveOnce(ctx, dir, store, snaps, nil)
			if err != nil {
				errs[i] = err
				return
			}
			d, err := res.Image.Digest()
			digests[i], errs[i] = d.String(), err
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("solve %d: %v", i, err)
		}
	}
	if digests[0] != digests[1] {
		t.Errorf("concurrent solves gave %s and %s", digests[0], digests[1])
	}

	var mu sync.Mutex
	var events []Event
	res, err := solveOnce(ctx, dir, store, snaps, func(e Event) {
		mu.Lock()
		events = append(events, e)
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := res.Image.Digest(); d.String() != digests[0] {
		t.Errorf("warm solve gave %s, want %s", d, digests[0])
	}
	cached := 0
	for _, e := range events {
		switch e.Kind {
		case StepCached:
			cached++
		case StepStarted:
			t.Errorf("warm solve ran %s", e.Name)
		}
	}
	if cached != 5 {
		t.Errorf("warm solve: %d steps cached, want 5", cached)
	}
	if got := len(res.Config.RootFS.DiffIDs); got != 3 {
		t.Errorf("final image has %d layers, want 3", got)
	}
}

// A cancelled context stops Solve with the context's error and leaves no mount.
func TestSolveCancelled(t *testing.T) {
	testenv.RequireRoot(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	root, dir := t.TempDir(), t.TempDir()
	for _, name := range []string{"a.txt", "b.txt", "c.txt"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(name), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	store, err := cache.Open(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	snaps, err := snapshot.New(context.Background(), store.SnapshotsDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := solveOnce(ctx, dir, store, snaps, nil); err == nil {
		t.Fatal("a cancelled solve succeeded")
	}
	noMountsUnder(t, root)
}

// noMountsUnder fails if a mount is left under dir.
func noMountsUnder(t *testing.T, dir string) {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], dir) {
			t.Errorf("mount left behind: %s", f[4])
		}
	}
}
