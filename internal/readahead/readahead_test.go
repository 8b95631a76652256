package readahead

import (
	"bytes"
	"errors"
	"io"
	"math/rand"
	"testing"
	"testing/iotest"
	"time"
)

// trickle returns at most a few KiB a read, as a socket does.
type trickle struct {
	r      io.Reader
	closed chan struct{}
}

func (t *trickle) Read(p []byte) (int, error) {
	if len(p) > 3000 {
		p = p[:3000]
	}
	return t.r.Read(p)
}

func (t *trickle) Close() error { close(t.closed); return nil }

func TestReaderGivesTheStreamInOrder(t *testing.T) {
	want := make([]byte, 3<<20+17)
	rand.New(rand.NewSource(1)).Read(want)
	src := &trickle{r: bytes.NewReader(want), closed: make(chan struct{})}
	r := New(src)
	// iotest.TestReader reads with several buffer sizes, and checks EOF is sticky.
	if err := iotest.TestReader(r, want); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-src.closed:
	default:
		t.Fatal("Close did not close the stream")
	}
	if err := r.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestReaderReturnsTheStreamsErrorAfterItsBytes(t *testing.T) {
	boom := errors.New("connection reset")
	data := bytes.Repeat([]byte("x"), 600<<10)
	src := io.NopCloser(io.MultiReader(bytes.NewReader(data), iotest.ErrReader(boom)))
	r := New(src)
	defer r.Close()
	got, err := io.ReadAll(r)
	if !errors.Is(err, boom) {
		t.Fatalf("ReadAll: %v, want %v", err, boom)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("got %d bytes before the error, want %d", len(got), len(data))
	}
	if _, err := r.Read(make([]byte, 1)); !errors.Is(err, boom) {
		t.Fatalf("a read after the error: %v, want it again", err)
	}
}

// blocking never returns from Read until closed, as a stalled connection.
type blocking struct{ closed chan struct{} }

func (b *blocking) Read([]byte) (int, error) { <-b.closed; return 0, io.ErrClosedPipe }
func (b *blocking) Close() error             { close(b.closed); return nil }

func TestCloseEndsAReadAheadThatIsBlocked(t *testing.T) {
	r := New(&blocking{closed: make(chan struct{})})
	done := make(chan error, 1)
	go func() { done <- r.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return while the stream's read was blocked")
	}
}

func TestCloseEndsAReadAheadWithEveryBufferFull(t *testing.T) {
	src := &trickle{r: bytes.NewReader(make([]byte, 8<<20)), closed: make(chan struct{})}
	r := New(src)
	if _, err := r.Read(make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // the goroutine fills its buffers and waits
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
}

// A Read waiting for the stream returns an error when the Reader is closed from
// another goroutine, instead of waiting for ever; so does a Read after Close.
func TestReadBlockedWhenClosedReturns(t *testing.T) {
	r := New(&blocking{closed: make(chan struct{})})
	got := make(chan error, 1)
	go func() {
		_, err := r.Read(make([]byte, 8))
		got <- err
	}()
	time.Sleep(20 * time.Millisecond)
	r.Close()
	select {
	case err := <-got:
		if err == nil {
			t.Fatal("the blocked Read returned no error")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a Read blocked on the stream did not return when the Reader was closed")
	}
	if _, err := r.Read(make([]byte, 8)); err == nil {
		t.Fatal("a Read after Close returned no error")
	}
}
