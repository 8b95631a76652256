package layers

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	kgzip "github.com/klauspost/compress/gzip"
	"github.com/klauspost/pgzip"
)

// memSource is a MemberSource over blobs kept in memory, as the store keeps them on
// disk: it verifies what it returns against the recorded sum.
type memSource struct {
	recs  map[string]Member
	blobs map[string][]byte // by the member's key: the blob it lies in
	asked atomic.Int64      // Member is called from every worker at once
}

func newMemSource() *memSource {
	return &memSource{recs: map[string]Member{}, blobs: map[string][]byte{}}
}

func (s *memSource) add(blob []byte, ms []Member) {
	for _, m := range ms {
		s.recs[m.Key], s.blobs[m.Key] = m, blob
	}
}

func (s *memSource) Member(key string, buf []byte) ([]byte, PartSum, bool) {
	s.asked.Add(1)
	m, ok := s.recs[key]
	if !ok {
		return nil, PartSum{}, false
	}
	c := append(buf[:0], s.blobs[key][m.Offset:m.Offset+m.Size]...)
	if SumPart(c) != m.Sum {
		return nil, PartSum{}, false
	}
	return c, m.Sum, true
}

// makeManyFiles writes n files of mixed text and random content (a W2 in small).
func makeManyFiles(t *testing.T, dir string, n int, seed int64) {
	t.Helper()
	rng := rand.New(rand.NewSource(seed))
	for i := range n {
		sub := filepath.Join(dir, fmt.Sprintf("d%02d", i%23))
		must(t, os.MkdirAll(sub, 0o755))
		size := 64 + rng.Intn(16<<10)
		if i%97 == 0 {
			size = 3*memberPiece + rng.Intn(memberPiece) // a few files over memberPiece
		}
		data := make([]byte, size)
		if i%2 == 0 {
			rng.Read(data)
		} else {
			for j := range data {
				data[j] = "abcdefgh \n"[rng.Intn(10)]
			}
		}
		must(t, os.WriteFile(filepath.Join(sub, fmt.Sprintf("f%05d", i)), data, 0o644))
	}
}

func gunzipAll(t *testing.T, blob []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(blob))
	must(t, err)
	out, err := io.ReadAll(zr)
	must(t, err)
	return out
}

// A gzip layer is several members that every reader takes as one stream: the
// standard library, kiln's own decompressor, and the diffID of what they give.
func TestGzipMembersAreOneStream(t *testing.T) {
	dir := t.TempDir()
	makeManyFiles(t, dir, 600, 1)
	b, _, blob := writeUpper(t, dir, WriteOptions{})
	_, _, plain := writeUpper(t, dir, WriteOptions{Compression: Uncompressed})
	if len(b.Members) < 5 {
		t.Fatalf("%d members for %d bytes of tar: the layer is not cut", len(b.Members), len(plain))
	}
	if got := gunzipAll(t, blob); !bytes.Equal(got, plain) {
		t.Fatalf("compress/gzip reads %d bytes, want the %d of the tar", len(got), len(plain))
	}
	rc, err := Decompress(bytes.NewReader(blob))
	must(t, err)
	got, err := io.ReadAll(rc)
	must(t, err)
	rc.Close()
	if !bytes.Equal(got, plain) {
		t.Fatalf("Decompress reads %d bytes, want %d", len(got), len(plain))
	}
	if want := fmt.Sprintf("%x", sha256.Sum256(plain)); b.DiffID.Hex != want {
		t.Fatalf("diffID %s, want %s", b.DiffID.Hex, want)
	}
	// The members tile the blob, and each one alone is a gzip member.
	var off int64
	for i, m := range b.Members {
		if m.Offset != off {
			t.Fatalf("member %d at %d, want %d", i, m.Offset, off)
		}
		off += m.Size
		gunzipAll(t, blob[m.Offset:m.Offset+m.Size])
		if m.Size > memberMax {
			t.Errorf("member %d: %d compressed bytes", i, m.Size)
		}
	}
	if off != int64(len(blob)) || b.Size != off {
		t.Fatalf("members cover %d bytes of a %d-byte blob (Size %d)", off, len(blob), b.Size)
	}
	// The ratio is no worse than that of the parallel gzip kiln wrote before (pgzip,
	// 1 MiB blocks each primed with the last one's window), within 0.5%.
	var pg bytes.Buffer
	zw, err := pgzip.NewWriterLevel(&pg, gzip.DefaultCompression)
	must(t, err)
	must(t, zw.SetConcurrency(1<<20, 2))
	_, _ = zw.Write(plain)
	must(t, zw.Close())
	if float64(len(blob)) > 1.005*float64(pg.Len()) {
		t.Errorf("members take %d bytes, pgzip %d", len(blob), pg.Len())
	}
}

// The reuse that makes a one-file change cheap gives exactly the blob a fresh write
// gives, and copies every member the change did not touch.
func TestGzipMembersReusedAfterChange(t *testing.T) {
	dir := t.TempDir()
	makeManyFiles(t, dir, 800, 2)
	src := newMemSource()
	b1, _, blob1 := writeUpper(t, dir, WriteOptions{Members: src})
	if b1.ReusedMembers != 0 || src.asked.Load() == 0 {
		t.Fatalf("first write reused %d members, asked %d times", b1.ReusedMembers, src.asked.Load())
	}
	src.add(blob1, b1.Members)

	// Unchanged tree: every member is reused, the blob is the same.
	b, _, blob := writeUpper(t, dir, WriteOptions{Members: src})
	if b.ReusedMembers != len(b.Members) || !bytes.Equal(blob, blob1) {
		t.Fatalf("same tree: reused %d of %d members, same blob %v", b.ReusedMembers, len(b.Members), bytes.Equal(blob, blob1))
	}

	cases := []struct {
		name   string
		change func()
	}{
		{"one small file grows", func() {
			f, err := os.OpenFile(filepath.Join(dir, "d01", "f00001"), os.O_APPEND|os.O_WRONLY, 0)
			must(t, err)
			_, _ = f.WriteString("changed\n")
			must(t, f.Close())
		}},
		{"a file added at the front", func() {
			must(t, os.WriteFile(filepath.Join(dir, "a-first"), bytes.Repeat([]byte("x"), 5000), 0o644))
		}},
		{"the end of a big file", func() {
			f, err := os.OpenFile(filepath.Join(dir, "d00", "f00000"), os.O_APPEND|os.O_WRONLY, 0)
			must(t, err)
			_, _ = f.WriteString("tail")
			must(t, f.Close())
		}},
		{"a file removed", func() { must(t, os.Remove(filepath.Join(dir, "d05", "f00005"))) }},
	}
	for _, c := range cases {
		c.change()
		fresh, _, freshBlob := writeUpper(t, dir, WriteOptions{})
		got, _, gotBlob := writeUpper(t, dir, WriteOptions{Members: src})
		if got.Digest != fresh.Digest || !bytes.Equal(gotBlob, freshBlob) || got.DiffID != fresh.DiffID {
			t.Fatalf("%s: reusing members gives %s, a fresh write %s", c.name, got.Digest, fresh.Digest)
		}
		if fresh.ReusedMembers != 0 {
			t.Fatalf("%s: a write without a source reused %d members", c.name, fresh.ReusedMembers)
		}
		if miss := len(got.Members) - got.ReusedMembers; miss > 3 || got.ReusedMembers == 0 {
			t.Errorf("%s: %d of %d members compressed again, want at most 3", c.name, miss, len(got.Members))
		}
		src.add(gotBlob, got.Members)
	}
}

// A source that hands back the wrong member's bytes (a record mixed up, a blob
// replaced) is caught by the trailer check: the member is compressed afresh.
func TestGzipMembersWrongBytesNotUsed(t *testing.T) {
	dir := t.TempDir()
	makeManyFiles(t, dir, 300, 3)
	b1, _, blob1 := writeUpper(t, dir, WriteOptions{})
	if len(b1.Members) < 2 {
		t.Fatalf("%d members", len(b1.Members))
	}
	// Every key answers with the first member's bytes and its true sum.
	first := b1.Members[0]
	liar := newMemSource()
	for _, m := range b1.Members {
		liar.recs[m.Key] = first
		liar.blobs[m.Key] = blob1
	}
	b, _, blob := writeUpper(t, dir, WriteOptions{Members: liar})
	if !bytes.Equal(blob, blob1) {
		t.Fatal("a lying source changed the blob")
	}
	if b.ReusedMembers != 1 {
		t.Fatalf("reused %d members, want only the first (whose bytes are right)", b.ReusedMembers)
	}
}

// A member's key changes with the level: bytes compressed at another level are
// never reused.
func TestGzipMemberKeyNamesLevel(t *testing.T) {
	raw := []byte("some tar bytes")
	if memberKey(1, raw) == memberKey(9, raw) || memberKey(1, raw) != memberKey(1, raw) {
		t.Fatal("member key does not follow the level")
	}
	if memberKey(1, raw) == memberKey(1, append(raw, 0)) {
		t.Fatal("member key does not follow the bytes")
	}
}

// A member's compressed buffer is sized by compressBound before compression, so
// the bound must hold for the worst input, bytes that do not compress, at every
// level: else the buffer doubles past it as it grows.
func TestCompressBound(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	for _, n := range []int{0, 1, 100, 64 << 10, memberTarget, memberMax} {
		raw := make([]byte, n)
		r.Read(raw)
		for _, level := range []int{1, 6, 9} {
			buf := bytes.NewBuffer(make([]byte, 0, compressBound(n)))
			zw, err := kgzip.NewWriterLevel(buf, level)
			if err != nil {
				t.Fatal(err)
			}
			zw.Write(raw)
			zw.Close()
			if buf.Len() > compressBound(n) {
				t.Errorf("%d random bytes at level %d: %d compressed, bound %d", n, level, buf.Len(), compressBound(n))
			}
		}
	}
}

// A tree with nothing in it is BuildKit's empty layer byte for byte, recorded as no
// member; every member of other layers has gzip's mtime field 0, as Go's compress/gzip
// and BuildKit write it.
func TestEmptyLayerAndMemberHeaders(t *testing.T) {
	b, empty, blob := writeUpper(t, t.TempDir(), WriteOptions{})
	if !empty {
		t.Fatal("an empty dir is not reported empty")
	}
	if b.Digest.String() != "sha256:4f4fb700ef54461cfa02571ae0db9a0dc1e0cdb5577484a6d75e68dc38e8acc1" ||
		b.DiffID.String() != "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef" || b.Size != 32 {
		t.Errorf("empty layer %s (diff_id %s, %d bytes), want BuildKit's", b.Digest, b.DiffID, b.Size)
	}
	if len(b.Members) != 0 {
		t.Errorf("empty layer recorded %d members", len(b.Members))
	}
	if got := gunzipAll(t, blob); !bytes.Equal(got, make([]byte, 1024)) {
		t.Errorf("empty layer holds %d bytes, want the 1024 of an empty tar", len(got))
	}

	dir := t.TempDir()
	makeManyFiles(t, dir, 300, 1)
	b, _, blob = writeUpper(t, dir, WriteOptions{})
	if len(b.Members) < 2 {
		t.Fatalf("%d members", len(b.Members))
	}
	for i, m := range b.Members {
		if h := blob[m.Offset : m.Offset+10]; !bytes.Equal(h[4:8], []byte{0, 0, 0, 0}) {
			t.Errorf("member %d header % x: mtime is not 0", i, h)
		}
	}
}
