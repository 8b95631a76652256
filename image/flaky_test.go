package image

import (
	"context"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/kiln-build/kiln/internal/testenv"
)

// flakyRegistry fails one request in five at random (seeded), whatever it is (a
// HEAD, a blob GET, an upload's POST, PATCH or PUT, a manifest PUT), with a 500 or a
// dropped connection, and fails at most maxFlakyFailures requests in all.
//
// The cap keeps the test about retrying, not about luck: a blob's upload is POST,
// PATCH and PUT, so at one failure in five a try succeeds about half the time, and
// 8 tries of one blob all failed in about one push in 300. Which requests fail
// depends on the order the two upload jobs reach the registry, so that tail showed
// as a rare CI failure (Post …/blobs/uploads/: EOF). With fewer failures in all than
// any one operation's tries (retryBackoff's Steps), a push or pull that retries as
// it should always completes, and one that does not retry still fails.
const maxFlakyFailures = 7

func flakyRegistry(t *testing.T, seed uint64) (host string, failed *atomic.Int64, healthy *atomic.Bool) {
	t.Helper()
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(seed, 5))
	failed, healthy = &atomic.Int64{}, &atomic.Bool{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		k := rng.IntN(10)
		fail := k < 2 && r.URL.Path != "/v2/" && !healthy.Load() && failed.Load() < maxFlakyFailures
		if fail {
			failed.Add(1)
		}
		mu.Unlock()
		if fail {
			if k == 0 {
				if hj, ok := w.(http.Hijacker); ok {
					if c, _, err := hj.Hijack(); err == nil {
						c.Close()
						return
					}
				}
			}
			http.Error(w, "flaky", http.StatusInternalServerError)
			return
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return testenv.Host(srv), failed, healthy
}

// A registry that fails one request in five still gives a complete push in one run:
// each blob's upload is retried as a whole, as BuildKit retries each blob. The image
// is then pulled back from the registry, no longer failing, and compared.
func TestFlakyRegistryPush(t *testing.T) {
	ctx := context.Background()
	store, _, img := assembleOnBusyboxAt(t, testenv.Registry(t))
	for i := range 8 {
		l := newStoreLayer(t, store, fmt.Sprintf("f%d.txt", i), fmt.Sprintf("file %d\n", i), types.OCILayer)
		var err error
		if img, err = mutate.AppendLayers(img, l); err != nil {
			t.Fatal(err)
		}
	}
	want, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	for round := range 5 {
		host, failed, healthy := flakyRegistry(t, uint64(round))
		ref := host + "/app:v1"
		if err := Push(ctx, img, []string{ref}, PushOptions{Jobs: 2}); err != nil {
			t.Fatalf("round %d: push through a flaky registry (%d requests failed): %v", round, failed.Load(), err)
		}
		if failed.Load() == 0 {
			t.Fatal("the registry failed no request: the test proves nothing")
		}
		healthy.Store(true)
		p, err := Pull(ctx, newTestStore(t), ref, PullOptions{})
		if err != nil {
			t.Fatalf("round %d: pull of what was pushed: %v", round, err)
		}
		if p.ManifestDigest != want {
			t.Fatalf("round %d: pulled %s, pushed %s", round, p.ManifestDigest, want)
		}
	}
}

// A pull through a registry that fails one request in five (its tag HEAD, manifest
// and config GETs, blob GETs) completes in one run with the pushed image.
func TestFlakyRegistryPull(t *testing.T) {
	ctx := context.Background()
	store, _, img := assembleOnBusyboxAt(t, testenv.Registry(t))
	for i := range 4 {
		l := newStoreLayer(t, store, fmt.Sprintf("f%d.txt", i), fmt.Sprintf("file %d\n", i), types.OCILayer)
		var err error
		if img, err = mutate.AppendLayers(img, l); err != nil {
			t.Fatal(err)
		}
	}
	want, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	totalFailed := int64(0)
	for round := range 12 {
		host, failed, healthy := flakyRegistry(t, uint64(100+round))
		healthy.Store(true)
		ref := host + "/app:v1"
		if err := Push(ctx, img, []string{ref}, PushOptions{Jobs: 2}); err != nil {
			t.Fatalf("round %d: push: %v", round, err)
		}
		healthy.Store(false)
		p, err := Pull(ctx, newTestStore(t), ref, PullOptions{})
		if err != nil {
			t.Fatalf("round %d: pull through a flaky registry (%d requests failed): %v", round, failed.Load(), err)
		}
		if p.ManifestDigest != want {
			t.Fatalf("round %d: pulled %s, pushed %s", round, p.ManifestDigest, want)
		}
		totalFailed += failed.Load()
	}
	if totalFailed == 0 {
		t.Fatal("the registry failed no request: the test proves nothing")
	}
}
