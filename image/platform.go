package image

import (
	"fmt"
	"slices"
	"strings"

	"github.com/containerd/platforms"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	specs "github.com/opencontainers/image-spec/specs-go/v1"
)

// NoPlatformError is a base image whose index has no manifest for the platform a
// build asked for. Have lists the platforms it has.
type NoPlatformError struct {
	Ref  string
	Want v1.Platform
	Have []string
}

func (e *NoPlatformError) Error() string {
	have := "none"
	if len(e.Have) > 0 {
		have = strings.Join(e.Have, ", ")
	}
	return fmt.Sprintf("%s has no image for %s (its index has: %s); build for a platform it has (--platform) or use another base image",
		e.Ref, platforms.FormatAll(specPlatform(e.Want)), have)
}

// specPlatform is p in the OCI spec's type, which containerd's matcher takes.
func specPlatform(p v1.Platform) specs.Platform {
	return specs.Platform{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant,
		OSVersion: p.OSVersion, OSFeatures: p.OSFeatures}
}

// selectPlatform picks from an index's manifests the one for want, by containerd's
// matcher as BuildKit does (platforms.Only: linux/arm64 also takes linux/arm/v8, an
// arm/v7 index entry serves arm/v7 and is preferred over v6 for it...), the best
// match first. An entry that is itself an index, without a platform, matches
// anything (the caller resolves it in turn). Entries without a platform (attestation
// manifests say unknown/unknown) never match.
func selectPlatform(ref string, im *v1.IndexManifest, want v1.Platform) (v1.Descriptor, error) {
	m := platforms.Only(platforms.Normalize(specPlatform(want)))
	var found []v1.Descriptor
	var have []string
	for _, d := range im.Manifests {
		if d.Platform == nil {
			if d.MediaType.IsIndex() {
				found = append(found, d)
			}
			continue
		}
		p := platforms.Normalize(specPlatform(*d.Platform))
		if p.OS != "unknown" {
			have = append(have, platforms.FormatAll(p))
		}
		if m.Match(p) {
			found = append(found, d)
		}
	}
	if len(found) == 0 {
		return v1.Descriptor{}, &NoPlatformError{Ref: ref, Want: want, Have: slices.Compact(slices.Sorted(slices.Values(have)))}
	}
	slices.SortStableFunc(found, func(a, b v1.Descriptor) int {
		switch {
		case a.Platform == nil || b.Platform == nil:
			return 0
		case m.Less(specPlatform(*a.Platform), specPlatform(*b.Platform)):
			return -1
		case m.Less(specPlatform(*b.Platform), specPlatform(*a.Platform)):
			return 1
		}
		return 0
	})
	return found[0], nil
}
