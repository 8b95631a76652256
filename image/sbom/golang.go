package sbom

import (
	"bytes"
	"debug/buildinfo"
	"io/fs"
	"strings"
	"time"

	packageurl "github.com/package-url/packageurl-go"
)

// Executable formats debug/buildinfo reads. The magic is checked first so that the
// hundreds of shell scripts and C binaries of a rootfs cost one 4-byte read each.
var exeMagics = [][]byte{
	[]byte("\x7fELF"),
	[]byte("MZ"),                                       // PE
	{0xfe, 0xed, 0xfa, 0xce}, {0xfe, 0xed, 0xfa, 0xcf}, // Mach-O, big-endian
	{0xce, 0xfa, 0xed, 0xfe}, {0xcf, 0xfa, 0xed, 0xfe}, // Mach-O, little-endian
	{0x00, 0x61, 0x73, 0x6d}, // wasm
}

// isGoCandidate says whether a walked file is worth opening as a Go binary: syft
// reads every file whose contents look executable; kiln looks at files with an
// execute bit, which every binary in an image has, and skips tiny ones (no Go binary
// is under a few hundred KB).
func isGoCandidate(d fs.DirEntry) bool {
	info, err := d.Info()
	if err != nil {
		return false
	}
	return info.Mode().Perm()&0o111 != 0 && info.Size() >= 4096
}

// catalogGoBinary reads the build information the Go linker embeds (the main module,
// every dependency module with its version and checksum, the Go version) with the
// standard library's reader, which reads only the headers and the buildinfo section
// through ReadAt, never the whole binary. A file that is not a Go binary, or whose
// headers are damaged, gives nothing.
func catalogGoBinary(t *tree, rel string, c *catalog) {
	f, _, err := t.open(rel)
	if err != nil {
		return
	}
	defer f.Close()
	var magic [4]byte
	if _, err := f.ReadAt(magic[:], 0); err != nil {
		return
	}
	known := false
	for _, m := range exeMagics {
		if bytes.HasPrefix(magic[:], m) {
			known = true
			break
		}
	}
	if !known {
		return
	}
	bi, err := buildinfo.Read(f)
	if err != nil {
		return
	}
	loc := []string{imagePath(rel)}
	var deps []string
	for _, d := range bi.Deps {
		m := d
		if d.Replace != nil {
			m = d.Replace // what was compiled in is the replacement
		}
		p := goModule(m.Path, moduleVersion(m.Version), loc)
		if p.purl == "" {
			continue
		}
		deps = append(deps, p.purl)
		c.add(p)
	}
	if goVer := strings.Fields(bi.GoVersion); len(goVer) > 0 && strings.HasPrefix(goVer[0], "go") {
		std := goModule("stdlib", goVer[0], loc)
		std.purl = goPURL("stdlib", strings.TrimPrefix(goVer[0], "go"))
		std.licenses = []string{"BSD-3-Clause"}
		deps = append(deps, std.purl)
		c.add(std)
	}
	// "command-line-arguments" is the main package of `go build file.go`: no module.
	if bi.Main.Path != "" && bi.Main.Path != "command-line-arguments" {
		main := goModule(bi.Main.Path, mainVersion(bi), loc)
		main.dependsOn = deps
		c.add(main)
	}
}

func goModule(modPath, version string, loc []string) found {
	return found{eco: ecoGo, name: modPath, version: version, purl: goPURL(modPath, version), locations: loc}
}

// goPURL is pkg:golang/<module path>@<version>, the module path's slashes kept as
// namespace separators (syft's form: pkg:golang/github.com/cli/cli/v2@v2.63.0).
func goPURL(modPath, version string) string {
	if modPath == "" {
		return ""
	}
	ns, name := "", modPath
	if i := strings.LastIndex(modPath, "/"); i > 0 && i < len(modPath)-1 {
		ns, name = modPath[:i], modPath[i+1:]
	}
	return packageurl.NewPackageURL(packageurl.TypeGolang, ns, name, version, nil, "").ToString()
}

// moduleVersion is a dependency's version; a module replaced by a local directory has
// none, which Go itself shows as "(devel)".
func moduleVersion(v string) string {
	if v == "" {
		return "(devel)"
	}
	return v
}

// mainVersion is the main module's version. A binary built from a checkout (rather
// than `go install m@v`) says "(devel)"; like syft, kiln then derives the
// pseudo-version Go would give that commit from the VCS stamp, when it is there.
func mainVersion(bi *buildinfo.BuildInfo) string {
	v := bi.Main.Version
	if v != "" && v != "(devel)" {
		return v
	}
	var rev, when string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			when = s.Value
		}
	}
	ts, err := time.Parse(time.RFC3339, when)
	if len(rev) < 12 || err != nil {
		return "(devel)"
	}
	return "v0.0.0-" + ts.UTC().Format("20060102150405") + "-" + rev[:12]
}
