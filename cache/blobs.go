package cache

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/internal/atomicfile"
)

// validHash reports whether h is a sha256 digest safe to use as a file name.
func validHash(h v1.Hash) error {
	if h.Algorithm != "sha256" || len(h.Hex) != 64 {
		return fmt.Errorf("unsupported digest %q: want sha256", h.String())
	}
	if _, err := hex.DecodeString(h.Hex); err != nil {
		return fmt.Errorf("invalid digest %q", h.String())
	}
	return nil
}

// BlobPath is the path of blob h (which may not exist); "" for a malformed digest.
func (s *Store) BlobPath(h v1.Hash) string {
	if validHash(h) != nil {
		return ""
	}
	return s.path("blobs", "sha256", h.Hex)
}

// HasBlob reports whether blob h is present.
func (s *Store) HasBlob(h v1.Hash) bool {
	p := s.BlobPath(h)
	if p == "" {
		return false
	}
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// VerifyBlob re-reads blob h and checks its sha256. A corrupt blob is removed, so
// the next lookup misses instead of serving it.
func (s *Store) VerifyBlob(h v1.Hash) error {
	p := s.BlobPath(h)
	if p == "" {
		return validHash(h)
	}
	f, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("verify blob %s: %w", h, err)
	}
	defer f.Close()
	d := sha256.New()
	if _, err := io.Copy(d, f); err != nil {
		return fmt.Errorf("verify blob %s: %w", h, err)
	}
	if got := hex.EncodeToString(d.Sum(nil)); got != h.Hex {
		os.Remove(p)
		return fmt.Errorf("blob %s is corrupt (content hashes to sha256:%s); removed", h, got)
	}
	return nil
}

// BlobWriter writes a new blob to a temp file; Commit names it by its digest.
type BlobWriter interface {
	io.Writer
	// Digest is the sha256 of what was written so far (empty from an unhashed
	// writer).
	Digest() v1.Hash
	// Commit fsyncs and renames the temp file to blobs/sha256/<d>; if the blob exists
	// already it is kept and the temp file removed. If verify is true, the bytes'
	// sha256 must equal d.
	Commit(d v1.Hash, verify bool) error
	// Abort removes the temp file. Safe after Commit.
	Abort() error
}

// NewBlobWriter starts a new blob in tmp/ (same filesystem, so Commit is a rename).
func (s *Store) NewBlobWriter() (BlobWriter, error) {
	f, err := s.CreateTemp("blob-")
	if err != nil {
		return nil, fmt.Errorf("new blob: %w", err)
	}
	return &blobWriter{s: s, f: f, h: sha256.New()}, nil
}

// NewUnhashedBlobWriter is NewBlobWriter for bytes their source verifies itself: a
// reader that fails the read reaching its end unless they hash to the digest it was
// opened for (go-containerregistry's blob readers). Hashing them a second time cost a
// core for as long as the download (W2's 161 MB layer: 0.15 s). Its Digest is empty
// and Commit(d, true) refuses: the caller commits only after that reader's end.
func (s *Store) NewUnhashedBlobWriter() (BlobWriter, error) {
	f, err := s.CreateTemp("blob-")
	if err != nil {
		return nil, fmt.Errorf("new blob: %w", err)
	}
	return &blobWriter{s: s, f: f}, nil
}

type blobWriter struct {
	s    *Store
	f    *os.File
	h    hash.Hash
	done bool
	// n bytes are written; writeback of those below synced was started.
	n, synced int64
}

// writebackEvery is how much a blob grows between writeback hints: the layer is
// written over a second or more, and the disk can store it meanwhile instead of
// during Commit's fsync (W2 changed: 160 MB, 0.3 s of fsync).
const writebackEvery = 8 << 20

func (w *blobWriter) Write(p []byte) (int, error) {
	if w.done {
		return 0, errors.New("write to a committed or aborted blob")
	}
	n, err := w.f.Write(p)
	if w.h != nil {
		w.h.Write(p[:n])
	}
	w.n += int64(n)
	if w.n-w.synced >= writebackEvery {
		atomicfile.StartWriteback(w.f, w.synced, w.n-w.synced)
		w.synced = w.n
	}
	return n, err
}

// Digest is the sha256 of what was written so far; empty when w does not hash.
func (w *blobWriter) Digest() v1.Hash {
	if w.h == nil {
		return v1.Hash{}
	}
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(w.h.Sum(nil))}
}

func (w *blobWriter) Commit(d v1.Hash, verify bool) error {
	if w.done {
		return errors.New("blob already committed or aborted")
	}
	defer w.Abort()
	if err := validHash(d); err != nil {
		return err
	}
	if verify && w.h == nil {
		return fmt.Errorf("blob %s: its writer did not hash it, so it cannot verify it", d)
	}
	if got := w.Digest(); verify && got != d {
		return fmt.Errorf("blob digest mismatch: content is %s, expected %s", got, d)
	}
	if err := w.f.Chmod(0o644); err != nil {
		return fmt.Errorf("blob %s: %w", d, err)
	}
	if w.s.HasBlob(d) {
		return nil // keep the existing blob; Abort removes ours
	}
	// kiln's one policy for a file taking its final name (atomicfile.Commit): fsync,
	// rename, fsync of blobs/sha256. An fsync costs about 0.8 ms for a small blob on
	// ext4 and nothing measurable for a big one (its writeback is due anyway); a warm
	// build writes no blob. A step entry is recorded only after this returns, so an
	// entry never names a blob that power loss could take back.
	if err := atomicfile.Commit(w.f, w.s.BlobPath(d)); err != nil {
		return fmt.Errorf("commit blob %s: %w", d, err)
	}
	w.done = true
	// meta.db and the snapshots wait for a syncfs (sync.go); a big blob comes with a
	// big snapshot, whose writeback is started now.
	w.s.markDirty(w.n >= writebackEvery)
	return nil
}

func (w *blobWriter) Abort() error {
	if w.done {
		return nil
	}
	w.done = true
	w.f.Close()
	if err := os.Remove(w.f.Name()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("abort blob: %w", err)
	}
	return nil
}

// WriteBlob stores b under its sha256 and returns the digest.
func (s *Store) WriteBlob(b []byte) (v1.Hash, error) {
	sum := sha256.Sum256(b)
	h := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
	if s.HasBlob(h) {
		return h, nil
	}
	w, err := s.NewBlobWriter()
	if err != nil {
		return v1.Hash{}, err
	}
	if _, err := w.Write(b); err != nil {
		w.Abort()
		return v1.Hash{}, fmt.Errorf("write blob: %w", err)
	}
	if err := w.Commit(h, true); err != nil {
		return v1.Hash{}, err
	}
	return h, nil
}

// RemoveBlob deletes blob h (a blob found damaged): the entries that name it then
// miss (the solver checks a hit's blob), so the next build makes it again. Removing
// a blob that is not there is not an error.
func (s *Store) RemoveBlob(h v1.Hash) error {
	p := s.BlobPath(h)
	if p == "" {
		return validHash(h)
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove blob %s: %w", h, err)
	}
	return nil
}
