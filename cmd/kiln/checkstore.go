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
		Short: "Verify every blob, step snapshot and step entry in the store (--repair removes what is damaged)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withStore(cmd.Context(), root, cmd.ErrOrStderr(), func(store *cache.Store, snaps *snapshot.Snapshotter) error {
				r, err := store.Check(cmd.Context(), snaps, repair)
				if err != nil {
					return err
				}
				printCheck(cmd.OutOrStdout(), r, repair)
				damaged := r.Damaged()
				if damaged > 0 && !repair {
					return fmt.Errorf("%d damaged object(s) in %s; run kiln check --repair to remove them (the next build makes them again)", damaged, root)
				}
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&root, "root", defaultRoot(), "directory of kiln's cache and state")
	cmd.Flags().BoolVar(&repair, "repair", false, "remove damaged blobs, snapshots and step entries")
	return cmd
}

// printCheck prints what cache.Store.Check found: each damaged object and the speed.
func printCheck(w io.Writer, r cache.Report, repair bool) {
	action := "damaged"
	if repair {
		action = "damaged, removed"
	}
	for _, d := range r.Blobs.Damaged {
		fmt.Fprintf(w, "blob %s: %s\n", d, action)
	}
	report(w, "blobs", r.Blobs.Blobs, r.Blobs.Bytes, r.BlobTime)
	for _, d := range r.DamagedSnapshots {
		fmt.Fprintf(w, "snapshot %s: its tree makes layer %s, it must make %s: %s\n", d.ID, d.Got, d.Want, action)
	}
	report(w, "step snapshots", r.Snapshots, r.SnapshotBytes, r.SnapshotTime)
	for _, k := range r.DamagedEntries {
		fmt.Fprintf(w, "step entry %s: its bytes do not match their sum: %s\n", k, action)
	}
}

func report(w io.Writer, what string, n int, bytes int64, d time.Duration) {
	rate := float64(bytes) / 1e6 / max(d.Seconds(), 1e-9)
	fmt.Fprintf(w, "checked %d %s, %s in %.2fs (%.0f MB/s)\n", n, what, humanSize(bytes), d.Seconds(), rate)
}
