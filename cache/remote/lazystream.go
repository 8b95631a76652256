package remote

import (
	"errors"
	"fmt"
	"io"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/cache"
	"github.com/kiln-build/kiln/internal/bgwrite"
)

// A layer of a remote cache that an output reads whole (an image tarball) is
// streamed: its bytes go from the remote to the output as they arrive, and into the
// local store on the way. Downloading it first and then copying it out of the store
// read it twice, one pass after the other: on W2's ephemeral runner, 0.5 s to
// download, hash and store the 161 MB layer, then 0.2 s to copy it into the tarball.
//
// Nothing unverified is kept: the store's blob is committed only when the stream
// has reached its end with the record's size and digest. A stream whose bytes are
// wrong fails the read that reaches the end with *image.CorruptBlobError, so the
// output is not completed and kiln build builds again without the blob, as after a
// failed download. A stream closed before its end keeps nothing, and the next
// reader downloads the blob again.

// errStreamClosed ends the fetch of a stream whose reader closed it before the end:
// ensure then downloads the blob itself.
var errStreamClosed = errors.New("stream closed before its end")

// stream opens blob d of src for a reader that reads it whole, storing it as it is
// read. ok is false when the local store has the blob or a download of it is
// running already: then the caller waits for that (ensure) and reads the local blob.
func (s *Store) stream(src *source, d v1.Hash, size int64) (rc io.ReadCloser, ok bool, err error) {
	s.mu.Lock()
	if _, running := s.fetches[d]; running || s.Store.HasBlob(d) {
		s.mu.Unlock()
		return nil, false, nil
	}
	f := &fetch{done: make(chan struct{})}
	s.fetches[d] = f
	s.mu.Unlock()

	sr := &storingReader{s: s, src: src, d: d, size: size, f: f, start: time.Now()}
	body, err := src.be.blob(s.ctx, d)
	if err != nil {
		return nil, true, sr.end(err)
	}
	if sr.bw, err = s.newBlobWriter(src); err != nil {
		body.Close()
		return nil, true, sr.end(err)
	}
	sr.body, sr.r, sr.bg = body, limitBlob(body, size), bgwrite.New(sr.bw)
	return sr, true, nil
}

// storingReader is a stream of a remote cache's blob that writes what it reads into
// a new local blob, committed at the end if verified.
type storingReader struct {
	s     *Store
	src   *source
	d     v1.Hash
	size  int64
	f     *fetch // this download, for ensure's waiters
	start time.Time

	body io.ReadCloser
	r    io.Reader // body, limited to one byte more than the record's size
	bw   cache.BlobWriter
	bg   *bgwrite.Writer // writes to bw off the reader's path
	n    int64
	done bool
	err  error // what the end returned, for reads after it
}

func (sr *storingReader) Read(p []byte) (int, error) {
	if sr.done {
		if sr.err != nil {
			return 0, sr.err
		}
		return 0, io.EOF
	}
	n, err := sr.r.Read(p)
	if n > 0 {
		sr.bg.Write(p[:n])
		sr.n += int64(n)
	}
	switch {
	case errors.Is(err, io.EOF):
		err := sr.stopWriting()
		if err == nil {
			err = commitBlob(sr.bw, sr.d, sr.size, sr.n, sr.src.be.verifiesBlobs())
		}
		if err := sr.end(err); err != nil {
			return n, err
		}
		return n, io.EOF
	case err != nil:
		sr.stopWriting()
		return n, sr.end(fmt.Errorf("download: %w", err))
	}
	return n, nil
}

// stopWriting waits for the store's writer to have every byte read.
func (sr *storingReader) stopWriting() error {
	bg := sr.bg
	sr.bg = nil
	if bg == nil {
		return nil
	}
	if err := bg.Close(); err != nil {
		return fmt.Errorf("store it: %w", err)
	}
	return nil
}

// end finishes the download with err (nil: the blob is committed): its bookkeeping,
// then the waiters of ensure.
func (sr *storingReader) end(err error) error {
	sr.done = true
	got := v1.Hash{}
	if sr.bw != nil {
		got = sr.bw.Digest()
		sr.bw.Abort() // no-op after a commit
	}
	sr.err = sr.s.downloaded(sr.src, sr.d, sr.start, got, sr.n, err, true)
	sr.f.err = sr.err
	close(sr.f.done)
	return sr.err
}

// Close ends the stream; before its end, nothing is kept and the next reader
// downloads the blob again.
func (sr *storingReader) Close() error {
	if !sr.done {
		sr.done = true
		sr.err = errStreamClosed
		sr.stopWriting()
		sr.bw.Abort()
		sr.s.mu.Lock()
		delete(sr.s.fetches, sr.d)
		sr.s.mu.Unlock()
		sr.f.err = errStreamClosed
		close(sr.f.done)
	}
	return sr.body.Close()
}
