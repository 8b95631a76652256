package image

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/cache"
	"github.com/kiln-build/kiln/layers"
)

// A blob with a part table is checked a part at a time: intact bytes pass on any
// number of workers, a changed byte fails naming the part that holds it, and a table
// that does not cover the blob is not used (the blob is hashed whole).
func TestVerifyParts(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(3, 4))
	data := make([]byte, 3<<20+12345)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	sum := sha256.Sum256(data)
	want := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
	var parts, sha256Parts []cache.BlobPart
	for at := 0; at < len(data); {
		n := min(len(data)-at, 100<<10+rng.IntN(400<<10))
		parts = append(parts, cache.BlobPart{Size: int64(n), Sum: layers.SumPart(data[at : at+n])})
		sha256Parts = append(sha256Parts, cache.BlobPart{Size: int64(n), Sum: sha256.Sum256(data[at : at+n]), SHA256: true})
		at += n
	}
	path := filepath.Join(t.TempDir(), "blob")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	open := func(parts []cache.BlobPart) *verifiedBlob {
		t.Helper()
		vb, err := openVerified(path, want)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { vb.Close() })
		vb.parts = func(context.Context) ([]cache.BlobPart, bool) { return parts, true }
		return vb
	}
	for _, workers := range []int{1, 2, 5} {
		if err := <-verifyParts(ctx, open(nil).f, parts, want, workers); err != nil {
			t.Fatalf("%d workers, intact blob: %v", workers, err)
		}
		// An older store's table, of sha256 sums.
		if err := <-verifyParts(ctx, open(nil).f, sha256Parts, want, workers); err != nil {
			t.Fatalf("%d workers, intact blob, sha256 table: %v", workers, err)
		}
	}
	if err := <-verifyParts(ctx, open(nil).f, sha256Parts[:1], want, 1); err != nil {
		t.Fatalf("first part of a sha256 table: %v", err)
	}
	wrongKind := append([]cache.BlobPart(nil), sha256Parts...)
	wrongKind[0].SHA256 = false
	if _, ok := AsCorruptBlob(<-verifyParts(ctx, open(nil).f, wrongKind, want, 1)); !ok {
		t.Fatal("a sha256 sum taken for a BLAKE3 one passed")
	}

	bad := int64(len(data) / 2)
	data[bad] ^= 0x40
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, workers := range []int{1, 2, 5} {
		for _, table := range [][]cache.BlobPart{parts, sha256Parts} {
			err := <-verifyParts(ctx, open(nil).f, table, want, workers)
			c, ok := AsCorruptBlob(err)
			if !ok || c.Digest != want || bad < c.Part[0] || bad >= c.Part[1] {
				t.Fatalf("%d workers, byte %d changed (sha256 table: %v): %v", workers, bad, table[0].SHA256, err)
			}
		}
	}
	if c, ok := AsCorruptBlob(<-open(parts).verifyFile(ctx, int64(len(data)))); !ok || c.Part[1] == 0 {
		t.Fatalf("verifyFile with a table that covers the blob: %v, want a damaged part", c)
	}
	// A table short of the blob's last byte: the whole blob is hashed, and what its
	// bytes hash to is said.
	err := <-open(parts[:len(parts)-1]).verifyFile(ctx, int64(len(data)))
	if c, ok := AsCorruptBlob(err); !ok || c.Got.Hex == "" {
		t.Fatalf("table short of the blob: %v, want the whole blob's digest", err)
	}
}
