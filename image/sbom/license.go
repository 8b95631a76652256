package sbom

import (
	"regexp"
	"strings"

	"github.com/github/go-spdx/v2/spdxexp"
)

// licenseSet turns the license names a package's metadata states into one SPDX
// license expression. A name that is a valid SPDX identifier or expression is kept in
// its canonical spelling ("mit" -> "MIT"); Debian's short names are translated
// ("GPL-2+" -> "GPL-2.0-or-later", "Expat" -> "MIT"); anything else becomes a
// LicenseRef- whose text, the name as stated, goes into the document's
// hasExtractedLicensingInfos, as the SPDX spec requires for a LicenseRef.
type licenseSet struct {
	refs map[string]string // LicenseRef-x -> the name it stands for
}

func newLicenseSet() *licenseSet { return &licenseSet{refs: map[string]string{}} }

// expression returns the SPDX expression for names (ANDed: a package under several
// licenses is under all of them), or "NOASSERTION" for none.
func (ls *licenseSet) expression(names []string) string {
	var parts []string
	for _, n := range names {
		if e := ls.one(n); e != "" {
			parts = append(parts, e)
		}
	}
	parts = uniqSorted(parts)
	switch len(parts) {
	case 0:
		return "NOASSERTION"
	case 1:
		return parts[0]
	}
	for i, p := range parts {
		if strings.Contains(p, " ") {
			parts[i] = "(" + p + ")"
		}
	}
	return strings.Join(parts, " AND ")
}

func (ls *licenseSet) one(name string) string {
	name = strings.TrimSpace(name)
	if name == "" || strings.EqualFold(name, "NOASSERTION") || strings.EqualFold(name, "NONE") {
		return ""
	}
	if id, ok := debianLicense(name); ok {
		return id
	}
	if norm, invalid := spdxexp.ValidateAndNormalizeLicensesWithOptions([]string{name}, spdxexp.ValidateLicensesOptions{}); len(invalid) == 0 && len(norm) == 1 {
		return norm[0]
	}
	ref := "LicenseRef-" + licenseRefChars.ReplaceAllString(name, "-")
	ls.refs[ref] = name
	return ref
}

var licenseRefChars = regexp.MustCompile(`[^A-Za-z0-9.\-]+`)

// debianFamily matches the GNU licenses as Debian's copyright files and
// /usr/share/common-licenses name them: GPL-2, GPL-2+, LGPL-2.1+, GFDL-1.3...
var debianFamily = regexp.MustCompile(`^(A?GPL|LGPL|GFDL)-([0-9](?:\.[0-9])?)(\+?)$`)

// debianLicense translates the Debian short names that are not SPDX identifiers (or
// are deprecated ones) into SPDX identifiers.
func debianLicense(name string) (string, bool) {
	if m := debianFamily.FindStringSubmatch(name); m != nil {
		v := m[2]
		if !strings.Contains(v, ".") {
			v += ".0"
		}
		if m[3] == "+" {
			return m[1] + "-" + v + "-or-later", true
		}
		return m[1] + "-" + v + "-only", true
	}
	switch strings.ToLower(name) {
	case "expat":
		return "MIT", true
	case "artistic": // /usr/share/common-licenses/Artistic is Perl's Artistic License 1.0
		return "Artistic-1.0-Perl", true
	case "bsd-2-clause":
		return "BSD-2-Clause", true
	case "bsd-3-clause":
		return "BSD-3-Clause", true
	case "bsd-4-clause":
		return "BSD-4-Clause", true
	}
	return "", false
}
