// Package readahead reads a stream ahead of its consumer on a goroutine of its own,
// so that whoever reads it (a download hashed as it is read) does not wait for the
// stream's own reads (a socket's syscalls) on its path: the two run on two cores.
// It is bgwrite's mirror image.
package readahead

import (
	"errors"
	"io"
	"sync"
)

// errClosed is what Read returns once the Reader is closed.
var errClosed = errors.New("read of a closed read-ahead stream")

// Reader is an io.ReadCloser that returns what its goroutine has read from rc, in
// order, and rc's error (io.EOF included) after the last byte. At most buffers of
// bufferSize bytes are read ahead. Reader is for one goroutine; Close may be called
// from any.
type Reader struct {
	rc   io.ReadCloser
	full chan chunk  // what the goroutine read, in order
	free chan []byte // buffers the consumer is done with
	stop chan struct{}
	done chan struct{}
	once sync.Once

	cur []byte // the part of the current chunk not read yet
	buf []byte // the current chunk's buffer, to hand back
	err error  // the error after cur, once the goroutine has ended
}

type chunk struct {
	b   []byte
	err error
}

const (
	buffers    = 4
	bufferSize = 256 << 10
)

// New starts reading rc ahead. Close must be called, to end the goroutine; it
// closes rc.
func New(rc io.ReadCloser) *Reader {
	r := &Reader{
		rc:   rc,
		full: make(chan chunk, buffers),
		free: make(chan []byte, buffers),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	for range buffers {
		r.free <- make([]byte, bufferSize)
	}
	go r.run()
	return r
}

func (r *Reader) run() {
	defer close(r.done)
	for {
		var b []byte
		select {
		case b = <-r.free:
		case <-r.stop:
			return
		}
		// A buffer is filled as far as the stream gives without waiting for more
		// than one read, so the consumer sees bytes as soon as they arrive.
		n, err := r.rc.Read(b)
		for err == nil && n < len(b)/2 {
			var m int
			m, err = r.rc.Read(b[n:])
			n += m
		}
		select {
		case r.full <- chunk{b: b[:n], err: err}:
		case <-r.stop:
			return
		}
		if err != nil {
			return
		}
	}
}

// Read copies what was read ahead into p; it blocks only while nothing is.
func (r *Reader) Read(p []byte) (int, error) {
	for len(r.cur) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		if r.buf != nil {
			r.free <- r.buf
			r.buf = nil
		}
		var c chunk
		select {
		case c = <-r.full:
		case <-r.done:
			// Closed, or ended: what it read last is still there to take.
			select {
			case c = <-r.full:
			default:
				return 0, errClosed
			}
		}
		r.cur, r.buf, r.err = c.b, c.b[:cap(c.b)], c.err
		if len(p) == 0 {
			return 0, nil
		}
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	return n, nil
}

// Close stops the goroutine, closes rc and waits for the goroutine to end.
func (r *Reader) Close() error {
	var err error
	r.once.Do(func() {
		close(r.stop)
		err = r.rc.Close() // ends a read the goroutine is blocked in
		<-r.done
	})
	return err
}
