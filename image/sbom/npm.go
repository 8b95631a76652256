package sbom

import (
	"encoding/json"
	"path"
	"strings"

	packageurl "github.com/package-url/packageurl-go"
)

// isNodeModuleManifest says whether rel is the package.json of an installed package:
// node_modules/NAME/package.json or node_modules/@SCOPE/NAME/package.json, at any
// depth. Other package.json files (a project's own, or the {"type": "module"} stubs
// packages keep in subdirectories) are not installed packages.
func isNodeModuleManifest(rel string) bool {
	dir, file := path.Split(rel)
	if file != "package.json" {
		return false
	}
	parts := strings.Split(strings.TrimSuffix(dir, "/"), "/")
	n := len(parts)
	switch {
	case n >= 2 && parts[n-2] == "node_modules" && !strings.HasPrefix(parts[n-1], "@"):
		return true
	case n >= 3 && parts[n-3] == "node_modules" && strings.HasPrefix(parts[n-2], "@"):
		return true
	}
	return false
}

// isPackageLock says whether rel is a project's package-lock.json (not one that an
// installed package happens to ship inside node_modules, which npm ignores too).
func isPackageLock(rel string) bool {
	return path.Base(rel) == "package-lock.json" && !strings.Contains("/"+rel, "/node_modules/")
}

type packageJSON struct {
	Name     string            `json:"name"`
	Version  string            `json:"version"`
	License  json.RawMessage   `json:"license"`
	Licenses []json.RawMessage `json:"licenses"` // the form npm deprecated, still in old packages
	Author   json.RawMessage   `json:"author"`
}

func catalogPackageJSON(t *tree, rel string, c *catalog) {
	data, err := t.readFile(rel, maxManifestBytes)
	if err != nil {
		return
	}
	var pj packageJSON
	if json.Unmarshal(data, &pj) != nil || pj.Name == "" || pj.Version == "" {
		return
	}
	lic := npmLicenses(pj.License)
	for _, l := range pj.Licenses {
		lic = append(lic, npmLicenses(l)...)
	}
	c.add(found{
		eco:        ecoNPM,
		name:       pj.Name,
		version:    pj.Version,
		purl:       npmPURL(pj.Name, pj.Version),
		licenses:   lic,
		originator: npmPerson(pj.Author),
		locations:  []string{imagePath(rel)},
	})
}

type packageLock struct {
	LockfileVersion int                        `json:"lockfileVersion"`
	Packages        map[string]lockPackage     `json:"packages"`     // lockfileVersion 2 and 3
	Dependencies    map[string]lockDependency1 `json:"dependencies"` // lockfileVersion 1
}

type lockPackage struct {
	Name    string          `json:"name"`
	Version string          `json:"version"`
	License json.RawMessage `json:"license"`
	Dev     bool            `json:"dev"`
	Link    bool            `json:"link"`
}

type lockDependency1 struct {
	Version      string                     `json:"version"`
	Dev          bool                       `json:"dev"`
	Dependencies map[string]lockDependency1 `json:"dependencies"`
}

// catalogPackageLock reads the packages a project's lock file pins, without their
// development dependencies (syft's default too: they are not in the built image).
// Version 2 and 3 files list every installed path under "packages"; version 1 only
// nests "dependencies". Workspace links and the project itself ("") are not packages.
func catalogPackageLock(t *tree, rel string, c *catalog) {
	data, err := t.readFile(rel, maxLockBytes)
	if err != nil {
		return
	}
	var pl packageLock
	if json.Unmarshal(data, &pl) != nil {
		return
	}
	loc := []string{imagePath(rel)}
	add := func(name, version string, lic []string) {
		if name == "" || version == "" {
			return
		}
		c.add(found{eco: ecoNPM, name: name, version: version, purl: npmPURL(name, version), licenses: lic, locations: loc})
	}
	if len(pl.Packages) > 0 {
		for key, p := range pl.Packages {
			i := strings.LastIndex(key, "node_modules/")
			if i < 0 || p.Dev || p.Link {
				continue
			}
			name := p.Name
			if name == "" {
				name = key[i+len("node_modules/"):]
			}
			add(name, p.Version, npmLicenses(p.License))
		}
		return
	}
	var walk func(map[string]lockDependency1, int)
	walk = func(deps map[string]lockDependency1, depth int) {
		if depth > 64 { // a real tree is never this deep; a crafted one could be
			return
		}
		for name, d := range deps {
			if !d.Dev {
				add(name, d.Version, nil)
			}
			walk(d.Dependencies, depth+1)
		}
	}
	walk(pl.Dependencies, 0)
}

// npmPURL is pkg:npm/[%40scope/]name@version.
func npmPURL(name, version string) string {
	ns := ""
	if scope, n, ok := strings.Cut(name, "/"); ok && strings.HasPrefix(scope, "@") {
		ns, name = scope, n
	}
	return packageurl.NewPackageURL(packageurl.TypeNPM, ns, name, version, nil, "").ToString()
}

// npmLicenses reads a "license" value: an SPDX expression string, or the older
// {"type": "MIT", "url": ...} object.
func npmLicenses(raw json.RawMessage) []string {
	if len(raw) == 0 {
		return nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return []string{s}
	}
	var o struct {
		Type string `json:"type"`
	}
	if json.Unmarshal(raw, &o) == nil && o.Type != "" {
		return []string{o.Type}
	}
	return nil
}

// npmPerson reads an "author" value: "Name <email> (url)" or {"name", "email"}.
func npmPerson(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if i := strings.Index(s, " ("); i > 0 {
			s = s[:i]
		}
		return strings.TrimSpace(s)
	}
	var o struct {
		Name  string `json:"name"`
		Email string `json:"email"`
	}
	if json.Unmarshal(raw, &o) != nil || o.Name == "" {
		return ""
	}
	if o.Email != "" {
		return o.Name + " <" + o.Email + ">"
	}
	return o.Name
}
