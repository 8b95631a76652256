package rootpath

import (
	"fmt"

	securejoin "github.com/cyphar/filepath-securejoin"
)

// Resolve returns the host path of unsafePath inside root, resolving every symlink
// (including the last component) as if root were "/". The result always lies inside
// root; missing components are allowed and appended lexically. A symlink loop is an
// error.
func Resolve(root, unsafePath string) (string, error) {
	p, err := securejoin.SecureJoin(root, unsafePath)
	if err != nil {
		return "", fmt.Errorf("resolve %q in %s: %w", unsafePath, root, err)
	}
	return p, nil
}
