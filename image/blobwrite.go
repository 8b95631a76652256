package image

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/internal/atomicfile"
)

// writeSmallBlob stores b through the store and checks it got the digest want, so a
// manifest or config that does not match what referenced it is never kept silently.
func writeSmallBlob(store BlobStore, want v1.Hash, b []byte) error {
	if store.HasBlob(want) {
		return nil
	}
	got, err := store.WriteBlob(b)
	if err != nil {
		return fmt.Errorf("store blob %s: %w", want, err)
	}
	if got != want {
		return fmt.Errorf("blob digest mismatch: expected %s, got %s", want, got)
	}
	return nil
}

// writeBlobStream copies r into the store under want: to a temp file of the store's
// (on the blobs' filesystem, so the rename cannot cross filesystems, and removed by the
// next build if this one is killed), hashing as it goes, then verify and
// atomicfile.Commit (fsync, rename, fsync of the directory). A kill at any instant leaves either no blob or the whole
// verified blob, never a truncated one under its final name.
func writeBlobStream(ctx context.Context, store BlobStore, want v1.Hash, size int64, r io.Reader) error {
	w, err := newBlobWriter(store, want, size)
	if err != nil {
		return err
	}
	if _, err := io.Copy(w, ctxReader{ctx: ctx, r: r}); err != nil {
		w.Abort()
		return fmt.Errorf("store blob %s: %w", want, err)
	}
	if err := w.Verify(); err != nil {
		w.Abort()
		return err
	}
	return w.Commit()
}

// blobWriter writes one blob into a store temp file, hashing it; Verify checks what
// was written against the digest (and size, when known) it must have, and Commit
// makes the verified file the store's blob, or Abort removes it.
type blobWriter struct {
	store BlobStore
	want  v1.Hash
	size  int64 // -1: unknown
	f     *os.File
	h     hash.Hash
	n     int64
}

func newBlobWriter(store BlobStore, want v1.Hash, size int64) (*blobWriter, error) {
	if want.Algorithm != "sha256" {
		return nil, fmt.Errorf("blob %s: unsupported digest algorithm", want)
	}
	if err := os.MkdirAll(filepath.Dir(store.BlobPath(want)), 0o755); err != nil {
		return nil, fmt.Errorf("store blob %s: %w", want, err)
	}
	f, err := store.CreateTemp("incoming-")
	if err != nil {
		return nil, fmt.Errorf("store blob %s: %w", want, err)
	}
	return &blobWriter{store: store, want: want, size: size, f: f, h: sha256.New()}, nil
}

func (w *blobWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.h.Write(p[:n])
	w.n += int64(n)
	return n, err
}

// Verify says whether the bytes written are the blob's.
func (w *blobWriter) Verify() error {
	if w.size >= 0 && w.n != w.size {
		return fmt.Errorf("blob %s: expected %d bytes, got %d", w.want, w.size, w.n)
	}
	if got := hex.EncodeToString(w.h.Sum(nil)); got != w.want.Hex {
		return fmt.Errorf("blob digest mismatch: expected %s, got sha256:%s", w.want, got)
	}
	return nil
}

// Commit stores the written file as the blob; call it only after Verify succeeded.
func (w *blobWriter) Commit() error {
	if err := atomicfile.Commit(w.f, w.store.BlobPath(w.want)); err != nil {
		os.Remove(w.f.Name())
		return fmt.Errorf("store blob %s: %w", w.want, err)
	}
	return nil
}

// Abort removes the temp file.
func (w *blobWriter) Abort() {
	w.f.Close()
	os.Remove(w.f.Name())
}

// ctxReader stops a long copy as soon as ctx is cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
