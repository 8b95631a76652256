package image

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// testStore is a BlobStore on a temp dir: blobs/sha256/<hex>, refs in a map.
type testStore struct {
	dir  string
	mu   sync.Mutex
	refs map[string]string
}

func newTestStore(t *testing.T) *testStore {
	return &testStore{dir: t.TempDir(), refs: map[string]string{}}
}

func (s *testStore) BlobPath(h v1.Hash) string {
	return filepath.Join(s.dir, "blobs", h.Algorithm, h.Hex)
}

func (s *testStore) HasBlob(h v1.Hash) bool {
	_, err := os.Stat(s.BlobPath(h))
	return err == nil
}

func (s *testStore) WriteBlob(b []byte) (v1.Hash, error) {
	sum := sha256.Sum256(b)
	h := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
	if err := os.MkdirAll(filepath.Dir(s.BlobPath(h)), 0o755); err != nil {
		return v1.Hash{}, err
	}
	return h, os.WriteFile(s.BlobPath(h), b, 0o644)
}

func (s *testStore) CreateTemp(pattern string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Join(s.dir, "tmp"), 0o755); err != nil {
		return nil, err
	}
	return os.CreateTemp(filepath.Join(s.dir, "tmp"), pattern)
}

func (s *testStore) GetRef(_ context.Context, ref string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.refs[ref]
	return d, ok
}

func (s *testStore) PutRef(_ context.Context, ref, digest string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refs[ref] = digest
	return nil
}

// checkBlobsVerified asserts every blob of img is in the store and hashes to its name.
func checkBlobsVerified(t *testing.T, s *testStore, img v1.Image) {
	t.Helper()
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	hs := []v1.Hash{d, m.Config.Digest}
	for _, l := range m.Layers {
		hs = append(hs, l.Digest)
	}
	for _, h := range hs {
		b, err := os.ReadFile(s.BlobPath(h))
		if err != nil {
			t.Fatalf("blob %s: %v", h, err)
		}
		sum := sha256.Sum256(b)
		if hex.EncodeToString(sum[:]) != h.Hex {
			t.Fatalf("blob %s does not hash to its name", h)
		}
	}
}

// newStoreLayer makes a one-file gzip layer, stores its blob and returns it as a
// StoreLayer of media type mt.
func newStoreLayer(t *testing.T, s *testStore, file, content string, mt types.MediaType) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: file, Mode: 0o644, Size: int64(len(content)), Typeflag: tar.TypeReg})
	tw.Write([]byte(content))
	tw.Close()
	tl, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(buf.Bytes())), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	d, _ := tl.Digest()
	diffID, _ := tl.DiffID()
	size, _ := tl.Size()
	rc, _ := tl.Compressed()
	defer rc.Close()
	if err := writeBlobStream(context.Background(), s, d, size, rc); err != nil {
		t.Fatal(err)
	}
	return StoreLayer(s, d, diffID, size, mt)
}

// recordingProxy fronts a registry and records "METHOD path?query status" of each
// request, to see which blobs a push uploads or mounts.
type recordingProxy struct {
	mu   sync.Mutex
	reqs []string
}

func newRecordingProxy(t *testing.T, upstream string) (*recordingProxy, string) {
	u, _ := url.Parse("http://" + upstream)
	rp := httputil.NewSingleHostReverseProxy(u)
	p := &recordingProxy{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, status: 200}
		rp.ServeHTTP(rec, r)
		p.mu.Lock()
		p.reqs = append(p.reqs, r.Method+" "+r.URL.RequestURI()+" "+http.StatusText(rec.status))
		p.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	return p, strings.TrimPrefix(srv.URL, "http://")
}

func (p *recordingProxy) take() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.reqs
	p.reqs = nil
	return r
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}
