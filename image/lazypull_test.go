package image

import (
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/kiln-build/kiln/internal/testenv"
)

// TestPullLazy: a lazy pull fetches the manifest and config only; the layers come
// from the registry when read (an OCI archive streams them, valid), are not kept in
// the store, and the store does not record the image; a layer whose bytes the
// registry changed fails the read that reaches its end.
func TestPullLazy(t *testing.T) {
	ctx := context.Background()
	var layerGets atomic.Int64
	var tamper atomic.Bool
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	img, err := random.Image(4096, 2)
	if err != nil {
		t.Fatal(err)
	}
	ls, _ := img.Layers()
	layerDigest := map[string]bool{}
	for _, l := range ls {
		d, _ := l.Digest()
		layerDigest[d.String()] = true
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, d, isBlob := strings.Cut(r.URL.Path, "/blobs/")
		if !isBlob || !layerDigest[d] || r.Method != http.MethodGet {
			reg.ServeHTTP(w, r)
			return
		}
		layerGets.Add(1)
		if !tamper.Load() {
			reg.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		reg.ServeHTTP(rec, r)
		body := rec.Body.Bytes()
		body[len(body)/2] ^= 0xff
		w.WriteHeader(rec.Code)
		w.Write(body)
	}))
	t.Cleanup(srv.Close)
	host := testenv.Host(srv)
	testenv.PushImage(t, img, host+"/lazy:latest")
	want, _ := img.Digest()

	store := newTestStore(t)
	p, err := Pull(ctx, store, host+"/lazy:latest", PullOptions{Lazy: ctx})
	if err != nil {
		t.Fatal(err)
	}
	if p.ManifestDigest != want {
		t.Fatalf("pulled %s, want %s", p.ManifestDigest, want)
	}
	if n := layerGets.Load(); n != 0 {
		t.Fatalf("a lazy pull fetched %d layer blobs", n)
	}
	tarPath := filepath.Join(t.TempDir(), "img.tar")
	f, err := os.Create(tarPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteOCIArchive(ctx, p.Image, nil, f); err != nil {
		t.Fatalf("OCI archive of a lazy image: %v", err)
	}
	f.Close()
	if n := layerGets.Load(); n != int64(len(ls)) {
		t.Errorf("the archive fetched %d layer blobs, want each of the %d once", n, len(ls))
	}
	dir := t.TempDir()
	if out, err := exec.Command("tar", "-xf", tarPath, "-C", dir).CombinedOutput(); err != nil {
		t.Fatalf("untar: %v: %s", err, out)
	}
	lp, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	im, _ := lp.IndexManifest()
	got, err := lp.Image(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(got); err != nil {
		t.Errorf("the archive's image: %v", err)
	}
	for _, l := range ls {
		d, _ := l.Digest()
		if store.HasBlob(d) {
			t.Errorf("layer %s was kept in the store", d)
		}
	}
	if len(store.refs) > 0 {
		t.Errorf("the store records an image whose layers it does not have: %v", store.refs)
	}

	tamper.Store(true)
	p, err = Pull(ctx, newTestStore(t), host+"/lazy:latest", PullOptions{Lazy: ctx})
	if err != nil {
		t.Fatal(err)
	}
	pl, _ := p.Image.Layers()
	rc, err := pl[0].Compressed()
	if err == nil {
		_, err = io.Copy(io.Discard, rc)
		rc.Close()
	}
	if err == nil {
		t.Fatal("a layer the registry changed was read without an error")
	}
}
