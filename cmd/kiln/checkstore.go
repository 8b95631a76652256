package main

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/cache"
	"github.com/kiln-build/kiln/snapshot"
)

// newCheckCmd is kiln check: verify the store, and with --repair remove what is
// damaged so that the next build redoes it.
func newCheckCmd() *cobra.Command {
	var root string
	var repair bool
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Verify every blob and step snapshot in the store (--repair removes what is damaged)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withStore(cmd.Context(), root, cmd.ErrOrStderr(), func(store *cache.Store, snaps *snapshot.Snapshotter) error {
				damaged, err := checkStore(cmd, store, snaps, repair)
				if err != nil {
					return err
				}
				if damaged > 0 && !repair {
					return fmt.Errorf("%d damaged object(s) in %s; run kiln check --repair to remove them (the next build makes them again)", damaged, root)
				}
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&root, "root", defaultRoot(), "directory of kiln's cache and state")
	cmd.Flags().BoolVar(&repair, "repair", false, "remove damaged blobs and snapshots")
	return cmd
}

// checkStore verifies blobs by digest and step snapshots by the diffID of their tree
// against their layer's, printing each damaged object and the speed. Base image
// snapshots are not re-tarred: another tool wrote their layers, so a fresh tar of the
// tree need not have the same bytes; their blobs are checked.
func checkStore(cmd *cobra.Command, store *cache.Store, snaps *snapshot.Snapshotter, repair bool) (int, error) {
	ctx, out := cmd.Context(), cmd.OutOrStdout()
	action := "damaged"
	if repair {
		action = "damaged, removed"
	}
	start := time.Now()
	bc, err := store.CheckBlobs(ctx, repair)
	if err != nil {
		return 0, err
	}
	for _, d := range bc.Damaged {
		fmt.Fprintf(out, "blob %s: %s\n", d, action)
	}
	report(out, "blobs", bc.Blobs, bc.Bytes, time.Since(start))

	start = time.Now()
	entries, err := store.Entries(ctx)
	if err != nil {
		return 0, err
	}
	checked, damaged := 0, 0
	var bytes int64
	seen := map[string]bool{}
	for _, e := range entries {
		if e.Layer == nil || e.Layer.Snapshot == "" || seen[e.Layer.Snapshot] || !snaps.Exists(e.Layer.Snapshot) {
			continue
		}
		id := e.Layer.Snapshot
		seen[id] = true
		got, err := snaps.TreeDiffID(ctx, id)
		if err != nil {
			return 0, err
		}
		checked++
		if u, err := snaps.Usage(ctx, id); err == nil {
			bytes += u
		}
		if got.String() == e.Layer.DiffID {
			continue
		}
		damaged++
		fmt.Fprintf(out, "snapshot %s: its tree makes layer %s, its step's layer is %s: %s\n", id, got, e.Layer.DiffID, action)
		if repair {
			if err := snaps.Remove(ctx, id); err != nil {
				return 0, err
			}
		}
	}
	report(out, "step snapshots", checked, bytes, time.Since(start))
	return len(bc.Damaged) + damaged, nil
}

func report(w io.Writer, what string, n int, bytes int64, d time.Duration) {
	rate := float64(bytes) / 1e6 / max(d.Seconds(), 1e-9)
	fmt.Fprintf(w, "checked %d %s, %s in %.2fs (%.0f MB/s)\n", n, what, humanSize(bytes), d.Seconds(), rate)
}
