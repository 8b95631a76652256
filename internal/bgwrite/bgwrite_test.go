package bgwrite

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

// TestWriter: every byte reaches w in order, across buffer boundaries and
// writes of any size, and w's first error is Close's.
func TestWriter(t *testing.T) {
	data := make([]byte, 3*buffers*bufferSize+12345)
	for i := range data {
		data[i] = byte(i * 7)
	}
	var got bytes.Buffer
	bg := New(&got)
	for p, step := data, 1; len(p) > 0; step = step*3 + 1 {
		n := min(len(p), step%(bufferSize*2))
		bg.Write(p[:n])
		p = p[n:]
	}
	if err := bg.Close(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), data) {
		t.Fatalf("w got %d bytes, not the %d written in order", got.Len(), len(data))
	}

	fw := &failAfter{n: bufferSize}
	bg = New(fw)
	bg.Write(data)
	if err := bg.Close(); err == nil || err.Error() != "disk full" {
		t.Fatalf("Close after w failed: %v, want its error", err)
	}

	// Once w has failed, Write says so: a caller stops copying instead of reading
	// the rest of its stream for nothing.
	fw = &failAfter{n: bufferSize}
	bg = New(fw)
	var werr error
	for range 100 * buffers {
		if _, werr = bg.Write(data[:bufferSize]); werr != nil {
			break
		}
	}
	if werr == nil || werr.Error() != "disk full" {
		t.Errorf("Write after w failed: %v, want its error", werr)
	}
	if err := bg.Close(); err == nil || err.Error() != "disk full" {
		t.Errorf("Close after w failed: %v, want its error", err)
	}
}
