package buildctx

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"

	"github.com/kiln-build/kiln/internal/rootpath"
)

// MkdirAll creates the image path p and its missing parents inside root and returns
// its host path. Like BuildKit's copy.MkdirAll (behind COPY's destination and the
// directory WORKDIR makes), each directory it creates is 0755 whatever the umask and
// owned by owner; directories that already exist are left alone. Every component is
// resolved inside root, so an image symlink on the way (even one to "/") is followed
// within the rootfs, never to the host.
func MkdirAll(root, p string, owner Owner) (string, error) {
	cur := "/"
	for _, c := range strings.Split(strings.Trim(path.Clean("/"+p), "/"), "/") {
		if c == "" {
			continue
		}
		cur = path.Join(cur, c)
		host, err := rootpath.Resolve(root, cur)
		if err != nil {
			return "", err
		}
		fi, err := os.Lstat(host)
		if err == nil {
			if !fi.IsDir() {
				return "", fmt.Errorf("mkdir %s: %s is not a directory", p, cur)
			}
			continue
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		// host lies inside root and every existing component of it is a real
		// directory (Resolve followed the symlinks), so MkdirAll on it (needed when a
		// dangling image symlink points into a missing tree) stays inside root.
		if err := os.MkdirAll(host, 0o755); err != nil {
			return "", fmt.Errorf("mkdir %s: %w", cur, err)
		}
		fi, err = os.Lstat(host)
		if err != nil {
			return "", err
		}
		if err := setMeta(host, fi, owner.UID, owner.GID, 0o755); err != nil {
			return "", err
		}
	}
	return rootpath.Resolve(root, p)
}
