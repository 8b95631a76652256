package sbom

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	spdxjson "github.com/spdx/tools-golang/json"
	"github.com/spdx/tools-golang/spdx"
	"github.com/spdx/tools-golang/spdxlib"
)

var testCreated = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// writeTree writes files (relative path -> content) under dir.
func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

// scan runs Scan and parses its output with tools-golang's own JSON reader, then
// checks it with the library's validator (every relationship names an element that
// exists), so the tests read the document as a consumer would.
func scan(t *testing.T, root string, opts Options) ([]byte, *spdx.Document) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	b, err := Scan(ctx, root, opts)
	if err != nil {
		t.Fatalf("Scan(%s): %v", root, err)
	}
	doc, err := spdxjson.Read(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("read the SPDX document back: %v\n%s", err, b)
	}
	if doc.SPDXVersion != "SPDX-2.3" || doc.DataLicense != "CC0-1.0" {
		t.Fatalf("document is %s/%s, want SPDX-2.3/CC0-1.0", doc.SPDXVersion, doc.DataLicense)
	}
	if err := spdxlib.ValidateDocument(doc); err != nil {
		t.Fatalf("invalid SPDX document: %v", err)
	}
	described, err := spdxlib.GetDescribedPackageIDs(doc)
	if err != nil || len(described) != 1 {
		t.Fatalf("described packages %v, %v; want the one root package", described, err)
	}
	return b, doc
}

// packagesNamed returns the document's packages called name.
func packagesNamed(doc *spdx.Document, name string) []*spdx.Package {
	var out []*spdx.Package
	for _, p := range doc.Packages {
		if p.PackageName == name {
			out = append(out, p)
		}
	}
	return out
}

// onePackage returns the only package called name, failing the test otherwise.
func onePackage(t *testing.T, doc *spdx.Document, name string) *spdx.Package {
	t.Helper()
	ps := packagesNamed(doc, name)
	if len(ps) != 1 {
		t.Fatalf("packages named %q: %d, want 1 (all: %s)", name, len(ps), packageList(doc))
	}
	return ps[0]
}

func purlOf(p *spdx.Package) string {
	for _, r := range p.PackageExternalReferences {
		if r.Category == "PACKAGE-MANAGER" && r.RefType == "purl" {
			return r.Locator
		}
	}
	return ""
}

func packageList(doc *spdx.Document) string {
	var s []string
	for _, p := range doc.Packages {
		s = append(s, p.PackageName+"@"+p.PackageVersion)
	}
	return strings.Join(s, " ")
}

// buildGoBinary builds a tiny main module, example.com/hello, with one vendored
// dependency, example.com/greet v1.2.3, offline, and returns the binary's bytes.
func buildGoBinary(t *testing.T) []byte {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go tool is needed to build a test binary: %v", err)
	}
	src := t.TempDir()
	writeTree(t, src, map[string]string{
		"go.mod":                            "module example.com/hello\n\ngo 1.26\n\nrequire example.com/greet v1.2.3\n",
		"vendor/modules.txt":                "# example.com/greet v1.2.3\n## explicit\nexample.com/greet\n",
		"vendor/example.com/greet/greet.go": "package greet\n\nfunc Hello() string { return \"hello\" }\n",
		"main.go":                           "package main\n\nimport (\n\t\"fmt\"\n\n\t\"example.com/greet\"\n)\n\nfunc main() { fmt.Println(greet.Hello()) }\n",
	})
	out := filepath.Join(t.TempDir(), "hello")
	cmd := exec.Command(goTool, "build", "-mod=vendor", "-buildvcs=false", "-trimpath", "-o", out, ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOPROXY=off", "CGO_ENABLED=0", "GOFLAGS=")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build of the test binary: %v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
