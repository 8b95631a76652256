package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/containerd/platforms"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/image"
)

// pullOptions are the base image pulls' options. With a --cache-from the pulls are
// lazy, bounded by ctx (the build's): when every step comes from the cache, the
// base's layers are fetched only if an output needs their bytes.
func pullOptions(ctx context.Context, o buildOptions) image.PullOptions {
	p := image.PullOptions{InsecureRegistry: o.insecure, ForcePull: o.pull, Offline: o.offline, Client: o.registries}
	if len(o.cacheFrom) > 0 {
		p.Lazy = ctx
	}
	return p
}

// targetPlatforms are the platforms of --platform a,b,… (normalised as containerd
// does: linux/aarch64 is linux/arm64, linux/arm is linux/arm/v7), each once, in the
// order given; the host's when it is not set. A platform the host cannot run is built
// under emulation (exec.FindEmulator) when a stage RUNs something.
func (o buildOptions) targetPlatforms() ([]v1.Platform, error) {
	if strings.TrimSpace(o.platform) == "" {
		return []v1.Platform{{OS: "linux", Architecture: hostArch()}}, nil
	}
	var out []v1.Platform
	seen := map[string]bool{}
	for _, s := range strings.Split(o.platform, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			return nil, fmt.Errorf("--platform %q: an empty platform in the list", o.platform)
		}
		p, err := platforms.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("--platform %s: %w", s, err)
		}
		p = platforms.Normalize(p)
		if p.OS != "linux" {
			return nil, fmt.Errorf("--platform %s: kiln builds Linux images only", s)
		}
		if name := platforms.FormatAll(p); !seen[name] {
			seen[name] = true
			out = append(out, v1.Platform{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant})
		}
	}
	return out, nil
}
