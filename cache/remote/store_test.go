package remote

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/kiln-build/kiln/cache"
	"github.com/kiln-build/kiln/image"
)

// localWithStep is a fresh local store holding one step entry of key with a layer.
func localWithStep(t *testing.T, key string, content []byte) (*cache.Store, *cache.Entry) {
	t.Helper()
	ctx := context.Background()
	s, err := cache.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(content)
	zw.Close()
	d, err := s.WriteBlob(gz.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	diffID, _, _ := v1.SHA256(bytes.NewReader(content))
	e := &cache.Entry{Key: key, Created: time.Unix(1700000000, 0).UTC(), Used: time.Now(), History: v1.History{CreatedBy: "RUN x"},
		Layer: &cache.Layer{Digest: d.String(), DiffID: diffID.String(), Size: int64(gz.Len()), MediaType: string(types.OCILayer), Snapshot: "s-local"}}
	if err := s.PutStep(ctx, e); err != nil {
		t.Fatal(err)
	}
	return s, e
}

func emptyLocal(t *testing.T) *cache.Store {
	t.Helper()
	s, err := cache.Open(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// exportOne writes the step of key from a local store to a layout cache in dir.
func exportOne(t *testing.T, dir, key, version string) *cache.Entry {
	t.Helper()
	ctx := context.Background()
	local, e := localWithStep(t, key, []byte("a tar, as far as the cache cares"))
	src, err := Open(ctx, local, nil, StoreOptions{KeyVersion: version})
	if err != nil {
		t.Fatal(err)
	}
	spec := Spec{Type: "local", Dir: dir, Tag: "latest", Mode: ModeMax}
	if err := Export(ctx, spec, src, []string{key, key}, ExportOptions{KeyVersion: version}); err != nil {
		t.Fatal(err)
	}
	return e
}

// hitLayer opens the layout cache in dir behind local and returns the store and the
// layer of its step k1, still remote; note gets the store's progress lines (nil: none).
func hitLayer(t *testing.T, local *cache.Store, dir string, note func(string)) (*Store, v1.Layer) {
	t.Helper()
	return hitLayerFrom(t, local, Spec{Type: "local", Dir: dir, Tag: "latest"}, note)
}

// hitLayerFrom is hitLayer for the cache of spec.
func hitLayerFrom(t *testing.T, local *cache.Store, spec Spec, note func(string)) (*Store, v1.Layer) {
	t.Helper()
	ctx := context.Background()
	s, err := Open(ctx, local, []Spec{spec}, StoreOptions{KeyVersion: "v1", Note: note})
	if err != nil {
		t.Fatal(err)
	}
	e, ok, _ := s.GetStep(ctx, "k1")
	if !ok {
		t.Fatal("no remote hit for k1")
	}
	l, ok := s.StepLayer(e.Layer)
	if !ok {
		t.Fatal("StepLayer: not available")
	}
	return s, l
}

func TestStoreHitIsLazyAndVerified(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "cache")
	want := exportOne(t, dir, "k1", "v1")

	local := emptyLocal(t)
	var notes []string
	s, err := Open(ctx, local, []Spec{{Type: "local", Dir: dir, Tag: "latest"}}, StoreOptions{KeyVersion: "v1", Note: func(m string) { notes = append(notes, m) }})
	if err != nil {
		t.Fatal(err)
	}
	e, ok, err := s.GetStep(ctx, "k1")
	if err != nil || !ok {
		t.Fatalf("GetStep: %v, %v; want a remote hit", ok, err)
	}
	if e.Layer.Digest != want.Layer.Digest || e.Layer.DiffID != want.Layer.DiffID || e.History.CreatedBy != "RUN x" {
		t.Errorf("entry %+v, want the exported %+v", e.Layer, want.Layer)
	}
	if e.Layer.Snapshot == "" || e.Layer.Snapshot == want.Layer.Snapshot {
		t.Errorf("snapshot name %q: want one made here, not the exporter's", e.Layer.Snapshot)
	}
	if s.Origin("k1") != dir+":latest" {
		t.Errorf("Origin = %q", s.Origin("k1"))
	}
	d, _ := v1.NewHash(e.Layer.Digest)
	l, ok := s.StepLayer(e.Layer)
	if !ok {
		t.Fatal("StepLayer: not available")
	}
	if local.HasBlob(d) {
		t.Fatal("the blob was downloaded before anything read it")
	}
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	rc.Close()
	if !local.HasBlob(d) {
		t.Error("reading the layer did not keep its blob locally")
	}
	// Now recorded locally: a later build on this root hits without the remote.
	if _, ok, _ := local.GetStep(ctx, "k1"); !ok {
		t.Error("the fetched step was not recorded in the local store")
	}
	if s, _ := Open(ctx, emptyLocal(t), []Spec{{Type: "local", Dir: dir, Tag: "latest"}}, StoreOptions{KeyVersion: "v2", Note: func(m string) { notes = append(notes, m) }}); s != nil {
		if _, ok, _ := s.GetStep(ctx, "k1"); ok {
			t.Error("a record of another key version was used")
		}
	}
	if !strings.Contains(strings.Join(notes, "\n"), "use step keys v1, this kiln makes v2; skipped") {
		t.Errorf("no note about the key version: %q", notes)
	}
}

// TestStorePoisonedAndMissingBlobs: a cache whose layer blob is missing, or whose
// bytes are not the blob's, fails the read of the layer with a CorruptBlobError,
// keeps nothing locally and takes back the step's hit. For a layout the store hashes
// what it reads; for a registry ggcr's reader does, and the store trusts the end it
// reports (verifiesBlobs). Both reads: Compressed streams the blob (lazystream.go),
// Uncompressed downloads it first (copyBlob).
func TestStorePoisonedAndMissingBlobs(t *testing.T) {
	ctx := context.Background()
	for _, where := range []string{"local", "registry"} {
		for _, damage := range []string{"poisoned", "missing"} {
			for _, read := range []string{"Compressed", "Uncompressed"} {
				t.Run(where+"/"+damage+"/"+read, func(t *testing.T) {
					spec, d := damagedCache(t, where, damage)
					local := emptyLocal(t)
					s, l := hitLayerFrom(t, local, spec, nil) // a hit before the blob is read
					// A missing blob fails at once, a poisoned one at the read
					// that reaches its end.
					open := l.Compressed
					if read == "Uncompressed" {
						open = l.Uncompressed
					}
					rc, err := open()
					if err == nil {
						_, err = io.Copy(io.Discard, rc)
						rc.Close()
					}
					if _, corrupt := image.AsCorruptBlob(err); !corrupt {
						t.Fatalf("reading a %s blob: %v, want a CorruptBlobError", damage, err)
					}
					if _, err := l.Uncompressed(); err == nil {
						t.Error("a refused blob was read again")
					}
					if local.HasBlob(d) {
						t.Error("the damaged blob reached the local store")
					}
					if _, ok, _ := s.GetStep(ctx, "k1"); ok {
						t.Error("the step still hits after its blob was refused")
					}
				})
			}
		}
	}
}

// damagedCache exports step k1 to a cache (a layout, or a registry behind a proxy)
// whose layer blob is then missing or poisoned: one byte flipped, its length kept. It
// returns the cache's spec and the layer's digest.
func damagedCache(t *testing.T, where, damage string) (Spec, v1.Hash) {
	t.Helper()
	if where == "local" {
		dir := filepath.Join(t.TempDir(), "cache")
		want := exportOne(t, dir, "k1", "v1")
		d, _ := v1.NewHash(want.Layer.Digest)
		blob := filepath.Join(dir, "blobs", "sha256", d.Hex)
		if damage == "missing" {
			os.Remove(blob)
		} else {
			data, _ := os.ReadFile(blob)
			data[len(data)-1] ^= 1
			os.WriteFile(blob, data, 0o644)
		}
		return Spec{Type: "local", Dir: dir, Tag: "latest"}, d
	}
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	var armed atomic.Pointer[string] // the blob path to damage, once exported
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := armed.Load(); p == nil || r.Method != http.MethodGet || r.URL.Path != *p {
			reg.ServeHTTP(w, r)
			return
		}
		if damage == "missing" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, `{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry"}]}`)
			return
		}
		rec := httptest.NewRecorder()
		reg.ServeHTTP(rec, r)
		body := rec.Body.Bytes()
		body[len(body)-1] ^= 1
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		w.Write(body)
	}))
	t.Cleanup(srv.Close)
	spec := Spec{Type: "registry", Ref: strings.TrimPrefix(srv.URL, "http://") + "/cache:latest", Mode: ModeMax, OCIMediaTypes: true}
	ctx := context.Background()
	local, e := localWithStep(t, "k1", []byte("a tar, as far as the cache cares"))
	src, err := Open(ctx, local, nil, StoreOptions{KeyVersion: "v1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := Export(ctx, spec, src, []string{"k1"}, ExportOptions{KeyVersion: "v1"}); err != nil {
		t.Fatal(err)
	}
	d, _ := v1.NewHash(e.Layer.Digest)
	p := "/v2/cache/blobs/" + d.String()
	armed.Store(&p)
	return Spec{Type: "registry", Ref: spec.Ref}, d
}

// TestStoreStreamsLayer: Compressed of a remote layer streams its bytes and keeps
// them: nothing before the end is kept or recorded, a stream closed half-way keeps
// nothing and the next reader downloads the blob again, a reader that comes while a
// stream is open waits for it, and a stream read to its end leaves the verified blob
// and the step's entry in the local store.
func TestStoreStreamsLayer(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "cache")
	want := exportOne(t, dir, "k1", "v1")
	d, _ := v1.NewHash(want.Layer.Digest)
	blob, err := os.ReadFile(filepath.Join(dir, "blobs", "sha256", d.Hex))
	if err != nil {
		t.Fatal(err)
	}
	local := emptyLocal(t)
	_, l := hitLayer(t, local, dir, nil)
	stored := func() bool {
		_, recorded, _ := local.GetStep(ctx, "k1")
		return local.HasBlob(d) || recorded
	}

	// Half a stream, then Close: nothing kept.
	rc, err := l.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	half := make([]byte, len(blob)/2)
	if _, err := io.ReadFull(rc, half); err != nil {
		t.Fatal(err)
	}
	if stored() {
		t.Fatal("the blob or its step was kept before the stream's end")
	}
	// A reader that comes now waits for the open stream, then downloads the blob
	// itself when the stream is closed before its end.
	waited := make(chan error, 1)
	go func() {
		rc, err := l.Uncompressed()
		if err == nil {
			rc.Close()
		}
		waited <- err
	}()
	select {
	case err := <-waited:
		t.Fatalf("Uncompressed did not wait for the open stream: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	rc.Close()
	if err := <-waited; err != nil {
		t.Fatalf("Uncompressed after a closed stream: %v", err)
	}
	if !local.HasBlob(d) {
		t.Fatal("the download after a closed stream kept no blob")
	}

	// A whole stream, on a fresh local store: the reader gets the blob's bytes,
	// and the store keeps them and the step.
	local = emptyLocal(t)
	var notes []string
	_, l = hitLayer(t, local, dir, func(m string) { notes = append(notes, m) })
	rc, err = l.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, blob) {
		t.Fatalf("streamed %d bytes (%v), want the blob's %d", len(got), err, len(blob))
	}
	if !local.HasBlob(d) {
		t.Error("a stream read to its end kept no blob")
	}
	if _, ok, _ := local.GetStep(ctx, "k1"); !ok {
		t.Error("a stream read to its end did not record the step")
	}
	if !strings.Contains(strings.Join(notes, "\n"), "kept as the output read it") {
		t.Errorf("no note of the streamed download: %q", notes)
	}
}

// sizedLayer is a layer from elsewhere (a base image's) of a given size.
type sizedLayer struct {
	v1.Layer
	size int64
}

func (l sizedLayer) Size() (int64, error) { return l.size, nil }

// TestPrefetch: ahead of an image tarball, Prefetch downloads the remote-cache
// layers, except the image's largest layer when it is one of them (the output
// streams that one); when a layer from elsewhere is larger, it downloads them all.
func TestPrefetch(t *testing.T) {
	for _, tc := range []struct {
		name      string
		otherSize int64 // the size of the image's other layer
		fetched   bool
	}{
		{"cache layer is the largest", 1, false},
		{"another layer is larger", 1 << 30, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "cache")
			exportOne(t, dir, "k1", "v1")
			local := emptyLocal(t)
			s, l := hitLayer(t, local, dir, nil)
			d, _ := l.Digest()
			s.Prefetch([]v1.Layer{sizedLayer{size: tc.otherSize}, l})
			deadline := time.Now().Add(5 * time.Second)
			for !local.HasBlob(d) && tc.fetched && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			if !tc.fetched {
				time.Sleep(200 * time.Millisecond) // a download would be done by now
			}
			if got := local.HasBlob(d); got != tc.fetched {
				t.Errorf("blob of the cache layer downloaded: %v, want %v", got, tc.fetched)
			}
		})
	}
}

// TestOpenReadsCachesAtOnce: several --cache-from are read at the same time, and
// still taken in the order given. The registry holds each cache's manifest until
// both have been asked for; read one after the other, the first would wait out
// the barrier and fail.
func TestOpenReadsCachesAtOnce(t *testing.T) {
	ctx := context.Background()
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	var armed atomic.Bool
	var asked atomic.Int32
	both := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if armed.Load() && strings.Contains(r.URL.Path, "/manifests/") {
			if asked.Add(1) == 2 {
				close(both)
			}
			select {
			case <-both:
			case <-time.After(5 * time.Second):
				// Not found, which is not retried: the cache fails at once.
				http.Error(w, "the other cache was not asked for meanwhile", http.StatusNotFound)
				return
			}
		}
		reg.ServeHTTP(w, r)
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")

	// Two caches of one key, each with its own layer.
	var want *cache.Entry
	for _, repo := range []string{"first", "second"} {
		local, e := localWithStep(t, "k1", []byte("the layer of "+repo))
		if want == nil {
			want = e
		}
		src, err := Open(ctx, local, nil, StoreOptions{KeyVersion: "v1"})
		if err != nil {
			t.Fatal(err)
		}
		spec := Spec{Type: "registry", Ref: host + "/" + repo + ":cache", Mode: ModeMax, OCIMediaTypes: true}
		if err := Export(ctx, spec, src, []string{"k1"}, ExportOptions{KeyVersion: "v1"}); err != nil {
			t.Fatal(err)
		}
	}

	armed.Store(true)
	s, err := Open(ctx, emptyLocal(t), []Spec{
		{Type: "registry", Ref: host + "/first:cache"},
		{Type: "registry", Ref: host + "/second:cache"},
	}, StoreOptions{KeyVersion: "v1"})
	if err != nil {
		t.Fatalf("Open of two caches: %v", err)
	}
	e, ok, err := s.GetStep(ctx, "k1")
	if err != nil || !ok {
		t.Fatalf("GetStep: %v, %v; want a hit", ok, err)
	}
	if e.Layer.Digest != want.Layer.Digest {
		t.Errorf("k1 came with layer %s, want the first cache's %s", e.Layer.Digest, want.Layer.Digest)
	}
}
