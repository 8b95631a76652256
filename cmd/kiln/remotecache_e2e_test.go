package main

import (
	"bytes"
	"compress/gzip"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/kiln-build/kiln/internal/testenv"
)

// Issue 16, the remote cache: CI runners start with an empty --root; --cache-to on
// one runner and --cache-from on the next give the second every step from the first.

const epochArg = "SOURCE_DATE_EPOCH=1700000000"

// remoteCacheProject is a two-stage build on HOST/busybox: the final stage copies
// from the builder, so mode=min leaves the builder's RUN out.
func remoteCacheProject(t *testing.T, host string, extra ...string) string {
	return project(t, map[string]string{
		"Dockerfile": "FROM " + host + "/busybox AS builder\n" +
			"RUN echo built > /b.txt\n" +
			"FROM " + host + "/busybox\n" +
			"COPY --from=builder /b.txt /b.txt\n" +
			"RUN echo hello > /hello.txt\n" +
			"ENV X=1\n" +
			"RUN cat /b.txt /hello.txt > /both.txt\n" +
			strings.Join(extra, ""),
	})
}

// cacheRegistry starts Debian's docker-registry with the busybox base in it.
func cacheRegistry(t *testing.T) string {
	t.Helper()
	host := testenv.DockerRegistry(t)
	testenv.PushImage(t, testenv.BusyboxImage(t), host+"/busybox:latest")
	return host
}

var stepHeader = regexp.MustCompile(`(?m)^#(\d+) \[[^\]]+\] (\w+)`)

// cachedSteps maps each RUN/COPY step's instruction line (as plain progress shows it)
// to whether it was CACHED.
func cachedSteps(t *testing.T, stderr string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, m := range stepHeader.FindAllStringSubmatchIndex(stderr, -1) {
		id, instr := stderr[m[2]:m[3]], stderr[m[4]:m[5]]
		if instr == "FROM" {
			continue
		}
		line := stderr[m[0]:]
		line = line[:strings.IndexByte(line, '\n')]
		out[line[strings.IndexByte(line, ']')+2:]] = strings.Contains(stderr, "\n#"+id+" CACHED\n")
	}
	if len(out) == 0 {
		t.Fatalf("no steps in the progress:\n%s", stderr)
	}
	return out
}

func requireAllCached(t *testing.T, stderr string) {
	t.Helper()
	for step, cached := range cachedSteps(t, stderr) {
		if !cached {
			t.Errorf("step %q was not CACHED:\n%s", step, stderr)
		}
	}
}

func ociDigest(t *testing.T, tarPath string) v1.Hash {
	t.Helper()
	d, err := readOCI(t, tarPath).Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestRemoteCacheRegistryRoundTrip(t *testing.T) {
	_, out := e2e(t)
	host := cacheRegistry(t)
	// A step layer larger than the base's: the output streams that one.
	dir := remoteCacheProject(t, host, "RUN head -c 4000000 /dev/urandom > /big.bin\n")
	cacheRef := host + "/cache:main"

	// Runner 1: an empty root, exports every stage.
	mustBuildLimited(t, dir, "--root", t.TempDir(), "--progress", "plain", "--build-arg", epochArg,
		"--cache-to", "type=registry,ref="+cacheRef+",mode=max", "-o", "type=oci,dest="+filepath.Join(out, "1.tar"), ".")
	// Runner 2: another empty root, the same image with every step from the cache.
	// The tarball streams the largest layer from the cache and keeps it on the way.
	root2 := t.TempDir()
	r := mustBuildLimited(t, dir, "--root", root2, "--progress", "plain", "--build-arg", epochArg,
		"--cache-from", "type=registry,ref="+cacheRef, "-o", "type=oci,dest="+filepath.Join(out, "2.tar"), ".")
	requireAllCached(t, r.stderr)
	if !strings.Contains(r.stderr, "from remote cache "+cacheRef) {
		t.Errorf("progress does not name the cache the steps came from:\n%s", r.stderr)
	}
	if !strings.Contains(r.stderr, "kept as the output read it") {
		t.Errorf("no layer was streamed into the tarball:\n%s", r.stderr)
	}
	if d1, d2 := ociDigest(t, filepath.Join(out, "1.tar")), ociDigest(t, filepath.Join(out, "2.tar")); d1 != d2 {
		t.Errorf("runner 2 built %s, runner 1 %s", d2, d1)
	}
	// What runner 2 read from the cache it kept: every layer of its image that
	// is not the base's is a whole blob in its store.
	base := map[v1.Hash]bool{}
	bls, err := remoteImage(t, host+"/busybox:latest", true).Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range bls {
		d, _ := l.Digest()
		base[d] = true
	}
	ls, err := readOCI(t, filepath.Join(out, "2.tar")).Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		d, _ := l.Digest()
		if base[d] {
			continue
		}
		f, err := os.Open(filepath.Join(root2, "blobs", "sha256", d.Hex))
		if err != nil {
			t.Errorf("runner 2 did not keep layer %s it read from the cache: %v", d, err)
			continue
		}
		got, _, err := v1.SHA256(f)
		f.Close()
		if err != nil || got != d {
			t.Errorf("runner 2 kept layer %s as bytes hashing to %s (%v)", d, got, err)
		}
	}

	// Runner 3 pushes to the cache's registry: the final image's layers are
	// mounted from the cache repository, never downloaded; nor is the builder's,
	// because the COPY --from's selection digest comes with the cache.
	appRef := host + "/app:v1"
	r = mustBuildLimited(t, dir, "--root", t.TempDir(), "--progress", "plain", "--build-arg", epochArg,
		"--cache-from", "type=registry,ref="+cacheRef, "-t", appRef, "--push", ".")
	requireAllCached(t, r.stderr)
	if n := strings.Count(r.stderr, "#0 downloaded "); n != 0 {
		t.Errorf("a push from the cache downloaded %d blobs, want none:\n%s", n, r.stderr)
	}
	img := remoteImage(t, appRef, true)
	if err := validate.Image(img); err != nil {
		t.Fatalf("pushed image: %v", err)
	}
	if d, _ := img.Digest(); d != ociDigest(t, filepath.Join(out, "1.tar")) {
		t.Errorf("pushed %s, runner 1 built %s", d, ociDigest(t, filepath.Join(out, "1.tar")))
	}
}

func TestRemoteCacheMinVersusMax(t *testing.T) {
	_, out := e2e(t)
	host := cacheRegistry(t)
	dir := remoteCacheProject(t, host)
	mustBuildLimited(t, dir, "--root", t.TempDir(), "--progress", "plain", "--build-arg", epochArg,
		"--cache-to", "type=registry,ref="+host+"/cache:min",
		"--cache-to", "type=registry,ref="+host+"/cache:max,mode=max,image-manifest=true",
		"-o", "type=oci,dest="+filepath.Join(out, "1.tar"), ".")

	// min holds the final stage only: the builder's RUN runs again, and the COPY
	// of its (identical) file is cached after it.
	r := mustBuildLimited(t, dir, "--root", t.TempDir(), "--progress", "plain", "--build-arg", epochArg,
		"--cache-from", "type=registry,ref="+host+"/cache:min", "-o", "type=oci,dest="+filepath.Join(out, "min.tar"), ".")
	states := cachedSteps(t, r.stderr)
	for step, cached := range states {
		if want := !strings.HasPrefix(step, "RUN echo built"); cached != want {
			t.Errorf("mode=min: step %q cached=%v, want %v", step, cached, want)
		}
	}
	r = mustBuildLimited(t, dir, "--root", t.TempDir(), "--progress", "plain", "--build-arg", epochArg,
		"--cache-from", "type=registry,ref="+host+"/cache:max", "-o", "type=oci,dest="+filepath.Join(out, "max.tar"), ".")
	requireAllCached(t, r.stderr)
	want := ociDigest(t, filepath.Join(out, "1.tar"))
	for _, f := range []string{"min.tar", "max.tar"} {
		if d := ociDigest(t, filepath.Join(out, f)); d != want {
			t.Errorf("%s is %s, want %s", f, d, want)
		}
	}
}

func TestRemoteCacheSeveralFrom(t *testing.T) {
	_, out := e2e(t)
	host := cacheRegistry(t)
	dir := remoteCacheProject(t, host)
	// The builder's cache comes from one ref, the final stage's from another (as a
	// branch cache and main's), and a third has no cache yet.
	mustBuildLimited(t, dir, "--root", t.TempDir(), "--progress", "plain", "--build-arg", epochArg,
		"--target", "builder", "--cache-to", "type=registry,ref="+host+"/cache:builder", ".")
	mustBuildLimited(t, dir, "--root", t.TempDir(), "--progress", "plain", "--build-arg", epochArg,
		"--cache-to", "type=registry,ref="+host+"/cache:final", "-o", "type=oci,dest="+filepath.Join(out, "1.tar"), ".")
	r := mustBuildLimited(t, dir, "--root", t.TempDir(), "--progress", "plain", "--build-arg", epochArg,
		"--cache-from", "type=registry,ref="+host+"/cache:none",
		"--cache-from", "type=registry,ref="+host+"/cache:builder",
		"--cache-from", "type=registry,ref="+host+"/cache:final",
		"-o", "type=oci,dest="+filepath.Join(out, "2.tar"), ".")
	requireAllCached(t, r.stderr)
	for _, want := range []string{
		"cache-from " + host + "/cache:none: no cache there yet",
		"from remote cache " + host + "/cache:builder",
		"from remote cache " + host + "/cache:final",
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("progress does not say %q:\n%s", want, r.stderr)
		}
	}
	if d1, d2 := ociDigest(t, filepath.Join(out, "1.tar")), ociDigest(t, filepath.Join(out, "2.tar")); d1 != d2 {
		t.Errorf("built %s, want %s", d2, d1)
	}
}

func TestRemoteCacheLocalLayoutAndPoisonedBlob(t *testing.T) {
	_, out := e2e(t)
	host := busyboxRegistry(t)
	dir := remoteCacheProject(t, host)
	cacheDir := filepath.Join(t.TempDir(), "cache")
	mustBuild(t, dir, "--root", t.TempDir(), "--progress", "plain", "--build-arg", epochArg,
		"--cache-to", "type=local,dest="+cacheDir+",mode=max,tag=ci", "-o", "type=oci,dest="+filepath.Join(out, "1.tar"), ".")
	if _, err := layout.ImageIndexFromPath(cacheDir); err != nil {
		t.Fatalf("cache dir is not an OCI layout: %v", err)
	}
	r := mustBuild(t, dir, "--root", t.TempDir(), "--progress", "plain", "--build-arg", epochArg,
		"--cache-from", "type=local,src="+cacheDir+",tag=ci", "-o", "type=oci,dest="+filepath.Join(out, "2.tar"), ".")
	requireAllCached(t, r.stderr)
	want := ociDigest(t, filepath.Join(out, "1.tar"))
	if d := ociDigest(t, filepath.Join(out, "2.tar")); d != want {
		t.Fatalf("type=local round trip built %s, want %s", d, want)
	}

	// Poison the blob of the image's last layer: the runner refuses it, builds what
	// needed it again and still writes the same image.
	ls, err := readOCI(t, filepath.Join(out, "1.tar")).Layers()
	if err != nil {
		t.Fatal(err)
	}
	last, _ := ls[len(ls)-1].Digest()
	blob := filepath.Join(cacheDir, "blobs", "sha256", last.Hex)
	data, err := os.ReadFile(blob)
	if err != nil {
		t.Fatalf("the cache lacks the image's last layer: %v", err)
	}
	data[len(data)/2] ^= 0xff
	if err := os.WriteFile(blob, data, 0o644); err != nil {
		t.Fatal(err)
	}
	r = mustBuild(t, dir, "--root", t.TempDir(), "--progress", "plain", "--build-arg", epochArg,
		"--cache-from", "type=local,src="+cacheDir+",tag=ci", "-o", "type=oci,dest="+filepath.Join(out, "3.tar"), ".")
	if !strings.Contains(r.stderr, "blob "+last.Algorithm+":"+last.Hex[:12]+" refused") {
		t.Errorf("the poisoned blob was not refused:\n%s", r.stderr)
	}
	if d := ociDigest(t, filepath.Join(out, "3.tar")); d != want {
		t.Errorf("after a poisoned blob built %s, want %s", d, want)
	}
}

func TestRemoteCacheRegistryDown(t *testing.T) {
	_, out := e2e(t)
	host := busyboxRegistry(t)
	dir := remoteCacheProject(t, host)
	// A port nothing listens on: taken, then closed.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := l.Addr().String()
	l.Close()
	dest := filepath.Join(out, "img.tar")
	for _, flag := range []string{"--cache-from", "--cache-to"} {
		failBuild(t, dir, []string{"cannot reach registry " + down, "ignore-error=true"},
			"--root", t.TempDir(), "--progress", "plain", flag, "type=registry,ref="+down+"/cache:main", "-o", "type=oci,dest="+dest, ".")
	}
	if _, err := os.Stat(dest); err == nil {
		t.Errorf("a build whose cache failed wrote its output")
	}
	r := mustBuildLimited(t, dir, "--root", t.TempDir(), "--progress", "plain",
		"--cache-from", "type=registry,ref="+down+"/cache:main,ignore-error=true",
		"--cache-to", "type=registry,ref="+down+"/cache:main,ignore-error=true", "-o", "type=oci,dest="+dest, ".")
	if n := strings.Count(r.stderr, "WARNING: "); n < 2 || !strings.Contains(r.stderr, "cannot reach registry "+down) {
		t.Errorf("want two warnings naming the unreachable registry, got %d:\n%s", n, r.stderr)
	}
	readOCI(t, dest)
}

func TestRemoteCacheSpecsRefusedByName(t *testing.T) {
	dir := project(t, map[string]string{"Dockerfile": "FROM scratch\n"})
	testenv.RequireRoot(t)
	for spec, want := range map[string]string{
		"type=nosuch":                      "type=nosuch is unknown",
		"type=registry,ref=r/x,colour=red": `unknown key "colour"`,
		"type=local,src=/x":                "src= is for --cache-from",
		"type=registry,mode=all,ref=r/x":   "mode=all: want min or max",
		"type=inline,mode=max":             "type=inline: mode=max is not supported",
	} {
		r := kiln(t, dir, "build", "--root", t.TempDir(), "--cache-to", spec, ".")
		if r.code == 0 || !strings.Contains(r.stderr, want) {
			t.Errorf("--cache-to %s: exit %d, want an error saying %q:\n%s", spec, r.code, want, r.stderr)
		}
	}
}

// TestRemoteCacheHoldsNoSecret: a step that reads a secret is exported, and no blob
// of the cache (layers decompressed) holds the secret's value.
func TestRemoteCacheHoldsNoSecret(t *testing.T) {
	root, _ := e2e(t)
	host := busyboxRegistry(t)
	const value = "s3cr3t-value-that-must-stay-home"
	dir := project(t, map[string]string{
		"Dockerfile": "FROM " + host + "/busybox\n" +
			"RUN --mount=type=secret,id=tok cat /run/secrets/tok | wc -c > /len\n",
		"tok": value,
	})
	cacheDir := filepath.Join(t.TempDir(), "cache")
	mustBuild(t, dir, "--root", root, "--progress", "plain", "--secret", "id=tok,src="+filepath.Join(dir, "tok"),
		"--cache-to", "type=local,dest="+cacheDir+",mode=max", ".")
	blobs, err := filepath.Glob(filepath.Join(cacheDir, "blobs", "sha256", "*"))
	if err != nil || len(blobs) < 2 {
		t.Fatalf("cache blobs: %v, %v", blobs, err)
	}
	for _, b := range blobs {
		data, err := os.ReadFile(b)
		if err != nil {
			t.Fatal(err)
		}
		if zr, err := gzip.NewReader(bytes.NewReader(data)); err == nil {
			if plain, err := io.ReadAll(zr); err == nil {
				data = plain
			}
		}
		if bytes.Contains(data, []byte(value)) {
			t.Errorf("cache blob %s holds the secret", filepath.Base(b))
		}
	}
}
