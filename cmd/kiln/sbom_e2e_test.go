package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	intoto "github.com/in-toto/in-toto-golang/in_toto"
	spdxjson "github.com/spdx/tools-golang/json"
	"github.com/spdx/tools-golang/spdx"
)

// Issue 20, item 3: an SPDX SBOM of the final image, attached as BuildKit attaches
// it, and of the stages and the context when BUILDKIT_SBOM_SCAN_STAGE and
// BUILDKIT_SBOM_SCAN_CONTEXT ask.

// spdxDocument decodes a statement's predicate with tools-golang's own reader.
func spdxDocument(t *testing.T, st intoto.Statement) *spdx.Document {
	t.Helper()
	if st.PredicateType != intoto.PredicateSPDX {
		t.Fatalf("predicate type %s, want %s", st.PredicateType, intoto.PredicateSPDX)
	}
	data, err := json.Marshal(st.Predicate)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := spdxjson.Read(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("read the SPDX document with tools-golang: %v", err)
	}
	return doc
}

// packageVersions are a document's packages, name to version.
func packageVersions(doc *spdx.Document) map[string]string {
	out := map[string]string{}
	for _, p := range doc.Packages {
		out[p.PackageName] = p.PackageVersion
	}
	return out
}

// The SBOM of a Debian image lists its installed packages with their versions and
// purls; with SOURCE_DATE_EPOCH it is the same from a fresh root; skopeo still reads
// the image.
func TestSBOMDebianImage(t *testing.T) {
	t.Parallel()
	root, out := e2e(t)
	requireDebianBase(t)
	dir := project(t, map[string]string{"Dockerfile": "FROM " + debianBase + "\nRUN echo hello > /hello\n"})
	oci := filepath.Join(out, "deb.tar")
	args := []string{"--build-arg", "SOURCE_DATE_EPOCH=1700000000", "-t", "example.com/deb:v1", "--sbom=true"}
	mustBuild(t, dir, append(args, "--root", root, "-o", "type=oci,dest="+oci, ".")...)
	a := readAttested(t, oci)
	if len(a.stmts) != 1 {
		t.Fatalf("%d statements, want the SBOM alone (no provenance for a tarball unless asked)", len(a.stmts))
	}
	st := a.stmts[0]
	if len(st.Subject) != 1 || st.Subject[0].Digest["sha256"] != a.image.Hex {
		t.Errorf("subject %+v, want the image %s", st.Subject, a.image)
	}
	doc := spdxDocument(t, st)
	pkgs := packageVersions(doc)
	for _, name := range []string{"base-files", "dpkg", "libc6", "apt", "bash"} {
		if v := pkgs[name]; v == "" {
			t.Errorf("package %s is not in the SBOM (%d packages)", name, len(pkgs))
		}
	}
	if !strings.HasPrefix(pkgs["base-files"], "12") {
		t.Errorf("base-files %q, want bookworm's 12.x", pkgs["base-files"])
	}
	purl := false
	for _, p := range doc.Packages {
		if p.PackageName == "dpkg" {
			for _, r := range p.PackageExternalReferences {
				purl = purl || strings.HasPrefix(r.Locator, "pkg:deb/debian/dpkg@")
			}
		}
	}
	if !purl {
		t.Errorf("dpkg has no pkg:deb purl")
	}
	if doc.CreationInfo == nil || doc.CreationInfo.Created != "2023-11-14T22:13:20Z" {
		t.Errorf("creation info %+v, want the epoch", doc.CreationInfo)
	}

	again := filepath.Join(out, "again.tar")
	mustBuild(t, dir, append(args, "--root", t.TempDir(), "-o", "type=oci,dest="+again, ".")...)
	if b := readAttested(t, again); digestOf(t, b.index) != digestOf(t, a.index) {
		t.Errorf("a fresh root gave index %s, first %s: %s", digestOf(t, b.index), digestOf(t, a.index), indexDifference(t, a.index, b.index))
	}
	if si := skopeoInspect(t, "oci-archive:"+oci); si["Architecture"] != "amd64" {
		t.Errorf("skopeo inspect: %v", si)
	}
}

// BUILDKIT_SBOM_SCAN_STAGE and BUILDKIT_SBOM_SCAN_CONTEXT add SBOMs of the stages
// and of the context, named as BuildKit's scanner names them; a local output writes
// them as files; --attest type=sbom,scan-stage=true asks for every stage.
func TestSBOMStagesAndContext(t *testing.T) {
	t.Parallel()
	root, out := e2e(t)
	host := busyboxRegistry(t)
	pkgJSON := `{"name": "left-pad", "version": "1.3.0", "license": "WTFPL"}`
	df := fmt.Sprintf(`FROM %s/busybox AS build
ARG BUILDKIT_SBOM_SCAN_STAGE=true
RUN mkdir -p /node_modules/left-pad && echo '%s' > /node_modules/left-pad/package.json
FROM %s/busybox AS unscanned
RUN echo x > /x
FROM %s/busybox
COPY --from=build /node_modules /app/node_modules
COPY --from=unscanned /x /x
`, host, pkgJSON, host, host)
	dir := project(t, map[string]string{"Dockerfile": df,
		"vendor/node_modules/is-odd/package.json": `{"name": "is-odd", "version": "3.0.1"}`})
	oci := filepath.Join(out, "s.tar")
	mustBuild(t, dir, "--root", root, "--sbom=true", "--build-arg", "BUILDKIT_SBOM_SCAN_CONTEXT=true", "--provenance=true", "-o", "type=oci,dest="+oci, ".")
	a := readAttested(t, oci)
	var types []string
	docs := map[string]*spdx.Document{}
	for _, st := range a.stmts {
		types = append(types, st.PredicateType)
		if st.PredicateType == intoto.PredicateSPDX {
			d := spdxDocument(t, st)
			docs[d.DocumentName] = d
		}
	}
	if len(a.stmts) != 4 || a.stmts[3].PredicateType != "https://slsa.dev/provenance/v1" {
		t.Fatalf("statements %v: want the image's, the context's and the build stage's SBOMs, then the provenance", types)
	}
	if v := packageVersions(docs["sbom"])["left-pad"]; v != "1.3.0" {
		t.Errorf("the image's SBOM has left-pad %q (documents %v)", v, slices.Sorted(maps.Keys(docs)))
	}
	if v := packageVersions(docs["sbom-build"])["left-pad"]; v != "1.3.0" {
		t.Errorf("the build stage's SBOM has left-pad %q", v)
	}
	if v := packageVersions(docs["sbom-context"])["is-odd"]; v != "3.0.1" {
		t.Errorf("the context's SBOM has is-odd %q", v)
	}
	if _, ok := docs["sbom-unscanned"]; ok {
		t.Errorf("a stage that did not ask was scanned")
	}

	// scan-stage=true scans every stage the target needs; a local output gets files.
	dest := filepath.Join(out, "fs")
	mustBuild(t, dir, "--root", root, "--attest", "type=sbom,scan-stage=true", "-o", "type=local,dest="+dest, ".")
	for _, f := range []string{"sbom.spdx.json", "sbom-build.spdx.json", "sbom-unscanned.spdx.json"} {
		data, err := os.ReadFile(filepath.Join(dest, f))
		if err != nil {
			t.Errorf("local output: %v", err)
			continue
		}
		var st intoto.Statement
		if err := json.Unmarshal(data, &st); err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		spdxDocument(t, st)
	}
	if r := kiln(t, dir, "build", "--root", root, "--sbom=generator=docker/buildkit-syft-scanner", "."); r.code == 0 || !strings.Contains(r.stderr, "runs no generator image") {
		t.Errorf("generator=: exit %d %s", r.code, r.stderr)
	}
}
