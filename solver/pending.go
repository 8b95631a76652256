package solver

import (
	"context"
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sync/errgroup"

	"github.com/kiln-build/kiln/layers"
)

// A COPY whose files nothing in the build reads makes its layer straight from the
// sources: it creates the directories (so every destination rule runs against the
// real rootfs) but not the files, and the layer writer reads each file from where the
// copy would have read it (source.Pending). Each file is read once, and the step
// creates no inodes for them, which is most of a big COPY's cost. Its snapshot is not
// committed; a later build that needs it (a step added after the COPY, a local
// output) unpacks it from the layer (materialize).
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
		eg.Go(func() error { return e.unpackSnapshot(egctx, l.Snapshot, l.Layer) })
	}
	return eg.Wait()
}

// unpackSnapshot creates snapshot id from layer l's blob.
func (e *Engine) unpackSnapshot(ctx context.Context, id string, l v1.Layer) error {
	return e.opts.Snapshots.Ingest(ctx, id, func(dir string) error {
		d, err := l.Digest()
		if err != nil {
			return err
		}
		rc, err := l.Compressed()
		if err != nil {
			return fmt.Errorf("open layer %s: %w", d, err)
		}
		defer rc.Close()
		if err := layers.Unpack(ctx, rc, dir, layers.UnpackOptions{Whiteouts: layers.OverlayWhiteouts, KeepOwners: true}); err != nil {
			return fmt.Errorf("unpack layer %s: %w", d, err)
		}
		// Read to the end, where a stored blob's reader checks its digest: the tar
		// ends before the stream does.
		if _, err := io.Copy(io.Discard, rc); err != nil {
			return fmt.Errorf("unpack layer %s: %w", d, err)
		}
		return nil
	})
}
