package image

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"
)

// transientStatuses are the answers a registry gives when a request may succeed if
// sent again: timeouts, rate limits and server errors.
var transientStatuses = []int{http.StatusRequestTimeout, http.StatusTooManyRequests,
	http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable,
	http.StatusGatewayTimeout}

// idempotentRetry sends a GET or HEAD again, with retryBackoff, when its connection
// broke or the registry answered a transient status. go-containerregistry's own
// transport retry shares the operation-level predicate (retryable), which has to
// leave GET statuses alone so that a blob download is not retried at two levels; so
// without this a manifest or config GET answered 500 once failed the pull
// (TestFlakyRegistryPull). Bodies of these requests are empty, so resending is safe.
type idempotentRetry struct {
	base    http.RoundTripper
	backoff func(try int) time.Duration
	tries   int
}

func newIdempotentRetry(base http.RoundTripper) *idempotentRetry {
	b := retryBackoff()
	return &idempotentRetry{base: base, tries: b.Steps, backoff: func(try int) time.Duration {
		d := float64(b.Duration)
		for range try {
			d *= b.Factor
		}
		return time.Duration(d)
	}}
}

// retriedError is a connection failure of an idempotent request after every try:
// retryable refuses it, so the operation above does not multiply the tries.
type retriedError struct {
	tries int
	err   error
}

func (e *retriedError) Error() string { return fmt.Sprintf("%v (after %d tries)", e.err, e.tries) }
func (e *retriedError) Unwrap() error { return e.err }

func (t *idempotentRetry) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodGet && req.Method != http.MethodHead || req.Body != nil && req.Body != http.NoBody {
		return t.base.RoundTrip(req)
	}
	for try := 0; ; try++ {
		resp, err := t.base.RoundTrip(req)
		last := try+1 >= t.tries
		switch {
		case err == nil && !slices.Contains(transientStatuses, resp.StatusCode):
			return resp, nil
		case err == nil && last:
			return resp, nil // the registry's own answer, for the caller to report
		case err != nil && (last || !retryable(err)):
			if last {
				return nil, &retriedError{tries: t.tries, err: err}
			}
			return nil, err
		}
		if resp != nil {
			io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
		}
		timer := time.NewTimer(t.backoff(try))
		select {
		case <-req.Context().Done():
			timer.Stop()
			return nil, req.Context().Err()
		case <-timer.C:
		}
	}
}

// isRetried reports whether err already went through idempotentRetry's tries.
func isRetried(err error) bool {
	var r *retriedError
	return errors.As(err, &r)
}
