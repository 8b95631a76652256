package main

import (
	"encoding/json"
	"fmt"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/image"
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
		t.Fatalf("rootless index %s differs from root index %s:\n%s", rl, rt,
			indexDifference(t, readOCIIndex(t, filepath.Join(u.Home, "rl.tar")), readOCIIndex(t, rootTar)))
	}
	imgs := indexImages(t, readOCIIndex(t, rootTar))
	if got := flatten(t, imgs["arm64"])["/arch"].content; got != "aarch64\n" {
		t.Errorf("arm64 RUN uname -m said %q", got)
	}
}

// indexDifference says where two indexes first differ: which manifest, and for an
// attestation the first line of its statements that differs.
func indexDifference(t *testing.T, a, b v1.ImageIndex) string {
	t.Helper()
	ma, _ := a.IndexManifest()
	mb, _ := b.IndexManifest()
	if len(ma.Manifests) != len(mb.Manifests) {
		return fmt.Sprintf("%d manifests against %d", len(ma.Manifests), len(mb.Manifests))
	}
	for i := range ma.Manifests {
		da, db := ma.Manifests[i], mb.Manifests[i]
		if da.Digest == db.Digest {
			continue
		}
		if !image.IsAttestation(da) {
			return fmt.Sprintf("manifest %d: %s against %s", i, da.Digest, db.Digest)
		}
		sa, sb := statementLines(t, a, da.Digest), statementLines(t, b, db.Digest)
		for j := range min(len(sa), len(sb)) {
			if sa[j] != sb[j] {
				return fmt.Sprintf("attestation %d, line %d:\n%s\n  %s\nagainst\n  %s", i, j+1, strings.Join(sa[max(0, j-12):j], "\n"), sa[j], sb[j])
			}
		}
		return fmt.Sprintf("attestation %d: %d lines against %d", i, len(sa), len(sb))
	}
	return "the manifests are the same; the index itself differs"
}

// statementLines are an attestation manifest's statements, indented, by line.
func statementLines(t *testing.T, idx v1.ImageIndex, d v1.Hash) []string {
	t.Helper()
	img, err := idx.Image(d)
	if err != nil {
		t.Fatal(err)
	}
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range ls {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		var v any
		if err := json.NewDecoder(rc).Decode(&v); err != nil {
			t.Fatal(err)
		}
		rc.Close()
		out, _ := json.MarshalIndent(v, "", " ")
		lines = append(lines, strings.Split(string(out), "\n")...)
	}
	return lines
}
