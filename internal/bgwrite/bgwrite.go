// Package bgwrite hands a stream's bytes to a writer on a goroutine of its own, so
// that whoever reads the stream (a download, hashed as it is read) does not wait for
// the writer's file writes on its path: the two run on two cores.
package bgwrite

import (
	"io"
	"sync/atomic"
)

// Writer passes what is written to it to w, a buffer at a time, in order, on its
// own goroutine. w's first error is Close's; Write returns it too once w has
// failed, so a caller stops early, and whatever is written after it is dropped.
// Writer is for one goroutine; w is called from another.
type Writer struct {
	w      io.Writer
	full   chan []byte // buffers for w, in order
	free   chan []byte // buffers w is done with
	cur    []byte      // the buffer being filled
	done   chan struct{}
	failed atomic.Pointer[error] // w's first error
}

const (
	buffers    = 8
	bufferSize = 256 << 10
)

// New starts a Writer for w. Close must be called, to end its goroutine.
func New(w io.Writer) *Writer {
	b := &Writer{
		w:    w,
		full: make(chan []byte, buffers),
		free: make(chan []byte, buffers),
		done: make(chan struct{}),
	}
	for range buffers {
		b.free <- make([]byte, 0, bufferSize)
	}
	go b.run()
	return b
}

func (b *Writer) run() {
	defer close(b.done)
	for buf := range b.full {
		if b.failed.Load() == nil {
			if _, err := b.w.Write(buf); err != nil {
				b.failed.Store(&err)
			}
		}
		b.free <- buf[:0]
	}
}

// Write copies p into the buffers; it blocks only while all of them wait for w.
func (b *Writer) Write(p []byte) (int, error) {
	if err := b.failed.Load(); err != nil {
		return 0, *err
	}
	n := len(p)
	for len(p) > 0 {
		if b.cur == nil {
			b.cur = <-b.free
		}
		c := copy(b.cur[len(b.cur):cap(b.cur)], p)
		b.cur = b.cur[:len(b.cur)+c]
		p = p[c:]
		if len(b.cur) == cap(b.cur) {
			b.full <- b.cur
			b.cur = nil
		}
	}
	return n, nil
}

// ReadFrom reads r to its end straight into the buffers, as large reads as they
// have room for (io.Copy's own would be 32 KiB, copied once more).
func (b *Writer) ReadFrom(r io.Reader) (int64, error) {
	var total int64
	for {
		if err := b.failed.Load(); err != nil {
			return total, *err
		}
		if b.cur == nil {
			b.cur = <-b.free
		}
		n, err := r.Read(b.cur[len(b.cur):cap(b.cur)])
		b.cur = b.cur[:len(b.cur)+n]
		total += int64(n)
		if len(b.cur) == cap(b.cur) {
			b.full <- b.cur
			b.cur = nil
		}
		switch {
		case err == io.EOF:
			return total, nil
		case err != nil:
			return total, err
		}
	}
}

// Close writes what is buffered, waits for w to have it all and returns w's first
// error. Call it once.
func (b *Writer) Close() error {
	if len(b.cur) > 0 {
		b.full <- b.cur
	}
	b.cur = nil
	close(b.full)
	<-b.done
	if err := b.failed.Load(); err != nil {
		return *err
	}
	return nil
}
