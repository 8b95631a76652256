package remote

import "io"

// backgroundWriter hands what is written to it to w on a goroutine of its own, a
// buffer at a time, so a stream's reader does not wait for w (a store blob's
// hashing and file writes) on its path. Writes never fail; w's first error is
// Close's, and after it the rest is dropped.
type backgroundWriter struct {
	w    io.Writer
	full chan []byte // buffers for w, in order
	free chan []byte // buffers w is done with
	cur  []byte      // the buffer being filled
	done chan struct{}
	err  error // w's first error, read after done
}

const (
	bgBuffers    = 8
	bgBufferSize = 256 << 10
)

func newBackgroundWriter(w io.Writer) *backgroundWriter {
	b := &backgroundWriter{
		w:    w,
		full: make(chan []byte, bgBuffers),
		free: make(chan []byte, bgBuffers),
		done: make(chan struct{}),
	}
	for range bgBuffers {
		b.free <- make([]byte, 0, bgBufferSize)
	}
	go b.run()
	return b
}

func (b *backgroundWriter) run() {
	defer close(b.done)
	for buf := range b.full {
		if b.err == nil {
			_, b.err = b.w.Write(buf)
		}
		b.free <- buf[:0]
	}
}

func (b *backgroundWriter) Write(p []byte) (int, error) {
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

// Close writes what is buffered, waits for w to have it all and returns w's first
// error. Call it once.
func (b *backgroundWriter) Close() error {
	if len(b.cur) > 0 {
		b.full <- b.cur
	}
	b.cur = nil
	close(b.full)
	<-b.done
	return b.err
}
