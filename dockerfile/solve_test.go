package dockerfile

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiln-build/kiln/solver"
	"github.com/kiln-build/kiln/source/remote"

	"github.com/kiln-build/kiln/cache"
	"github.com/kiln-build/kiln/exec"
	"github.com/kiln-build/kiln/internal/testenv"
	"github.com/kiln-build/kiln/parser"
	"github.com/kiln-build/kiln/snapshot"
	"github.com/kiln-build/kiln/source"
)

// TestMain lets the test binary be a RUN step's sandbox init: exec re-executes
// /proc/self/exe for it.
func TestMain(m *testing.M) {
	exec.MaybeInit()
	os.Exit(m.Run())
}

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
func solveOnce(ctx context.Context, dir string, store *cache.Store, snaps *snapshot.Snapshotter, progress solver.Progress) (*Result, error) {
	g, err := parser.Parse(strings.NewReader(scratchStages), parser.Options{Filename: "Dockerfile"})
	if err != nil {
		return nil, err
	}
	bctx, err := source.Open(dir, "")
	if err != nil {
		return nil, err
	}
	epoch := time.Unix(1700000000, 0).UTC()
	return Build(ctx, Options{
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
	t.Cleanup(func() { snaps.Wait() })
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
	var events []solver.Event
	res, err := solveOnce(ctx, dir, store, snaps, func(e solver.Event) {
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
		case solver.StepCached:
			cached++
		case solver.StepStarted:
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

// Cancelling a solve while a RUN step runs stops the step at once (its sandbox is
// killed, not waited for), returns the context's error and leaves no mount and no
// work dir. The cancel comes once the step has started: a context cancelled before
// Solve is refused before any step, which tests none of that.
func TestSolveCancelled(t *testing.T) {
	testenv.RequireRoot(t)
	root, dir, layout := t.TempDir(), t.TempDir(), t.TempDir()
	if err := testenv.WriteBusyboxOCILayout(layout); err != nil {
		t.Fatal(err)
	}
	busybox, err := remote.ParseNamedContext("oci-layout://" + layout)
	if err != nil {
		t.Fatal(err)
	}
	g, err := parser.Parse(strings.NewReader("FROM busybox\nRUN echo started; sleep 60\n"), parser.Options{Filename: "Dockerfile"})
	if err != nil {
		t.Fatal(err)
	}
	bctx, err := source.Open(dir, "")
	if err != nil {
		t.Fatal(err)
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
	t.Cleanup(func() { snaps.Wait() })

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var once sync.Once
	started := make(chan struct{})
	progress := func(e solver.Event) {
		if e.Kind == solver.StepLog && strings.Contains(string(e.Data), "started") {
			once.Do(func() { close(started) })
		}
	}
	go func() {
		select {
		case <-started: // the step's command is running
			cancel()
		case <-time.After(30 * time.Second):
		}
	}()
	begin := time.Now()
	_, err = Build(ctx, Options{
		Graph: g, Filename: "Dockerfile", Context: bctx, Store: store, Snapshots: snaps,
		NamedContexts: map[string]remote.NamedContext{"busybox": busybox}, Jobs: 2, Progress: progress,
	})
	select {
	case <-started:
	default:
		t.Fatalf("the RUN step never started: %v", err)
	}
	// The RUN error keeps only the message of the cause (run.go formats it with %v).
	if err == nil || !strings.Contains(err.Error(), context.Canceled.Error()) {
		t.Fatalf("solve cancelled mid-step = %v, want an error saying %v", err, context.Canceled)
	}
	if d := time.Since(begin); d > 20*time.Second {
		t.Errorf("the cancelled step ran on for %v", d)
	}
	noMountsUnder(t, root)
	if left, _ := os.ReadDir(filepath.Join(root, "snapshots", "active")); len(left) != 0 {
		t.Errorf("work dirs left in active/: %d", len(left))
	}
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
