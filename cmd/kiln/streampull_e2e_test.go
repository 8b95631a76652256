package main

import (
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/kiln-build/kiln/internal/testenv"
)

// cutReader gives the first half of a body, then fails, so that the proxy drops
// the connection mid-blob.
type cutReader struct {
	r    io.ReadCloser
	left int64
}

func (c *cutReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, errors.New("cut off")
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, err
}

func (c *cutReader) Close() error { return c.r.Close() }

// A cold build unpacks its base layer as it downloads it (a streamed pull). When
// the registry cuts that download off half-way, the build downloads the layer
// again and succeeds with the base's layers; the store then holds the image: a
// second build on the root downloads no layer.
func TestRegistryStreamedPullCutOff(t *testing.T) {
	t.Parallel()
	root, out := e2e(t)
	target, err := url.Parse("http://" + busyboxRegistry(t))
	if err != nil {
		t.Fatal(err)
	}
	base := testenv.BusyboxImage(t)
	bl, _ := base.Layers()
	layerDigest, _ := bl[0].Digest()
	var gets atomic.Int64
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.ModifyResponse = func(resp *http.Response) error {
		if resp.Request.Method != http.MethodGet || !strings.HasSuffix(resp.Request.URL.Path, "/blobs/"+layerDigest.String()) {
			return nil
		}
		if gets.Add(1) == 1 {
			resp.Body = &cutReader{r: resp.Body, left: resp.ContentLength / 2}
		}
		return nil
	}
	proxy.ErrorLog = log.New(io.Discard, "", 0)
	srv := httptest.NewServer(proxy)
	t.Cleanup(srv.Close)
	host := testenv.Host(srv)
	dir := project(t, map[string]string{"Dockerfile": fmt.Sprintf("FROM %s/busybox\nRUN echo hi > /hi\n", host)})

	dest := filepath.Join(out, "img.tar")
	mustBuildLimited(t, dir, "--root", root, "--progress", "plain", "-o", "type=oci,dest="+dest, ".")
	if n := gets.Load(); n != 2 {
		t.Errorf("the base layer was downloaded %d times, want 2 (cut off, then again)", n)
	}
	requireBaseLayers(t, readOCI(t, dest), base)

	mustBuildLimited(t, dir, "--root", root, "--no-cache", "-o", "type=oci,dest="+filepath.Join(out, "again.tar"), ".")
	if n := gets.Load(); n != 2 {
		t.Errorf("a second build downloaded the base layer again (%d downloads): the first did not record it", n)
	}
}
