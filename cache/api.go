package cache

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/internal/lease"
)

// Store is kiln's local state under --root:
//
//	blobs/sha256/<hex>   content-addressed blobs (layers, configs, manifests)
//	snapshots/           layer dirs (owned by package snapshot; the store only names the dir)
//	mounts/<sha256(id)>  RUN --mount=type=cache dirs
//	meta.db              bbolt: step cache, ref → digest, file hash cache
//	meta.db.damaged-<t>  an index found damaged, set aside for inspection
//	tmp/<owner>.owner    leased (flock) by a live Store from Open to Close
//	tmp/<owner>-*        its blobs being written, pulls and scratch dirs (TempDir)
//	gc.lock              flock: shared while a Store is open, exclusive during Prune
//
// Several kiln processes may share one Store; every write is temp + fsync + rename, so
// a kill -9 at any instant leaves it usable.
type Store struct {
	root string
	db   *db
	gc   *os.File // gc.lock, shared-locked from Open to Close

	// owner leases tmp/<ownerID>.owner from Open to Close (lock_linux.go).
	owner     *lease.Lease
	ownerFile *os.File
	ownerID   string

	hashes  *hashCache
	members memberIndex // where the gzip members of the blobs lie (members.go)

	usedMu sync.Mutex
	used   map[string]time.Time // step keys hit since the last flush

	dirty  atomic.Bool // blobs were committed since Open: Close syncs meta.db and the snapshots
	syncer syncer
}

// Option configures Open.
type Option func(*openOptions)

type openOptions struct {
	warn func(msg string)
}

// WithWarnings has the store tell warn what the user should know but what does not fail
// the operation, such as a damaged index that was set aside and replaced by an empty
// one. warn may be called from any goroutine, during Open or any later call. The store
// never prints.
func WithWarnings(warn func(msg string)) Option {
	return func(o *openOptions) { o.warn = warn }
}

// Open opens (creating) the store at root. It takes a shared lock on root/gc.lock,
// held until Close, so a Prune in another process waits for this build to finish.
func Open(ctx context.Context, root string, opts ...Option) (*Store, error) {
	var o openOptions
	for _, opt := range opts {
		opt(&o)
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", root, err)
	}
	s := &Store{root: abs, used: map[string]time.Time{}}
	for _, d := range []string{abs, s.path("blobs", "sha256"), s.SnapshotsDir(), s.path("mounts"), s.path("tmp")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("open store: %w", err)
		}
	}
	if s.gc, err = lockShared(ctx, s.path("gc.lock")); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	if err := s.takeOwnership(); err != nil {
		s.gc.Close()
		return nil, fmt.Errorf("open store: %w", err)
	}
	if err := s.cleanTemp(); err != nil {
		s.releaseOwnership()
		s.gc.Close()
		return nil, fmt.Errorf("open store: clean tmp: %w", err)
	}
	_, statErr := os.Lstat(s.path("meta.db"))
	if s.db, err = openDB(ctx, s.path("meta.db"), o.warn); err != nil {
		s.releaseOwnership()
		s.gc.Close()
		return nil, fmt.Errorf("open store: %w", err)
	}
	if errors.Is(statErr, fs.ErrNotExist) {
		s.stampGC() // a new store
	}
	s.hashes = &hashCache{db: s.db}
	return s, nil
}

// Close flushes pending hash-cache entries and use times, makes what this process
// wrote durable with one syncfs (meta.db commits and snapshot files are not fsynced
// one by one; blobs are, by blobWriter.Commit), and releases the store.
func (s *Store) Close() error {
	err := s.Flush(context.Background())
	s.stopSyncer()
	if s.dirty.Load() {
		if serr := s.Sync(); err == nil {
			err = serr
		}
	}
	if oerr := s.releaseOwnership(); err == nil {
		err = oerr
	}
	if s.gc != nil {
		s.gc.Close() // releases the shared gc lock
		s.gc = nil
	}
	return err
}

// Flush writes buffered hash-cache entries and step use times to meta.db.
func (s *Store) Flush(ctx context.Context) error {
	if err := s.hashes.Flush(ctx); err != nil {
		return err
	}
	return s.flushUsed(ctx)
}

// FlushHashes writes buffered hash-cache entries to meta.db.
func (s *Store) FlushHashes(ctx context.Context) error { return s.hashes.Flush(ctx) }

// Root is the store's directory.
func (s *Store) Root() string { return s.root }

// SnapshotsDir is where package snapshot keeps its layer dirs.
func (s *Store) SnapshotsDir() string { return s.path("snapshots") }

func (s *Store) path(elem ...string) string {
	return filepath.Join(append([]string{s.root}, elem...)...)
}

// Layer is one layer a step produced.
type Layer struct {
	Digest    string `json:"digest"`
	DiffID    string `json:"diffID"`
	Size      int64  `json:"size"`
	MediaType string `json:"mediaType"`
	Snapshot  string `json:"snapshot"` // committed snapshot id of the layer's dir
}

// Entry is one cached build step.
type Entry struct {
	Key     string     `json:"key"`
	Layer   *Layer     `json:"layer,omitempty"` // nil for metadata-only steps
	Config  []byte     `json:"config"`          // the stage's image config JSON after the step
	History v1.History `json:"history"`
	Inputs  []byte     `json:"inputs"` // plain record of what the key was made from, to explain misses
	// KeepBlobs and KeepSnapshots are further blobs (digests) and snapshot ids this
	// entry keeps alive in GC: a FROM entry keeps its base image's manifest, config
	// and layers.
	KeepBlobs     []string  `json:"keepBlobs,omitempty"`
	KeepSnapshots []string  `json:"keepSnapshots,omitempty"`
	Created       time.Time `json:"created"`
	Used          time.Time `json:"used"`
}

// Usage is what kiln du reports.
type Usage struct {
	Blobs, Snapshots, CacheMounts int64 // bytes
	Entries                       int
}

// PruneOptions select what Prune removes.
type PruneOptions struct {
	All         bool          // everything, including cache mounts and base images
	KeepStorage int64         // remove least recently used until at most this many bytes remain
	Until       time.Duration // only entries unused for longer than this
	// RemoveSnapshot deletes a snapshot dir (package snapshot owns them).
	RemoveSnapshot func(ctx context.Context, id string) error
	// ListSnapshots lists the committed snapshot ids on disk.
	ListSnapshots func() ([]string, error)
	// LockWait bounds the wait for other builds on the store to close it (0: wait as
	// long as ctx allows); past it Prune removes nothing and returns ErrBusy. It
	// bounds only that wait, never the removal itself.
	LockWait time.Duration
}
