package snapshot

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// Active is a writable layer over committed parents, mounted at Root.
type Active struct {
	// Root is the merged view: reads see parents + changes, writes land in the layer.
	Root string
	// Upper is the overlay-format diff (whiteouts as 0/0 char devices, opaque xattrs)
	// valid after Unmount; layers.WriteUpperDiff reads it.
	Upper string

	mu      sync.Mutex
	w       *workDir
	mounted bool       // overlay mounted at Root
	prune   bool       // unmounted, copy-ups not pruned yet (an Unmount stopped)
	copy    *copyState // non-nil in copy-fallback mode until the diff is written
	s       *Snapshotter
	done    bool     // committed or discarded
	lowers  []string // the parents' dirs, top first
	keep    map[string]bool
	// pruneFiles: Unmount prunes unchanged copied-up files too (PruneUnchangedFiles).
	pruneFiles bool
}

// Below reports whether the merged view shows something at rel (slash-separated,
// relative to the root) that comes from a's parents: what removing rel there leaves
// a whiteout for. The upper dir is looked at first, for an opaque directory on the
// way that hides the parents. For the layer writer (layers.WriteOptions.Below),
// after Unmount.
func (a *Active) Below(rel string) (bool, error) {
	layers := append([]string{a.Upper}, a.lowers...)
	if _, ok, err := lowerPath(rel, layers, true); err != nil || ok {
		return ok, err
	}
	_, ok, err := lowerPath(rel, layers, false)
	return ok, err
}

// PruneUnchangedFiles has Unmount also remove from the upper dir the files overlayfs
// copied up that the step left as they were, as BuildKit's overlay differ leaves
// them out of the layer (see pruneCopyUps). It is for a RUN step, whose files all
// went through the merged view; kiln's own COPY writes what it copies into the layer
// whatever the image had there.
func (a *Active) PruneUnchangedFiles() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.pruneFiles = true
}

// KeepDirs names directories of the upper dir (relative, slash-separated) that
// Unmount must keep even if they look unchanged: the layer puts files in them that
// were never written there (layers.PendingFile).
func (a *Active) KeepDirs(dirs []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.keep == nil {
		a.keep = map[string]bool{}
	}
	for _, d := range dirs {
		a.keep[filepath.Clean(filepath.FromSlash(d))] = true
	}
}

// Prepare mounts a fresh writable layer over parents (lowest first; empty for scratch).
// Root shows the parents' tree, times included, under a fresh 0755 root dir owned by
// the caller whatever the parents' roots are (overlay's merged root is its upper root).
// The behaviour every implementation shares is tested by package snapshottest.
func (s *Snapshotter) Prepare(ctx context.Context, parents []string) (*Active, error) {
	lowers, err := s.parentPaths(parents)
	if err != nil {
		return nil, fmt.Errorf("prepare: %w", err)
	}
	// Mounting is quick and does not look at ctx; a cancelled build must still not
	// start a step.
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("prepare: %w", err)
	}
	w, err := newWorkDir(s.dir("active"))
	if err != nil {
		return nil, fmt.Errorf("prepare: %w", err)
	}
	a := &Active{Root: w.sub("merged"), Upper: w.sub("upper"), w: w, s: s, lowers: lowers}
	fail := func(err error) (*Active, error) {
		a.Discard(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("prepare: %w", err)
	}
	// The upper root is the merged root's inode attributes: 0755 like any rootfs root.
	for _, d := range []string{a.Upper, w.sub("work"), a.Root} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return fail(err)
		}
		if err := os.Chmod(d, 0o755); err != nil { // umask
			return fail(err)
		}
	}
	if !s.overlay {
		cs, err := prepareCopy(ctx, lowers, w, a.Root)
		if err != nil {
			return fail(err)
		}
		a.copy = cs
		return a, nil
	}
	if len(lowers) == 0 {
		// Overlay needs at least one lower; scratch gets the shared empty dir.
		lowers = []string{s.dir("empty")}
	}
	spec := mountSpec{lowers: lowers, upper: a.Upper, work: w.sub("work"), target: a.Root, classicMount: !s.newAPI, userxattr: s.userxattr, volatile: s.volatile}
	if err := mountOverlay(spec); err != nil {
		return fail(err)
	}
	a.mounted = true
	return a, nil
}

// Unmount detaches the merged view; Upper stays valid. Safe to call twice, and after
// an Unmount that failed (ctx cancelled) the next one finishes the job. In copy mode
// it writes the diff between the parents and Root into Upper.
func (a *Active) Unmount(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.unmountLocked(ctx)
}

func (a *Active) unmountLocked(ctx context.Context) error {
	// An Unmount that fails (ctx cancelled) leaves the Active for the next Unmount to
	// finish, or for Discard: each stage is done again until it succeeds.
	if a.mounted {
		if err := unmount(a.Root); err != nil {
			return err
		}
		a.mounted, a.prune = false, true
	}
	if a.prune {
		if err := pruneCopyUps(ctx, a.Upper, a.lowers, a.keep, a.pruneFiles); err != nil {
			return fmt.Errorf("prune the upper dir: %w", err)
		}
		a.prune = false
	}
	if a.copy != nil {
		if err := a.copy.writeDiff(ctx, a.Root, a.Upper); err != nil {
			// The diff is written in one go: the next try starts from an empty Upper.
			if cerr := emptyDir(a.Upper); cerr != nil {
				return fmt.Errorf("copy-mode diff: %w (and clearing the partial diff: %v)", err, cerr)
			}
			return fmt.Errorf("copy-mode diff: %w", err)
		}
		a.copy = nil
	}
	return nil
}

// Commit unmounts if needed and renames the upper dir into committed snapshot id. If
// id exists already (another build committed the same content), the layer is discarded.
// What is left of the Active's work dir is removed in the background (Wait).
func (a *Active) Commit(ctx context.Context, id string) error {
	if err := ValidateID(id); err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.done {
		return errors.New("commit: snapshot already committed or discarded")
	}
	if err := a.unmountLocked(ctx); err != nil {
		return fmt.Errorf("commit %s: %w", id, err)
	}
	if err := a.s.publish(ctx, a.w, a.Upper, id); err != nil {
		return err
	}
	a.done = true
	a.s.removeLater(a.w)
	return nil
}

// Discard unmounts and removes everything the Active made. Safe after Commit (no-op).
func (a *Active) Discard(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.done {
		return nil
	}
	if a.mounted {
		// Lazy detach: discarding must succeed even if something still holds the view.
		if err := unmount(a.Root); err != nil {
			return fmt.Errorf("discard: %w", err)
		}
		a.mounted = false
	}
	a.copy = nil
	a.done = true
	return a.w.remove()
}

// View mounts a read-only merged view of parents and returns its root and a release func.
// Overlay needs two lowers without an upper, so a single parent is stacked on an empty
// dir rather than bind-mounted: a committed dir holds whiteout devices that only
// overlay hides. In copy mode the view is a private copy; writes to it are not
// prevented but are thrown away by release.
func (s *Snapshotter) View(ctx context.Context, parents []string) (root string, release func() error, err error) {
	lowers, err := s.parentPaths(parents)
	if err != nil {
		return "", nil, fmt.Errorf("view: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return "", nil, fmt.Errorf("view: %w", err)
	}
	w, err := newWorkDir(s.dir("active"))
	if err != nil {
		return "", nil, fmt.Errorf("view: %w", err)
	}
	merged := w.sub("merged")
	if err := os.Mkdir(merged, 0o755); err != nil {
		w.remove()
		return "", nil, fmt.Errorf("view: %w", err)
	}
	if !s.overlay {
		if err := materialise(ctx, lowers, merged); err != nil {
			w.remove()
			return "", nil, fmt.Errorf("view: %w", err)
		}
		var once sync.Once
		var rerr error
		return merged, func() error { once.Do(func() { rerr = w.remove() }); return rerr }, nil
	}
	for i := 0; len(lowers) < 2; i++ {
		// Distinct empty dirs: overlay refuses the same dir twice in one stack.
		e := w.sub(fmt.Sprintf("empty%d", i))
		if err := os.Mkdir(e, 0o755); err != nil {
			w.remove()
			return "", nil, fmt.Errorf("view: %w", err)
		}
		lowers = append(lowers, e)
	}
	if err := mountOverlay(mountSpec{lowers: lowers, target: merged, classicMount: !s.newAPI, userxattr: s.userxattr}); err != nil {
		w.remove()
		return "", nil, fmt.Errorf("view: %w", err)
	}
	var once sync.Once
	var rerr error
	release = func() error {
		once.Do(func() {
			if rerr = unmount(merged); rerr == nil {
				rerr = w.remove()
			}
		})
		return rerr
	}
	return merged, release, nil
}
