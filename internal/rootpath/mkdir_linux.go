package rootpath

import (
	"fmt"
	"os"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
)

// MkdirAll creates unsafePath and its missing parents inside root with mode (only the
// permission bits are used) and returns the resolved host path. Symlinks met on the
// way are followed inside root only, using openat2(RESOLVE_IN_ROOT) where the kernel
// has it, so a planted symlink cannot make it create a directory outside root.
func MkdirAll(root, unsafePath string, mode os.FileMode) (string, error) {
	if err := pathrs.MkdirAll(root, unsafePath, mode.Perm()); err != nil {
		return "", fmt.Errorf("mkdir %q in %s: %w", unsafePath, root, err)
	}
	return Resolve(root, unsafePath)
}
