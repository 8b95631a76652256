package remote

import (
	"bytes"
	"errors"
	"testing"
)

// failAfter writes n bytes, then fails.
type failAfter struct {
	n   int
	buf bytes.Buffer
}

func (f *failAfter) Write(p []byte) (int, error) {
	if f.buf.Len()+len(p) > f.n {
		return 0, errors.New("disk full")
	}
	return f.buf.Write(p)
}

// TestBackgroundWriter: every byte reaches w in order, across buffer boundaries and
// writes of any size, and w's first error is Close's.
func TestBackgroundWriter(t *testing.T) {
	data := make([]byte, 3*bgBuffers*bgBufferSize+12345)
	for i := range data {
		data[i] = byte(i * 7)
	}
	var got bytes.Buffer
	bg := newBackgroundWriter(&got)
	for p, step := data, 1; len(p) > 0; step = step*3 + 1 {
		n := min(len(p), step%(bgBufferSize*2))
		bg.Write(p[:n])
		p = p[n:]
	}
	if err := bg.Close(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), data) {
		t.Fatalf("w got %d bytes, not the %d written in order", got.Len(), len(data))
	}

	fw := &failAfter{n: bgBufferSize}
	bg = newBackgroundWriter(fw)
	bg.Write(data)
	if err := bg.Close(); err == nil || err.Error() != "disk full" {
		t.Fatalf("Close after w failed: %v, want its error", err)
	}
}
