package sbom

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/kiln-build/kiln/internal/testenv"
	"github.com/kiln-build/kiln/layers"
)

// anchorDebian is the debootstrap'd bookworm that the shared anchors serve.
const anchorDebian = testenv.AnchorDebian

// TestScanDebianImage scans a real Debian rootfs: the anchor image's layers unpacked
// with kiln's own safe unpacker, whiteouts applied, as kiln will scan a built image.
func TestScanDebianImage(t *testing.T) {
	testenv.RequireRoot(t) // the layers hold device nodes
	testenv.RequireAnchorDebian(t)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	ref, err := name.ParseReference(anchorDebian, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(ref, remote.WithContext(ctx))
	if err != nil {
		t.Fatalf("pull %s: %v", anchorDebian, err)
	}
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	for i, l := range ls {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatalf("layer %d: %v", i, err)
		}
		err = layers.Unpack(ctx, rc, root, layers.UnpackOptions{Whiteouts: layers.ApplyWhiteouts, KeepOwners: true})
		rc.Close()
		if err != nil {
			t.Fatalf("unpack layer %d: %v", i, err)
		}
	}

	_, doc := scan(t, root, Options{Name: anchorDebian, Created: testCreated})
	osp := onePackage(t, doc, "debian")
	if osp.PackageSPDXIdentifier != osID || osp.PackageVersion != "12" || osp.PrimaryPackagePurpose != "OPERATING-SYSTEM" ||
		!strings.Contains(osp.PackageDescription, "bookworm") {
		t.Errorf("OS package: %+v", osp)
	}
	// Bookworm's versions of these, whatever the point release.
	for pkg, prefix := range map[string]string{
		"base-files": "12.",
		"dpkg":       "1.21.",
		"libc6":      "2.36-9",
		"apt":        "2.6.",
		"bash":       "5.2.",
	} {
		p := onePackage(t, doc, pkg)
		purl := purlOf(p)
		if !strings.HasPrefix(p.PackageVersion, prefix) ||
			!strings.HasPrefix(purl, "pkg:deb/debian/"+pkg+"@") ||
			!strings.Contains(purl, "?arch=") ||
			!strings.Contains(purl, "distro=debian-12") {
			t.Errorf("%s: version %q purl %q; want a %s* version and a pkg:deb/debian purl of debian-12", pkg, p.PackageVersion, purl, prefix)
		}
		if !strings.Contains(p.PackageSourceInfo, "/var/lib/dpkg/status") {
			t.Errorf("%s: sourceInfo %q", pkg, p.PackageSourceInfo)
		}
	}
	if p := onePackage(t, doc, "libc6"); !strings.Contains(purlOf(p), "upstream=glibc") || !strings.Contains(p.PackageLicenseDeclared, "LGPL-2.1") {
		t.Errorf("libc6: purl %q license %q", purlOf(p), p.PackageLicenseDeclared)
	}
	// debootstrap --variant=minbase installs about ninety packages; every one is a deb.
	debs := 0
	for _, p := range doc.Packages {
		if strings.HasPrefix(purlOf(p), "pkg:deb/debian/") {
			debs++
		}
	}
	if debs < 80 {
		t.Errorf("%d Debian packages, want the ~90 of a minbase bookworm: %s", debs, packageList(doc))
	}
}
