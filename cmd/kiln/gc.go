package main

import (
	"context"
	"os"

	"github.com/kiln-build/kiln/cache"
	"github.com/kiln-build/kiln/snapshot"
)

// autoGC runs the store's automatic GC (cache.Store.AutoGC) after a build, with the
// cap $KILN_GC_KEEP_STORAGE (e.g. "20g") when set.
func autoGC(ctx context.Context, store *cache.Store, snaps *snapshot.Snapshotter, warn func(string)) {
	var keep int64
	if v := os.Getenv("KILN_GC_KEEP_STORAGE"); v != "" {
		if n, err := parseSize(v); err == nil {
			keep = max(n, 1) // 0 would mean the default cap
		} else {
			warn("KILN_GC_KEEP_STORAGE: " + err.Error() + "; using the default cap")
		}
	}
	store.AutoGC(ctx, cache.AutoGCOptions{
		KeepStorage: keep, RemoveSnapshot: snaps.Remove, ListSnapshots: snaps.List, Warn: warn,
	})
}
