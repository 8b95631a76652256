package image

import (
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"

	"github.com/kiln-build/kiln/internal/testenv"
)

// streamRegistry serves img at host/stream:latest, counting the GETs of its layer
// blobs; tamper flips a byte of every layer blob served, and drops > 0 cuts that
// many layer downloads off half-way.
type streamRegistry struct {
	host   string
	gets   atomic.Int64
	tamper atomic.Bool
	drops  atomic.Int64
}

func newStreamRegistry(t *testing.T, img v1.Image) *streamRegistry {
	t.Helper()
	sr := &streamRegistry{}
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	isLayer := map[string]bool{}
	for _, l := range ls {
		d, _ := l.Digest()
		isLayer[d.String()] = true
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, d, isBlob := strings.Cut(r.URL.Path, "/blobs/")
		if !isBlob || !isLayer[d] || r.Method != http.MethodGet {
			reg.ServeHTTP(w, r)
			return
		}
		sr.gets.Add(1)
		rec := httptest.NewRecorder()
		reg.ServeHTTP(rec, r)
		body := rec.Body.Bytes()
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		if sr.tamper.Load() {
			body[len(body)/2] ^= 0xff
		}
		if sr.drops.Add(-1) >= 0 {
			w.Write(body[:len(body)/2])
			w.(http.Flusher).Flush()
			if c, _, err := w.(http.Hijacker).Hijack(); err == nil {
				c.Close()
			}
			return
		}
		w.Write(body)
	}))
	t.Cleanup(srv.Close)
	sr.host = testenv.Host(srv)
	testenv.PushImage(t, img, sr.host+"/stream:latest")
	return sr
}

func readLayer(l v1.Layer) error {
	rc, err := l.Compressed()
	if err != nil {
		return err
	}
	defer rc.Close()
	_, err = io.Copy(io.Discard, rc)
	return err
}

// TestPullStreamed: a streamed pull stores the manifest's config at once and each
// layer as it is read, once; a read that stops early or breaks keeps nothing, and
// Fetch downloads that layer again; the image is recorded (manifest, tag) only by
// Finish, once every blob is in, after which a pull comes from the store alone.
func TestPullStreamed(t *testing.T) {
	ctx := context.Background()
	img, err := random.Image(64<<10, 3)
	if err != nil {
		t.Fatal(err)
	}
	sr := newStreamRegistry(t, img)
	ref := sr.host + "/stream:latest"
	want, _ := img.Digest()
	cfgName, _ := img.ConfigName()

	store := newTestStore(t)
	p, err := Pull(ctx, store, ref, PullOptions{Stream: true})
	if err != nil {
		t.Fatal(err)
	}
	if p.ManifestDigest != want {
		t.Fatalf("pulled %s, want %s", p.ManifestDigest, want)
	}
	if n := sr.gets.Load(); n != 0 {
		t.Fatalf("a streamed pull fetched %d layer blobs before any was read", n)
	}
	if !store.HasBlob(cfgName) {
		t.Error("the config is not stored")
	}
	if store.HasBlob(want) || len(store.refs) > 0 {
		t.Fatalf("the image is recorded before its layers are stored (manifest %v, refs %v)", store.HasBlob(want), store.refs)
	}
	ls, err := p.Image.Layers()
	if err != nil {
		t.Fatal(err)
	}
	d0, _ := ls[0].Digest()
	d1, _ := ls[1].Digest()

	// Layer 0 read to its end is stored; layer 1 read half-way is not.
	if err := readLayer(ls[0]); err != nil {
		t.Fatalf("read layer 0: %v", err)
	}
	rc, err := ls[1].Compressed()
	if err != nil {
		t.Fatal(err)
	}
	io.CopyN(io.Discard, rc, 100)
	rc.Close()
	if err := p.Fetch(ctx, d0); err != nil { // waits for layer 0's commit
		t.Fatal(err)
	}
	if !store.HasBlob(d0) {
		t.Error("layer 0, read to its end, is not stored")
	}
	if store.HasBlob(d1) {
		t.Error("layer 1, read half-way, is stored")
	}
	if n := sr.gets.Load(); n != 2 {
		t.Errorf("%d layer downloads, want 2 (layer 0 once, layer 1 once)", n)
	}
	if err := p.Finish(ctx); err != nil {
		t.Fatalf("finish: %v", err)
	}
	for i, l := range ls {
		d, _ := l.Digest()
		if !store.HasBlob(d) {
			t.Errorf("layer %d is not stored after Finish", i)
		}
	}
	if n := sr.gets.Load(); n != 4 {
		t.Errorf("%d layer downloads after Finish, want 4 (layers 1 and 2 fetched by it)", n)
	}
	if !store.HasBlob(want) || len(store.refs) == 0 {
		t.Fatalf("Finish did not record the image (manifest %v, refs %v)", store.HasBlob(want), store.refs)
	}
	if err := readLayer(ls[2]); err != nil {
		t.Fatal(err)
	}
	again, err := Pull(ctx, store, ref, PullOptions{Stream: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := again.Finish(ctx); err != nil {
		t.Fatal(err)
	}
	if again.ManifestDigest != want || sr.gets.Load() != 4 {
		t.Errorf("a second pull is %s after %d layer downloads; want %s from the store alone", again.ManifestDigest, sr.gets.Load(), want)
	}
}

// TestPullStreamedFaults: a layer whose stream the registry cuts off, or whose
// bytes it changed, fails its read and is not stored; Fetch retries a cut-off one,
// and a changed one fails Finish, which then records nothing.
func TestPullStreamedFaults(t *testing.T) {
	ctx := context.Background()
	img, err := random.Image(64<<10, 2)
	if err != nil {
		t.Fatal(err)
	}
	sr := newStreamRegistry(t, img)
	ref := sr.host + "/stream:latest"

	t.Run("a cut-off stream is fetched again", func(t *testing.T) {
		store := newTestStore(t)
		p, err := Pull(ctx, store, ref, PullOptions{Stream: true})
		if err != nil {
			t.Fatal(err)
		}
		ls, _ := p.Image.Layers()
		d, _ := ls[0].Digest()
		sr.drops.Store(1)
		if err := readLayer(ls[0]); err == nil {
			t.Fatal("a stream cut off half-way was read without an error")
		}
		if store.HasBlob(d) {
			t.Fatal("a cut-off layer was stored")
		}
		if err := p.Fetch(ctx, d); err != nil {
			t.Fatalf("fetch after a cut-off stream: %v", err)
		}
		if !store.HasBlob(d) {
			t.Error("Fetch did not store the layer")
		}
		if err := p.Finish(ctx); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("changed bytes are refused", func(t *testing.T) {
		sr.drops.Store(0)
		sr.tamper.Store(true)
		defer sr.tamper.Store(false)
		store := newTestStore(t)
		p, err := Pull(ctx, store, ref, PullOptions{Stream: true})
		if err != nil {
			t.Fatal(err)
		}
		ls, _ := p.Image.Layers()
		d, _ := ls[0].Digest()
		if err := readLayer(ls[0]); err == nil {
			t.Fatal("a layer the registry changed was read without an error")
		}
		if store.HasBlob(d) {
			t.Fatal("a changed layer was stored")
		}
		err = p.Finish(ctx)
		if err == nil {
			t.Fatal("Finish stored an image whose layer the registry changed")
		}
		d1, _ := ls[1].Digest()
		if !strings.Contains(err.Error(), d.String()) && !strings.Contains(err.Error(), d1.String()) || !strings.Contains(err.Error(), "checksum") {
			t.Errorf("the error does not name a changed layer and its checksum: %v", err)
		}
		if store.HasBlob(p.ManifestDigest) || len(store.refs) > 0 {
			t.Errorf("a failed pull recorded the image (manifest %v, refs %v)", store.HasBlob(p.ManifestDigest), store.refs)
		}
	})
}
