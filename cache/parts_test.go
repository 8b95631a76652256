package cache

import (
	"context"
	"os"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	bolt "go.etcd.io/bbolt"

	"github.com/kiln-build/kiln/layers"
)

// A layer written in members gets a part table: its parts lie end to end, add up to
// the blob and hash to its bytes. Members that do not lie end to end, and a table
// that does not decode, are no table; a prune drops the table of a blob gone.
func TestBlobParts(t *testing.T) {
	ctx := context.Background()
	root, dir := t.TempDir(), t.TempDir()
	makeLayerTree(t, dir)
	s := openStore(t, root)
	defer s.Close()
	blob, data := writeLayerBlob(t, s, dir)
	parts, ok := s.BlobParts(ctx, blob.Digest)
	if !ok || len(parts) != len(blob.Members) || len(parts) < 3 {
		t.Fatalf("part table: %d parts (%v) for %d members", len(parts), ok, len(blob.Members))
	}
	var at int64
	for i, p := range parts {
		if layers.SumPart(data[at:at+p.Size]) != p.Sum || p.SHA256 {
			t.Fatalf("part %d (bytes %d+%d) does not hash to its sum", i, at, p.Size)
		}
		at += p.Size
	}
	if at != int64(len(data)) {
		t.Fatalf("parts cover %d bytes of %d", at, len(data))
	}

	// Another digest: its first byte changed (the layer's digest differs from run to
	// run, and one in 256 starts with the byte put in its place).
	prefix := "ab"
	if blob.Digest.Hex[:2] == prefix {
		prefix = "cd"
	}
	gap := v1.Hash{Algorithm: "sha256", Hex: prefix + blob.Digest.Hex[2:]}
	ms := append([]layers.Member(nil), blob.Members...)
	ms[1].Offset++
	if err := s.PutMembers(ctx, gap, ms); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.BlobParts(ctx, gap); ok {
		t.Error("members with a gap between them made a part table")
	}
	// A table of the first format (sha256 sums) is still read, as such.
	v1table := append([]byte{partsSHA256, 7}, make([]byte, 32)...)
	v1table[2] = 0xab
	if got, ok := decodeParts(v1table); !ok || len(got) != 1 || !got[0].SHA256 || got[0].Size != 7 || got[0].Sum[0] != 0xab {
		t.Errorf("a sha256 table decoded as %v, %v", got, ok)
	}
	for name, v := range map[string][]byte{"version": {9, 1}, "short": {partsBLAKE3, 5, 1, 2}, "empty": {partsBLAKE3}} {
		if err := s.db.update(ctx, func(tx *bolt.Tx) error {
			return tx.Bucket(bucketBlobParts).Put([]byte(gap.String()), v)
		}); err != nil {
			t.Fatal(err)
		}
		if _, ok := s.BlobParts(ctx, gap); ok {
			t.Errorf("a %s table was read", name)
		}
	}

	if err := os.Remove(s.BlobPath(blob.Digest)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Prune(ctx, PruneOptions{}); err != nil {
		t.Fatal(err)
	}
	n := 0
	if err := s.db.view(ctx, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketBlobParts).ForEach(func(k, v []byte) error { n++; return nil })
	}); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("%d part tables of removed blobs survive a prune", n)
	}
}
