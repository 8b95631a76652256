package cache

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// ErrBusy is Prune's error when other builds kept the store open for longer than
// PruneOptions.LockWait.
var ErrBusy = errors.New("the store is in use by other builds")

// Automatic garbage collection keeps the store under a cap without a separate command,
// as BuildKit's gc policy does. It runs after a build at most once per GCInterval,
// counted from the store's creation (measuring the store walks every snapshot, which
// a warm no-op build should not pay), and only when it can take the store's GC lock at once: other builds running on the
// same root hold it shared, and waiting for them would stall this build's exit.
const (
	GCInterval    = 15 * time.Minute
	gcLockTimeout = 100 * time.Millisecond
)

// AutoGCOptions are AutoGC's.
type AutoGCOptions struct {
	// KeepStorage is the store's cap; 0 means DefaultKeepStorage.
	KeepStorage    int64
	RemoveSnapshot func(ctx context.Context, id string) error
	ListSnapshots  func() ([]string, error)
	// Warn is told what went wrong: the store stays usable, so GC's errors are not
	// the build's.
	Warn func(msg string)
}

// DefaultKeepStorage is the store's cap when none is set: 10% of the filesystem
// holding root, between 2 GiB and 50 GiB.
func DefaultKeepStorage(root string) int64 {
	var st unix.Statfs_t
	limit := int64(20 << 30)
	if err := unix.Statfs(root, &st); err == nil {
		limit = int64(st.Blocks) * int64(st.Bsize) / 10
	}
	return min(max(limit, 2<<30), 50<<30)
}

// AutoGC prunes the store down to its cap when it has grown past it, at most once per
// GCInterval (root/gc.stamp records the last time).
func (s *Store) AutoGC(ctx context.Context, opts AutoGCOptions) {
	warn := opts.Warn
	if warn == nil {
		warn = func(string) {}
	}
	if fi, err := os.Stat(s.path("gc.stamp")); err == nil && time.Since(fi.ModTime()) < GCInterval {
		return
	}
	s.stampGC()
	u, err := s.DiskUsage(ctx)
	if err != nil {
		warn("measure the build cache: " + err.Error())
		return
	}
	limit := opts.KeepStorage
	if limit <= 0 {
		limit = DefaultKeepStorage(s.root)
	}
	if u.Blobs+u.Snapshots+u.CacheMounts <= limit {
		return
	}
	_, err = s.Prune(ctx, PruneOptions{
		KeepStorage: limit, RemoveSnapshot: opts.RemoveSnapshot, ListSnapshots: opts.ListSnapshots,
		LockWait: gcLockTimeout,
	})
	// Busy: another build has the store; the next build past the interval tries again.
	if err != nil && !errors.Is(err, ErrBusy) && ctx.Err() == nil {
		warn("trim the build cache: " + err.Error())
	}
}

// stampGC records now as the time of the last automatic GC. A new store is stamped
// when it is made: the first measure then comes an interval later, so a root built
// on once (an ephemeral CI runner's) never pays the walk of every snapshot that
// measuring takes, 0.1 s after a cold W5 build and seconds on a large store.
func (s *Store) stampGC() {
	_ = os.WriteFile(s.path("gc.stamp"), []byte(strconv.FormatInt(time.Now().Unix(), 10)), 0o644)
}

// ParsePruneFilter reads one kiln prune --filter value into opts: until=DURATION
// (entries unused for longer), as docker builder prune's.
func ParsePruneFilter(f string, opts *PruneOptions) error {
	k, v, _ := strings.Cut(f, "=")
	if k != "until" {
		return fmt.Errorf("--filter %s is not supported (use until=DURATION)", f)
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return fmt.Errorf("--filter until=%s: %w", v, err)
	}
	opts.Until = d
	return nil
}
