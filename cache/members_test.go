package cache

import (
	"bytes"
	"context"
	"math/rand"
	"os"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	bolt "go.etcd.io/bbolt"

	"github.com/kiln-build/kiln/layers"
)

// writeLayerBlob writes dir as a gzip layer into s, through s's member index, and
// records its members, as the engine does for a step.
func writeLayerBlob(t *testing.T, s *Store, dir string) (layers.Blob, []byte) {
	t.Helper()
	ctx := context.Background()
	bw, err := s.NewBlobWriter()
	if err != nil {
		t.Fatal(err)
	}
	defer bw.Abort()
	var copyOf bytes.Buffer
	blob, _, err := layers.WriteUpperDiff(ctx, dir, ioTee{bw, &copyOf}, layers.WriteOptions{Members: s})
	if err != nil {
		t.Fatal(err)
	}
	if err := bw.Commit(blob.Digest, false); err != nil {
		t.Fatal(err)
	}
	if err := s.PutMembers(ctx, blob.Digest, blob.Members); err != nil {
		t.Fatal(err)
	}
	return blob, copyOf.Bytes()
}

type ioTee struct {
	a, b interface{ Write([]byte) (int, error) }
}

func (t ioTee) Write(p []byte) (int, error) {
	if _, err := t.b.Write(p); err != nil {
		return 0, err
	}
	return t.a.Write(p)
}

func makeLayerTree(t *testing.T, dir string) {
	t.Helper()
	rng := rand.New(rand.NewSource(7))
	for i := range 400 {
		data := make([]byte, 2000+rng.Intn(20000))
		rng.Read(data[:len(data)/2])
		if err := os.WriteFile(filepath.Join(dir, "f"+string(rune('a'+i%26))+string(rune('a'+i/26))), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// The store serves a member only while the blob it lies in holds the bytes its
// record names: a second layer of the same tree copies every member, through a new
// Store on the same root too; a damaged or removed blob is a miss, never a wrong
// byte, and the layer is still the same.
func TestMemberIndex(t *testing.T) {
	root, dir := t.TempDir(), t.TempDir()
	makeLayerTree(t, dir)
	s := openStore(t, root)
	b1, bytes1 := writeLayerBlob(t, s, dir)
	if b1.ReusedMembers != 0 || len(b1.Members) < 3 {
		t.Fatalf("first layer: %d members, %d reused", len(b1.Members), b1.ReusedMembers)
	}
	s.Close()

	s = openStore(t, root)
	defer s.Close()
	b2, bytes2 := writeLayerBlob(t, s, dir)
	if b2.ReusedMembers != len(b2.Members) || b2.Digest != b1.Digest || !bytes.Equal(bytes1, bytes2) {
		t.Fatalf("same tree through a reopened store: %d of %d reused, digest %s vs %s", b2.ReusedMembers, len(b2.Members), b2.Digest, b1.Digest)
	}

	// Damage one byte inside the second member of the blob: that member is a miss.
	m := b1.Members[1]
	p := s.BlobPath(b1.Digest)
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{bytes1[m.Offset+m.Size/2] ^ 0xff}, m.Offset+m.Size/2); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, _, ok := s.Member(m.Key, nil); ok {
		t.Fatal("a damaged member was served")
	}
	if _, _, ok := s.Member(b1.Members[0].Key, nil); !ok {
		t.Fatal("an intact member of the damaged blob was not served")
	}

	// With the blob gone, no member of it is served, and a prune drops the records.
	if err := s.RemoveBlob(b1.Digest); err != nil {
		t.Fatal(err)
	}
	for _, m := range b1.Members {
		if _, _, ok := s.Member(m.Key, nil); ok {
			t.Fatalf("member %s of a removed blob served", m.Key)
		}
	}
	if err := s.PutMembers(context.Background(), v1.Hash{Algorithm: "sha256", Hex: b1.Digest.Hex}, b1.Members); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Prune(context.Background(), PruneOptions{}); err != nil {
		t.Fatal(err)
	}
	n := 0
	if err := s.db.view(context.Background(), func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMembers).ForEach(func(k, v []byte) error { n++; return nil })
	}); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("%d member records of removed blobs survive a prune", n)
	}
	b3, bytes3 := writeLayerBlob(t, s, dir)
	if b3.ReusedMembers != 0 || b3.Digest != b1.Digest || !bytes.Equal(bytes3, bytes1) {
		t.Fatalf("after the blob went: %d reused, digest %s vs %s", b3.ReusedMembers, b3.Digest, b1.Digest)
	}
}
