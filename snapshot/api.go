package snapshot

import (
	"context"
	"errors"
)

// Snapshotter keeps one directory per layer under its root and stacks them with
// overlayfs (or a copy-based fallback where overlay cannot mount).
//
// Vocabulary: a committed snapshot is an immutable dir named by an id (the solver uses
// a digest); an Active snapshot is a fresh writable layer on top of committed parents,
// with a mounted merged view at Root. Committing renames its upper dir into a new
// committed snapshot; nothing is copied.
type Snapshotter struct {
	root string
}

// New opens (creating) a snapshotter rooted at dir and probes whether overlay mounts work.
func New(ctx context.Context, dir string) (*Snapshotter, error) {
	return nil, errors.New("snapshot: New not implemented")
}

// Exists reports whether committed snapshot id is present.
func (s *Snapshotter) Exists(id string) bool { return false }

// Path is the directory holding the committed snapshot id's files.
func (s *Snapshotter) Path(id string) string { return "" }

// Ingest creates committed snapshot id by calling fill on an empty temp dir and renaming
// it into place when fill succeeds. If id already exists it does nothing.
func (s *Snapshotter) Ingest(ctx context.Context, id string, fill func(dir string) error) error {
	return errors.New("snapshot: Ingest not implemented")
}

// Active is a writable layer over committed parents, mounted at Root.
type Active struct {
	// Root is the merged view: reads see parents + changes, writes land in the layer.
	Root string
	// Upper is the overlay-format diff (whiteouts as 0/0 char devices, opaque xattrs)
	// valid after Unmount; layers.WriteUpperDiff reads it.
	Upper string
}

// Prepare mounts a fresh writable layer over parents (lowest first; empty for scratch).
func (s *Snapshotter) Prepare(ctx context.Context, parents []string) (*Active, error) {
	return nil, errors.New("snapshot: Prepare not implemented")
}

// Unmount detaches the merged view; Upper stays valid. Safe to call twice.
func (a *Active) Unmount(ctx context.Context) error { return errors.New("not implemented") }

// Commit unmounts if needed and renames the upper dir into committed snapshot id.
func (a *Active) Commit(ctx context.Context, id string) error { return errors.New("not implemented") }

// Discard unmounts and removes everything the Active made. Safe after Commit (no-op).
func (a *Active) Discard(ctx context.Context) error { return errors.New("not implemented") }

// View mounts a read-only merged view of parents and returns its root and a release func.
func (s *Snapshotter) View(ctx context.Context, parents []string) (root string, release func() error, err error) {
	return "", nil, errors.New("snapshot: View not implemented")
}

// Remove deletes committed snapshot id.
func (s *Snapshotter) Remove(ctx context.Context, id string) error {
	return errors.New("snapshot: Remove not implemented")
}
