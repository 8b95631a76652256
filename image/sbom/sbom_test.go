package sbom

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

const dpkgStatus = `Package: base-files
Status: install ok installed
Priority: required
Essential: yes
Maintainer: Santiago Vila <sanvila@debian.org>
Architecture: amd64
Version: 12.4+deb12u5
Description: Debian base system miscellaneous files
 This package contains the basic filesystem hierarchy.

Package: libc6
Status: install ok installed
Architecture: amd64
Multi-Arch: same
Source: glibc
Version: 2.36-9+deb12u4
Maintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>

Package: old-removed
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0-1

Package: tzdata
Status: install ok installed
Architecture: all
Source: tzdata (2024a-0+deb12u1)
Version: 2024a-0+deb12u1
`

const debianOSRelease = `PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION_CODENAME=bookworm
ID=debian
`

// syntheticTree is a rootfs with one package of every kind the scanner reads.
func syntheticTree(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	writeTree(t, root, map[string]string{
		"usr/lib/os-release":                     debianOSRelease,
		"var/lib/dpkg/status":                    dpkgStatus,
		"var/lib/dpkg/status.d/ca-certs":         "Package: ca-certificates\nVersion: 20230311\nArchitecture: all\n",
		"var/lib/dpkg/status.d/ca-certs.md5sums": "d41d8cd98f00b204e9800998ecf8427e  usr/share/x\n",
		"usr/share/doc/base-files/copyright": "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n" +
			"Files: *\nCopyright: Santiago Vila\nLicense: GPL-2+\n\nFiles: debian/*\nLicense: GPL-2+ or Artistic\n\n" +
			"License: Artistic\n On Debian systems see /usr/share/common-licenses/Artistic.\n",
		"usr/share/doc/libc6-doc/copyright": "This is free text.\nSee /usr/share/common-licenses/LGPL-2.1 for the license.\n",

		"app/node_modules/left-pad/package.json":     `{"name":"left-pad","version":"1.3.0","license":"WTFPL","author":"azer <azer@example.org> (https://azer.bike)"}`,
		"app/node_modules/@babel/core/package.json":  `{"name":"@babel/core","version":"7.24.0","license":{"type":"mit"}}`,
		"app/node_modules/left-pad/lib/package.json": `{"type":"module"}`,
		"app/package.json":                           `{"name":"the-app","version":"0.0.1"}`,
		"app/package-lock.json": `{"name":"the-app","lockfileVersion":3,"packages":{` +
			`"":{"name":"the-app","version":"0.0.1"},` +
			`"node_modules/left-pad":{"version":"1.3.0","license":"WTFPL"},` +
			`"node_modules/ms":{"version":"2.1.3","license":"MIT"},` +
			`"node_modules/jest":{"version":"29.0.0","dev":true}}}`,

		"usr/lib/python3/dist-packages/requests-2.31.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: requests\nVersion: 2.31.0\n" +
			"Summary: Python HTTP for Humans.\nAuthor: Kenneth Reitz\nAuthor-email: me@kennethreitz.org\nLicense: Apache 2.0\n\nRequests\n========\nLicense: not a header\n",
		"usr/lib/python3/dist-packages/Typing_Extensions-4.9.0.dist-info/METADATA": "Metadata-Version: 2.4\nName: Typing_Extensions\nVersion: 4.9.0\nLicense-Expression: PSF-2.0\n",
		"usr/lib/python3/dist-packages/six-1.16.0.egg-info":                        "Metadata-Version: 1.2\nName: six\nVersion: 1.16.0\nLicense: MIT\n",
	})
	// The libc6 docs are the libc6-doc ones, as Debian links them.
	symlink(t, "libc6-doc", filepath.Join(root, "usr/share/doc/libc6"))
	symlink(t, "../usr/lib/os-release", filepath.Join(root, "etc/os-release"))
	bin := filepath.Join(root, "usr/local/bin/hello")
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, buildGoBinary(t), 0o755); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestScanFindsEveryEcosystem(t *testing.T) {
	root := syntheticTree(t)
	_, doc := scan(t, root, Options{Name: "127.0.0.1:5000/app:v1", Created: testCreated})

	if doc.DocumentName != "127.0.0.1:5000/app:v1" || doc.CreationInfo.Created != "2026-01-02T03:04:05Z" {
		t.Errorf("name %q created %q", doc.DocumentName, doc.CreationInfo.Created)
	}
	want := []struct {
		name, version, purl, license string
	}{
		{"base-files", "12.4+deb12u5", "pkg:deb/debian/base-files@12.4%2Bdeb12u5?arch=amd64&distro=debian-12", "Artistic-1.0-Perl AND GPL-2.0-or-later"},
		{"libc6", "2.36-9+deb12u4", "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&distro=debian-12&upstream=glibc", "LGPL-2.1-only"},
		{"tzdata", "2024a-0+deb12u1", "pkg:deb/debian/tzdata@2024a-0%2Bdeb12u1?arch=all&distro=debian-12&upstream=tzdata%402024a-0%2Bdeb12u1", "NOASSERTION"},
		{"ca-certificates", "20230311", "pkg:deb/debian/ca-certificates@20230311?arch=all&distro=debian-12", "NOASSERTION"},
		{"example.com/hello", "(devel)", "pkg:golang/example.com/hello@%28devel%29", "NOASSERTION"},
		{"example.com/greet", "v1.2.3", "pkg:golang/example.com/greet@v1.2.3", "NOASSERTION"},
		{"stdlib", runtime.Version(), "pkg:golang/stdlib@" + strings.TrimPrefix(runtime.Version(), "go"), "BSD-3-Clause"},
		{"left-pad", "1.3.0", "pkg:npm/left-pad@1.3.0", "WTFPL"},
		{"@babel/core", "7.24.0", "pkg:npm/%40babel/core@7.24.0", "MIT"},
		{"ms", "2.1.3", "pkg:npm/ms@2.1.3", "MIT"},
		{"requests", "2.31.0", "pkg:pypi/requests@2.31.0", "LicenseRef-Apache-2.0"},
		{"Typing_Extensions", "4.9.0", "pkg:pypi/typing-extensions@4.9.0", "PSF-2.0"},
		{"six", "1.16.0", "pkg:pypi/six@1.16.0", "MIT"},
	}
	for _, w := range want {
		p := onePackage(t, doc, w.name)
		if p.PackageVersion != w.version || purlOf(p) != w.purl || p.PackageLicenseDeclared != w.license {
			t.Errorf("%s: version %q purl %q license %q;\nwant %q %q %q", w.name, p.PackageVersion, purlOf(p), p.PackageLicenseDeclared, w.version, w.purl, w.license)
		}
	}
	for _, absent := range []string{"old-removed", "jest", "the-app"} {
		if ps := packagesNamed(doc, absent); len(ps) != 0 {
			t.Errorf("%s is listed, but it is removed, a dev dependency or the project itself", absent)
		}
	}
	// left-pad was seen twice (installed, and in the lock file): one package, both places.
	if lp := onePackage(t, doc, "left-pad"); !strings.Contains(lp.PackageSourceInfo, "/app/node_modules/left-pad/package.json") ||
		!strings.Contains(lp.PackageSourceInfo, "/app/package-lock.json") {
		t.Errorf("left-pad sourceInfo %q", lp.PackageSourceInfo)
	}
	if bf := onePackage(t, doc, "base-files"); bf.PackageSupplier == nil || bf.PackageSupplier.Supplier != "Santiago Vila (sanvila@debian.org)" {
		t.Errorf("base-files supplier %+v", bf.PackageSupplier)
	}
	if lp := onePackage(t, doc, "left-pad"); lp.PackageOriginator == nil || lp.PackageOriginator.Originator != "azer (azer@example.org)" {
		t.Errorf("left-pad originator %+v", lp.PackageOriginator)
	}
	// A LicenseRef must have its text in hasExtractedLicensingInfos.
	found := false
	for _, l := range doc.OtherLicenses {
		found = found || l.LicenseIdentifier == "LicenseRef-Apache-2.0" && l.ExtractedText == "Apache 2.0"
	}
	if !found {
		t.Errorf("no extracted license for LicenseRef-Apache-2.0: %+v", doc.OtherLicenses)
	}

	osp := onePackage(t, doc, "debian")
	if osp.PackageVersion != "12" || osp.PrimaryPackagePurpose != "OPERATING-SYSTEM" || !strings.Contains(osp.PackageSourceInfo, "/usr/lib/os-release") {
		t.Errorf("OS package %+v", osp)
	}

	// The main module depends on its dependency and the standard library.
	hello, greet, std := onePackage(t, doc, "example.com/hello"), onePackage(t, doc, "example.com/greet"), onePackage(t, doc, "stdlib")
	deps := map[string]bool{}
	for _, r := range doc.Relationships {
		if r.RefA.ElementRefID == hello.PackageSPDXIdentifier && r.Relationship == "DEPENDS_ON" {
			deps[string(r.RefB.ElementRefID)] = true
		}
	}
	if len(deps) != 2 || !deps[string(greet.PackageSPDXIdentifier)] || !deps[string(std.PackageSPDXIdentifier)] {
		t.Errorf("example.com/hello DEPENDS_ON %v", deps)
	}
}

func TestScanIsDeterministic(t *testing.T) {
	root := syntheticTree(t)
	opts := Options{Name: "context", Created: testCreated}
	a, docA := scan(t, root, opts)
	b, _ := scan(t, root, opts)
	if !bytes.Equal(a, b) {
		t.Fatalf("two scans of one tree differ:\n%s\n%s", a, b)
	}

	// The same tree elsewhere on the host is the same document: no host path is in it.
	other := filepath.Join(t.TempDir(), "copy")
	if out, err := exec.Command("cp", "-a", root, other).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	if c, _ := scan(t, other, opts); !bytes.Equal(a, c) {
		t.Errorf("a copy of the tree at another path gives another document")
	}

	later := opts
	later.Created = testCreated.Add(36 * time.Hour)
	d, docD := scan(t, root, later)
	if docD.CreationInfo.Created != "2026-01-03T15:04:05Z" {
		t.Errorf("created %q", docD.CreationInfo.Created)
	}
	if docA.DocumentNamespace != docD.DocumentNamespace {
		t.Errorf("namespace depends on the creation time: %s vs %s", docA.DocumentNamespace, docD.DocumentNamespace)
	}
	if !bytes.Equal(a, bytes.Replace(d, []byte(`"2026-01-03T15:04:05Z"`), []byte(`"2026-01-02T03:04:05Z"`), 1)) {
		t.Errorf("a different Created changed more than the creation time")
	}
	// Another name is another document, with another namespace.
	_, docE := scan(t, root, Options{Name: "other", Created: testCreated})
	if docE.DocumentNamespace == docA.DocumentNamespace {
		t.Errorf("two different documents share the namespace %s", docA.DocumentNamespace)
	}
}

func TestScanRefusesZeroCreated(t *testing.T) {
	if _, err := Scan(context.Background(), t.TempDir(), Options{Name: "x"}); err == nil {
		t.Fatal("a zero Created was accepted")
	}
}

func TestScanHonoursCancellation(t *testing.T) {
	root := t.TempDir()
	for i := 0; i < 50; i++ {
		writeTree(t, root, map[string]string{filepath.Join("d", strings.Repeat("x", i+1), "f"): "x"})
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Scan(ctx, root, Options{Name: "x", Created: testCreated}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Scan with a cancelled context: %v, want context.Canceled", err)
	}
}

func TestEmptyTreeIsAValidDocument(t *testing.T) {
	_, doc := scan(t, t.TempDir(), Options{Name: "context", Created: testCreated})
	if len(doc.Packages) != 1 || doc.Packages[0].PackageName != "context" {
		t.Fatalf("packages of an empty tree: %s", packageList(doc))
	}
}
