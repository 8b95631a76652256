package image

import (
	"github.com/google/go-containerregistry/pkg/name"
)

// ParseReference parses s as pulls do, with plain HTTP for the insecure registries.
func ParseReference(s string, insecure []string) (name.Reference, error) {
	return parseRef(s, insecure)
}

// RegistryFailure classifies err of op ("pull", "push", "cache import"…) on ref at
// host as a *RegistryError that says what to do.
func RegistryFailure(op, ref, host string, err error) error {
	return registryError(op, ref, host, err)
}
