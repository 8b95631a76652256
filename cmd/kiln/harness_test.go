package main

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/kiln-build/kiln/exec"
	"github.com/kiln-build/kiln/internal/testenv"
)

// The end-to-end tests run this test binary as kiln itself: with KILN_E2E_MAIN=1 it is
// kiln's main (so the sandbox's re-exec of /proc/self/exe lands here too). This tests
// the real CLI, flags, exit codes and outputs without a separate go build.
func TestMain(m *testing.M) {
	exec.MaybeInit()
	// A copy named kiln (the rootless and container tests run one) is kiln even
	// where KILN_E2E_MAIN was lost: it must never run the test suite again.
	if os.Getenv("KILN_E2E_MAIN") == "1" || filepath.Base(os.Args[0]) == "kiln" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// result is one kiln invocation.
type result struct {
	stdout, stderr string
	code           int
}

// kiln runs kiln with args, in dir, and returns what it printed and its exit code.
func kiln(t *testing.T, dir string, args ...string) result {
	t.Helper()
	return kilnStdin(t, dir, nil, args...)
}

func kilnStdin(t *testing.T, dir string, stdin io.Reader, args ...string) result {
	t.Helper()
	cmd := osexec.Command(os.Args[0], args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "KILN_E2E_MAIN=1")
	cmd.Stdin = stdin
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errOut.String()}
	var ee *osexec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("run kiln %v: %v", args, err)
	}
	return r
}

// mustBuild runs kiln build and fails the test unless it exits 0.
func mustBuild(t *testing.T, dir string, args ...string) result {
	t.Helper()
	r := kiln(t, dir, append([]string{"build"}, args...)...)
	if r.code != 0 {
		t.Fatalf("kiln build %v: exit %d\nstdout:\n%s\nstderr:\n%s", args, r.code, r.stdout, r.stderr)
	}
	return r
}

// project makes a context dir with files (name → content; a name ending in "/" is a
// dir) and returns it.
func project(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if strings.HasSuffix(name, "/") {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// e2e prepares a root-only end-to-end test: its store dir and an output dir.
func e2e(t *testing.T) (root, out string) {
	t.Helper()
	testenv.RequireRoot(t)
	return t.TempDir(), t.TempDir()
}

// busyboxRegistry serves the busybox test image at HOST/busybox:latest and returns HOST.
func busyboxRegistry(t *testing.T) string {
	t.Helper()
	host := testenv.Registry(t)
	testenv.PushImage(t, testenv.BusyboxImage(t), host+"/busybox:latest")
	return host
}

// readOCI opens an OCI layout tarball written by kiln, checks it with ggcr's full
// validator (which gunzips every layer) and returns its single image.
func readOCI(t *testing.T, tarPath string) v1.Image {
	t.Helper()
	img := readOCIAnyCompression(t, tarPath)
	if err := validate.Image(img); err != nil {
		t.Fatalf("validate image: %v", err)
	}
	return img
}

// readOCIAnyCompression is readOCI for zstd and uncompressed layers too: ggcr's full
// validation gunzips every layer, so only the manifest and config are validated here
// (requireBaseLayers and flatten check the layers).
func readOCIAnyCompression(t *testing.T, tarPath string) v1.Image {
	t.Helper()
	dir := t.TempDir()
	untar(t, tarPath, dir)
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatalf("read OCI layout %s: %v", tarPath, err)
	}
	m, err := idx.IndexManifest()
	if err != nil || len(m.Manifests) != 1 {
		t.Fatalf("index of %s: %+v, %v; want one manifest", tarPath, m, err)
	}
	img, err := idx.Image(m.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(img, validate.Fast); err != nil {
		t.Fatalf("validate image: %v", err)
	}
	return img
}

func untar(t *testing.T, tarPath, dir string) {
	t.Helper()
	cmd := osexec.Command("tar", "-xf", tarPath, "-C", dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("untar %s: %v\n%s", tarPath, err, out)
	}
}

// fileEntry is one path of a flattened image.
type fileEntry struct {
	typ      byte
	mode     int64
	uid, gid int
	content  string
	link     string
}

// flatten applies the image's layers (whiteouts included) with ggcr and lists the result.
func flatten(t *testing.T, img v1.Image) map[string]fileEntry {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	return listTar(t, rc)
}

func listTar(t *testing.T, r io.Reader) map[string]fileEntry {
	t.Helper()
	files := map[string]fileEntry{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatalf("read tar: %v", err)
		}
		var content []byte
		if h.Typeflag == tar.TypeReg {
			content, _ = io.ReadAll(tr)
		}
		name := "/" + strings.TrimSuffix(strings.TrimPrefix(h.Name, "./"), "/")
		files[name] = fileEntry{typ: h.Typeflag, mode: h.Mode & 0o7777, uid: h.Uid, gid: h.Gid, content: string(content), link: h.Linkname}
	}
}

// config returns the image's config file.
func config(t *testing.T, img v1.Image) *v1.ConfigFile {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	return cf
}

// skopeoInspect runs skopeo inspect on a transport:path and decodes its JSON.
func skopeoInspect(t *testing.T, ref string, extra ...string) map[string]any {
	t.Helper()
	args := append([]string{"inspect"}, extra...)
	out, err := osexec.Command("skopeo", append(args, ref)...).CombinedOutput()
	if err != nil {
		t.Fatalf("skopeo inspect %s: %v\n%s", ref, err, out)
	}
	var v map[string]any
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("skopeo inspect %s: %v\n%s", ref, err, out)
	}
	return v
}

// umociUnpack copies an OCI archive into a layout with skopeo and unpacks it with umoci,
// returning the bundle's rootfs.
func umociUnpack(t *testing.T, ociTar string) string {
	t.Helper()
	dir := t.TempDir()
	layoutDir, bundle := filepath.Join(dir, "oci"), filepath.Join(dir, "bundle")
	if out, err := osexec.Command("skopeo", "copy", "-q", "oci-archive:"+ociTar, "oci:"+layoutDir+":img").CombinedOutput(); err != nil {
		t.Fatalf("skopeo copy: %v\n%s", err, out)
	}
	if out, err := osexec.Command("umoci", "unpack", "--image", layoutDir+":img", bundle).CombinedOutput(); err != nil {
		t.Fatalf("umoci unpack: %v\n%s", err, out)
	}
	return filepath.Join(bundle, "rootfs")
}

// noKilnMounts fails if a mount made by kiln (or any overlay) is left on the host.
func noKilnMounts(t *testing.T, under string) {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasPrefix(f[4], under) {
			t.Errorf("mount left behind: %s", f[4])
		}
	}
}

func fileSize(t *testing.T, p string) int64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

var _ = syscall.SIGINT

// layerEntries lists the entries of layer i of img as they are in the layer (no
// whiteouts applied, nothing filtered: ggcr's flattening drops links that climb out).
// A negative i counts from the last layer.
func layerEntries(t *testing.T, img v1.Image, i int) map[string]fileEntry {
	t.Helper()
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if i < 0 {
		i += len(ls)
	}
	rc, err := ls[i].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	return listTar(t, rc)
}
