package image

import (
	"fmt"
	"net"
	"runtime"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// parseRef parses an image reference the way docker does (busybox →
// index.docker.io/library/busybox:latest) and marks its registry as plain HTTP when
// the user listed it as insecure. ggcr already speaks HTTP to localhost, loopback and
// private addresses.
func parseRef(s string, insecure []string) (name.Reference, error) {
	r, err := name.ParseReference(s)
	if err != nil {
		return nil, fmt.Errorf("invalid image reference %q: %w", s, err)
	}
	if isInsecure(r.Context().RegistryStr(), insecure) {
		if r, err = name.ParseReference(s, name.Insecure); err != nil {
			return nil, fmt.Errorf("invalid image reference %q: %w", s, err)
		}
	}
	return r, nil
}

// parseTag parses an output tag; digests are refused because a push or an archive
// names the image, it cannot choose its digest.
func parseTag(s string, insecure []string) (name.Tag, error) {
	opts := []name.Option{}
	if t, err := name.NewTag(s); err == nil && isInsecure(t.RegistryStr(), insecure) {
		opts = append(opts, name.Insecure)
	}
	t, err := name.NewTag(s, opts...)
	if err != nil {
		return name.Tag{}, fmt.Errorf("invalid tag %q: %w", s, err)
	}
	return t, nil
}

// isInsecure reports whether registry (host[:port]) is in list; an entry without a
// port matches the host on any port, as docker's --insecure-registry does.
func isInsecure(registry string, list []string) bool {
	host := registry
	if h, _, err := net.SplitHostPort(registry); err == nil {
		host = h
	}
	for _, e := range list {
		e = strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(e, "http://"), "https://"), "/")
		if e == registry || e == host {
			return true
		}
	}
	return false
}

// dockerName is a tag spelled the three ways the exporters need.
type dockerName struct {
	Full     string // docker.io/library/app:v1 (io.containerd.image.name)
	Familiar string // app:v1 (docker manifest.json RepoTags)
	Tag      string // v1 (org.opencontainers.image.ref.name)
}

// normaliseTag spells tag as docker and containerd do: ggcr's index.docker.io is
// docker.io in image names, and library/ is dropped from the familiar form.
func normaliseTag(tag string) (dockerName, error) {
	t, err := name.NewTag(tag)
	if err != nil {
		return dockerName{}, fmt.Errorf("invalid tag %q: %w", tag, err)
	}
	reg := t.RegistryStr()
	if reg == name.DefaultRegistry {
		reg = "docker.io"
	}
	repo := t.RepositoryStr()
	full := reg + "/" + repo + ":" + t.TagStr()
	familiar := full
	if reg == "docker.io" {
		familiar = strings.TrimPrefix(repo, "library/") + ":" + t.TagStr()
	}
	return dockerName{Full: full, Familiar: familiar, Tag: t.TagStr()}, nil
}

// hostPlatform fills p's empty OS and architecture with the host's (linux, GOARCH):
// kiln runs Linux containers only.
func hostPlatform(p v1.Platform) v1.Platform {
	if p.OS == "" {
		p.OS = "linux"
	}
	if p.Architecture == "" {
		p.Architecture = runtime.GOARCH
	}
	return p
}
