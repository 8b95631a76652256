package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	osexec "os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/compression"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/kiln-build/kiln/internal/testenv"
)

// Issue 3, "Base images and registries": FROM a registry image, push, named contexts,
// platform selection, base config inheritance and registry failures, end to end.

// kilnLimited runs kiln like kiln() but kills it after timeout (a hung push must fail
// the test, not the suite) and with an empty docker config, so credentials of the
// machine never change what a registry answers.
func kilnLimited(t *testing.T, timeout time.Duration, dir string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := osexec.CommandContext(ctx, os.Args[0], args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "KILN_E2E_MAIN=1", "DOCKER_CONFIG="+t.TempDir())
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	start := time.Now()
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errOut.String()}
	if ctx.Err() != nil {
		t.Fatalf("kiln %v did not finish within %s\nstderr:\n%s", args, timeout, r.stderr)
	}
	var ee *osexec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("run kiln %v: %v", args, err)
	}
	t.Logf("kiln %s: exit %d in %s", args[0], r.code, time.Since(start).Round(time.Millisecond))
	return r
}

// mustBuildLimited is mustBuild with kilnLimited's timeout.
func mustBuildLimited(t *testing.T, dir string, args ...string) result {
	t.Helper()
	r := kilnLimited(t, 2*time.Minute, dir, append([]string{"build"}, args...)...)
	if r.code != 0 {
		t.Fatalf("kiln build %v: exit %d\nstdout:\n%s\nstderr:\n%s", args, r.code, r.stdout, r.stderr)
	}
	return r
}

// failBuild runs kiln build, wants it to fail, and wants stderr to contain every one of
// want.
func failBuild(t *testing.T, dir string, want []string, args ...string) result {
	t.Helper()
	r := kilnLimited(t, 2*time.Minute, dir, append([]string{"build"}, args...)...)
	if r.code == 0 {
		t.Fatalf("kiln build %v succeeded, want failure\nstderr:\n%s", args, r.stderr)
	}
	t.Logf("error: %s", lastLine(r.stderr))
	for _, w := range want {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("stderr does not mention %q:\n%s", w, r.stderr)
		}
	}
	return r
}

// remoteImage fetches ref from a registry with ggcr (plain HTTP when insecure).
func remoteImage(t *testing.T, ref string, insecure bool) v1.Image {
	t.Helper()
	var opts []name.Option
	if insecure {
		opts = append(opts, name.Insecure)
	}
	r, err := name.ParseReference(ref, opts...)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(r)
	if err != nil {
		t.Fatalf("fetch %s: %v", ref, err)
	}
	return img
}

// layerInfo is what identifies a layer's stored bytes.
type layerInfo struct {
	Digest, DiffID v1.Hash
	MediaType      types.MediaType
	Size           int64
}

func layerInfos(t *testing.T, img v1.Image) []layerInfo {
	t.Helper()
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	var out []layerInfo
	for _, l := range ls {
		d, err := l.Digest()
		if err != nil {
			t.Fatal(err)
		}
		diff, err := l.DiffID()
		if err != nil {
			t.Fatal(err)
		}
		mt, err := l.MediaType()
		if err != nil {
			t.Fatal(err)
		}
		size, err := l.Size()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, layerInfo{d, diff, mt, size})
	}
	return out
}

// requireBaseLayers fails unless img starts with every layer of base, the same bytes:
// digest, diffID, codec and size equal (a Docker media type may become its OCI
// equivalent), and the compressed bytes img serves hash to the base's digest.
func requireBaseLayers(t *testing.T, img, base v1.Image) {
	t.Helper()
	got, want := layerInfos(t, img), layerInfos(t, base)
	if len(got) <= len(want) {
		t.Fatalf("image has %d layers, want the base's %d plus its own", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		g.MediaType, w.MediaType = ociLayerType(g.MediaType), ociLayerType(w.MediaType)
		if g != w {
			t.Fatalf("base layer %d changed:\n got %+v\nwant %+v", i, got[i], want[i])
		}
	}
	ls, _ := img.Layers()
	for i := range want {
		rc, err := ls[i].Compressed()
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		_, err = io.Copy(h, rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		if sum := "sha256:" + hex.EncodeToString(h.Sum(nil)); sum != want[i].Digest.String() {
			t.Errorf("layer %d bytes hash to %s, want %s", i, sum, want[i].Digest)
		}
	}
}

// ociLayerType is the OCI media type of a Docker layer type (same bytes, other name).
func ociLayerType(mt types.MediaType) types.MediaType {
	switch mt {
	case types.DockerLayer:
		return types.OCILayer
	case types.DockerUncompressedLayer:
		return types.OCIUncompressedLayer
	}
	return mt
}

// tarLayer is an OCI gzip layer holding the given regular files.
func tarLayer(t *testing.T, files map[string]string) v1.Layer {
	t.Helper()
	return codecLayer(t, "gzip", tarBytes(t, files))
}

// tarBytes is a tar of regular files (name → content), in name order; a name ending in
// "/" is a directory.
func tarBytes(t *testing.T, files map[string]string) []byte {
	t.Helper()
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range names {
		content := files[n]
		h := &tar.Header{Typeflag: tar.TypeReg, Name: n, Mode: 0o644, Size: int64(len(content)), ModTime: time.Unix(0, 0)}
		if strings.HasSuffix(n, "/") {
			h.Typeflag, h.Mode, h.Size = tar.TypeDir, 0o755, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(content)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// codecLayer is the tar data as an OCI layer compressed with codec (gzip, zstd or
// uncompressed).
func codecLayer(t *testing.T, codec string, data []byte) v1.Layer {
	t.Helper()
	if codec == "uncompressed" {
		return static.NewLayer(data, types.OCIUncompressedLayer)
	}
	opts := []tarball.LayerOption{tarball.WithMediaType(types.OCILayer)}
	if codec == "zstd" {
		opts = []tarball.LayerOption{tarball.WithCompression(compression.ZStd), tarball.WithMediaType(types.OCILayerZStd)}
	}
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	// As testenv does: hide tarball's Descriptor() (its empty annotations map makes the
	// manifest differ from its serialised form).
	return struct{ v1.Layer }{l}
}

// busyboxVariant is the busybox image plus a layer with files (if any), with its
// config changed by edit.
func busyboxVariant(t *testing.T, files map[string]string, edit func(*v1.ConfigFile)) v1.Image {
	t.Helper()
	img := testenv.BusyboxImage(t)
	var err error
	if len(files) > 0 {
		img, err = mutate.Append(img, mutate.Addendum{Layer: tarLayer(t, files), History: v1.History{CreatedBy: "variant"}})
		if err != nil {
			t.Fatal(err)
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	edit(cf)
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// closedPort is a loopback host:port nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host := l.Addr().String()
	l.Close()
	return host
}

const copyDockerfile = "FROM %s\nCOPY a.txt /a.txt\n"

// The done-when: build FROM HOST/busybox, push to docker-registry, skopeo
// reads it back and its first layer is the base's; -o type=registry pushes every tag.
func TestRegistryPushToDockerRegistry(t *testing.T) {
	t.Parallel()
	root, _ := e2e(t)
	host := testenv.DockerRegistry(t)
	base := testenv.BusyboxImage(t)
	testenv.PushImage(t, base, host+"/busybox:latest")
	dir := project(t, map[string]string{"Dockerfile": fmt.Sprintf(copyDockerfile, host+"/busybox"), "a.txt": "A\n"})

	meta := filepath.Join(t.TempDir(), "meta.json")
	mustBuildLimited(t, dir, "--root", root, "-t", host+"/app:v1", "--push", "--metadata-file", meta, ".")
	app := skopeoInspect(t, "docker://"+host+"/app:v1", "--tls-verify=false")
	bb := skopeoInspect(t, "docker://"+host+"/busybox:latest", "--tls-verify=false")
	appLayers, _ := app["Layers"].([]any)
	bbLayers, _ := bb["Layers"].([]any)
	if len(bbLayers) != 1 || len(appLayers) != 2 || appLayers[0] != bbLayers[0] {
		t.Errorf("skopeo layers: app %v, busybox %v; want the app to start with the busybox layer", appLayers, bbLayers)
	}
	img := remoteImage(t, host+"/app:v1", false)
	requireBaseLayers(t, img, base)
	if f := flatten(t, img); f["/a.txt"].content != "A\n" || f["/bin/busybox"].typ != tar.TypeReg {
		t.Errorf("pushed image lacks /a.txt or /bin/busybox")
	}
	// The metadata file names what was pushed.
	var md map[string]string
	data, err := os.ReadFile(meta)
	if err != nil || json.Unmarshal(data, &md) != nil {
		t.Fatalf("metadata file: %s (%v)", data, err)
	}
	if md["containerimage.digest"] != app["Digest"] || md["image.name"] != host+"/app:v1" {
		t.Errorf("metadata %v, pushed digest %v", md, app["Digest"])
	}

	// -o type=registry with several tags, in two repositories and in two registries:
	// every tag is pushed, and all name the same manifest as v1 (the build is cached,
	// hence identical).
	other := testenv.Registry(t)
	mustBuildLimited(t, dir, "--root", root, "-t", host+"/app:v2", "-t", host+"/team/other:v3", "-t", other+"/app:v4", "-o", "type=registry", ".")
	// Each push is an index of the image and its provenance (whose times differ
	// from build to build without SOURCE_DATE_EPOCH): the image in it is the same.
	want, _ := img.Digest()
	for _, ref := range []string{host + "/app:v2", host + "/team/other:v3", other + "/app:v4"} {
		if got, _ := remoteImage(t, ref, false).Digest(); got != want {
			t.Errorf("%s has image %v, want %s", ref, got, want)
		}
	}

	// name= in the output spec instead of -t.
	mustBuildLimited(t, dir, "--root", root, "-o", "type=registry,name="+host+"/named:v5", ".")
	if got, _ := remoteImage(t, host+"/named:v5", false).Digest(); got != want {
		t.Errorf("name= output has image %v, want %s", got, want)
	}
}

// Push failures say what went wrong and where; nothing to push to is an error.
func TestRegistryPushErrors(t *testing.T) {
	t.Parallel()
	root, _ := e2e(t)
	auth := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("WWW-Authenticate", `Basic realm="kiln-test"`)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	t.Cleanup(auth.Close)
	authHost, gone := testenv.Host(auth), closedPort(t)
	dir := project(t, map[string]string{"Dockerfile": "FROM scratch\nCOPY a.txt /a.txt\n", "a.txt": "a"})
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"needs auth", []string{"-t", authHost + "/app:v1", "--push"}, []string{"push access denied", authHost + "/app:v1", "docker login " + authHost}},
		{"unreachable", []string{"-t", gone + "/app:v1", "--push"}, []string{"cannot reach registry " + gone}},
		{"no tag", []string{"--push"}, []string{"needs a name", "-t"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := failBuild(t, dir, tc.want, append([]string{"--root", root}, append(tc.args, ".")...)...)
			if r.code != 1 {
				t.Errorf("exit %d, want 1", r.code)
			}
		})
	}
}

// countingRegistry is ggcr's registry behind a handler that counts requests, so a test
// can see whether kiln talked to it.
func countingRegistry(t *testing.T) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	srv, n, _ := countingRegistryBlobs(t)
	return srv, n
}

// countingRegistryBlobs also counts the blob requests (layers and configs) apart.
func countingRegistryBlobs(t *testing.T) (*httptest.Server, *atomic.Int64, *atomic.Int64) {
	t.Helper()
	var n, blobs atomic.Int64
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		if strings.Contains(r.URL.Path, "/blobs/") {
			blobs.Add(1)
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &n, &blobs
}

// A tag is resolved with the registry at every build, as BuildKit does: a warm build
// asks for the manifest only (no blob), a moved tag is taken at once, and a pinned
// digest never asks. With the registry gone a tag build fails naming the FROM line and
// suggesting --offline, which builds from the stored image; --pull fetches the
// manifest again and fails the same way without a registry.
func TestRegistryBaseTagResolvedEveryBuild(t *testing.T) {
	t.Parallel()
	root, out := e2e(t)
	srv, requests, blobRequests := countingRegistryBlobs(t)
	host := testenv.Host(srv)
	base := testenv.BusyboxImage(t)
	testenv.PushImage(t, base, host+"/busybox:latest")
	baseDigest, _ := base.Digest()
	dir := project(t, map[string]string{"Dockerfile": fmt.Sprintf(copyDockerfile, host+"/busybox"), "a.txt": "one"})
	pinned := project(t, map[string]string{"Dockerfile": fmt.Sprintf(copyDockerfile, host+"/busybox@"+baseDigest.String()), "a.txt": "pinned"})
	build := func(dir, dest string, extra ...string) v1.Image {
		t.Helper()
		dest = filepath.Join(out, dest)
		mustBuildLimited(t, dir, append([]string{"--root", root, "-o", "type=oci,dest=" + dest}, append(extra, ".")...)...)
		return readOCI(t, dest)
	}
	hasMoved := func(img v1.Image) bool {
		_, ok := flatten(t, img)["/moved.txt"]
		return ok
	}

	build(dir, "1.tar")
	build(pinned, "1-pinned.tar")
	if requests.Load() == 0 {
		t.Fatal("the first builds did not talk to the registry")
	}
	requests.Store(0)
	blobRequests.Store(0)
	build(dir, "2.tar")
	if requests.Load() == 0 {
		t.Error("a warm build of a tag did not ask the registry what the tag names")
	}
	if n := blobRequests.Load(); n != 0 {
		t.Errorf("a warm build fetched %d blobs, want 0 (the image is in the store)", n)
	}
	requests.Store(0)
	build(pinned, "2-pinned.tar")
	if n := requests.Load(); n != 0 {
		t.Errorf("a build of a pinned digest made %d registry requests, want 0", n)
	}

	// The tag moves: the next build takes the new image.
	testenv.PushImage(t, busyboxVariant(t, map[string]string{"moved.txt": "x"}, func(*v1.ConfigFile) {}), host+"/busybox:latest")
	if !hasMoved(build(dir, "3.tar")) {
		t.Error("the build kept the image the tag named before it moved")
	}
	if !hasMoved(build(dir, "4.tar", "--pull")) {
		t.Error("--pull did not take the moved tag")
	}

	srv.Close()
	if err := os.WriteFile(filepath.Join(dir, "a.txt"), []byte("two"), 0o644); err != nil {
		t.Fatal(err)
	}
	failBuild(t, dir, []string{"Dockerfile:1", "cannot reach registry " + host, "--offline"}, "--root", root, "-o", "type=oci,dest="+filepath.Join(out, "5.tar"), ".")
	if _, err := os.Stat(filepath.Join(out, "5.tar")); err == nil {
		t.Error("a failed build left its output")
	}
	// --offline: the COPY runs again on the stored (moved) base, and says so.
	r := mustBuildLimited(t, dir, "--root", root, "--offline", "--progress", "plain", "-o", "type=oci,dest="+filepath.Join(out, "6.tar"), ".")
	if !strings.Contains(r.stdout+r.stderr, "offline: using the stored") {
		t.Errorf("--offline did not say it used the stored image:\n%s", r.stderr)
	}
	if f := flatten(t, readOCI(t, filepath.Join(out, "6.tar"))); f["/a.txt"].content != "two" || f["/moved.txt"].content != "x" {
		t.Errorf("offline build: /a.txt = %q, /moved.txt = %q; want two and x", f["/a.txt"].content, f["/moved.txt"].content)
	}
	if err := os.WriteFile(filepath.Join(pinned, "a.txt"), []byte("pinned two"), 0o644); err != nil {
		t.Fatal(err)
	}
	requireBaseLayers(t, build(pinned, "7-pinned.tar"), base)

	failBuild(t, dir, []string{"Dockerfile:1", "cannot reach registry " + host}, "--root", root, "--pull", "-o", "type=oci,dest="+filepath.Join(out, "8.tar"), ".")
	failBuild(t, dir, []string{"--pull", "--offline"}, "--root", root, "--pull", "--offline", ".")
}

// Registry failures of FROM name the line and say what went wrong.
func TestRegistryFromErrors(t *testing.T) {
	t.Parallel()
	root, _ := e2e(t)
	host := busyboxRegistry(t)
	auth := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("WWW-Authenticate", `Basic realm="kiln-test"`)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
	}))
	t.Cleanup(auth.Close)
	authHost := testenv.Host(auth)
	gone := closedPort(t)

	for _, tc := range []struct {
		name, from string
		want       []string
		anyOf      []string
	}{
		{"unknown image", host + "/nope:v1", []string{"Dockerfile:1", host + "/nope:v1", "not found"}, nil},
		{"unknown tag", host + "/busybox:nope", []string{"Dockerfile:1", "not found"}, nil},
		{"unreachable registry", gone + "/busybox", []string{"Dockerfile:1", "cannot reach registry " + gone}, nil},
		{"registry needs auth", authHost + "/private/busybox", []string{"Dockerfile:1", "docker login " + authHost}, []string{"denied", "unauthorized"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := project(t, map[string]string{"Dockerfile": fmt.Sprintf(copyDockerfile, tc.from), "a.txt": "a"})
			r := failBuild(t, dir, tc.want, "--root", root, "-o", "type=tar,dest="+filepath.Join(dir, "out.tar"), ".")
			if len(tc.anyOf) > 0 && !containsAny(r.stderr, tc.anyOf) {
				t.Errorf("stderr mentions none of %q:\n%s", tc.anyOf, r.stderr)
			}
			if r.code != 1 {
				t.Errorf("exit %d, want 1", r.code)
			}
		})
	}
}

// lastLine is the last non-empty line of s (kiln prints its error last).
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(strings.ToLower(s), sub) {
			return true
		}
	}
	return false
}

// A multi-platform base: the build picks the host's image (by default and by
// --platform), and takes another platform's manifest for --platform of it.
func TestRegistryPlatformFromIndex(t *testing.T) {
	t.Parallel()
	root, out := e2e(t)
	host := testenv.Registry(t)
	hostArch, otherArch := runtime.GOARCH, "arm64"
	if hostArch == "arm64" {
		otherArch = "amd64"
	}
	variant := func(arch string) v1.Image {
		return busyboxVariant(t, map[string]string{"which.txt": arch}, func(cf *v1.ConfigFile) {
			cf.Architecture = arch
			cf.Config.Labels = map[string]string{"which": arch}
		})
	}
	// The other platform comes first, so taking the first manifest would be caught.
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
		mutate.IndexAddendum{Add: variant(otherArch), Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: otherArch}}},
		mutate.IndexAddendum{Add: variant(hostArch), Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: hostArch}}},
	)
	testenv.PushIndex(t, idx, host+"/multi:latest")
	dir := project(t, map[string]string{"Dockerfile": fmt.Sprintf(copyDockerfile, host+"/multi"), "a.txt": "a"})

	for _, tc := range []struct{ name, platform string }{{"default", ""}, {"explicit", "linux/" + hostArch}} {
		args := []string{"--root", root, "-o", "type=oci,dest=" + filepath.Join(out, tc.name+".tar")}
		if tc.platform != "" {
			args = append(args, "--platform", tc.platform)
		}
		mustBuildLimited(t, dir, append(args, ".")...)
		img := readOCI(t, filepath.Join(out, tc.name+".tar"))
		cf := config(t, img)
		if cf.Architecture != hostArch || cf.Config.Labels["which"] != hostArch {
			t.Errorf("%s: architecture %s, label which=%s; want %s", tc.name, cf.Architecture, cf.Config.Labels["which"], hostArch)
		}
		if f := flatten(t, img); f["/which.txt"].content != hostArch {
			t.Errorf("%s: /which.txt = %q, want %s", tc.name, f["/which.txt"].content, hostArch)
		}
	}
	// An index without the host's platform.
	testenv.PushIndex(t, mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
		mutate.IndexAddendum{Add: variant(otherArch), Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: otherArch}}},
	), host+"/foreign:latest")
	foreign := project(t, map[string]string{"Dockerfile": fmt.Sprintf(copyDockerfile, host+"/foreign"), "a.txt": "a"})
	failBuild(t, foreign, []string{"Dockerfile:1", "linux/" + hostArch}, "--root", root, "-o", "type=oci,dest="+filepath.Join(out, "foreign.tar"), ".")

	// Another platform takes its own manifest (a COPY needs no emulator).
	mustBuildLimited(t, dir, "--root", root, "--platform", "linux/"+otherArch, "-o", "type=oci,dest="+filepath.Join(out, "other.tar"), ".")
	if cf := config(t, readOCI(t, filepath.Join(out, "other.tar"))); cf.Architecture != otherArch || cf.Config.Labels["which"] != otherArch {
		t.Errorf("--platform linux/%s: architecture %s, label which=%s", otherArch, cf.Architecture, cf.Config.Labels["which"])
	}
}

// Named contexts: an OCI layout and a registry image as FROM and COPY --from sources,
// and a directory as a COPY --from source.
func TestRegistryNamedContexts(t *testing.T) {
	t.Parallel()
	root, out := e2e(t)
	host := busyboxRegistry(t)
	base := testenv.BusyboxImage(t)
	layoutDir := t.TempDir()
	if err := testenv.WriteBusyboxOCILayout(layoutDir); err != nil {
		t.Fatal(err)
	}
	files := project(t, map[string]string{"a.txt": "from the named dir"})
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatal(err)
	}
	contexts := []string{
		"--build-context", "base=oci-layout://" + layoutDir + ":latest",
		"--build-context", "img=docker-image://" + host + "/busybox:latest",
		"--build-context", "files=" + files,
	}

	t.Run("oci-layout base, image and dir sources", func(t *testing.T) {
		dir := project(t, map[string]string{
			"Dockerfile": "FROM base\nCOPY --from=img /bin/busybox /bb\nCOPY --from=files a.txt /a.txt\n",
			"a.txt":      "from the main context",
		})
		dest := filepath.Join(out, "layout.tar")
		mustBuildLimited(t, dir, append(append([]string{"--root", root}, contexts...), "-o", "type=oci,dest="+dest, ".")...)
		img := readOCI(t, dest)
		requireBaseLayers(t, img, base)
		f := flatten(t, img)
		if f["/a.txt"].content != "from the named dir" {
			t.Errorf("/a.txt = %q, want the named dir's", f["/a.txt"].content)
		}
		if f["/bb"].content != string(bb) || f["/bb"].mode != 0o755 {
			t.Errorf("/bb is not busybox from the image context (%d bytes, mode %o)", len(f["/bb"].content), f["/bb"].mode)
		}
	})
	t.Run("docker-image base", func(t *testing.T) {
		dir := project(t, map[string]string{"Dockerfile": "FROM img\nCOPY a.txt /a.txt\n", "a.txt": "main"})
		dest := filepath.Join(out, "image.tar")
		mustBuildLimited(t, dir, append(append([]string{"--root", root}, contexts...), "-o", "type=oci,dest="+dest, ".")...)
		img := readOCI(t, dest)
		requireBaseLayers(t, img, base)
		if f := flatten(t, img); f["/a.txt"].content != "main" {
			t.Errorf("/a.txt = %q", f["/a.txt"].content)
		}
	})
	// As in BuildKit, a FROM or --from names a context by its familiar name: the
	// normalised spelling of "busybox" finds the context "busybox".
	t.Run("normalised name", func(t *testing.T) {
		dir := project(t, map[string]string{"Dockerfile": "FROM docker.io/library/busybox:latest\nCOPY --from=index.docker.io/library/busybox /bin/busybox /bb\n"})
		dest := filepath.Join(out, "normalised.tar")
		mustBuildLimited(t, dir, "--root", root, "--build-context", "busybox=oci-layout://"+layoutDir+":latest", "-o", "type=oci,dest="+dest, ".")
		img := readOCI(t, dest)
		requireBaseLayers(t, img, base)
		if f := flatten(t, img); f["/bb"].content != string(bb) {
			t.Errorf("/bb is not busybox from the named context")
		}
	})
	// A directory context has its own .dockerignore, as the main context does.
	t.Run("dir context dockerignore", func(t *testing.T) {
		files := project(t, map[string]string{"keep.txt": "keep", "secret.txt": "secret", ".dockerignore": "secret.txt\n"})
		dir := project(t, map[string]string{"Dockerfile": "FROM scratch\nCOPY --from=files . /files/\n"})
		dest := filepath.Join(out, "ignore.tar")
		mustBuildLimited(t, dir, "--root", root, "--build-context", "files="+files, "-o", "type=oci,dest="+dest, ".")
		f := flatten(t, readOCI(t, dest))
		if f["/files/keep.txt"].content != "keep" {
			t.Errorf("/files/keep.txt missing")
		}
		if _, ok := f["/files/secret.txt"]; ok {
			t.Errorf("a file the named context's .dockerignore excludes was copied")
		}
	})
	t.Run("dir is not an image", func(t *testing.T) {
		dir := project(t, map[string]string{"Dockerfile": "FROM files\n"})
		failBuild(t, dir, []string{"Dockerfile:1", "files"}, append(append([]string{"--root", root}, contexts...), "-o", "type=tar,dest="+filepath.Join(out, "x.tar"), ".")...)
	})
}

// A FROM image's config is the child's starting config: every field is kept, and the
// base's ONBUILD triggers run first in the child and are not inherited.
func TestRegistryBaseConfigInherited(t *testing.T) {
	t.Parallel()
	root, out := e2e(t)
	host := testenv.Registry(t)
	full := busyboxVariant(t, nil, func(cf *v1.ConfigFile) {
		cf.Config.Env = []string{testenv.BusyboxEnvPath, "FOO=bar", "EMPTY="}
		cf.Config.Cmd = []string{"-c", "echo hi"}
		cf.Config.Entrypoint = []string{"/bin/sh"}
		cf.Config.WorkingDir = "/srv/app"
		cf.Config.User = "app"
		cf.Config.Labels = map[string]string{"org.example.base": "yes", "tier": "base"}
		cf.Config.ExposedPorts = map[string]struct{}{"80/tcp": {}, "53/udp": {}}
		cf.Config.Volumes = map[string]struct{}{"/data": {}}
		cf.Config.StopSignal = "SIGQUIT"
		cf.Config.Healthcheck = &v1.HealthConfig{Test: []string{"CMD-SHELL", "true"}, Interval: 30 * time.Second, Timeout: 5 * time.Second, StartPeriod: time.Second, Retries: 4}
		cf.Config.Shell = []string{"/bin/sh", "-ec"}
	})
	testenv.PushImage(t, full, host+"/full:latest")
	onbuild := busyboxVariant(t, nil, func(cf *v1.ConfigFile) {
		cf.Config.OnBuild = []string{"RUN echo triggered > /onbuild.txt"}
	})
	testenv.PushImage(t, onbuild, host+"/onbuild:latest")

	t.Run("config", func(t *testing.T) {
		dir := project(t, map[string]string{"Dockerfile": fmt.Sprintf(copyDockerfile, host+"/full"), "a.txt": "a"})
		dest := filepath.Join(out, "full.tar")
		mustBuildLimited(t, dir, "--root", root, "-o", "type=oci,dest="+dest, ".")
		img := readOCI(t, dest)
		requireBaseLayers(t, img, full)
		got, want := config(t, img), config(t, full)
		if !reflect.DeepEqual(got.Config, want.Config) {
			t.Errorf("config changed:\n got %+v\nwant %+v", got.Config, want.Config)
		}
		if got.Architecture != want.Architecture || got.OS != want.OS {
			t.Errorf("platform %s/%s, want %s/%s", got.OS, got.Architecture, want.OS, want.Architecture)
		}
		if len(got.History) != len(want.History)+1 || !reflect.DeepEqual(got.History[:len(want.History)], want.History) {
			t.Errorf("history does not start with the base's:\n got %+v\nwant %+v", got.History, want.History)
		}
	})
	t.Run("onbuild", func(t *testing.T) {
		dir := project(t, map[string]string{"Dockerfile": fmt.Sprintf(copyDockerfile, host+"/onbuild"), "a.txt": "a"})
		dest := filepath.Join(out, "onbuild.tar")
		mustBuildLimited(t, dir, "--root", root, "-o", "type=oci,dest="+dest, ".")
		img := readOCI(t, dest)
		if f := flatten(t, img); f["/onbuild.txt"].content != "triggered\n" || f["/a.txt"].content != "a" {
			t.Errorf("/onbuild.txt = %q, /a.txt = %q; want the trigger's output and the COPY", f["/onbuild.txt"].content, f["/a.txt"].content)
		}
		if ob := config(t, img).Config.OnBuild; len(ob) != 0 {
			t.Errorf("child inherited the triggers: %q", ob)
		}
	})
}

// Base layers reach every output byte for byte, whatever compression kiln uses for the
// layers it makes (one store: a step is cached per layer codec).
func TestRegistryBaseLayersKeptByteForByte(t *testing.T) {
	t.Parallel()
	root, out := e2e(t)
	host := busyboxRegistry(t)
	base := testenv.BusyboxImage(t)
	bl, _ := base.Layers()
	baseDigest, _ := bl[0].Digest()
	dir := project(t, map[string]string{"Dockerfile": fmt.Sprintf(copyDockerfile, host+"/busybox"), "a.txt": "a"})
	for _, c := range []string{"gzip", "zstd", "uncompressed"} {
		dest := filepath.Join(out, c+".tar")
		mustBuildLimited(t, dir, "--root", root, "-o", "type=oci,dest="+dest+",compression="+c, "-o", "type=docker,dest="+dest+".docker", ".")
		img := readOCIAnyCompression(t, dest)
		requireBaseLayers(t, img, base)
		if f := flatten(t, img); f["/a.txt"].content != "a" {
			t.Errorf("compression=%s: /a.txt = %q", c, f["/a.txt"].content)
		}
		own := layerInfos(t, img)[1]
		wantMT := map[string]types.MediaType{"gzip": types.OCILayer, "zstd": types.OCILayerZStd, "uncompressed": types.OCIUncompressedLayer}[c]
		if own.MediaType != wantMT {
			t.Errorf("compression=%s: kiln's own layer is %s, want %s", c, own.MediaType, wantMT)
		}
		// The docker archive's first layer file is the base's blob, unchanged.
		dockerDir := t.TempDir()
		untar(t, dest+".docker", dockerDir)
		var manifest []struct{ Layers []string }
		data, err := os.ReadFile(filepath.Join(dockerDir, "manifest.json"))
		if err != nil || json.Unmarshal(data, &manifest) != nil || len(manifest) != 1 || len(manifest[0].Layers) != 2 {
			t.Fatalf("compression=%s: docker manifest.json = %s (%v)", c, data, err)
		}
		blob, err := os.ReadFile(filepath.Join(dockerDir, manifest[0].Layers[0]))
		if err != nil {
			t.Fatal(err)
		}
		if sum := sha256.Sum256(blob); "sha256:"+hex.EncodeToString(sum[:]) != baseDigest.String() {
			t.Errorf("compression=%s: docker archive's first layer %s is not the base's blob %s", c, manifest[0].Layers[0], baseDigest)
		}
		if c == "gzip" {
			mustBuildLimited(t, dir, "--root", root, "-t", host+"/app:v1", "--push", ".")
			requireBaseLayers(t, remoteImage(t, host+"/app:v1", false), base)
		}
	}

	// A base with Docker media types (schema 2): its layer blob is kept as is, named by
	// its OCI media type in kiln's OCI manifest, and umoci accepts the result.
	ls, _ := base.Layers()
	cf, _ := base.ConfigFile()
	docker, err := mutate.Append(mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.DockerManifestSchema2), types.DockerConfigJSON),
		mutate.Addendum{Layer: ls[0], MediaType: types.DockerLayer})
	if err != nil {
		t.Fatal(err)
	}
	if docker, err = mutate.ConfigFile(docker, cf); err != nil {
		t.Fatal(err)
	}
	testenv.PushImage(t, docker, host+"/docker-busybox:latest")
	dir = project(t, map[string]string{"Dockerfile": fmt.Sprintf(copyDockerfile, host+"/docker-busybox"), "a.txt": "a"})
	dest := filepath.Join(out, "docker-base.tar")
	mustBuildLimited(t, dir, "--root", root, "-o", "type=oci,dest="+dest, ".")
	img := readOCI(t, dest)
	requireBaseLayers(t, img, docker)
	if mt, _ := img.MediaType(); mt != types.OCIManifestSchema1 {
		t.Errorf("manifest media type %s, want OCI", mt)
	}
	for i, l := range layerInfos(t, img) {
		if l.MediaType != types.OCILayer {
			t.Errorf("layer %d has media type %s in an OCI manifest", i, l.MediaType)
		}
	}
	if data, err := os.ReadFile(filepath.Join(umociUnpack(t, dest), "a.txt")); err != nil || string(data) != "a" {
		t.Errorf("umoci: a.txt = %q, %v", data, err)
	}
}

// flakyProxy is a reverse proxy in front of a registry that, while failing, lets one
// blob upload through and then fails every other blob upload (with a 500 or by dropping
// the connection). It records which blobs arrived.
type flakyProxy struct {
	next    http.Handler
	mode    string // "500" or "drop"
	failing atomic.Bool

	mu        sync.Mutex
	passes    int           // uploads still let through while failing
	firstDone chan struct{} // closed when a blob upload completed
	closed    bool
	posts     int            // upload starts seen
	arrived   map[string]int // digest → completed uploads
}

var uploadPath = "/blobs/uploads/"

func (p *flakyProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	isUpload := strings.HasPrefix(r.URL.Path, "/v2/") && strings.Contains(r.URL.Path, uploadPath)
	if isUpload && r.Method == http.MethodPost {
		p.mu.Lock()
		p.posts++
		pass := !p.failing.Load() || p.passes > 0
		if pass && p.failing.Load() {
			p.passes--
		}
		p.mu.Unlock()
		if !pass {
			// Fail only once a blob has arrived, so the next run has one to skip.
			select {
			case <-p.firstDone:
			case <-time.After(10 * time.Second):
			}
			p.fail(w)
			return
		}
	}
	if isUpload && r.Method == http.MethodPut && r.URL.Query().Get("digest") != "" {
		rec := &statusRecorder{ResponseWriter: w}
		p.next.ServeHTTP(rec, r)
		if rec.status == http.StatusCreated {
			p.mu.Lock()
			p.arrived[r.URL.Query().Get("digest")]++
			if !p.closed {
				p.closed = true
				close(p.firstDone)
			}
			p.mu.Unlock()
		}
		return
	}
	p.next.ServeHTTP(w, r)
}

func (p *flakyProxy) fail(w http.ResponseWriter) {
	if p.mode == "drop" {
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				conn.Close()
				return
			}
		}
	}
	http.Error(w, "injected failure", http.StatusInternalServerError)
}

// snapshot returns and resets the counters.
func (p *flakyProxy) snapshot() (posts int, arrived map[string]int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	posts, arrived = p.posts, p.arrived
	p.posts, p.arrived = 0, map[string]int{}
	return posts, arrived
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

// A registry failing mid-push: the push fails after bounded retries, without hanging,
// with an error naming the push; the next run completes it and does not upload again
// the blobs that arrived.
func TestRegistryPushFailsMidway(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"500", "drop"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			root, _ := e2e(t)
			baseHost := busyboxRegistry(t)
			target, err := url.Parse("http://" + testenv.Registry(t))
			if err != nil {
				t.Fatal(err)
			}
			proxy := &flakyProxy{next: httputil.NewSingleHostReverseProxy(target), mode: mode, passes: 1,
				firstDone: make(chan struct{}), arrived: map[string]int{}}
			proxy.failing.Store(true)
			srv := httptest.NewServer(proxy)
			t.Cleanup(srv.Close)
			host := testenv.Host(srv)
			dir := project(t, map[string]string{"Dockerfile": fmt.Sprintf(copyDockerfile, baseHost+"/busybox"), "a.txt": "a"})
			// Without the default provenance, so that the image's two blobs are all
			// a push sends.
			args := []string{"build", "--root", root, "-t", host + "/app:v1", "--push", "--provenance=false", "."}

			r := kilnLimited(t, 90*time.Second, dir, args...)
			if r.code == 0 {
				t.Fatalf("push through a failing registry succeeded\nstderr:\n%s", r.stderr)
			}
			for _, w := range []string{"push", host + "/app:v1"} {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr does not mention %q:\n%s", w, r.stderr)
				}
			}
			t.Logf("error: %s", lastLine(r.stderr))
			posts1, arrived1 := proxy.snapshot()
			t.Logf("failing run: %d upload starts, arrived %v", posts1, arrived1)
			if len(arrived1) != 1 {
				t.Fatalf("failing run: %d blobs arrived, want 1 (the proxy lets one through)", len(arrived1))
			}
			if posts1 < 3 {
				t.Errorf("failing run: %d upload starts; the failed uploads were not retried", posts1)
			}

			proxy.failing.Store(false)
			r = kilnLimited(t, 90*time.Second, dir, args...)
			if r.code != 0 {
				t.Fatalf("push through the healthy registry: exit %d\n%s", r.code, r.stderr)
			}
			posts2, arrived2 := proxy.snapshot()
			t.Logf("healthy run: %d upload starts, arrived %v", posts2, arrived2)
			for d := range arrived1 {
				if arrived2[d] > 0 {
					t.Errorf("blob %s was uploaded again", d)
				}
			}
			img := remoteImage(t, host+"/app:v1", false)
			ls, _ := img.Layers()
			total := len(ls) + 1 // and the config
			if posts2 != total-len(arrived1) || len(arrived2) != total-len(arrived1) {
				t.Errorf("healthy run: %d upload starts, %d blobs arrived; want %d each", posts2, len(arrived2), total-len(arrived1))
			}
			if f := flatten(t, img); f["/a.txt"].content != "a" {
				t.Errorf("pushed image lacks /a.txt")
			}
		})
	}
}

// --insecure-registry: a registry on 127.0.0.2 serves plain HTTP but its name is not one
// ggcr assumes is local (only localhost, 127.0.0.1, ::1, *.local and RFC 1918
// addresses are), so kiln speaks HTTPS to it unless told; with the flag, pull and push
// work.
func TestRegistryInsecureFlag(t *testing.T) {
	t.Parallel()
	root, _ := e2e(t)
	l, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Skipf("cannot listen on 127.0.0.2: %v", err)
	}
	srv := httptest.NewUnstartedServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	host := testenv.Host(srv)
	ref, err := name.ParseReference(host+"/busybox:latest", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	base := testenv.BusyboxImage(t)
	if err := remote.Write(ref, base); err != nil {
		t.Fatal(err)
	}
	dir := project(t, map[string]string{"Dockerfile": fmt.Sprintf(copyDockerfile, host+"/busybox"), "a.txt": "a"})

	failBuild(t, dir, []string{"Dockerfile:1", "--insecure-registry " + host}, "--root", root, "-t", host+"/app:v1", "--push", ".")
	// The host without its port matches any port, as docker's flag does.
	mustBuildLimited(t, dir, "--root", root, "--insecure-registry", "127.0.0.2", "-t", host+"/app:v1", "--push", ".")
	img := remoteImage(t, host+"/app:v1", true)
	requireBaseLayers(t, img, base)

	// Push alone needs the flag too: a base from a local registry, the tag on 127.0.0.2.
	local := busyboxRegistry(t)
	dir2 := project(t, map[string]string{"Dockerfile": fmt.Sprintf(copyDockerfile, local+"/busybox"), "a.txt": "b"})
	failBuild(t, dir2, []string{"--insecure-registry " + host}, "--root", root, "-t", host+"/app:v2", "--push", ".")
	mustBuildLimited(t, dir2, "--root", root, "--insecure-registry", host, "-t", host+"/app:v2", "--push", ".")
	if f := flatten(t, remoteImage(t, host+"/app:v2", true)); f["/a.txt"].content != "b" {
		t.Errorf("pushed app:v2 lacks /a.txt")
	}
}

// A base whose layers use every codec and whiteouts: the upper layers delete a file
// and make a directory opaque. RUN in the child sees the merged filesystem, and the
// output keeps the base's layers as they are.
func TestRegistryBaseLayerCodecsAndWhiteouts(t *testing.T) {
	t.Parallel()
	root, out := e2e(t)
	host := testenv.Registry(t)
	img := testenv.BusyboxImage(t)
	for _, l := range []struct {
		codec string
		files map[string]string
	}{
		{"gzip", map[string]string{"dir/": "", "dir/a": "a", "dir/b": "b", "gone.txt": "gone", "kept.txt": "kept"}},
		{"zstd", map[string]string{".wh.gone.txt": "", "dir/": "", "dir/.wh..wh..opq": "", "dir/c": "c"}},
		{"uncompressed", map[string]string{"plain.txt": "plain"}},
	} {
		var err error
		img, err = mutate.Append(img, mutate.Addendum{Layer: codecLayer(t, l.codec, tarBytes(t, l.files)), History: v1.History{CreatedBy: l.codec}})
		if err != nil {
			t.Fatal(err)
		}
	}
	testenv.PushImage(t, img, host+"/layered:latest")
	dir := project(t, map[string]string{"Dockerfile": "FROM " + host + "/layered\n" +
		"RUN ls /dir > /listing && cat /kept.txt /plain.txt > /merged && if test -e /gone.txt; then echo present; else echo absent; fi > /gone-state\n"})
	dest := filepath.Join(out, "img.tar")
	mustBuildLimited(t, dir, "--root", root, "-o", "type=oci,dest="+dest, ".")
	got := readOCIAnyCompression(t, dest)
	requireBaseLayers(t, got, img)
	f := flatten(t, got)
	for p, want := range map[string]string{"/listing": "c\n", "/merged": "keptplain", "/gone-state": "absent\n"} {
		if f[p].content != want {
			t.Errorf("%s = %q, want %q", p, f[p].content, want)
		}
	}
	if _, ok := f["/gone.txt"]; ok {
		t.Error("/gone.txt survived its whiteout in the output")
	}
}

// Pushing to the registry the base came from does not upload the base's layers again:
// docker-registry mounts them from the base's repository.
func TestRegistryPushReusesBaseLayers(t *testing.T) {
	t.Parallel()
	root, _ := e2e(t)
	target, err := url.Parse("http://" + testenv.DockerRegistry(t))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var uploads, mounts []string
	next := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, uploadPath) {
			mu.Lock()
			if d := r.URL.Query().Get("mount"); r.Method == http.MethodPost && d != "" {
				mounts = append(mounts, d)
			}
			if d := r.URL.Query().Get("digest"); r.Method == http.MethodPut && d != "" {
				uploads = append(uploads, d)
			}
			mu.Unlock()
		}
		next.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	host := testenv.Host(srv)
	base := testenv.BusyboxImage(t)
	testenv.PushImage(t, base, host+"/busybox:latest")
	bl, _ := base.Layers()
	baseDigest, _ := bl[0].Digest()
	mu.Lock()
	uploads, mounts = nil, nil
	mu.Unlock()

	dir := project(t, map[string]string{"Dockerfile": fmt.Sprintf(copyDockerfile, host+"/busybox"), "a.txt": "a"})
	mustBuildLimited(t, dir, "--root", root, "-t", host+"/team/app:v1", "--push", ".")
	mu.Lock()
	defer mu.Unlock()
	t.Logf("uploads %v, mounts %v", uploads, mounts)
	if slices.Contains(uploads, baseDigest.String()) {
		t.Errorf("the base layer %s was uploaded again", baseDigest)
	}
	if !slices.Contains(mounts, baseDigest.String()) {
		t.Errorf("the base layer %s was not mounted from the base's repository (mounts %v)", baseDigest, mounts)
	}
	// kiln's layer and the config, and the default provenance's statement and its
	// attestation manifest's empty config.
	if len(uploads) != 4 || !slices.Contains(uploads, "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a") {
		t.Errorf("%d blobs uploaded, want 4 (kiln's layer, the config, the provenance and the empty config)", len(uploads))
	}
	requireBaseLayers(t, remoteImage(t, host+"/team/app:v1", false), base)
}

// A registry that serves a corrupt layer blob: the pull fails on the FROM line (the
// blob does not match its digest) and nothing bad is stored, so the next build, with
// the registry serving the right bytes, succeeds.
func TestRegistryPullVerifiesBlobs(t *testing.T) {
	t.Parallel()
	root, out := e2e(t)
	target, err := url.Parse("http://" + busyboxRegistry(t))
	if err != nil {
		t.Fatal(err)
	}
	base := testenv.BusyboxImage(t)
	bl, _ := base.Layers()
	layerDigest, _ := bl[0].Digest()
	var corrupt atomic.Bool
	corrupt.Store(true)
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.ModifyResponse = func(resp *http.Response) error {
		if !corrupt.Load() || resp.Request.Method != http.MethodGet || !strings.HasSuffix(resp.Request.URL.Path, "/blobs/"+layerDigest.String()) {
			return nil
		}
		data, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		// Same length, one byte changed deep inside the gzip stream.
		data[len(data)/2] ^= 0xff
		resp.Body = io.NopCloser(bytes.NewReader(data))
		return nil
	}
	srv := httptest.NewServer(proxy)
	t.Cleanup(srv.Close)
	host := testenv.Host(srv)
	dir := project(t, map[string]string{"Dockerfile": fmt.Sprintf(copyDockerfile, host+"/busybox"), "a.txt": "a"})

	failBuild(t, dir, []string{"Dockerfile:1", host + "/busybox", "checksum"}, "--root", root, "-o", "type=oci,dest="+filepath.Join(out, "bad.tar"), ".")
	corrupt.Store(false)
	dest := filepath.Join(out, "good.tar")
	mustBuildLimited(t, dir, "--root", root, "-o", "type=oci,dest="+dest, ".")
	requireBaseLayers(t, readOCI(t, dest), base)
}
