package main

import (
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/kiln-build/kiln/internal/testenv"
)

// blobGets is a registry (ggcr's) that counts the GETs of each blob digest.
type blobGets struct {
	mu sync.Mutex
	n  map[string]int
}

func (b *blobGets) count(d v1.Hash) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.n[d.String()]
}

func (b *blobGets) reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.n = map[string]int{}
}

func blobGetRegistry(t *testing.T) (string, *blobGets) {
	t.Helper()
	gets := &blobGets{n: map[string]int{}}
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, d, ok := strings.Cut(r.URL.Path, "/blobs/"); ok && r.Method == http.MethodGet {
			gets.mu.Lock()
			gets.n[d]++
			gets.mu.Unlock()
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return testenv.Host(srv), gets
}

// lazyProject is one stage on HOST/busybox whose steps all have layers.
func lazyProject(t *testing.T, host string) string {
	return project(t, map[string]string{
		"Dockerfile": "FROM " + host + "/busybox\n" +
			"RUN echo hello > /hello.txt\n" +
			"COPY f.txt /f.txt\n" +
			"ENV X=1\n" +
			"RUN cat /f.txt /hello.txt > /both.txt\n",
		"f.txt": "from the context\n",
	})
}

// TestRemoteCacheEphemeralBaseIsLazy: on a runner with an empty root whose every step
// comes from a registry cache, the base image's layers are never downloaded for a
// push to that registry (they are mounted or already there), are streamed once for
// an OCI tarball and never unpacked; both give the image runner 1 built.
func TestRemoteCacheEphemeralBaseIsLazy(t *testing.T) {
	_, out := e2e(t)
	host, gets := blobGetRegistry(t)
	base := testenv.BusyboxImage(t)
	testenv.PushImage(t, base, host+"/busybox:latest")
	baseLayers, err := base.Layers()
	if err != nil {
		t.Fatal(err)
	}
	dir := lazyProject(t, host)
	cacheRef := host + "/cache:main"
	mustBuildLimited(t, dir, "--root", t.TempDir(), "--progress", "plain", "--build-arg", epochArg,
		"--cache-to", "type=registry,ref="+cacheRef+",mode=max", "-o", "type=oci,dest="+filepath.Join(out, "1.tar"), ".")
	want := ociDigest(t, filepath.Join(out, "1.tar"))

	noBaseDownload := func(what string, wantGets int) {
		t.Helper()
		for _, l := range baseLayers {
			d, _ := l.Digest()
			if n := gets.count(d); n != wantGets {
				t.Errorf("%s: base layer %s fetched %d times, want %d", what, d, n, wantGets)
			}
		}
	}
	noUnpack := func(what, root string) {
		t.Helper()
		snaps, _ := filepath.Glob(filepath.Join(root, "snapshots", "committed", "l-*"))
		if len(snaps) > 0 {
			t.Errorf("%s: the base was unpacked: %v", what, snaps)
		}
		for _, l := range baseLayers {
			d, _ := l.Digest()
			if _, err := os.Stat(filepath.Join(root, "blobs", "sha256", d.Hex)); err == nil {
				t.Errorf("%s: the base layer %s was kept in the store", what, d)
			}
		}
	}

	// A push to the cache's registry: no base layer byte leaves the registry.
	gets.reset()
	root := t.TempDir()
	appRef := host + "/app:v1"
	r := mustBuildLimited(t, dir, "--root", root, "--progress", "plain", "--build-arg", epochArg,
		"--cache-from", "type=registry,ref="+cacheRef, "-t", appRef, "--push", ".")
	requireAllCached(t, r.stderr)
	if !strings.Contains(r.stderr, "fetched only if a step or an output reads them") {
		t.Errorf("progress does not say the base is pulled lazily:\n%s", r.stderr)
	}
	noBaseDownload("push", 0)
	noUnpack("push", root)
	img := remoteImage(t, appRef, true)
	if err := validate.Image(img); err != nil {
		t.Fatalf("pushed image: %v", err)
	}
	if d, _ := img.Digest(); d != want {
		t.Errorf("pushed %s, runner 1 built %s", d, want)
	}

	// An OCI tarball: each base layer is streamed once, straight into the tar.
	gets.reset()
	root = t.TempDir()
	r = mustBuildLimited(t, dir, "--root", root, "--progress", "plain", "--build-arg", epochArg,
		"--cache-from", "type=registry,ref="+cacheRef, "-o", "type=oci,dest="+filepath.Join(out, "2.tar"), ".")
	requireAllCached(t, r.stderr)
	noBaseDownload("oci tarball", 1)
	noUnpack("oci tarball", root)
	if err := validate.Image(readOCI(t, filepath.Join(out, "2.tar"))); err != nil {
		t.Fatalf("oci tarball: %v", err)
	}
	if d := ociDigest(t, filepath.Join(out, "2.tar")); d != want {
		t.Errorf("ephemeral tarball is %s, runner 1 built %s", d, want)
	}

	// Steps that miss run on the lazily pulled base: it is unpacked then, from the
	// registry, and the image is right.
	if err := os.WriteFile(filepath.Join(dir, "f.txt"), []byte("changed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mustBuildLimited(t, dir, "--root", root, "--progress", "plain", "--build-arg", epochArg,
		"--cache-from", "type=registry,ref="+cacheRef, "-o", "type=oci,dest="+filepath.Join(out, "3.tar"), ".")
	files := flatten(t, readOCI(t, filepath.Join(out, "3.tar")))
	if got := files["/both.txt"].content; got != "changed\nhello\n" {
		t.Errorf("after a miss on the lazy base /both.txt is %q", got)
	}
	if snaps, _ := filepath.Glob(filepath.Join(root, "snapshots", "committed", "l-*")); len(snaps) != len(baseLayers) {
		t.Errorf("a step ran on the base, but %d of its %d layers were unpacked", len(snaps), len(baseLayers))
	}
}

// TestRemoteCacheCopyFromStageLazy: a COPY --from=stage is keyed by the digest of
// what it selects; that digest comes with the cache, so a runner whose steps all hit
// never unpacks the builder stage (nor its base). When the COPY itself misses (a step
// before it changed), the stage is mounted then and the right file copied, on a
// fresh root from the cache as on the root that memoised the digest.
func TestRemoteCacheCopyFromStageLazy(t *testing.T) {
	root, out := e2e(t)
	host, gets := blobGetRegistry(t)
	base := testenv.BusyboxImage(t)
	testenv.PushImage(t, base, host+"/busybox:latest")
	baseLayers, _ := base.Layers()
	dir := project(t, map[string]string{
		"Dockerfile": "FROM " + host + "/busybox AS builder\n" +
			"RUN echo built > /b.txt\n" +
			"FROM " + host + "/busybox\n" +
			"ARG X\n" +
			"RUN echo $X > /x.txt\n" +
			"COPY --from=builder /b.txt /b.txt\n",
	})
	cacheRef := host + "/cache:main"
	mustBuildLimited(t, dir, "--root", root, "--progress", "plain", "--build-arg", "X=1",
		"--cache-to", "type=registry,ref="+cacheRef+",mode=max", "-o", "type=oci,dest="+filepath.Join(out, "1.tar"), ".")

	// Every step hits on an empty root: no snapshot of the builder or the base.
	gets.reset()
	fresh := t.TempDir()
	r := mustBuildLimited(t, dir, "--root", fresh, "--progress", "plain", "--build-arg", "X=1",
		"--cache-from", "type=registry,ref="+cacheRef, "-t", host+"/app:v1", "--push", ".")
	requireAllCached(t, r.stderr)
	if snaps, _ := filepath.Glob(filepath.Join(fresh, "snapshots", "committed", "*")); len(snaps) > 0 {
		t.Errorf("a build whose steps all hit unpacked %v", snaps)
	}
	for _, l := range baseLayers {
		if d, _ := l.Digest(); gets.count(d) != 0 {
			t.Errorf("the base layer %s was fetched %d times", d, gets.count(d))
		}
	}

	// The COPY misses: on the memoising root and on a fresh one from the cache.
	for _, rt := range []string{root, t.TempDir()} {
		mustBuildLimited(t, dir, "--root", rt, "--progress", "plain", "--build-arg", "X=2",
			"--cache-from", "type=registry,ref="+cacheRef, "-o", "type=oci,dest="+filepath.Join(out, "2.tar"), ".")
		files := flatten(t, readOCI(t, filepath.Join(out, "2.tar")))
		if files["/b.txt"].content != "built\n" || files["/x.txt"].content != "2\n" {
			t.Errorf("root %s: /b.txt %q, /x.txt %q", rt, files["/b.txt"].content, files["/x.txt"].content)
		}
	}
}
