package source

import (
	"bytes"
	"crypto/sha256"
	"os"
	"path/filepath"
	"testing"
)

// TestHashFileReadsWholeContent: hashFile stops early only at a short read that ends
// at the size the lstat saw; a file whose size moved since, or that fills the buffer
// exactly, is still read to its end.
func TestHashFileReadsWholeContent(t *testing.T) {
	const bufSize = 64
	cases := []struct {
		name    string
		content int   // bytes in the file
		size    int64 // what the walk's lstat said
	}{
		{"empty", 0, 0},
		{"one short read", 10, 10},
		{"exactly one buffer", bufSize, bufSize},
		{"buffers and a tail", 3*bufSize + 7, 3*bufSize + 7},
		{"grew since the lstat", 3*bufSize + 7, 10},
		{"grew to past a buffer", 3*bufSize + 7, bufSize},
		{"shrank since the lstat", 10, 3*bufSize + 7},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			content := bytes.Repeat([]byte("abcdefghij"), c.content/10+1)[:c.content]
			p := filepath.Join(t.TempDir(), "f")
			if err := os.WriteFile(p, content, 0o644); err != nil {
				t.Fatal(err)
			}
			h := sha256.New()
			if err := hashFile(p, h, make([]byte, bufSize), c.size); err != nil {
				t.Fatal(err)
			}
			if got, want := h.Sum(nil), sha256.Sum256(content); !bytes.Equal(got, want[:]) {
				t.Fatalf("hash of %d bytes (lstat size %d) is not the hash of the whole file", c.content, c.size)
			}
		})
	}
}
