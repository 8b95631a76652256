package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/kiln-build/kiln/internal/testenv"
)

// requireAnchors makes sure the shared anchors' registry serves debianBase, running
// ../shared/bench/setup-anchors.sh (idempotent) when it does not; it fails the test
// when that does not help.
func requireAnchors(t *testing.T) {
	t.Helper()
	testenv.RequireRoot(t)
	ref, err := name.ParseReference(debianBase, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	head := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := remote.Head(ref, remote.WithContext(ctx))
		return err
	}
	if head() == nil {
		return
	}
	script, err := filepath.Abs("../../../shared/bench/setup-anchors.sh")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(script).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", script, err, out)
	}
	if err := head(); err != nil {
		t.Fatalf("%s is not served after setup-anchors.sh: %v", debianBase, err)
	}
}

// debianSteps needs many ids on the Debian base: apt-get drops to _apt (42) to
// download, dpkg unpacks a package, chown gives files to _apt, app (1000) and nobody,
// useradd makes a user 2000 and dpkg-statoverride --update hands it a file. Logs and
// caches that record the time are removed, so that two builds minutes apart agree.
const debianSteps = `RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends hello >/dev/null && \
    rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log /var/log/alternatives.log /var/cache/ldconfig/aux-cache && \
    hello > /hello.out
RUN mkdir /owners && touch /owners/apt /owners/app /owners/nobody /owners/builder && \
    chown _apt:nogroup /owners/apt && chown 1000:1000 /owners/app && chown 65534:65534 /owners/nobody && \
    useradd -u 2000 -m builder && dpkg-statoverride --update --add builder builder 0640 /owners/builder && \
    ls -ln /owners
`

// On the Debian base, an ordinary user with subordinate ids runs apt-get install (a
// package from Debian's mirror, as the host's apt sources name it), chowns to
// several ids and uses dpkg-statoverride; the image is the root build's, byte for
// byte, with SOURCE_DATE_EPOCH, and its layers carry the image's ids.
func TestRootlessDebianApt(t *testing.T) {
	requireAnchors(t)
	u := testenv.NewTestUser(t)
	kilnBin := rootlessKiln(t, u)
	ctx, _ := rootlessProject(t, u, "deb", "FROM "+debianBase+"\n"+debianSteps, map[string]string{})
	var ids [2]string
	var tars [2]string
	for i, rootless := range []bool{true, false} {
		dir := filepath.Join(u.Home, "out"+strings.Repeat("r", i))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		chownTree(t, dir, u)
		tars[i] = filepath.Join(dir, "img.tar")
		args := []string{"build", "--root", filepath.Join(dir, "store"), "--progress", "plain", "--iidfile", filepath.Join(dir, "iid"),
			"-o", "type=oci,dest=" + tars[i], ctx}
		cmd := rootCmd(kilnBin, args...)
		if rootless {
			cmd = rootlessCmd(u, kilnBin, args...)
		}
		cmd.Env = append(cmd.Env, "SOURCE_DATE_EPOCH=1700000000")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("build (rootless %v): %v\n%s", rootless, err, out)
		}
		if rootless && !strings.Contains(string(out), "1-65536→") {
			t.Errorf("the rootless build did not map subordinate ids:\n%s", out)
		}
		b, err := os.ReadFile(filepath.Join(dir, "iid"))
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = string(b)
	}
	if ids[0] != ids[1] {
		t.Errorf("rootless Debian image %s differs from the root one %s", ids[0], ids[1])
	}
	img := readOCI(t, tars[0])
	files := flatten(t, img)
	if got := files["/hello.out"].content; got != "Hello, world!\n" {
		t.Errorf("hello printed %q", got)
	}
	for p, want := range map[string][2]int{
		"/owners/apt": {42, 65534}, "/owners/app": {1000, 1000}, "/owners/nobody": {65534, 65534},
		"/owners/builder": {2000, 2000}, "/home/builder": {2000, 2000}, "/usr/bin/hello": {0, 0},
	} {
		e, ok := files[p]
		if !ok {
			t.Errorf("%s missing from the image", p)
			continue
		}
		if e.uid != want[0] || e.gid != want[1] {
			t.Errorf("%s is %d:%d, want %d:%d", p, e.uid, e.gid, want[0], want[1])
		}
	}
}

// An ordinary user pushes to a registry (Debian's docker-registry on loopback) what
// it built, and RUN --mount=type=cache works as rootless: a second build sees what
// the first left in the cache, and a cache mount with uid=1000 is 1000's. The pushed
// image is the one --iidfile names and passes ggcr's validation.
func TestRootlessPushAndCacheMount(t *testing.T) {
	host := testenv.DockerRegistry(t)
	u := testenv.NewTestUser(t)
	kilnBin := rootlessKiln(t, u)
	store := filepath.Join(u.Home, "store")
	build := func(name, df, tag string) string {
		t.Helper()
		ctx, base := rootlessProject(t, u, name, df, map[string]string{})
		iid := filepath.Join(u.Home, name+".iid")
		out, err := rootlessCmd(u, kilnBin, "build", "--root", store, "--progress", "plain", "--iidfile", iid,
			"--build-context", base, "-t", host+"/rootless/"+tag, "--push", ctx).CombinedOutput()
		if err != nil {
			t.Fatalf("rootless build %s: %v\n%s", name, err, out)
		}
		b, err := os.ReadFile(iid)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	build("first", "FROM busybox\nRUN --mount=type=cache,id=shared,target=/cache echo one >> /cache/log\n", "first")
	digest := build("second", `FROM busybox
RUN --mount=type=cache,id=shared,target=/cache cp /cache/log /seen
RUN --mount=type=cache,id=owned,target=/c2,uid=1000,gid=1000 stat -c %u:%g /c2 > /c2owner && touch /c2/x
`, "second")
	ref, err := name.ParseReference(host+"/rootless/second", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(ref)
	if err != nil {
		t.Fatalf("pull what the rootless build pushed: %v", err)
	}
	if err := validate.Image(img); err != nil {
		t.Fatalf("validate the pushed image: %v", err)
	}
	// --iidfile holds the image ID, the config's digest, as Docker's does.
	got, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	if got.String() != digest {
		t.Errorf("the pushed image's config is %s, --iidfile says %s", got, digest)
	}
	files := flatten(t, img)
	if c := files["/seen"].content; c != "one\n" {
		t.Errorf("the second build saw %q in the cache mount, want what the first wrote", c)
	}
	if c := files["/c2owner"].content; c != "1000:1000\n" {
		t.Errorf("a cache mount with uid=1000,gid=1000 is %q", c)
	}
	if _, ok := files["/cache/log"]; ok {
		t.Errorf("the cache mount's content leaked into the image")
	}
}
