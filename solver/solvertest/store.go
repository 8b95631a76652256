package solvertest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"os"
	"path/filepath"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/cache"
	"github.com/kiln-build/kiln/internal/atomicfile"
	"github.com/kiln-build/kiln/solver"
)

// Store is an in-memory solver.Store. Entries are copied in and out, as the real
// store (de)serialises them, so a caller cannot change what is recorded.
type Store struct {
	dir string

	mu     sync.Mutex
	steps  map[string]cache.Entry
	refs   map[string]string
	last   map[string][]byte
	hashes hashMemo
}

var _ solver.Store = (*Store)(nil)

// NewStore makes a store whose blobs and scratch dirs live under dir.
func NewStore(dir string) (*Store, error) {
	for _, d := range []string{"blobs/sha256", "tmp", "mounts"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	return &Store{dir: dir, steps: map[string]cache.Entry{}, refs: map[string]string{},
		last: map[string][]byte{}, hashes: hashMemo{m: map[string]string{}}}, nil
}

// Steps is how many step entries the store holds.
func (s *Store) Steps() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.steps)
}

// RemoveStep forgets key's entry (a pruned or lost entry).
func (s *Store) RemoveStep(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.steps, key)
}

// BlobPath implements image.BlobStore.
func (s *Store) BlobPath(h v1.Hash) string { return filepath.Join(s.dir, "blobs", h.Algorithm, h.Hex) }

// HasBlob implements image.BlobStore.
func (s *Store) HasBlob(h v1.Hash) bool {
	_, err := os.Stat(s.BlobPath(h))
	return err == nil
}

// WriteBlob implements image.BlobStore.
func (s *Store) WriteBlob(b []byte) (v1.Hash, error) {
	sum := sha256.Sum256(b)
	h := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
	return h, os.WriteFile(s.BlobPath(h), b, 0o644)
}

// CreateTemp implements image.BlobStore.
func (s *Store) CreateTemp(pattern string) (*os.File, error) {
	return os.CreateTemp(filepath.Join(s.dir, "tmp"), pattern)
}

// GetRef implements image.BlobStore.
func (s *Store) GetRef(_ context.Context, ref string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.refs[ref]
	return d, ok
}

// PutRef implements image.BlobStore.
func (s *Store) PutRef(_ context.Context, ref, digest string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refs[ref] = digest
	return nil
}

// GetStep implements solver.Store.
func (s *Store) GetStep(ctx context.Context, key string) (*cache.Entry, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.steps[key]
	if !ok {
		return nil, false, nil
	}
	return &e, true, nil
}

// PutStep implements solver.Store.
func (s *Store) PutStep(ctx context.Context, e *cache.Entry) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.steps[e.Key] = *e
	return nil
}

// PutStepIfAbsent implements solver.Store.
func (s *Store) PutStepIfAbsent(ctx context.Context, e *cache.Entry) (*cache.Entry, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if prev, ok := s.steps[e.Key]; ok {
		return &prev, nil
	}
	s.steps[e.Key] = *e
	c := *e
	return &c, nil
}

// LastInputs implements solver.Store.
func (s *Store) LastInputs(_ context.Context, scope string) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.last[scope]
	return b, ok
}

// SetLastInputs implements solver.Store.
func (s *Store) SetLastInputs(_ context.Context, scope string, inputs []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.last[scope] = append([]byte(nil), inputs...)
	return nil
}

// HashCache implements solver.Store.
func (s *Store) HashCache() interface {
	Get(key string) (string, bool)
	GetMany(keys []string) []string
	Put(key, digest string)
} {
	return &s.hashes
}

// NewBlobWriter implements solver.Store.
func (s *Store) NewBlobWriter() (cache.BlobWriter, error) {
	f, err := s.CreateTemp("blob-")
	if err != nil {
		return nil, err
	}
	return &blobWriter{s: s, f: f, h: sha256.New()}, nil
}

// TempDir implements solver.Store.
func (s *Store) TempDir(pattern string) (string, error) {
	return os.MkdirTemp(filepath.Join(s.dir, "tmp"), pattern)
}

// CacheMountDir implements solver.Store.
func (s *Store) CacheMountDir(_ context.Context, identity string) (string, error) {
	sum := sha256.Sum256([]byte(identity))
	dir := filepath.Join(s.dir, "mounts", hex.EncodeToString(sum[:]))
	return dir, os.MkdirAll(dir, 0o755)
}

type hashMemo struct {
	mu sync.Mutex
	m  map[string]string
}

func (h *hashMemo) Get(key string) (string, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	d, ok := h.m[key]
	return d, ok
}

func (h *hashMemo) GetMany(keys []string) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i], _ = h.Get(k)
	}
	return out
}

func (h *hashMemo) Put(key, digest string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.m[key] = digest
}

// blobWriter writes a blob to tmp/ and renames it into blobs/ on Commit.
type blobWriter struct {
	s    *Store
	f    *os.File
	h    hash.Hash
	done bool
}

func (w *blobWriter) Write(p []byte) (int, error) {
	w.h.Write(p)
	return w.f.Write(p)
}

func (w *blobWriter) Digest() v1.Hash {
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(w.h.Sum(nil))}
}

func (w *blobWriter) Commit(d v1.Hash, verify bool) error {
	if got := w.Digest().Hex; verify && got != d.Hex {
		return fmt.Errorf("blob %s: content hashes to sha256:%s", d, got)
	}
	w.done = true
	return atomicfile.Commit(w.f, w.s.BlobPath(d))
}

func (w *blobWriter) Abort() error {
	if w.done {
		return nil
	}
	w.f.Close()
	return os.Remove(w.f.Name())
}
