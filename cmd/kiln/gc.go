package main

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/cache"
	"github.com/kiln-build/kiln/snapshot"
)

// Automatic garbage collection keeps the store under a cap without a separate command,
// as BuildKit's gc policy does. It runs after a build at most once per gcInterval
// (measuring the store walks every snapshot, which a warm no-op build should not pay),
// and only when it can take the store's GC lock at once: other builds running on the
// same root hold it shared, and waiting for them would stall this build's exit.
const (
	gcInterval    = 15 * time.Minute
	gcLockTimeout = 100 * time.Millisecond
)

// gcLimit is the store's cap: $KILN_GC_KEEP_STORAGE if set (e.g. "20g"), else 10% of
// the filesystem holding root, between 2 GiB and 50 GiB.
func gcLimit(root string) int64 {
	if v := os.Getenv("KILN_GC_KEEP_STORAGE"); v != "" {
		if n, err := parseSize(v); err == nil {
			return n
		}
	}
	var st unix.Statfs_t
	limit := int64(20 << 30)
	if err := unix.Statfs(root, &st); err == nil {
		limit = int64(st.Blocks) * int64(st.Bsize) / 10
	}
	return min(max(limit, 2<<30), 50<<30)
}

// autoGC prunes the store down to its cap when it has grown past it. Errors are not
// the build's: the store stays usable, so they are reported as warnings.
func autoGC(ctx context.Context, root string, store *cache.Store, snaps *snapshot.Snapshotter, warn func(string)) {
	stamp := filepath.Join(root, "gc.stamp")
	if fi, err := os.Stat(stamp); err == nil && time.Since(fi.ModTime()) < gcInterval {
		return
	}
	_ = os.WriteFile(stamp, []byte(strconv.FormatInt(time.Now().Unix(), 10)), 0o644)
	u, err := store.DiskUsage(ctx)
	if err != nil {
		warn("measure the build cache: " + err.Error())
		return
	}
	limit := gcLimit(root)
	if u.Blobs+u.Snapshots+u.CacheMounts <= limit {
		return
	}
	lctx, cancel := context.WithTimeout(ctx, gcLockTimeout)
	defer cancel()
	_, err = store.Prune(lctx, cache.PruneOptions{
		KeepStorage: limit, RemoveSnapshot: snaps.Remove, ListSnapshots: snaps.List,
	})
	if err != nil && lctx.Err() == nil {
		warn("trim the build cache: " + err.Error())
	}
}
