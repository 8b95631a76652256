package rootpath

import (
	"fmt"
	"os"
	"path/filepath"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
)

// MkdirAll creates unsafePath and its missing parents inside root with mode (only the
// permission bits are used, exactly: the umask does not narrow them) and returns the
// resolved host path. Symlinks met on the way are followed inside root only, even
// dangling ones: "a -> /x/y" then MkdirAll "a/b" creates root/x/y/b, as Resolve
// would name it.
func MkdirAll(root, unsafePath string, mode os.FileMode) (string, error) {
	p, err := Resolve(root, unsafePath)
	if err != nil {
		return "", err
	}
	// What is missing, deepest first, to be given mode once it is made.
	var missing []string
	for q := p; q != filepath.Clean(root) && q != filepath.Dir(q); q = filepath.Dir(q) {
		if _, err := os.Lstat(q); err == nil {
			break
		}
		missing = append(missing, q)
	}
	// The resolved path has no symlink left in it, so pathrs-lite (which refuses to
	// create through dangling symlinks) can create it; it still walks with
	// openat2(RESOLVE_IN_ROOT) where the kernel has it, so a symlink swapped in
	// meanwhile cannot take it outside root either.
	rel, err := filepath.Rel(root, p)
	if err != nil {
		return "", fmt.Errorf("mkdir %q in %s: %w", unsafePath, root, err)
	}
	if err := pathrs.MkdirAll(root, rel, mode.Perm()); err != nil {
		return "", fmt.Errorf("mkdir %q in %s: %w", unsafePath, root, err)
	}
	for i := len(missing) - 1; i >= 0; i-- {
		if err := os.Chmod(missing[i], mode.Perm()); err != nil {
			return "", fmt.Errorf("mkdir %q in %s: %w", unsafePath, root, err)
		}
	}
	return p, nil
}
