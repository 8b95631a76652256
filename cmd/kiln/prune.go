package main

import (
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/cache"
	"github.com/kiln-build/kiln/snapshot"
)

func newPruneCmd() *cobra.Command {
	var root, keep string
	var all bool
	var filters []string
	cmd := &cobra.Command{
		Use:   "prune",
		Short: "Remove build cache",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts := cache.PruneOptions{All: all}
			if keep != "" {
				n, err := parseSize(keep)
				if err != nil {
					return fmt.Errorf("--keep-storage: %w", err)
				}
				// --keep-storage 0 means keep nothing, but cache.PruneOptions reads a
				// zero KeepStorage as "no limit": at most one byte keeps nothing that
				// takes space.
				opts.KeepStorage = max(n, 1)
			}
			for _, f := range filters {
				if err := cache.ParsePruneFilter(f, &opts); err != nil {
					return err
				}
			}
			return withStore(cmd.Context(), root, cmd.ErrOrStderr(), func(store *cache.Store, snaps *snapshot.Snapshotter) error {
				opts.RemoveSnapshot = snaps.Remove
				opts.ListSnapshots = snaps.List
				freed, err := store.Prune(cmd.Context(), opts)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "Total reclaimed space: %s\n", humanSize(freed))
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&root, "root", defaultRoot(), "directory of kiln's cache and state")
	cmd.Flags().BoolVarP(&all, "all", "a", false, "remove everything, including base images and cache mounts")
	cmd.Flags().StringVar(&keep, "keep-storage", "", "keep at most this much cache, least recently used removed first (e.g. 10g)")
	cmd.Flags().StringArrayVar(&filters, "filter", nil, "only remove entries unused for longer than until=DURATION (e.g. until=24h)")
	return cmd
}

func newDuCmd() *cobra.Command {
	var root string
	cmd := &cobra.Command{
		Use:   "du",
		Short: "Show disk usage of the build cache",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withStore(cmd.Context(), root, cmd.ErrOrStderr(), func(store *cache.Store, _ *snapshot.Snapshotter) error {
				u, err := store.DiskUsage(cmd.Context())
				if err != nil {
					return err
				}
				printUsage(cmd.OutOrStdout(), u)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&root, "root", defaultRoot(), "directory of kiln's cache and state")
	return cmd
}

// withStore opens the store at root for fn; its warnings go to stderr.
func withStore(ctx context.Context, root string, stderr io.Writer, fn func(*cache.Store, *snapshot.Snapshotter) error) error {
	var mu sync.Mutex
	warn := func(msg string) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(stderr, "WARNING: %s\n", msg)
	}
	store, err := cache.Open(ctx, root, cache.WithWarnings(warn))
	if err != nil {
		return fmt.Errorf("open kiln root %s: %w", root, err)
	}
	defer store.Close()
	snaps, err := snapshot.New(ctx, store.SnapshotsDir())
	if err != nil {
		return err
	}
	return fn(store, snaps)
}

func printUsage(w io.Writer, u cache.Usage) {
	fmt.Fprintf(w, "%-14s %10s\n", "TYPE", "SIZE")
	fmt.Fprintf(w, "%-14s %10s\n", "blobs", humanSize(u.Blobs))
	fmt.Fprintf(w, "%-14s %10s\n", "snapshots", humanSize(u.Snapshots))
	fmt.Fprintf(w, "%-14s %10s\n", "cache mounts", humanSize(u.CacheMounts))
	fmt.Fprintf(w, "Cache entries: %d\nTotal: %s\n", u.Entries, humanSize(u.Blobs+u.Snapshots+u.CacheMounts))
}

func humanSize(n int64) string {
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.2f%cB", float64(n)/float64(div), "kMGTPE"[exp])
}
