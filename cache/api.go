package cache

import (
	"context"
	"errors"
	"io"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Store is kiln's local state under --root:
//
//	blobs/sha256/<hex>   content-addressed blobs (layers, configs, manifests)
//	snapshots/           layer dirs (owned by package snapshot; the store only names the dir)
//	mounts/              RUN --mount=type=cache dirs
//	meta.db              bbolt: step cache, ref → digest, file hash cache
//
// Several kiln processes may share one Store; every write is temp + fsync + rename, so
// a kill -9 at any instant leaves it usable.
type Store struct {
	root string
}

// Open opens (creating) the store at root.
func Open(ctx context.Context, root string) (*Store, error) {
	return nil, errors.New("cache: Open not implemented")
}

// Close releases the store.
func (s *Store) Close() error { return nil }

// Root is the store's directory.
func (s *Store) Root() string { return s.root }

// SnapshotsDir is where package snapshot keeps its layer dirs.
func (s *Store) SnapshotsDir() string { return "" }

// BlobPath is the path of blob h (which may not exist).
func (s *Store) BlobPath(h v1.Hash) string { return "" }

// HasBlob reports whether blob h is present.
func (s *Store) HasBlob(h v1.Hash) bool { return false }

// BlobWriter writes a new blob to a temp file; Commit names it by its digest.
type BlobWriter interface {
	io.Writer
	// Commit fsyncs and renames the temp file to blobs/sha256/<d>; if the blob exists
	// already it is kept and the temp file removed. If verify is true, the bytes'
	// sha256 must equal d.
	Commit(d v1.Hash, verify bool) error
	// Abort removes the temp file. Safe after Commit.
	Abort() error
}

// NewBlobWriter starts a new blob.
func (s *Store) NewBlobWriter() (BlobWriter, error) {
	return nil, errors.New("cache: NewBlobWriter not implemented")
}

// WriteBlob stores b under its sha256 and returns the digest.
func (s *Store) WriteBlob(b []byte) (v1.Hash, error) {
	return v1.Hash{}, errors.New("cache: WriteBlob not implemented")
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
	KeepBlobs     []string `json:"keepBlobs,omitempty"`
	KeepSnapshots []string `json:"keepSnapshots,omitempty"`
	Created time.Time  `json:"created"`
	Used    time.Time  `json:"used"`
}

// GetStep returns the entry for key; ok is false when absent or when its blob or
// snapshot is missing or corrupt (such an entry is dropped, not an error).
func (s *Store) GetStep(ctx context.Context, key string) (e *Entry, ok bool, err error) {
	return nil, false, errors.New("cache: GetStep not implemented")
}

// PutStep records e (its blob and snapshot must already be committed).
func (s *Store) PutStep(ctx context.Context, e *Entry) error {
	return errors.New("cache: PutStep not implemented")
}

// LastInputs returns the Inputs of the most recent entry recorded under scope (the
// solver uses "stage/step position"), to explain a miss.
func (s *Store) LastInputs(ctx context.Context, scope string) ([]byte, bool) { return nil, false }

// SetLastInputs records inputs under scope.
func (s *Store) SetLastInputs(ctx context.Context, scope string, inputs []byte) error { return nil }

// GetRef returns the manifest digest a ref (e.g. "127.0.0.1:5000/busybox:latest@linux/amd64")
// resolved to when last pulled.
func (s *Store) GetRef(ctx context.Context, ref string) (string, bool) { return "", false }

// PutRef records ref → digest.
func (s *Store) PutRef(ctx context.Context, ref, digest string) error { return nil }

// HashCache is the file-digest cache buildctx uses (key: dev/inode/size/mtime/ctime).
func (s *Store) HashCache() interface {
	Get(key string) (string, bool)
	Put(key, digest string)
} {
	return nil
}

// CacheMountDir returns the dir behind RUN --mount=type=cache,id=id, creating it.
func (s *Store) CacheMountDir(ctx context.Context, id string) (string, error) {
	return "", errors.New("cache: CacheMountDir not implemented")
}

// Usage is what kiln du reports.
type Usage struct {
	Blobs, Snapshots, CacheMounts int64 // bytes
	Entries                       int
}

// DiskUsage measures the store.
func (s *Store) DiskUsage(ctx context.Context) (Usage, error) {
	return Usage{}, errors.New("cache: DiskUsage not implemented")
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
}

// Prune removes step entries, blobs and snapshots nothing references any more.
func (s *Store) Prune(ctx context.Context, opts PruneOptions) (freed int64, err error) {
	return 0, errors.New("cache: Prune not implemented")
}
