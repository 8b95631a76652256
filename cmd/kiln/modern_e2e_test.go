package main

import (
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The modern-syntax issue's done-when: a Dockerfile with apt cache mounts, a secret and
// COPY --link builds on the Debian base and rebuilds from the cache; a rebuild without
// the step cache finds the packages apt downloaded in the cache mount, and neither the
// packages nor the secret reach the image. apt talks to the Debian mirror the machine
// is configured with, over the host network that RUN shares by default.
func TestAptCacheSecretAndLink(t *testing.T) {
	requireDebianBase(t)
	root, out := e2e(t)
	secret := "s3cr3t-" + strings.Repeat("k", 20)
	// The RUN compares the secret's hash: the secret itself must not be in the
	// Dockerfile, whose lines are printed and kept in the history.
	secretSum := fmt.Sprintf("%x", sha256.Sum256([]byte(secret)))
	dir := project(t, map[string]string{
		"Dockerfile": "# syntax=docker/dockerfile:1\nFROM " + debianBase + `
RUN rm -f /etc/apt/apt.conf.d/docker-clean
RUN --mount=type=cache,target=/var/cache/apt,sharing=locked \
    --mount=type=cache,target=/var/lib/apt,sharing=locked \
    --mount=type=secret,id=token,required=true \
    test "$(sha256sum < /run/secrets/token | cut -d' ' -f1)" = "` + secretSum + `" && \
    { ls /var/cache/apt/archives/ | grep -c '^hello_.*\.deb$' > /debs-before.txt || true; } && \
    apt-get update -qq && apt-get install -y -qq --no-install-recommends hello >/dev/null && \
    hello > /hello.txt
COPY --link app.txt /app/app.txt
`,
		"app.txt": "app\n",
	})
	secretFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(secretFile, []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	build := func(name string, extra ...string) (result, string) {
		dest := filepath.Join(out, name+".tar")
		args := append([]string{"--root", root, "--progress", "plain", "--secret", "id=token,src=" + secretFile,
			"--iidfile", dest + ".iid", "-o", "type=oci,dest=" + dest}, extra...)
		return mustBuild(t, dir, append(args, ".")...), dest
	}

	r1, img1 := build("first")
	files := flatten(t, readOCI(t, img1))
	if got := strings.TrimSpace(files["/debs-before.txt"].content); got != "0" {
		t.Errorf("a fresh cache mount already held the package: %q", got)
	}
	if !strings.Contains(files["/hello.txt"].content, "Hello, world!") {
		t.Fatalf("hello did not run: %q\n%s", files["/hello.txt"].content, r1.stderr)
	}
	if files["/app/app.txt"].content != "app\n" {
		t.Errorf("COPY --link content = %q", files["/app/app.txt"].content)
	}
	// The base (debootstrap) ships .debs of its own; the one apt fetched into the
	// cache mount must not be in the image.
	for p := range files {
		if strings.HasPrefix(p, "/var/cache/apt/archives/hello_") {
			t.Errorf("a package from the cache mount reached the image: %s", p)
		}
	}
	for p, f := range files {
		if strings.Contains(f.content, secret) {
			t.Errorf("the secret is in the image at %s", p)
		}
	}
	if strings.Contains(r1.stdout+r1.stderr, secret) {
		t.Error("the secret appears in the build output")
	}

	// Warm: every step cached, same image.
	r2, img2 := build("warm")
	if strings.Count(r2.stderr+r2.stdout, "CACHED") < 3 {
		t.Errorf("warm rebuild did not come from the cache:\n%s", r2.stderr)
	}
	id1, _ := os.ReadFile(img1 + ".iid")
	id2, _ := os.ReadFile(img2 + ".iid")
	if string(id1) != string(id2) {
		t.Errorf("warm rebuild gave another image: %s vs %s", id1, id2)
	}

	// Without the step cache, the cache mount still holds what apt downloaded.
	_, img3 := build("nocache", "--no-cache")
	if got := flatten(t, readOCI(t, img3))["/debs-before.txt"].content; strings.TrimSpace(got) != "1" {
		t.Errorf("the apt cache mount did not keep the downloaded package: %q", got)
	}
}
