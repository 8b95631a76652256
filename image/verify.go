package image

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// CorruptBlobError is a stored blob whose bytes do not hash to its name: damaged on
// disk after it was stored. Whoever reads it (an output, a push, an unpack) fails
// with it instead of passing the bytes on; the caller removes the blob and builds
// again, so the step or base image that needs it is made or pulled anew.
type CorruptBlobError struct {
	Digest v1.Hash // the blob's name
	Got    v1.Hash // what its bytes hash to
}

func (e *CorruptBlobError) Error() string {
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
