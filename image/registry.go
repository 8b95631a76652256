package image

import (
	"context"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// RegistryOptions are the ggcr options of kiln's pulls and pushes (stall timeout,
// docker keychain, bounded retries), for other packages that talk to registries:
// the remote cache.
func RegistryOptions(ctx context.Context, jobs int) []remote.Option {
	return remoteOptions(ctx, jobs, 0, nil)
}

// ParseReference parses s as pulls do, with plain HTTP for the insecure registries.
func ParseReference(s string, insecure []string) (name.Reference, error) {
	return parseRef(s, insecure)
}

// RegistryFailure classifies err of op ("pull", "push", "cache import"…) on ref at
// host as a *RegistryError that says what to do.
func RegistryFailure(op, ref, host string, err error) error {
	return registryError(op, ref, host, err)
}
