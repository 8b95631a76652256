package main

import (
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/testenv"
)

// A two-platform build as an ordinary user (its arm64 RUN under qemu from inside the
// user namespace) gives the same image index, byte for byte, as the same build as
// root, with SOURCE_DATE_EPOCH set.
func TestMultiPlatformRootlessMatchesRoot(t *testing.T) {
	requireEmulator(t, "arm64")
	if _, err := testenv.BusyboxArm64Path(); err != nil {
		t.Fatal(err)
	}
	u := testenv.NewTestUser(t)
	kilnBin := rootlessKiln(t, u)
	base := filepath.Join(u.Home, "busybox")
	if err := testenv.WriteBusyboxIndexLayout(base); err != nil {
		t.Fatal(err)
	}
	ctx := filepath.Join(u.Home, "ctx")
	if err := os.MkdirAll(ctx, 0o755); err != nil {
		t.Fatal(err)
	}
	df := `FROM --platform=$BUILDPLATFORM busybox AS build
RUN mkdir /out && for a in amd64 arm64; do echo "app for $a" > /out/app-$a; done
FROM busybox
ARG TARGETARCH
COPY --from=build /out/app-${TARGETARCH} /app
RUN uname -m > /arch
`
	if err := os.WriteFile(filepath.Join(ctx, "Dockerfile"), []byte(df), 0o644); err != nil {
		t.Fatal(err)
	}
	chownTree(t, u.Home, u)
	args := func(root, out, iid string) []string {
		return []string{"build", "--root", root, "--progress", "plain", "--platform", "linux/amd64,linux/arm64",
			"--iidfile", iid, "--build-context", "busybox=oci-layout://" + base, "-o", "type=oci,dest=" + out, ctx}
	}
	cmd := u.Command(kilnBin, args(filepath.Join(u.Home, "store"), filepath.Join(u.Home, "rl.tar"), filepath.Join(u.Home, "rl.id"))...)
	cmd.Env = append(cmd.Env, "SOURCE_DATE_EPOCH=1700000000")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("rootless build: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "sandbox: user namespace") {
		t.Errorf("the build did not run in a user namespace:\n%s", out)
	}
	rootDir := t.TempDir()
	rootTar := filepath.Join(rootDir, "rt.tar")
	cmd = osexec.Command(kilnBin, args(filepath.Join(rootDir, "store"), rootTar, filepath.Join(rootDir, "rt.id"))...)
	cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH=1700000000")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("root build: %v\n%s", err, out)
	}
	rl, err := os.ReadFile(filepath.Join(u.Home, "rl.id"))
	if err != nil {
		t.Fatal(err)
	}
	rt, err := os.ReadFile(filepath.Join(rootDir, "rt.id"))
	if err != nil {
		t.Fatal(err)
	}
	if string(rl) != string(rt) {
		t.Fatalf("rootless index %s differs from root index %s", rl, rt)
	}
	imgs := indexImages(t, readOCIIndex(t, rootTar))
	if got := flatten(t, imgs["arm64"])["/arch"].content; got != "aarch64\n" {
		t.Errorf("arm64 RUN uname -m said %q", got)
	}
}
