package image

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
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
func writeBlobStream(ctx context.Context, store BlobStore, want v1.Hash, size int64, r io.Reader) (err error) {
	if want.Algorithm != "sha256" {
		return fmt.Errorf("blob %s: unsupported digest algorithm", want)
	}
	final := store.BlobPath(want)
	dir := filepath.Dir(final)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("store blob %s: %w", want, err)
	}
	f, err := store.CreateTemp("incoming-")
	if err != nil {
		return fmt.Errorf("store blob %s: %w", want, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), ctxReader{ctx: ctx, r: r})
	if err != nil {
		return fmt.Errorf("store blob %s: %w", want, err)
	}
	if size >= 0 && n != size {
		return fmt.Errorf("blob %s: expected %d bytes, got %d", want, size, n)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want.Hex {
		return fmt.Errorf("blob digest mismatch: expected %s, got sha256:%s", want, got)
	}
	if err := atomicfile.Commit(f, final); err != nil {
		return fmt.Errorf("store blob %s: %w", want, err)
	}
	return nil
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
