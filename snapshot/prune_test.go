package snapshot

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// countdownCtx is cancelled after its Err has been asked n times: it stops a walk
// that checks ctx at every dir in the middle, deterministically.
type countdownCtx struct {
	context.Context
	n int
}

func (c *countdownCtx) Err() error {
	if c.n--; c.n < 0 {
		return context.Canceled
	}
	return nil
}

// Pruning stopped half-way (a cancelled Unmount) leaves the dirs it pruned under
// with their times, so that the next Unmount prunes the rest and the diff is the
// same as from one uninterrupted Unmount.
func TestPruneResumesAfterCancel(t *testing.T) {
	ctx := context.Background()
	s := newTestSnapshotter(t)
	old := time.Unix(1_000_000_000, 0)
	dirs := []string{"p", "p/a", "p/b", "p/c", "q"}
	err := s.Ingest(ctx, "base", func(dir string) error {
		for _, d := range dirs {
			if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
				return err
			}
		}
		for i := len(dirs) - 1; i >= 0; i-- {
			if err := os.Chtimes(filepath.Join(dir, dirs[i]), old, old); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for stop := range 6 {
		a, err := s.Prepare(ctx, []string{"base"})
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range dirs[1:] { // a stub in every leaf dir makes overlay copy them all up
			stub := filepath.Join(a.Root, d, "stub")
			mustWrite(t, stub, "")
			os.Remove(stub)
		}
		for i := len(dirs) - 1; i >= 0; i-- {
			os.Chtimes(filepath.Join(a.Root, dirs[i]), old, old)
		}
		err = a.Unmount(&countdownCtx{Context: ctx, n: stop})
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Fatalf("stop %d: %v", stop, err)
		}
		if err := a.Unmount(ctx); err != nil {
			t.Fatalf("stop %d: second Unmount: %v", stop, err)
		}
		if got := describe(t, a.Upper); got != ". 40755" {
			t.Errorf("stop %d: upper after a resumed prune:\n%s", stop, got)
		}
		a.Discard(ctx)
	}
}
