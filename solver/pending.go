package solver

import (
	"context"
	"errors"
	"fmt"
	"io/fs"

	"golang.org/x/sync/errgroup"

	"github.com/kiln-build/kiln/snapshot"
)

// A COPY whose files nothing in the build reads makes its layer straight from the
// sources: it creates the directories (so every destination rule runs against the
// real rootfs) but not the files, and the layer writer reads each file from where the
// copy would have read it (source.Pending). Each file is read once, and the step
// creates no inodes for them, which is most of a big COPY's cost. Its snapshot is not
// committed; a later build that needs it (a step added after the COPY, a local
// output) has the snapshotter make it from the layer (materialize,
// Snapshotter.IngestLayer).
//
// CopyInputs.Pending says the front end allows it (no later step of the stage
// touches the filesystem, no other stage reads this one, the caller does not want
// the target's files); the engine adds that overlay is in use (the copy fallback
// diffs the rootfs, which would miss the files) and that the op is not an ADD.

// materialize makes sure every layer of ls has its snapshot, intact: it unpacks the
// missing ones from their blobs (a COPY that wrote only its layer, or a snapshot
// removed by prune while its blob was kept), and checks the others once a build
// against their seals (intact), so that no step reads a tree changed since it was
// committed.
func (e *Engine) materialize(ctx context.Context, ls []Layer) error {
	eg, egctx := errgroup.WithContext(ctx)
	eg.SetLimit(max(e.opts.Jobs, 1))
	seen := map[string]bool{}
	for _, l := range ls {
		if seen[l.Snapshot] {
			continue
		}
		seen[l.Snapshot] = true
		eg.Go(func() error { return e.intact(egctx, l) })
	}
	return eg.Wait()
}

// snapCheck is one snapshot's check in a build: done is closed when err is known.
type snapCheck struct {
	done chan struct{}
	err  error
}

// madeIntact records that this build made snapshot id (committed or unpacked it):
// its tree needs no check.
func (e *Engine) madeIntact(id string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.checked == nil {
		e.checked = map[string]*snapCheck{}
	}
	c := &snapCheck{done: make(chan struct{})}
	close(c.done)
	e.checked[id] = c
}

// intact makes l's snapshot exist and checks it, once a build: the steps and stages
// that need it at the same time wait for one check. A check that failed is not kept,
// so a caller whose own context is live checks again where the first one's was
// cancelled.
func (e *Engine) intact(ctx context.Context, l Layer) error {
	for {
		e.mu.Lock()
		if e.checked == nil {
			e.checked = map[string]*snapCheck{}
		}
		c, ok := e.checked[l.Snapshot]
		if !ok {
			c = &snapCheck{done: make(chan struct{})}
			e.checked[l.Snapshot] = c
		}
		e.mu.Unlock()
		if !ok {
			c.err = e.checkSnapshot(ctx, l)
			if c.err != nil {
				e.mu.Lock()
				if e.checked[l.Snapshot] == c {
					delete(e.checked, l.Snapshot)
				}
				e.mu.Unlock()
			}
			close(c.done)
			return c.err
		}
		select {
		case <-c.done:
		case <-ctx.Done():
			return ctx.Err()
		}
		if c.err == nil || ctx.Err() != nil || !(errors.Is(c.err, context.Canceled) || errors.Is(c.err, context.DeadlineExceeded)) {
			return c.err
		}
	}
}

// checkSnapshot unpacks l's snapshot if it is missing, and otherwise verifies it; a
// damaged one is unpacked again from the layer, which is the source of truth (its
// blob is verified as it is read), and put in place of the old tree in one rename.
func (e *Engine) checkSnapshot(ctx context.Context, l Layer) error {
	snaps := e.opts.Snapshots
	if !snaps.Exists(l.Snapshot) {
		return snaps.IngestLayer(ctx, l.Snapshot, l.Layer)
	}
	err := snaps.Verify(ctx, l.Snapshot)
	var damaged *snapshot.DamagedError
	if !errors.As(err, &damaged) && !errors.Is(err, fs.ErrNotExist) {
		// (A tree that vanished under the walk: another build rebuilding it.)
		return err
	}
	d, _ := l.Layer.Digest()
	rebuilt, rerr := snaps.Rebuild(ctx, l.Snapshot, func(dir string) error { return snapshot.UnpackLayer(ctx, l.Layer, dir) })
	if rerr != nil {
		return fmt.Errorf("%v; rebuild it from layer %s: %w", err, d, rerr)
	}
	if rebuilt && e.opts.Warn != nil {
		e.opts.Warn(fmt.Sprintf("%v; rebuilt it from the layer (%s)", err, d))
	}
	return nil
}
