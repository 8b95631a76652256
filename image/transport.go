package image

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/kiln-build/kiln/internal/readahead"
)

// DefaultStallTimeout is how long a registry may send nothing before kiln gives up on
// the request: a registry that accepts a connection and then stalls would otherwise
// hang a build forever (go-containerregistry sets no timeouts of its own).
const DefaultStallTimeout = 60 * time.Second

// ErrStalled is wrapped by the errors of requests a registry left silent too long.
var ErrStalled = errors.New("the registry stopped sending")

// registryTransport is the HTTP transport of every registry call: bounded connect, TLS
// and response-header times, and a body that fails when no byte arrives for stall.
// go-containerregistry's retries then treat the failure like any transient one. It
// returns the connection pool too, whose idle connections its owner closes.
func registryTransport(stall time.Duration) (*http.Transport, http.RoundTripper) {
	if stall <= 0 {
		stall = DefaultStallTimeout
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	t.TLSHandshakeTimeout = 30 * time.Second
	t.ResponseHeaderTimeout = stall
	// Layers are fetched several at a time (a pull's four jobs, a remote cache's
	// prefetches); net/http keeps two idle connections per host by default, so
	// the others were closed after each blob and opened again for the next.
	t.MaxIdleConnsPerHost = 16
	return t, newIdempotentRetry(&stallTransport{base: t, stall: stall})
}

type stallTransport struct {
	base  http.RoundTripper
	stall time.Duration
}

func (s *stallTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := s.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	resp.Body = newStallReader(resp.Body, s.stall)
	if req.Method == http.MethodGet && resp.StatusCode == http.StatusOK && resp.ContentLength >= readAheadFrom {
		// A blob: its reader (ggcr's, hashing it) no longer waits for the socket's reads.
		resp.Body = readahead.New(resp.Body)
	}
	return limitManifest(req, resp)
}

// readAheadFrom is the size of a response body from which it is read ahead: layers,
// not manifests, configs or the small blobs of a remote cache.
const readAheadFrom = 1 << 20

// stallReader closes its body when no Read has returned data for stall, so a Read
// blocked on a silent connection returns an error instead of waiting forever.
type stallReader struct {
	rc    io.ReadCloser
	stall time.Duration

	mu      sync.Mutex
	timer   *time.Timer
	stalled bool
}

func newStallReader(rc io.ReadCloser, stall time.Duration) *stallReader {
	r := &stallReader{rc: rc, stall: stall}
	r.timer = time.AfterFunc(stall, func() {
		r.mu.Lock()
		r.stalled = true
		r.mu.Unlock()
		rc.Close()
	})
	return r
}

func (r *stallReader) Read(p []byte) (int, error) {
	n, err := r.rc.Read(p)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stalled {
		return n, fmt.Errorf("%w for %s", ErrStalled, r.stall)
	}
	if n > 0 {
		r.timer.Reset(r.stall)
	}
	return n, err
}

func (r *stallReader) Close() error {
	r.timer.Stop()
	return r.rc.Close()
}
