package sbom

import (
	"context"
	"io/fs"
	"path"
	"regexp"
	"strings"

	packageurl "github.com/package-url/packageurl-go"
)

// catalogDpkg reads the dpkg database: var/lib/dpkg/status as dpkg writes it, and
// var/lib/dpkg/status.d/*, one file per package, as distroless and Bazel's rules_distroless
// write it (their *.md5sums files are not stanzas). A package whose status says it is
// removed (config-files, not-installed) is left out, as dpkg -l would.
func catalogDpkg(ctx context.Context, t *tree, osr *osRelease, c *catalog) error {
	var files []string
	if rel, err := t.resolve("/var/lib/dpkg/status"); err == nil {
		files = append(files, rel)
	}
	if dir, err := t.resolve("/var/lib/dpkg/status.d"); err == nil {
		if ents, err := fs.ReadDir(t.root.FS(), dir); err == nil {
			for _, e := range ents {
				if e.Type().IsRegular() && !strings.HasSuffix(e.Name(), ".md5sums") {
					files = append(files, path.Join(dir, e.Name()))
				}
			}
		}
	}
	for _, rel := range files {
		if err := ctx.Err(); err != nil {
			return err
		}
		data, err := t.readFile(rel, maxStatusBytes)
		if err != nil {
			continue // missing, not a regular file, or too large: nothing to report from it
		}
		for _, s := range parseStanzas(data, 0) {
			p, ok := dpkgPackage(s, osr)
			if !ok {
				continue
			}
			p.locations = []string{imagePath(rel)}
			if lic, loc := debianCopyrightLicenses(t, s["package"]); loc != "" {
				p.licenses = lic
				p.locations = append(p.locations, loc)
			}
			c.add(p)
		}
	}
	return nil
}

// dpkgPackage turns one status stanza into a package with syft's purl:
// pkg:deb/<os id>/<name>@<version>?arch=<arch>&distro=<id>-<version id>[&upstream=<source>].
// Without an os-release saying otherwise the namespace is "debian" and there is no
// distro qualifier.
func dpkgPackage(s stanza, osr *osRelease) (found, bool) {
	name, version := s["package"], s["version"]
	if name == "" || version == "" {
		return found{}, false
	}
	if st := strings.Fields(s["status"]); len(st) == 3 && (st[2] == "not-installed" || st[2] == "config-files") {
		return found{}, false
	}
	ns := "debian"
	if osr != nil && osr.ID != "" && osr.debianBased() {
		ns = osr.ID
	}
	q := map[string]string{}
	if a := s["architecture"]; a != "" {
		q["arch"] = a
	}
	if d := osr.distro(); d != "" && osr.debianBased() {
		q["distro"] = d
	}
	// "Source: glibc" or "Source: gcc-12 (12.2.0-14)": syft's upstream qualifier.
	if src := s["source"]; src != "" {
		srcName, srcVer, _ := strings.Cut(src, " ")
		srcVer = strings.Trim(strings.TrimSpace(srcVer), "()")
		if srcVer != "" {
			q["upstream"] = srcName + "@" + srcVer
		} else {
			q["upstream"] = srcName
		}
	}
	purl := packageurl.NewPackageURL(packageurl.TypeDebian, ns, name, version, packageurl.QualifiersFromMap(q), "")
	return found{
		eco:        ecoDeb,
		name:       name,
		version:    version,
		purl:       purl.ToString(),
		originator: s["maintainer"],
	}, true
}

// Debian copyright files: the header of a machine-readable (DEP-5) one, and the
// references to /usr/share/common-licenses/NAME a free-text one makes.
var (
	dep5Format        = regexp.MustCompile(`^Format:\s*https?://www\.debian\.org/doc/packaging-manuals/copyright-format/`)
	commonLicensePath = regexp.MustCompile(`/usr/share/common-licenses/([0-9A-Za-z_.+\-]+)`)
)

// debianCopyrightLicenses reads usr/share/doc/NAME/copyright (often a symlink into
// another package's doc directory, resolved inside the tree) and returns the license
// names it declares and where it was found. In a machine-readable (DEP-5) file those
// are the License: fields; a field naming several licenses ("GPL-2+ or Artistic") is
// skipped, as syft skips it, since each part has its own paragraph. The
// /usr/share/common-licenses/NAME references in such a file only say where a text
// is (GPL-2 for a GPL-2+ package), so they count only in a free-text file, where they
// are all there is. Guessing a license from prose is what syft's classifier does,
// and this scanner does not.
func debianCopyrightLicenses(t *tree, pkg string) ([]string, string) {
	if pkg == "" || strings.ContainsAny(pkg, "/\x00") {
		return nil, ""
	}
	rel, data, err := t.readImageFile(path.Join("/usr/share/doc", pkg, "copyright"), maxManifestBytes)
	if err != nil {
		return nil, ""
	}
	lines := strings.Split(string(data), "\n")
	dep5 := false
	for _, l := range lines {
		if strings.TrimSpace(l) != "" {
			dep5 = dep5Format.MatchString(l)
			break
		}
	}
	var out []string
	for _, l := range lines {
		if v, ok := strings.CutPrefix(l, "License:"); ok && dep5 {
			v = strings.TrimSpace(v)
			lv := " " + strings.ToLower(v) + " "
			if v != "" && !strings.Contains(lv, " or ") && !strings.Contains(lv, " and ") && !strings.Contains(v, ",") {
				out = append(out, strings.Fields(v)[0])
			}
		}
		if !dep5 {
			for _, m := range commonLicensePath.FindAllStringSubmatch(l, -1) {
				out = append(out, strings.TrimSuffix(m[1], "."))
			}
		}
	}
	return uniqSorted(out), imagePath(rel)
}
