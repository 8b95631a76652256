package snapshot

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	cfs "github.com/containerd/continuity/fs"
)

// Snapshotter keeps one directory per layer under its root and stacks them with
// overlayfs (or a copy-based fallback where overlay cannot mount).
//
// Vocabulary: a committed snapshot is an immutable dir named by an id (the solver uses
// a digest); an Active snapshot is a fresh writable layer on top of committed parents,
// with a mounted merged view at Root. Committing renames its upper dir into a new
// committed snapshot; nothing is copied.
//
// Example: a RUN step on top of base layers b1 (bottom) and b2:
//
//	a, _ := s.Prepare(ctx, []string{"sha256-b1", "sha256-b2"})
//	// run the step with a.Root as its rootfs, then
//	a.Unmount(ctx)                 // a.Upper now holds the step's diff
//	layers.WriteUpperDiff(a.Upper) // (package layers) makes the layer blob
//	a.Commit(ctx, "sha256-new")    // a.Upper becomes committed/sha256-new
//
// Layout under the root dir:
//
//	committed/<id>/                 a layer's files in overlay format
//	seals/<id>                      the lstat digest of committed/<id> (seal_linux.go)
//	active/<pid>-<rand>/{upper,work,merged}   Prepare and View
//	tmp/<pid>-<rand>/               Ingest, Remove and the overlay probe
//	empty/                          an always-empty lower for scratch
type Snapshotter struct {
	root      string
	overlay   bool // overlay mounts work here; otherwise the copy fallback is used
	newAPI    bool // fsopen + "lowerdir+" works (else mount(2))
	classicMt bool // forced mount(2) for tests
	userxattr bool // overlay is mounted with userxattr (inside a user namespace)
	volatile  bool // writable overlays are mounted volatile (mountSpec.volatile)
	// noOverlay says why the copy fallback is used, for Mode.
	noOverlay string

	// removing counts the work dirs of committed Actives being removed in the
	// background (Wait); removeErrs are the removals that failed.
	removing   sync.WaitGroup
	mu         sync.Mutex
	removeErrs []error
}

// removeLater removes w in the background: a committed Active's work dir holds only
// the overlay's work dir and the empty mount point, and the step after it need not
// wait for their removal. Until it is removed w keeps its lease, so no other process
// takes it for a leftover; if this process dies first, the next New removes it.
func (s *Snapshotter) removeLater(w *workDir) {
	s.removing.Add(1)
	go func() {
		defer s.removing.Done()
		if err := w.remove(); err != nil {
			s.mu.Lock()
			s.removeErrs = append(s.removeErrs, err)
			s.mu.Unlock()
		}
	}()
}

// Wait waits for the work dirs being removed in the background and reports the
// removals that failed since the last Wait. The snapshotter stays usable; a process
// calls it before it exits, so that it leaves nothing in active/.
func (s *Snapshotter) Wait() error {
	s.removing.Wait()
	s.mu.Lock()
	errs := s.removeErrs
	s.removeErrs = nil
	s.mu.Unlock()
	return errors.Join(errs...)
}

// Option configures New.
type Option func(*Snapshotter)

// WithoutOverlay forces the copy-based fallback, as if overlay could not mount.
func WithoutOverlay() Option {
	return func(s *Snapshotter) { s.overlay, s.noOverlay = false, "asked for" }
}

// withClassicMount forces mount(2) instead of the new mount API (tests).
func withClassicMount() Option { return func(s *Snapshotter) { s.classicMt = true } }

// New opens (creating) a snapshotter rooted at dir and probes whether overlay mounts work.
// It removes what killed runs left in active/ and tmp/ (unmounting first), never the
// work of another live process sharing dir.
func New(ctx context.Context, dir string, opts ...Option) (*Snapshotter, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("snapshot root %s: %w", dir, err)
	}
	s := &Snapshotter{root: abs, overlay: true}
	for _, d := range []string{s.root, s.dir("committed"), s.dir("seals"), s.dir("active"), s.dir("tmp"), s.dir("empty")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("snapshot root: %w", err)
		}
	}
	for _, d := range []string{s.dir("active"), s.dir("tmp")} {
		if err := cleanStale(d); err != nil {
			return nil, fmt.Errorf("clean leftovers in %s: %w", d, err)
		}
	}
	for _, o := range opts {
		o(s)
	}
	if s.overlay {
		p, err := probeOverlay(s.dir("tmp"))
		if err != nil {
			return nil, fmt.Errorf("probe overlay: %w", err)
		}
		s.overlay, s.newAPI, s.userxattr, s.noOverlay = p.ok, p.newAPI && !s.classicMt, p.userxattr, p.reason
		s.volatile = p.volatile
	}
	return s, nil
}

func (s *Snapshotter) dir(name string) string { return filepath.Join(s.root, name) }

// Overlay reports whether s stacks layers with overlayfs (false: copy fallback).
func (s *Snapshotter) Overlay() bool { return s.overlay }

// Mode describes how s stacks layers, for the progress: "overlay", "overlay
// (userxattr)", or "copy (REASON overlay cannot mount)".
func (s *Snapshotter) Mode() string {
	switch {
	case s.overlay && s.userxattr:
		return "overlay (userxattr)"
	case s.overlay:
		return "overlay"
	}
	return "copy (overlay: " + s.noOverlay + ")"
}

// ValidateID checks that id can name a committed dir and appear in mount options: not
// empty, at most 255 bytes, not "." or "..", and free of '/', NUL, ':' and ','.
func ValidateID(id string) error {
	if id == "" || id == "." || id == ".." || len(id) > 255 || strings.ContainsAny(id, "/\x00:,") {
		return fmt.Errorf("invalid snapshot id %q", id)
	}
	return nil
}

// Exists reports whether committed snapshot id is present.
func (s *Snapshotter) Exists(id string) bool {
	if ValidateID(id) != nil {
		return false
	}
	fi, err := os.Stat(s.Path(id))
	return err == nil && fi.IsDir()
}

// Path is the directory holding the committed snapshot id's files ("" for an invalid id).
func (s *Snapshotter) Path(id string) string {
	if ValidateID(id) != nil {
		return ""
	}
	return filepath.Join(s.root, "committed", id)
}

// Ingest creates committed snapshot id by calling fill on an empty temp dir and renaming
// it into place when fill succeeds. If id already exists it does nothing.
//
// Files are not fsynced: the rename makes the name appear atomically, which is what
// survives kill -9 (a kill mid-fill leaves only a tmp dir, which New removes). Power
// loss may leave a committed dir with truncated files; that is not defended against.
func (s *Snapshotter) Ingest(ctx context.Context, id string, fill func(dir string) error) error {
	if err := ValidateID(id); err != nil {
		return err
	}
	if s.Exists(id) {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("ingest %s: %w", id, err)
	}
	w, err := newWorkDir(s.dir("tmp"))
	if err != nil {
		return fmt.Errorf("ingest %s: %w", id, err)
	}
	defer w.remove()
	data := w.sub("data")
	if err := os.Mkdir(data, 0o755); err != nil {
		return fmt.Errorf("ingest %s: %w", id, err)
	}
	if err := fill(data); err != nil {
		return fmt.Errorf("ingest %s: %w", id, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("ingest %s: %w", id, err)
	}
	return s.publish(ctx, w, data, id)
}

// publish seals dir (seal_linux.go) and renames it to committed/id, then puts its
// seal in place; w is the work dir dir is in, which holds the seal until then. When id
// exists already, another build committed the same content first: dir is left for its
// owner to remove, and the seal of the snapshot in place is that build's.
func (s *Snapshotter) publish(ctx context.Context, w *workDir, dir, id string) error {
	seal, err := treeSeal(ctx, dir)
	if err != nil {
		return fmt.Errorf("seal snapshot %s: %w", id, err)
	}
	if err := os.WriteFile(w.sub("seal"), seal, 0o644); err != nil {
		return fmt.Errorf("seal snapshot %s: %w", id, err)
	}
	err = os.Rename(dir, s.Path(id))
	if err != nil && s.Exists(id) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("commit snapshot %s: %w", id, err)
	}
	return s.placeSeal(w.sub("seal"), id)
}

// Remove deletes committed snapshot id. It first renames the dir out of committed/,
// so a kill during deletion never leaves a half-deleted dir under the id.
func (s *Snapshotter) Remove(ctx context.Context, id string) error {
	if err := ValidateID(id); err != nil {
		return err
	}
	w, err := newWorkDir(s.dir("tmp"))
	if err != nil {
		return fmt.Errorf("remove snapshot %s: %w", id, err)
	}
	defer w.remove()
	if err := os.Rename(s.Path(id), w.sub("data")); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("remove snapshot %s: %w", id, err)
	}
	// The seal goes after the dir: a seal left without its snapshot is replaced
	// when the id is committed again, where a snapshot left without its seal
	// would be trusted as it is (Verify).
	if err := os.Remove(s.sealPath(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove snapshot %s: %w", id, err)
	}
	return w.remove()
}

// List returns the ids of the committed snapshots, sorted.
func (s *Snapshotter) List() ([]string, error) {
	entries, err := os.ReadDir(s.dir("committed"))
	if err != nil {
		return nil, fmt.Errorf("list snapshots: %w", err)
	}
	ids := make([]string, 0, len(entries))
	for _, e := range entries {
		if e.IsDir() && ValidateID(e.Name()) == nil {
			ids = append(ids, e.Name())
		}
	}
	sort.Strings(ids)
	return ids, nil
}

// Usage returns the bytes committed snapshot id occupies on disk (hard links once).
func (s *Snapshotter) Usage(ctx context.Context, id string) (int64, error) {
	if !s.Exists(id) {
		return 0, fmt.Errorf("snapshot %s: %w", id, fs.ErrNotExist)
	}
	u, err := cfs.DiskUsage(ctx, s.Path(id))
	if err != nil {
		return 0, fmt.Errorf("usage of snapshot %s: %w", id, err)
	}
	return u.Size, nil
}

// parentPaths validates parents (bottom first) and returns their dirs top first, the
// order overlay's lowerdir wants.
//
// A snapshot can appear twice in a stack (two steps with the same result, such as
// the same COPY twice): overlayfs refuses a lowerdir listed twice (ELOOP), so only
// the topmost occurrence is kept. That changes nothing: every path the layer touches
// is decided by its topmost copy, and the lower copy shows nothing the top one hides.
func (s *Snapshotter) parentPaths(parents []string) ([]string, error) {
	out := make([]string, 0, len(parents))
	seen := make(map[string]bool, len(parents))
	for i := len(parents) - 1; i >= 0; i-- {
		id := parents[i]
		if err := ValidateID(id); err != nil {
			return nil, err
		}
		if !s.Exists(id) {
			return nil, fmt.Errorf("parent snapshot %s: %w", id, fs.ErrNotExist)
		}
		if seen[id] {
			continue
		}
		seen[id] = true
		out = append(out, s.Path(id))
	}
	return out, nil
}
