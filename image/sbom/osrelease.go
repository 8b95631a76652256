package sbom

import (
	"strconv"
	"strings"
)

// osRelease is what etc/os-release says of the distribution.
type osRelease struct {
	ID         string   // "debian"
	IDLike     []string // ["debian"] on Ubuntu
	VersionID  string   // "12"; empty on testing and unstable
	BuildID    string
	PrettyName string
	location   string // where it was read, as the image sees it
}

// distro is the purl "distro" qualifier, exactly as syft (and so BuildKit's SBOM
// scanner) writes it: ID-VERSION_ID, ID-BUILD_ID without a version, ID alone without
// either ("debian-12").
func (o *osRelease) distro() string {
	if o == nil || o.ID == "" {
		return ""
	}
	switch {
	case o.VersionID != "":
		return o.ID + "-" + o.VersionID
	case o.BuildID != "":
		return o.ID + "-" + o.BuildID
	}
	return o.ID
}

// readOSRelease reads etc/os-release, or usr/lib/os-release that it usually links to,
// resolving symlinks inside the tree. Neither being readable is not an error: a build
// context or a scratch image has no OS.
func readOSRelease(t *tree) *osRelease {
	for _, name := range []string{"/etc/os-release", "/usr/lib/os-release"} {
		rel, b, err := t.readImageFile(name, maxManifestBytes)
		if err != nil {
			continue
		}
		o := parseOSRelease(string(b))
		if o.ID == "" {
			continue
		}
		o.location = imagePath(rel)
		return o
	}
	return nil
}

// parseOSRelease parses the os-release(5) format: KEY=VALUE lines, VALUE optionally
// quoted with shell-style escapes.
func parseOSRelease(s string) *osRelease {
	o := &osRelease{}
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			if v[0] == '"' {
				if u, err := strconv.Unquote(v); err == nil {
					v = u
				} else {
					v = v[1 : len(v)-1]
				}
			} else {
				v = v[1 : len(v)-1]
			}
		}
		switch k {
		case "ID":
			o.ID = strings.ToLower(v)
		case "ID_LIKE":
			o.IDLike = strings.Fields(strings.ToLower(v))
		case "VERSION_ID":
			o.VersionID = v
		case "BUILD_ID":
			o.BuildID = v
		case "PRETTY_NAME":
			o.PrettyName = v
		}
	}
	return o
}

// debianBased reports whether the OS's packages are Debian packages (Debian itself,
// or one that says it is like Debian: Ubuntu, Raspbian...).
func (o *osRelease) debianBased() bool {
	if o == nil {
		return false
	}
	if o.ID == "debian" {
		return true
	}
	for _, l := range o.IDLike {
		if l == "debian" {
			return true
		}
	}
	return false
}
