package image

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"runtime"
	"sync/atomic"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sync/errgroup"

	"github.com/kiln-build/kiln/cache"
	"github.com/kiln-build/kiln/layers"
)

// CorruptBlobError is a stored blob whose bytes do not hash to its name: damaged on
// disk after it was stored. Whoever reads it (an output, a push, an unpack) fails
// with it instead of passing the bytes on; the caller removes the blob and builds
// again, so the step or base image that needs it is made or pulled anew.
type CorruptBlobError struct {
	Digest v1.Hash // the blob's name
	Got    v1.Hash // what its bytes hash to, when it was hashed whole
	// Part is the byte range [Part[0], Part[1]) that does not hash to the sum its
	// part table recorded, when it was checked a part at a time.
	Part [2]int64
}

func (e *CorruptBlobError) Error() string {
	if e.Got.Hex == "" && e.Part[1] > 0 {
		return fmt.Sprintf("store blob %s is damaged (its bytes %d to %d do not hash to what was recorded when it was written)", e.Digest, e.Part[0], e.Part[1])
	}
	if e.Got.Hex == "" {
		return fmt.Sprintf("blob %s is damaged (its bytes do not hash to it)", e.Digest)
	}
	return fmt.Sprintf("store blob %s is damaged (its bytes hash to %s)", e.Digest, e.Got)
}

// DamagedBlob names the blob, for the store's repair (cache.Store.RepairBlobs).
func (e *CorruptBlobError) DamagedBlob() v1.Hash { return e.Digest }

// AsCorruptBlob finds a CorruptBlobError in err's chain.
func AsCorruptBlob(err error) (*CorruptBlobError, bool) {
	var c *CorruptBlobError
	ok := errors.As(err, &c)
	return c, ok
}

// verifiedBlob is a stored blob opened for reading: every byte read is hashed, and
// the read that reaches the end fails with a CorruptBlobError when the digest is not
// the blob's name. The file is exposed for file-to-file copies, which verify through
// verifyConcurrently instead.
type verifiedBlob struct {
	f    *os.File
	want v1.Hash
	h    hash.Hash
	// parts looks up the blob's part table, when its store keeps them.
	parts func(context.Context) ([]cache.BlobPart, bool)
}

func openVerified(path string, want v1.Hash) (*verifiedBlob, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	return &verifiedBlob{f: f, want: want, h: sha256.New()}, nil
}

func (v *verifiedBlob) Read(p []byte) (int, error) {
	n, err := v.f.Read(p)
	v.h.Write(p[:n])
	if err == io.EOF {
		if got := hex.EncodeToString(v.h.Sum(nil)); got != v.want.Hex {
			return n, &CorruptBlobError{Digest: v.want, Got: v1.Hash{Algorithm: "sha256", Hex: got}}
		}
	}
	return n, err
}

func (v *verifiedBlob) Close() error { return v.f.Close() }

// verifyConcurrently hashes the first size bytes of f with positioned reads (the
// file offset, which a copy of f uses, is left alone) and sends the result on the
// returned channel: nil, a CorruptBlobError or the read error. It runs beside a
// copy_file_range of the same file, so the copy stays in the kernel and the check
// costs no time on a machine with a core to spare.
func verifyConcurrently(f *os.File, size int64, want v1.Hash) <-chan error {
	done := make(chan error, 1)
	go func() {
		h := sha256.New()
		if _, err := io.Copy(h, io.NewSectionReader(f, 0, size)); err != nil {
			done <- fmt.Errorf("verify blob %s: %w", want, err)
			return
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != want.Hex {
			done <- &CorruptBlobError{Digest: want, Got: v1.Hash{Algorithm: "sha256", Hex: got}}
			return
		}
		done <- nil
	}()
	return done
}

// verifyFile is verifyConcurrently for the first size bytes of the blob, a part at a
// time on every core when its store has a part table that covers exactly those
// bytes (cache/parts.go), else as one sha256.
func (v *verifiedBlob) verifyFile(ctx context.Context, size int64) <-chan error {
	if v.parts != nil {
		if parts, ok := v.parts(ctx); ok && partsCover(parts, size) {
			return verifyParts(ctx, v.f, parts, v.want, runtime.GOMAXPROCS(0))
		}
	}
	return verifyConcurrently(v.f, size, v.want)
}

func partsCover(parts []cache.BlobPart, size int64) bool {
	var n int64
	for _, p := range parts {
		n += p.Size
	}
	return n == size
}

// verifyParts hashes each part of f on one of workers goroutines, with positioned
// reads, and sends on the returned channel nil, the CorruptBlobError of the first
// part found damaged, or a read error.
func verifyParts(ctx context.Context, f *os.File, parts []cache.BlobPart, want v1.Hash, workers int) <-chan error {
	offsets := make([]int64, len(parts))
	var at int64
	for i, p := range parts {
		offsets[i] = at
		at += p.Size
	}
	var next atomic.Int64
	g, ctx := errgroup.WithContext(ctx)
	for range max(1, min(workers, len(parts))) {
		g.Go(func() error {
			var buf []byte
			for {
				i := int(next.Add(1) - 1)
				if i >= len(parts) || ctx.Err() != nil {
					return ctx.Err()
				}
				p := parts[i]
				// A part is a gzip member, at most a few MiB (the store bounds a
				// table's sizes): read whole, it is digested in one call.
				if int64(cap(buf)) < p.Size {
					buf = make([]byte, p.Size)
				}
				b := buf[:p.Size]
				if _, err := f.ReadAt(b, offsets[i]); err != nil {
					return fmt.Errorf("verify blob %s: %w", want, err)
				}
				if partSum(p, b) != p.Sum {
					return &CorruptBlobError{Digest: want, Part: [2]int64{offsets[i], offsets[i] + p.Size}}
				}
			}
		})
	}
	done := make(chan error, 1)
	go func() { done <- g.Wait() }()
	return done
}

// partSum digests a part's bytes as its table does.
func partSum(p cache.BlobPart, b []byte) [32]byte {
	if p.SHA256 {
		return sha256.Sum256(b)
	}
	return layers.SumPart(b)
}
