package parser

import (
	"fmt"
	"runtime"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// proxyArgs are the build args BuildKit passes to RUN without an ARG declaration
// and keeps out of the image history and cache keys.
var proxyArgs = map[string]bool{
	"HTTP_PROXY": true, "http_proxy": true,
	"HTTPS_PROXY": true, "https_proxy": true,
	"FTP_PROXY": true, "ftp_proxy": true,
	"NO_PROXY": true, "no_proxy": true,
	"ALL_PROXY": true, "all_proxy": true,
}

// platformArgNames are the automatic platform ARGs: they have a value in the global
// scope without a declaration, and inside a stage once it says `ARG NAME`.
var platformArgNames = map[string]bool{
	"BUILDPLATFORM": true, "BUILDOS": true, "BUILDARCH": true, "BUILDVARIANT": true,
	"TARGETPLATFORM": true, "TARGETOS": true, "TARGETARCH": true, "TARGETVARIANT": true,
}

// IsPredefinedArg reports whether name is one of BuildKit's predefined args: the
// proxy args, the platform args and TARGETSTAGE. A --build-arg with such a name is
// never reported as unused.
func IsPredefinedArg(name string) bool {
	return proxyArgs[name] || platformArgNames[name] || name == "TARGETSTAGE"
}

// IsProxyArg reports whether name is a proxy arg (HTTP_PROXY and friends). Unlike
// the platform args, these reach RUN's environment without an ARG declaration.
func IsProxyArg(name string) bool { return proxyArgs[name] }

// consumedByFrontend reports build args the frontend itself reads (BuildKit's
// BUILDKIT_* knobs and SOURCE_DATE_EPOCH), which are therefore never "unused".
func consumedByFrontend(name string) bool {
	return name == "SOURCE_DATE_EPOCH" || strings.HasPrefix(name, "BUILDKIT_")
}

// HostPlatform is the platform kiln runs on, "os/arch[/variant]".
func HostPlatform() string {
	p := normalizePlatform(v1.Platform{OS: runtime.GOOS, Architecture: runtime.GOARCH})
	return p.String()
}

// PlatformArgs returns the predefined platform args (BUILDPLATFORM, BUILDOS,
// BUILDARCH, BUILDVARIANT, TARGETPLATFORM, TARGETOS, TARGETARCH, TARGETVARIANT)
// for the given "os/arch[/variant]" platforms; "" means the host's. A platform that
// does not parse is treated as the host's: Parse validates Options before calling.
func PlatformArgs(targetPlatform, buildPlatform string) map[string]string {
	bp, err := ParsePlatform(buildPlatform)
	if err != nil {
		bp, _ = ParsePlatform("")
	}
	tp, err := ParsePlatform(targetPlatform)
	if err != nil {
		tp, _ = ParsePlatform("")
	}
	return map[string]string{
		"BUILDPLATFORM":  bp.String(),
		"BUILDOS":        bp.OS,
		"BUILDARCH":      bp.Architecture,
		"BUILDVARIANT":   bp.Variant,
		"TARGETPLATFORM": tp.String(),
		"TARGETOS":       tp.OS,
		"TARGETARCH":     tp.Architecture,
		"TARGETVARIANT":  tp.Variant,
	}
}

// ParsePlatform parses and normalises "os/arch[/variant]" the way containerd's
// platforms package does for the cases that matter to image builds ("" is the
// host; aarch64 is arm64 without a variant; arm defaults to v7; x86_64 is amd64).
// A single word is an OS when it names one, else an architecture on the host OS.
func ParsePlatform(s string) (v1.Platform, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return normalizePlatform(v1.Platform{OS: runtime.GOOS, Architecture: runtime.GOARCH}), nil
	}
	p, err := v1.ParsePlatform(strings.ToLower(s))
	if err != nil {
		return v1.Platform{}, fmt.Errorf("invalid platform %q: %w", s, err)
	}
	if p.Architecture == "" {
		if knownOS[p.OS] {
			p.Architecture = runtime.GOARCH
		} else {
			p.OS, p.Architecture = runtime.GOOS, p.OS
		}
	}
	if p.OS == "" || strings.ContainsAny(s, " \t") {
		return v1.Platform{}, fmt.Errorf("invalid platform %q: want os/arch[/variant]", s)
	}
	return normalizePlatform(*p), nil
}

var knownOS = map[string]bool{
	"linux": true, "windows": true, "darwin": true, "freebsd": true, "netbsd": true,
	"openbsd": true, "solaris": true, "illumos": true, "aix": true, "android": true,
	"ios": true, "plan9": true, "dragonfly": true, "js": true, "wasip1": true,
}

// normalizePlatform maps architecture aliases and default variants to the names
// OCI indexes use, so "linux/aarch64" and "linux/arm64/v8" both mean "linux/arm64".
func normalizePlatform(p v1.Platform) v1.Platform {
	switch p.Architecture {
	case "x86_64", "x86-64", "amd64":
		p.Architecture = "amd64"
		if p.Variant == "v1" {
			p.Variant = ""
		}
	case "i386", "386":
		p.Architecture = "386"
		p.Variant = ""
	case "aarch64", "arm64":
		p.Architecture = "arm64"
		if p.Variant == "8" || p.Variant == "v8" {
			p.Variant = ""
		}
	case "armhf":
		p.Architecture, p.Variant = "arm", "v7"
	case "armel":
		p.Architecture, p.Variant = "arm", "v6"
	case "arm":
		switch p.Variant {
		case "", "7":
			p.Variant = "v7"
		case "5", "6", "8":
			p.Variant = "v" + p.Variant
		}
	}
	return p
}
