package main

import (
	"bytes"
	"debug/elf"
	"encoding/json"
	"fmt"
	"os"
	osexec "os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/exec"
	"github.com/kiln-build/kiln/image"
	"github.com/kiln-build/kiln/internal/testenv"
)

// crossDockerfile is the shape of a cross-compiling Go Dockerfile: a build stage
// pinned to $BUILDPLATFORM makes every platform's "binary" once (its stamp is random,
// so two executions would differ), and each platform's final stage copies its own
// and RUNs one of its base's binaries (under qemu for arm64).
const crossDockerfile = `FROM --platform=$BUILDPLATFORM busybox AS build
ARG BUILDPLATFORM
RUN mkdir /out && cat /proc/sys/kernel/random/uuid > /out/stamp && for a in amd64 arm64; do echo "app for $a" > /out/app-$a; done

FROM busybox
ARG TARGETPLATFORM TARGETOS TARGETARCH TARGETVARIANT BUILDPLATFORM BUILDOS BUILDARCH
COPY --from=build /out/stamp /stamp
COPY --from=build /out/app-${TARGETARCH} /app
RUN uname -m > /arch && echo "$TARGETPLATFORM|$TARGETOS|$TARGETARCH|$TARGETVARIANT|$BUILDPLATFORM|$BUILDOS|$BUILDARCH" > /args
`

// requireEmulator makes RUN steps of arch runnable for the test: binfmt_misc mounted
// and qemu-user-static registered (by kiln binfmt install, the command made for it).
// What the test added (the registration, the mount) is removed when it ends.
func requireEmulator(t *testing.T, arch string) {
	t.Helper()
	testenv.RequireRoot(t)
	mounted, err := exec.BinfmtMounted()
	if err != nil {
		t.Fatal(err)
	}
	if !mounted {
		if err := exec.MountBinfmt(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := unix.Unmount(exec.BinfmtDir, 0); err != nil {
				t.Errorf("unmount %s: %v", exec.BinfmtDir, err)
			}
		})
	}
	if _, err := exec.FindEmulator(arch); err == nil {
		return
	}
	r := kiln(t, t.TempDir(), "binfmt", "install", arch)
	if r.code != 0 {
		t.Fatalf("kiln binfmt install %s: exit %d\n%s%s", arch, r.code, r.stdout, r.stderr)
	}
	if strings.Contains(r.stdout, ": registered") {
		t.Cleanup(func() {
			if r := kiln(t, t.TempDir(), "binfmt", "remove", arch); r.code != 0 {
				t.Errorf("kiln binfmt remove %s: exit %d\n%s%s", arch, r.code, r.stdout, r.stderr)
			}
		})
	}
}

// busyboxIndexContext writes the two-platform busybox index as an OCI layout and
// returns the --build-context that names it busybox.
func busyboxIndexContext(t *testing.T) string {
	t.Helper()
	testenv.RequireBusyboxArm64(t)
	dir := filepath.Join(t.TempDir(), "busybox")
	if err := testenv.WriteBusyboxIndexLayout(dir); err != nil {
		t.Fatal(err)
	}
	return "busybox=oci-layout://" + dir
}

// readOCIIndex opens an OCI tarball whose index.json names one image index, checks
// the index with ggcr's validator and returns it.
func readOCIIndex(t *testing.T, tarPath string) v1.ImageIndex {
	t.Helper()
	dir := t.TempDir()
	untar(t, tarPath, dir)
	top, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	m, err := top.IndexManifest()
	if err != nil || len(m.Manifests) != 1 || m.Manifests[0].MediaType != types.OCIImageIndex {
		t.Fatalf("index.json: want one image index entry, got %+v (%v)", m, err)
	}
	idx, err := top.ImageIndex(m.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Index(idx); err != nil {
		t.Fatalf("validate index: %v", err)
	}
	return idx
}

// indexImages checks that idx lists exactly linux/amd64 then linux/arm64 and
// returns their images by architecture.
func indexImages(t *testing.T, idx v1.ImageIndex) map[string]v1.Image {
	t.Helper()
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	imgs := map[string]v1.Image{}
	var attested []string
	for _, d := range m.Manifests {
		if d.Platform == nil {
			t.Fatalf("manifest %s has no platform", d.Digest)
		}
		if image.IsAttestation(d) {
			// After the images, as BuildKit lists them, each naming its image.
			if len(got) != 2 || d.Platform.String() != "unknown/unknown" {
				t.Errorf("attestation manifest %s at %d, platform %s", d.Digest, len(got)+len(attested), d.Platform)
			}
			attested = append(attested, d.Annotations["vnd.docker.reference.digest"])
			continue
		}
		got = append(got, d.Platform.String())
		img, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		imgs[d.Platform.Architecture] = img
	}
	if strings.Join(got, ",") != "linux/amd64,linux/arm64" {
		t.Fatalf("index platforms %v, want linux/amd64,linux/arm64", got)
	}
	if len(attested) != 0 && (len(attested) != 2 || attested[0] != m.Manifests[0].Digest.String() || attested[1] != m.Manifests[1].Digest.String()) {
		t.Errorf("attestation manifests name %v, want one per image in order", attested)
	}
	return imgs
}

// checkPlatformImage checks one platform's image of crossDockerfile: its config's
// architecture, its busybox binary's ELF machine, what uname -m said in its RUN, the
// platform args, and its copy of the build stage's output.
func checkPlatformImage(t *testing.T, img v1.Image, arch, uname string, machine elf.Machine) (stamp string) {
	t.Helper()
	if cf := config(t, img); cf.OS != "linux" || cf.Architecture != arch {
		t.Errorf("%s: config says %s/%s", arch, cf.OS, cf.Architecture)
	}
	files := flatten(t, img)
	f, err := elf.NewFile(bytes.NewReader([]byte(files["/bin/busybox"].content)))
	if err != nil {
		t.Fatalf("%s: /bin/busybox: %v", arch, err)
	}
	if f.Machine != machine {
		t.Errorf("%s: /bin/busybox is %v, want %v", arch, f.Machine, machine)
	}
	if got := files["/arch"].content; got != uname+"\n" {
		t.Errorf("%s: RUN uname -m said %q, want %q", arch, got, uname)
	}
	if got, want := files["/args"].content, fmt.Sprintf("linux/%s|linux|%s||linux/amd64|linux|amd64\n", arch, arch); got != want {
		t.Errorf("%s: platform args %q, want %q", arch, got, want)
	}
	if got := files["/app"].content; got != "app for "+arch+"\n" {
		t.Errorf("%s: /app = %q", arch, got)
	}
	return files["/stamp"].content
}

// checkBuildStageOnce checks in plain progress that the $BUILDPLATFORM stage's RUN
// executed once and that the per-platform steps are labelled with their platform.
func checkBuildStageOnce(t *testing.T, progress string) {
	t.Helper()
	// Plain progress names a step again when its lines resume: count step numbers.
	ids := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^#(\d+) \[linux/amd64 build 2/2\] RUN mkdir /out`).FindAllStringSubmatch(progress, -1) {
		ids[m[1]] = true
	}
	if len(ids) != 1 {
		t.Errorf("the build stage's RUN is reported as %d steps, want one:\n%s", len(ids), progress)
	}
	for _, want := range []string{"[linux/arm64 stage-1 4/4] RUN uname -m", "[linux/amd64 stage-1 4/4] RUN uname -m", "[linux/arm64 stage-1 2/4] COPY --from=build"} {
		if !strings.Contains(progress, want) {
			t.Errorf("progress does not show %q:\n%s", want, progress)
		}
	}
}

// The done-when, as an OCI tarball: one build, a two-platform index, the
// shared build stage executed once, the arm64 stage's RUN under qemu.
func TestMultiPlatformOCIIndex(t *testing.T) {
	root, out := e2e(t)
	requireEmulator(t, "arm64")
	bctx := busyboxIndexContext(t)
	dir := project(t, map[string]string{"Dockerfile": crossDockerfile})
	tarPath := filepath.Join(out, "multi.tar")
	r := mustBuildLimited(t, dir, "--root", root, "--progress", "plain", "--platform", "linux/amd64,linux/arm64",
		"--build-context", bctx, "-t", "app:v1", "-o", "type=oci,dest="+tarPath, "--metadata-file", filepath.Join(out, "md.json"),
		"--iidfile", filepath.Join(out, "iid"), ".")
	checkBuildStageOnce(t, r.stderr)

	idx := readOCIIndex(t, tarPath)
	imgs := indexImages(t, idx)
	amdStamp := checkPlatformImage(t, imgs["amd64"], "amd64", "x86_64", elf.EM_X86_64)
	armStamp := checkPlatformImage(t, imgs["arm64"], "arm64", "aarch64", elf.EM_AARCH64)
	if amdStamp == "" || amdStamp != armStamp {
		t.Errorf("the build stage ran more than once: stamps %q and %q", amdStamp, armStamp)
	}

	// The metadata names the index, as buildx's does.
	var md map[string]string
	data, err := os.ReadFile(filepath.Join(out, "md.json"))
	if err != nil || json.Unmarshal(data, &md) != nil {
		t.Fatalf("metadata file: %v\n%s", err, data)
	}
	d, _ := idx.Digest()
	if md["containerimage.digest"] != d.String() {
		t.Errorf("metadata digest %s, index %s", md["containerimage.digest"], d)
	}
	if iid, _ := os.ReadFile(filepath.Join(out, "iid")); string(iid) != d.String() {
		t.Errorf("--iidfile says %q, the index is %s", iid, d)
	}
	if _, err := osexec.LookPath("skopeo"); err == nil {
		raw, err := osexec.Command("skopeo", "inspect", "--raw", "oci-archive:"+tarPath).Output()
		if err != nil {
			t.Fatalf("skopeo inspect --raw: %v", err)
		}
		var im v1.IndexManifest
		// The two images and, as buildx by default for an index, their provenance.
		if err := json.Unmarshal(raw, &im); err != nil || len(im.Manifests) != 4 || im.Manifests[1].Platform.Architecture != "arm64" {
			t.Errorf("skopeo sees %s (%v)", raw, err)
		}
	} else if testenv.OnCI() {
		t.Fatal("skopeo is not installed (scripts/install-deps.sh installs it)")
	}
}

// --push of a two-platform build pushes the index and both images; the bases come
// from a two-platform index on a registry.
func TestMultiPlatformPush(t *testing.T) {
	root, _ := e2e(t)
	requireEmulator(t, "arm64")
	testenv.RequireBusyboxArm64(t)
	host := testenv.Registry(t)
	testenv.PushIndex(t, testenv.BusyboxIndex(t), host+"/busybox:latest")
	df := strings.ReplaceAll(crossDockerfile, " busybox", " "+host+"/busybox")
	dir := project(t, map[string]string{"Dockerfile": df})
	r := mustBuildLimited(t, dir, "--root", root, "--progress", "plain", "--platform", "linux/amd64,linux/arm64",
		"-t", host+"/app:v1", "--push", ".")
	checkBuildStageOnce(t, r.stderr)

	ref, err := name.ParseReference(host + "/app:v1")
	if err != nil {
		t.Fatal(err)
	}
	idx, err := remote.Index(ref)
	if err != nil {
		t.Fatalf("the pushed tag is not an index: %v", err)
	}
	if err := validate.Index(idx); err != nil {
		t.Fatalf("validate pushed index: %v", err)
	}
	imgs := indexImages(t, idx)
	amdStamp := checkPlatformImage(t, imgs["amd64"], "amd64", "x86_64", elf.EM_X86_64)
	if armStamp := checkPlatformImage(t, imgs["arm64"], "arm64", "aarch64", elf.EM_AARCH64); armStamp != amdStamp {
		t.Errorf("the build stage ran more than once: stamps %q and %q", amdStamp, armStamp)
	}
}

// type=local and type=tar write a directory per platform named as buildx names it;
// the docker output, which holds one image, refuses a multi-platform build before it
// runs.
func TestMultiPlatformLocalTarDocker(t *testing.T) {
	root, out := e2e(t)
	requireEmulator(t, "arm64")
	bctx := busyboxIndexContext(t)
	dir := project(t, map[string]string{"Dockerfile": crossDockerfile})
	dest, tarPath := filepath.Join(out, "local"), filepath.Join(out, "rootfs.tar")
	mustBuildLimited(t, dir, "--root", root, "--platform", "linux/amd64,linux/arm64", "--build-context", bctx,
		"-o", "type=local,dest="+dest, "-o", "type=tar,dest="+tarPath, ".")
	f, err := os.Open(tarPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	inTar := listTar(t, f)
	for arch, uname := range map[string]string{"amd64": "x86_64", "arm64": "aarch64"} {
		got, err := os.ReadFile(filepath.Join(dest, "linux_"+arch, "arch"))
		if err != nil || string(got) != uname+"\n" {
			t.Errorf("local linux_%s/arch: %q, %v", arch, got, err)
		}
		if got := inTar["/linux_"+arch+"/arch"].content; got != uname+"\n" {
			t.Errorf("tar linux_%s/arch: %q", arch, got)
		}
		if inTar["/linux_"+arch+"/bin/sh"].link != "busybox" {
			t.Errorf("tar linux_%s/bin/sh: %+v", arch, inTar["/linux_"+arch+"/bin/sh"])
		}
	}
	if des, _ := os.ReadDir(dest); len(des) != 2 {
		t.Errorf("local output has %d entries, want linux_amd64 and linux_arm64", len(des))
	}
	for name := range inTar {
		if !strings.HasPrefix(name, "/linux_amd64") && !strings.HasPrefix(name, "/linux_arm64") {
			t.Errorf("tar entry %s is outside the platform directories", name)
		}
	}
	failBuild(t, dir, []string{"holds one platform's image", "linux/amd64, linux/arm64", "--platform"},
		"--root", root, "--platform", "linux/amd64,linux/arm64", "--build-context", bctx,
		"-o", "type=docker,dest="+filepath.Join(out, "docker.tar"), ".")
	if _, err := os.Stat(filepath.Join(out, "docker.tar")); err == nil {
		t.Error("the refused docker output was written")
	}
	failBuild(t, dir, []string{"holds one platform's image", "linux/amd64, linux/arm64"},
		"--root", root, "--platform", "linux/amd64,linux/arm64", "--build-context", bctx, "-t", "app:v1", "--load", ".")
}

// A base whose index lacks a target platform fails at its FROM line, naming the
// platforms it has; --platform values are checked before anything is built.
func TestMultiPlatformBaseWithoutPlatform(t *testing.T) {
	root, out := e2e(t)
	host := testenv.Registry(t)
	onlyAmd := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
		mutate.IndexAddendum{Add: testenv.BusyboxImage(t), Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}})
	testenv.PushIndex(t, onlyAmd, host+"/amdonly:latest")
	dir := project(t, map[string]string{"Dockerfile": "FROM scratch AS first\n\nFROM " + host + "/amdonly\nCOPY Dockerfile /x\n"})
	failBuild(t, dir, []string{"Dockerfile:3", "FROM " + host + "/amdonly", "no image for linux/s390x", "its index has: linux/amd64"},
		"--root", root, "--platform", "linux/amd64,linux/s390x", "-o", "type=oci,dest="+filepath.Join(out, "x.tar"), ".")
	failBuild(t, dir, []string{"--platform", "windows/amd64", "Linux images only"},
		"--root", root, "--platform", "linux/amd64,windows/amd64", "-o", "type=oci,dest="+filepath.Join(out, "x.tar"), ".")
}

// A RUN on a platform no emulator is registered for fails at its line and says how
// to register one; kiln build itself registers nothing.
func TestMultiPlatformNoEmulator(t *testing.T) {
	root, out := e2e(t)
	arch := ""
	for _, a := range []string{"riscv64", "s390x", "ppc64le", "mips64le", "loong64"} {
		if !emulatorRegistered(t, a) {
			arch = a
			break
		}
	}
	if arch == "" {
		t.Fatal("every candidate architecture has an emulator registered on this host")
	}
	dir := project(t, map[string]string{"Dockerfile": "FROM scratch\nCOPY Dockerfile /x\nRUN true\n"})
	failBuild(t, dir, []string{"Dockerfile:3", "RUN true", "linux/" + arch, "no binfmt_misc interpreter", "kiln binfmt install " + arch},
		"--root", root, "--platform", "linux/"+arch, "-o", "type=oci,dest="+filepath.Join(out, "x.tar"), ".")
	if emulatorRegistered(t, arch) {
		t.Errorf("kiln build registered an emulator for %s", arch)
	}
}

// emulatorRegistered reports whether binfmt_misc has an entry for arch's qemu, read
// without mounting anything on the host (a private mount namespace when needed).
func emulatorRegistered(t *testing.T, arch string) bool {
	t.Helper()
	if mounted, err := exec.BinfmtMounted(); err == nil && mounted {
		_, err := exec.FindEmulator(arch)
		return err == nil
	}
	r := kiln(t, t.TempDir(), "binfmt", "status")
	if r.code != 0 {
		t.Fatalf("kiln binfmt status: exit %d\n%s", r.code, r.stderr)
	}
	return regexp.MustCompile(`(?m)^linux/` + arch + ` +emulated`).MatchString(r.stdout)
}

// One foreign platform is one image (no index, as buildx), built on the host with its
// RUN under qemu and its labels without a platform prefix.
func TestMultiPlatformSingleForeign(t *testing.T) {
	root, out := e2e(t)
	requireEmulator(t, "arm64")
	bctx := busyboxIndexContext(t)
	dir := project(t, map[string]string{"Dockerfile": crossDockerfile})
	tarPath := filepath.Join(out, "arm64.tar")
	r := mustBuildLimited(t, dir, "--root", root, "--progress", "plain", "--platform", "linux/arm64",
		"--build-context", bctx, "-o", "type=oci,dest="+tarPath, ".")
	checkPlatformImage(t, readOCI(t, tarPath), "arm64", "aarch64", elf.EM_AARCH64)
	if !strings.Contains(r.stderr, "[stage-1 4/4] RUN uname -m") || strings.Contains(r.stderr, "[linux/") {
		t.Errorf("a one-platform build's progress names carry a platform:\n%s", r.stderr)
	}
}

// A multi-platform build's --cache-to holds every platform's steps: a runner with an
// empty root and --cache-from gets every step of both platforms from it, and the same
// index.
func TestMultiPlatformRemoteCache(t *testing.T) {
	root, out := e2e(t)
	requireEmulator(t, "arm64")
	bctx := busyboxIndexContext(t)
	dir := project(t, map[string]string{"Dockerfile": crossDockerfile})
	cache := filepath.Join(out, "cache")
	mustBuildLimited(t, dir, "--root", root, "--platform", "linux/amd64,linux/arm64", "--build-context", bctx,
		"--cache-to", "type=local,dest="+cache+",mode=max", "-o", "type=oci,dest="+filepath.Join(out, "1.tar"), ".")
	r := mustBuildLimited(t, dir, "--root", t.TempDir(), "--progress", "plain", "--platform", "linux/amd64,linux/arm64",
		"--build-context", bctx, "--cache-from", "type=local,src="+cache, "-o", "type=oci,dest="+filepath.Join(out, "2.tar"), ".")
	for _, step := range []string{"[linux/amd64 build 2/2] RUN mkdir", "[linux/arm64 stage-1 4/4] RUN uname", "[linux/amd64 stage-1 4/4] RUN uname"} {
		m := regexp.MustCompile(`(?m)^#(\d+) ` + regexp.QuoteMeta(step)).FindStringSubmatch(r.stderr)
		if m == nil || !strings.Contains(r.stderr, "\n#"+m[1]+" CACHED\n") {
			t.Errorf("%s was not taken from the remote cache:\n%s", step, r.stderr)
		}
	}
	// The same images; the indexes differ by their provenance's times (no
	// SOURCE_DATE_EPOCH here).
	a := indexImages(t, readOCIIndex(t, filepath.Join(out, "1.tar")))
	b := indexImages(t, readOCIIndex(t, filepath.Join(out, "2.tar")))
	for arch, img := range a {
		da, _ := img.Digest()
		db, _ := b[arch].Digest()
		if da != db {
			t.Errorf("the %s image built from the remote cache is %s, the first build's %s", arch, db, da)
		}
	}
}
