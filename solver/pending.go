package solver

import (
	"context"

	"golang.org/x/sync/errgroup"
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

// materialize makes sure every layer of ls has its snapshot, unpacking the missing
// ones from their blobs (a COPY that wrote only its layer, or a snapshot removed by
// prune while its blob was kept).
func (e *Engine) materialize(ctx context.Context, ls []Layer) error {
	eg, egctx := errgroup.WithContext(ctx)
	eg.SetLimit(max(e.opts.Jobs, 1))
	seen := map[string]bool{}
	for _, l := range ls {
		if seen[l.Snapshot] || e.opts.Snapshots.Exists(l.Snapshot) {
			continue
		}
		seen[l.Snapshot] = true
		eg.Go(func() error { return e.opts.Snapshots.IngestLayer(egctx, l.Snapshot, l.Layer) })
	}
	return eg.Wait()
}
