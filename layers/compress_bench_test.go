package layers

import (
	"context"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/pgzip"
)

// benchPayload is semi-compressible (like binaries and text in a layer): random
// words from a small vocabulary.
func benchPayload(n int) []byte {
	r := rand.New(rand.NewPCG(1, 2))
	words := []string{"usr", "lib", "x86_64", "libc.so.6", "\x00\x00\x00\x01", "ELF", "GLIBC_2.34", "main", "\xde\xad\xbe\xef"}
	b := make([]byte, 0, n)
	for len(b) < n {
		b = append(b, words[r.IntN(len(words))]...)
		b = append(b, byte(r.IntN(256)))
	}
	return b[:n]
}

// BenchmarkGzip compares the two gzip encoders the layer writer could use: it is
// the evidence for the choice in newBlobWriter. Run it on the target machine:
// pgzip only wins when cores are idle.
func BenchmarkGzip(b *testing.B) {
	data := benchPayload(16 << 20)
	b.Run("pgzip", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			w, _ := pgzip.NewWriterLevel(io.Discard, pgzip.DefaultCompression)
			_ = w.SetConcurrency(1<<20, 2)
			_, _ = w.Write(data)
			_ = w.Close()
		}
	})
	b.Run("klauspost-gzip", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			w, _ := gzip.NewWriterLevel(io.Discard, gzip.DefaultCompression)
			_, _ = w.Write(data)
			_ = w.Close()
		}
	})
}

// BenchmarkWriteSmallLayer is the fixed cost of making a layer: a RUN step that
// writes one small file (W1's twenty steps) pays it once each.
func BenchmarkWriteSmallLayer(b *testing.B) {
	upper := b.TempDir()
	if err := os.WriteFile(filepath.Join(upper, "f1"), []byte("1\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, _, err := WriteUpperDiff(context.Background(), upper, io.Discard, WriteOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWriteBigLayer writes a 48 MiB layer of 384 files through the gzip member
// writer. Its B/op is what the member buffers cost: they cycle through a pool, so a
// layer allocates a few MiB of them however big it is (a pool smaller than the
// buffers in flight dropped one at every burst, and W6's 2 GB layer allocated 2 GB).
func BenchmarkWriteBigLayer(b *testing.B) {
	upper := b.TempDir()
	data := benchPayload(128 << 10)
	for i := range 384 {
		data[0] = byte(i) // no two files alike
		name := filepath.Join(upper, "d"+string(rune('a'+i%8)), "f"+string(rune('a'+i/8%26))+string(rune('a'+i/208)))
		if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(name, data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(384 * 128 << 10)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := WriteUpperDiff(context.Background(), upper, io.Discard, WriteOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}
