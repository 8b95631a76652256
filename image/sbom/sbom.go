package sbom

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strings"
	"time"

	spdxjson "github.com/spdx/tools-golang/json"
	"github.com/spdx/tools-golang/spdx/v2/common"
	spdx "github.com/spdx/tools-golang/spdx/v2/v2_3"
)

// Options says what the document is of and when it was made.
type Options struct {
	// Name is what is scanned, e.g. "127.0.0.1:5000/app:v1" or "context": the
	// document's name and the name of the package it describes.
	Name string
	// Created is the document's creation time. With SOURCE_DATE_EPOCH the caller
	// passes that, so that the document is reproducible. It must be set: a zero time
	// is refused rather than silently replaced by the clock.
	Created time.Time
}

// Creator is the tool the document names as its creator.
const Creator = "kiln"

// namespaceBase prefixes every documentNamespace; the rest is the name and a digest
// of the document, so the namespace is unique per content yet reproducible.
const namespaceBase = "https://github.com/kiln-build/kiln/sbom/"

// Scan catalogues the filesystem tree at root (an unpacked image rootfs or a build
// context, a plain directory) and returns an SPDX 2.3 document as JSON, ready to be
// the predicate of an in-toto statement of type https://spdx.dev/Document.
// See the package documentation for what it finds and how it treats the tree.
func Scan(ctx context.Context, root string, opts Options) ([]byte, error) {
	doc, err := ScanDocument(ctx, root, opts)
	if err != nil {
		return nil, err
	}
	return Marshal(doc)
}

// ScanDocument is Scan returning the document as tools-golang's SPDX 2.3 value, for a
// caller that wants to inspect or amend it; Marshal writes it exactly as Scan does.
func ScanDocument(ctx context.Context, root string, opts Options) (*spdx.Document, error) {
	if opts.Created.IsZero() {
		return nil, errors.New("sbom of " + root + ": Options.Created is not set")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	t, err := openTree(root)
	if err != nil {
		return nil, err
	}
	defer t.Close()

	c := newCatalog()
	osr := readOSRelease(t)
	if err := catalogDpkg(ctx, t, osr, c); err != nil {
		return nil, fmt.Errorf("sbom of %s: %w", root, err)
	}
	err = t.walk(ctx, func(rel string, d fs.DirEntry) error {
		switch {
		case isNodeModuleManifest(rel):
			catalogPackageJSON(t, rel, c)
		case isPackageLock(rel):
			catalogPackageLock(t, rel, c)
		case isPythonMetadata(rel):
			catalogPythonMetadata(t, rel, c)
		case isGoCandidate(d):
			catalogGoBinary(t, rel, c)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("sbom of %s: %w", root, err)
	}
	return newDocument(opts, osr, c.sorted())
}

// Marshal writes doc as compact JSON with tools-golang's writer.
func Marshal(doc *spdx.Document) ([]byte, error) {
	var buf bytes.Buffer
	if err := spdxjson.Write(doc, &buf, spdxjson.EscapeHTML(false)); err != nil {
		return nil, fmt.Errorf("write SPDX document %s: %w", doc.DocumentName, err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

const (
	noAssertion = "NOASSERTION"
	rootID      = common.ElementID("DocumentRoot")
	osID        = common.ElementID("OperatingSystem")
)

// newDocument lays the packages out as SPDX: the document DESCRIBES a root package
// named opts.Name, which CONTAINS every package found (and the OS, when there is
// one); a Go binary's main module DEPENDS_ON the modules and the Go standard library
// it was built with. Everything is in a fixed order, so the same tree and options
// give the same bytes.
func newDocument(opts Options, osr *osRelease, pkgs []*found) (*spdx.Document, error) {
	name := opts.Name
	if name == "" {
		name = "unnamed"
	}
	ls := newLicenseSet()
	doc := &spdx.Document{
		SPDXVersion:    spdx.Version,
		DataLicense:    spdx.DataLicense,
		SPDXIdentifier: "DOCUMENT",
		DocumentName:   name,
		CreationInfo: &spdx.CreationInfo{
			Creators: []common.Creator{{CreatorType: "Tool", Creator: Creator}},
		},
	}
	root := &spdx.Package{
		PackageName:             name,
		PackageSPDXIdentifier:   rootID,
		PackageDownloadLocation: noAssertion,
		PackageLicenseConcluded: noAssertion,
		PackageLicenseDeclared:  noAssertion,
		PackageCopyrightText:    noAssertion,
	}
	doc.Packages = append(doc.Packages, root)
	rel := func(a common.ElementID, typ string, b common.ElementID) {
		doc.Relationships = append(doc.Relationships, &spdx.Relationship{
			RefA: common.MakeDocElementID("", string(a)), RefB: common.MakeDocElementID("", string(b)), Relationship: typ,
		})
	}
	rel("DOCUMENT", common.TypeRelationshipDescribe, rootID)

	if osr != nil {
		doc.Packages = append(doc.Packages, &spdx.Package{
			PackageName:             osr.ID,
			PackageSPDXIdentifier:   osID,
			PackageVersion:          osr.VersionID,
			PackageDownloadLocation: noAssertion,
			PackageLicenseConcluded: noAssertion,
			PackageLicenseDeclared:  noAssertion,
			PackageCopyrightText:    noAssertion,
			PackageDescription:      osr.PrettyName,
			PackageSourceInfo:       "acquired package info from " + osr.location,
			PrimaryPackagePurpose:   "OPERATING-SYSTEM",
		})
		rel(rootID, common.TypeRelationshipContains, osID)
	}

	ids := make(map[string]common.ElementID, len(pkgs))
	for _, p := range pkgs {
		id := packageID(p)
		if p.purl != "" {
			ids[p.purl] = id
		}
		sp := &spdx.Package{
			PackageName:             p.name,
			PackageSPDXIdentifier:   id,
			PackageVersion:          p.version,
			PackageDownloadLocation: noAssertion,
			PackageLicenseConcluded: noAssertion,
			PackageLicenseDeclared:  ls.expression(p.licenses),
			PackageCopyrightText:    noAssertion,
			PackageSourceInfo:       p.eco.evidence() + ": " + strings.Join(p.locations, ", "),
		}
		if who := spdxPerson(p.originator); who != "" {
			sp.PackageOriginator = &common.Originator{OriginatorType: "Person", Originator: who}
			if p.eco == ecoDeb { // as syft: the Debian maintainer also supplies the package
				sp.PackageSupplier = &common.Supplier{SupplierType: "Person", Supplier: who}
			}
		}
		if p.purl != "" {
			sp.PackageExternalReferences = []*spdx.PackageExternalReference{{
				Category: common.CategoryPackageManager, RefType: common.TypePackageManagerPURL, Locator: p.purl,
			}}
		}
		doc.Packages = append(doc.Packages, sp)
		rel(rootID, common.TypeRelationshipContains, id)
	}
	for _, p := range pkgs {
		for _, d := range p.dependsOn {
			if did, ok := ids[d]; ok && did != ids[p.purl] {
				rel(ids[p.purl], common.TypeRelationshipDependsOn, did)
			}
		}
	}
	sort.SliceStable(doc.Relationships, func(i, j int) bool {
		a, b := doc.Relationships[i], doc.Relationships[j]
		if a.RefA.ElementRefID != b.RefA.ElementRefID {
			return a.RefA.ElementRefID < b.RefA.ElementRefID
		}
		if a.Relationship != b.Relationship {
			return a.Relationship < b.Relationship
		}
		return a.RefB.ElementRefID < b.RefB.ElementRefID
	})
	refs := make([]string, 0, len(ls.refs))
	for r := range ls.refs {
		refs = append(refs, r)
	}
	sort.Strings(refs)
	for _, r := range refs {
		doc.OtherLicenses = append(doc.OtherLicenses, &spdx.OtherLicense{LicenseIdentifier: r, ExtractedText: ls.refs[r]})
	}

	// The namespace is derived from everything but itself and the creation time, so
	// that a new Created changes the document only in "created".
	content, err := Marshal(doc)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(content)
	doc.DocumentNamespace = namespaceBase + strings.TrimLeft(namespaceName(name), "/") + "-" + hex.EncodeToString(sum[:16])
	doc.CreationInfo.Created = opts.Created.UTC().Format(time.RFC3339)
	return doc, nil
}

// packageID is an SPDX identifier that is stable for a package: the ecosystem, the
// name made of the characters an identifier may hold, and a digest of the purl (or
// name and version) so that two versions of one package never collide.
func packageID(p *found) common.ElementID {
	key := p.purl
	if key == "" {
		key = p.eco.id() + "\x00" + p.name + "\x00" + p.version
	}
	sum := sha256.Sum256([]byte(key))
	return common.ElementID("Package-" + p.eco.id() + "-" + idChars(p.name) + "-" + hex.EncodeToString(sum[:8]))
}

// idChars keeps the characters an SPDX identifier allows (letters, digits, '.', '-').
func idChars(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' {
			return r
		}
		return '-'
	}, s)
}

// namespaceName keeps the name readable in the namespace URI (a reference's slashes
// and colon stay) while dropping anything a URI would need to escape.
func namespaceName(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(".-_~/:@", r) {
			return r
		}
		return '-'
	}, s)
}

// spdxPerson writes "Name <email>", the form of dpkg's Maintainer and npm's author,
// as SPDX writes a person: "Name (email)".
func spdxPerson(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if i := strings.LastIndex(s, "<"); i >= 0 && strings.HasSuffix(s, ">") {
		name, email := strings.TrimSpace(s[:i]), s[i+1:len(s)-1]
		if name == "" {
			return email
		}
		return name + " (" + email + ")"
	}
	return s
}
