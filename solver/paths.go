package solver

import (
	"errors"
	"io/fs"
	"os"
	"path"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
)

// resolveInRoot resolves an image path inside root: symlinks are followed as if root
// were "/", so nothing resolves outside it.
func resolveInRoot(root, p string) (string, error) {
	return securejoin.SecureJoin(root, p)
}

// mountStubs creates the mount points a RUN's mounts need inside root and returns a
// func that removes what it created, so that mount points never reach the layer (as
// BuildKit removes its mount stubs). isDir says whether each target is a dir.
func mountStubs(root string, targets []string, isDir []bool) (func(), error) {
	var created []string
	undo := func() {
		for i := len(created) - 1; i >= 0; i-- {
			_ = os.Remove(created[i]) // only empty dirs and files we made
		}
	}
	for i, t := range targets {
		cur := "/"
		parts := strings.Split(strings.Trim(path.Clean(t), "/"), "/")
		for j, part := range parts {
			if part == "" {
				continue
			}
			cur = path.Join(cur, part)
			p, err := resolveInRoot(root, cur)
			if err != nil {
				undo()
				return nil, err
			}
			if _, err := os.Lstat(p); err == nil {
				continue
			} else if !errors.Is(err, fs.ErrNotExist) {
				undo()
				return nil, err
			}
			last := j == len(parts)-1
			if last && !isDir[i] {
				f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
				if err != nil {
					undo()
					return nil, err
				}
				f.Close()
			} else if err := os.Mkdir(p, 0o755); err != nil {
				undo()
				return nil, err
			}
			created = append(created, p)
		}
	}
	return undo, nil
}
