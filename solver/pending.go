package solver

import (
	"context"
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
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
// pendingOK says whether the COPY in sc may do that: overlay is in use (the copy
// fallback diffs the rootfs, which would miss the files), no later step of the stage
// touches the filesystem, no other stage of the build reads this one, and the caller
// does not want the target stage's files.
func (b *build) pendingOK(sc *stepCtx, cs copySpec) bool {
	if cs.add || !b.opts.Snapshots.Overlay() {
		return false
	}
	if b.opts.NeedRootfs && sc.stage.Index == b.g.Target {
		return false
	}
	for _, c := range sc.rest {
		switch c.Command.(type) {
		case *instructions.RunCommand, *instructions.CopyCommand, *instructions.AddCommand, *instructions.WorkdirCommand:
			return false
		}
	}
	for _, s := range b.g.Stages {
		for _, d := range s.Deps {
			if d == sc.stage.Index {
				return false
			}
		}
	}
	return true
}

// materialize makes sure every layer of ls has its snapshot, unpacking the missing
// ones from their blobs (a COPY that wrote only its layer, or a snapshot removed by
// prune while its blob was kept).
func (b *build) materialize(ctx context.Context, ls []stageLayer) error {
	eg, egctx := errgroup.WithContext(ctx)
	eg.SetLimit(max(b.opts.Jobs, 1))
	seen := map[string]bool{}
	for _, l := range ls {
		if seen[l.snapshot] || b.opts.Snapshots.Exists(l.snapshot) {
			continue
		}
		seen[l.snapshot] = true
		eg.Go(func() error { return b.unpackSnapshot(egctx, l.snapshot, l.layer) })
	}
	return eg.Wait()
}

// unpackSnapshot creates snapshot id from layer l's blob.
func (b *build) unpackSnapshot(ctx context.Context, id string, l v1.Layer) error {
	return b.opts.Snapshots.Ingest(ctx, id, func(dir string) error {
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
