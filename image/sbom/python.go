package sbom

import (
	"path"
	"regexp"
	"strings"

	packageurl "github.com/package-url/packageurl-go"
)

// isPythonMetadata says whether rel is an installed distribution's metadata: a
// wheel's NAME.dist-info/METADATA, or setuptools' NAME.egg-info/PKG-INFO, or an
// NAME.egg-info that is itself a file in PKG-INFO format (Debian's python3-*
// packages install those).
func isPythonMetadata(rel string) bool {
	dir, file := path.Split(rel)
	dir = strings.TrimSuffix(dir, "/")
	switch {
	case file == "METADATA":
		return strings.HasSuffix(dir, ".dist-info")
	case file == "PKG-INFO":
		return strings.HasSuffix(dir, ".egg-info")
	}
	return strings.HasSuffix(file, ".egg-info")
}

// catalogPythonMetadata reads the header of a core-metadata file (the body after the
// first blank line is the project's README and is not read past maxHeaderBytes).
// The license is License-Expression (metadata 2.4) or else a one-line License field;
// older packages put the whole license text in License, which is not an identifier.
func catalogPythonMetadata(t *tree, rel string, c *catalog) {
	data, err := t.readPrefix(rel, maxHeaderBytes)
	if err != nil {
		return
	}
	st := parseStanzas(data, 1)
	if len(st) == 0 {
		return
	}
	h := st[0]
	name, version := h["name"], h["version"]
	if name == "" || version == "" {
		return
	}
	var lic []string
	if e := h["license-expression"]; e != "" {
		lic = append(lic, e)
	} else if l := h["license"]; l != "" && !strings.Contains(l, "\n") && len(l) <= 64 && !strings.EqualFold(l, "UNKNOWN") {
		lic = append(lic, l)
	}
	author := h["author"]
	if e := h["author-email"]; author == "" && e != "" {
		author = e
	} else if author != "" && e != "" && !strings.Contains(e, "<") {
		author += " <" + e + ">"
	}
	c.add(found{
		eco:        ecoPython,
		name:       name,
		version:    version,
		purl:       packageurl.NewPackageURL(packageurl.TypePyPi, "", pypiName(name), version, nil, "").ToString(),
		licenses:   lic,
		originator: author,
		locations:  []string{imagePath(rel)},
	})
}

var pypiSeparators = regexp.MustCompile(`[-_.]+`)

// pypiName is a distribution name normalised as PEP 503 and the purl spec ask
// (lower case, runs of - _ . become one -), so that Foo_Bar and foo-bar are one package.
func pypiName(n string) string {
	return pypiSeparators.ReplaceAllString(strings.ToLower(n), "-")
}
