package sbom

import (
	"slices"
	"sort"
)

// ecosystem is where a package came from: it names the evidence in the document's
// sourceInfo and prefixes the package's SPDX identifier.
type ecosystem int

const (
	ecoDeb ecosystem = iota
	ecoGo
	ecoNPM
	ecoPython
)

func (e ecosystem) id() string {
	return [...]string{"deb", "go-module", "npm", "python"}[e]
}

// evidence says, as syft's sourceInfo does, what kind of file the package was found in.
func (e ecosystem) evidence() string {
	return [...]string{
		"acquired package info from DPKG DB",
		"acquired package info from go module information",
		"acquired package info from installed node module manifest file",
		"acquired package info from installed python package manifest file",
	}[e]
}

// found is one package as a cataloguer saw it, before it becomes an SPDX package.
type found struct {
	eco        ecosystem
	name       string
	version    string
	purl       string
	licenses   []string // as the metadata states them; made SPDX expressions later
	originator string   // a person, "Name <email>", when the metadata names one
	locations  []string // the files it was found from, as the image sees them
	dependsOn  []string // purls of packages it was built with (Go binaries)
}

// catalog collects packages, merging those found more than once (a Go module that
// two binaries are built with, an npm package in two node_modules trees): the purl
// identifies a package, its locations and licenses are the union of all sightings.
type catalog struct {
	byKey map[string]*found
}

func newCatalog() *catalog { return &catalog{byKey: map[string]*found{}} }

func (c *catalog) add(p found) {
	key := p.purl
	if key == "" {
		key = p.eco.id() + "\x00" + p.name + "\x00" + p.version
	}
	have, ok := c.byKey[key]
	if !ok {
		cp := p
		cp.licenses = slices.Clone(p.licenses)
		cp.locations = slices.Clone(p.locations)
		cp.dependsOn = slices.Clone(p.dependsOn)
		c.byKey[key] = &cp
		return
	}
	have.licenses = append(have.licenses, p.licenses...)
	have.locations = append(have.locations, p.locations...)
	have.dependsOn = append(have.dependsOn, p.dependsOn...)
	if have.originator == "" {
		have.originator = p.originator
	}
}

// sorted returns the packages in a fixed order, with their lists sorted and
// deduplicated, whatever order the tree was walked or a lock file's map was read in.
func (c *catalog) sorted() []*found {
	out := make([]*found, 0, len(c.byKey))
	for _, p := range c.byKey {
		p.licenses = uniqSorted(p.licenses)
		p.locations = uniqSorted(p.locations)
		p.dependsOn = uniqSorted(p.dependsOn)
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.eco != b.eco {
			return a.eco < b.eco
		}
		if a.name != b.name {
			return a.name < b.name
		}
		if a.version != b.version {
			return a.version < b.version
		}
		return a.purl < b.purl
	})
	return out
}

func uniqSorted(s []string) []string {
	s = slices.DeleteFunc(s, func(v string) bool { return v == "" })
	slices.Sort(s)
	return slices.Compact(s)
}
