package cache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// BlobCheck is what CheckBlobs found.
type BlobCheck struct {
	Blobs   int       // blobs read
	Bytes   int64     // bytes read
	Damaged []v1.Hash // blobs whose bytes do not hash to their name
}

// CheckBlobs reads every blob and compares its sha256 with its name. With repair a
// damaged blob is removed, so that the entries needing it miss and the next build
// makes or pulls it again.
func (s *Store) CheckBlobs(ctx context.Context, repair bool) (BlobCheck, error) {
	var c BlobCheck
	dir := s.path("blobs", "sha256")
	names, err := os.ReadDir(dir)
	if err != nil {
		return c, fmt.Errorf("check blobs: %w", err)
	}
	buf := make([]byte, 1<<20)
	for _, n := range names {
		if err := ctx.Err(); err != nil {
			return c, err
		}
		h := v1.Hash{Algorithm: "sha256", Hex: n.Name()}
		if !n.Type().IsRegular() || validHash(h) != nil {
			continue // not a blob (a temp file of an older kiln, say)
		}
		got, size, err := hashFile(filepath.Join(dir, n.Name()), buf)
		if err != nil {
			return c, fmt.Errorf("check blob %s: %w", h, err)
		}
		c.Blobs++
		c.Bytes += size
		if got == h.Hex {
			continue
		}
		c.Damaged = append(c.Damaged, h)
		if repair {
			if err := s.RemoveBlob(h); err != nil {
				return c, err
			}
		}
	}
	return c, nil
}

func hashFile(p string, buf []byte) (string, int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.CopyBuffer(h, f, buf)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// Entries returns every step entry, for checks of what they name.
func (s *Store) Entries(ctx context.Context) ([]*Entry, error) { return s.entries(ctx) }
