package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"

	"github.com/kiln-build/kiln/internal/testenv"
)

// faultyRegistry serves a registry with the busybox image whose blob GETs misbehave as
// fault says for the first failures requests (forever when failures < 0).
func faultyRegistry(t *testing.T, fault string, failures int64) (host string, blobGets *atomic.Int64) {
	t.Helper()
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	blobGets = &atomic.Int64{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		isBlob := r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/sha256:")
		if !isBlob {
			reg.ServeHTTP(w, r)
			return
		}
		n := blobGets.Add(1)
		if failures >= 0 && n > failures {
			reg.ServeHTTP(w, r)
			return
		}
		if fault == "500" {
			http.Error(w, "boom", http.StatusInternalServerError)
			return
		}
		// The real response's headers and the first half of its body, then the
		// connection goes away (drop) or goes silent (stall).
		rec := httptest.NewRecorder()
		reg.ServeHTTP(rec, r)
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		body := rec.Body.Bytes()
		w.Write(body[:len(body)/2])
		w.(http.Flusher).Flush()
		switch fault {
		case "drop":
			if hj, ok := w.(http.Hijacker); ok {
				if c, _, err := hj.Hijack(); err == nil {
					c.Close()
				}
			}
		case "stall":
			select {
			case <-r.Context().Done():
			case <-time.After(30 * time.Second):
			}
		}
	}))
	t.Cleanup(srv.Close)
	host = testenv.Host(srv)
	testenv.PushImage(t, testenv.BusyboxImage(t), host+"/busybox:latest")
	blobGets.Store(0)
	return host, blobGets
}

// A registry that fails blob downloads a couple of times is retried (bounded) and the
// pull completes; one that keeps failing, drops connections mid-blob or stalls gives a
// clear error in bounded time, and nothing half-downloaded is kept.
func TestPullRegistryFaults(t *testing.T) {
	for _, tc := range []struct {
		name     string
		fault    string
		failures int64
		wantErr  string // "" means the pull must succeed
	}{
		{"transient 500s are retried", "500", 2, ""},
		{"a dropped connection is retried", "drop", 1, ""},
		{"persistent 500s fail", "500", -1, "500"},
		{"persistent drops fail", "drop", -1, "busybox"},
		{"a stalled registry fails", "stall", -1, "stopped sending"},
	} {
		for _, stream := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s, streamed %v", tc.name, stream), func(t *testing.T) {
				t.Parallel()
				host, gets := faultyRegistry(t, tc.fault, tc.failures)
				store := newTestStore(t)
				ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
				defer cancel()
				start := time.Now()
				p, err := Pull(ctx, store, host+"/busybox:latest", PullOptions{StallTimeout: 300 * time.Millisecond, Stream: stream})
				if err == nil && stream {
					// As the solver does: unpack (read) each layer, fetch again the
					// ones whose stream broke, then finish.
					ls, _ := p.Image.Layers()
					for _, l := range ls {
						if readLayer(l) != nil {
							d, _ := l.Digest()
							if err = p.Fetch(ctx, d); err != nil {
								break
							}
						}
					}
					if err == nil {
						err = p.Finish(ctx)
					}
				}
				if d := time.Since(start); d > 30*time.Second {
					t.Errorf("pull took %v: retries are not bounded", d)
				}
				if tc.wantErr == "" {
					if err != nil {
						t.Fatalf("pull after %d failing blob requests: %v", tc.failures, err)
					}
					if _, err := p.Image.Layers(); err != nil {
						t.Fatal(err)
					}
					return
				}
				if err == nil {
					t.Fatalf("pull succeeded against a registry that always %ss", tc.fault)
				}
				if !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("error %q does not mention %q", err, tc.wantErr)
				}
				if tc.fault == "stall" && !errors.Is(err, ErrStalled) && !strings.Contains(err.Error(), ErrStalled.Error()) {
					t.Errorf("stall error does not say so: %v", err)
				}
				if n := gets.Load(); n > 20 {
					t.Errorf("%d blob requests: retries are not bounded", n)
				}
			})
		}
	}
}
