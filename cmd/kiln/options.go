package main

import (
	"context"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/image"
)

// pullOptions are the base image pulls' options. With a --cache-from the pulls are
// lazy, bounded by ctx (the build's): when every step comes from the cache, the
// base's layers are fetched only if an output needs their bytes.
func pullOptions(ctx context.Context, o buildOptions) image.PullOptions {
	p := image.PullOptions{InsecureRegistry: o.insecure, ForcePull: o.pull, Offline: o.offline}
	if len(o.cacheFrom) > 0 {
		p.Lazy = ctx
	}
	return p
}

// targetPlatform is --platform, or the host's.
func (o buildOptions) targetPlatform() (v1.Platform, error) {
	if o.platform == "" {
		return v1.Platform{OS: "linux", Architecture: hostArch()}, nil
	}
	p, err := v1.ParsePlatform(o.platform)
	if err != nil {
		return v1.Platform{}, fmt.Errorf("--platform %s: %w", o.platform, err)
	}
	if p.OS != "linux" || p.Architecture != hostArch() {
		return v1.Platform{}, fmt.Errorf("--platform %s: kiln builds only for the host's platform (linux/%s); emulation is not supported", o.platform, hostArch())
	}
	return *p, nil
}
