package image

import (
	"context"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"

	"github.com/kiln-build/kiln/internal/testenv"
)

// countingRegistry serves go-containerregistry's registry and counts the bytes of
// manifest and blob responses written to the client; with chunked, manifests are sent
// without a Content-Length.
func countingRegistry(t *testing.T, chunked bool) (host string, served *atomic.Int64) {
	t.Helper()
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	served = &atomic.Int64{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || !(strings.Contains(r.URL.Path, "/manifests/") || strings.Contains(r.URL.Path, "/blobs/")) {
			reg.ServeHTTP(w, r)
			return
		}
		reg.ServeHTTP(&countingWriter{ResponseWriter: w, n: served, chunked: chunked && strings.Contains(r.URL.Path, "/manifests/")}, r)
	}))
	t.Cleanup(srv.Close)
	return testenv.Host(srv), served
}

type countingWriter struct {
	http.ResponseWriter
	n       *atomic.Int64
	chunked bool
}

func (c *countingWriter) WriteHeader(code int) {
	if c.chunked {
		c.Header().Del("Content-Length")
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n.Add(int64(n))
	return n, err
}

// bigImage is a small random image whose config or manifest is padded to size bytes
// with a label or an annotation.
func bigImage(t *testing.T, part string, size int) v1.Image {
	t.Helper()
	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	pad := strings.Repeat("x", size)
	switch part {
	case "config":
		cf, _ := img.ConfigFile()
		cf = cf.DeepCopy()
		cf.Config.Labels = map[string]string{"pad": pad}
		img, err = mutate.ConfigFile(img, cf)
	case "manifest":
		img = mutate.Annotations(img, map[string]string{"pad": pad}).(v1.Image)
	}
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// A registry serving a manifest, index or config of 50 MB is refused with an error
// that names the reference and what was too large, before the body is downloaded
// (go-containerregistry alone reads manifests of up to 100 MiB and configs of any
// declared size); nothing of the image is kept. One just under the limit pulls.
func TestPullRefusesHugeMetadata(t *testing.T) {
	const huge = 50 << 20
	for _, tc := range []struct {
		name    string
		part    string // "config", "manifest" or "index"
		size    int
		chunked bool
		want    string // "" means the pull must succeed
	}{
		{"config", "config", huge, false, "its config is"},
		{"manifest", "manifest", huge, false, "its manifest is"},
		{"manifest without length", "manifest", huge, true, "its manifest is more than"},
		{"index", "index", huge, false, "its index is"},
		{"config under the limit", "config", MaxMetadataSize - 64<<10, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			host, served := countingRegistry(t, tc.chunked)
			ref := host + "/big:latest"
			if tc.part == "index" {
				img := bigImage(t, "", 0)
				p := v1.Platform{OS: "linux", Architecture: "amd64"}
				idx := mutate.AppendManifests(empty.Index, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
				idx = mutate.Annotations(idx, map[string]string{"pad": strings.Repeat("x", tc.size)}).(v1.ImageIndex)
				testenv.PushIndex(t, idx, ref)
			} else {
				testenv.PushImage(t, bigImage(t, tc.part, tc.size), ref)
			}
			served.Store(0)
			store := newTestStore(t)
			_, err := Pull(context.Background(), store, ref, PullOptions{Platform: v1.Platform{OS: "linux", Architecture: "amd64"}})
			if tc.want == "" {
				if err != nil {
					t.Fatalf("pull under the limit: %v", err)
				}
				return
			}
			if err == nil || !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), ref) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("pull = %v; want ErrTooLarge naming %s and %q", err, ref, tc.want)
			}
			// What reached the client before it gave up: a socket's worth of buffers at
			// most, not the 50 MB.
			if n := served.Load(); n > 16<<20 {
				t.Errorf("the registry sent %d bytes before the pull gave up", n)
			}
			if ref, ok := store.GetRef(context.Background(), ref+"@linux/amd64"); ok {
				t.Errorf("a refused image was recorded: %s", ref)
			}
		})
	}
}
