package source

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/kiln-build/kiln/internal/rootpath"
)

// DirMeta is what each directory MkdirAll creates gets: an owner, and st_mode
// permission and special bits.
type DirMeta struct {
	Owner Owner
	Mode  uint32
}

// NewDir is the DirMeta of a directory WORKDIR or a plain COPY creates: 0755,
// owned by owner.
func NewDir(owner Owner) DirMeta { return DirMeta{Owner: owner, Mode: 0o755} }

// MkdirAll creates the image path p and its missing parents inside root and returns
// its host path. Like BuildKit's copy.MkdirAll (behind COPY's destination and the
// directory WORKDIR makes), each directory it creates gets meta whatever the umask
// (a COPY's --chmod mode and --chown owner, else 0755 and root); directories that
// already exist are left alone. Every component is
// resolved inside root, so an image symlink on the way (even one to "/") is followed
// within the rootfs, never to the host.
func MkdirAll(root, p string, meta DirMeta) (string, error) {
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
		if err := mkdirHost(root, host, meta); err != nil {
			return "", fmt.Errorf("mkdir %s: %w", cur, err)
		}
	}
	return rootpath.Resolve(root, p)
}

// mkdirHost creates host, a path that rootpath.Resolve gave inside root, and the
// parents it lacks, each with meta. Resolve followed every symlink
// that exists, so what exists of host is real directories and what is missing is
// below them: a dangling image symlink ("/l -> /opt/x/y") gives a host path several
// levels of which are missing, and they are all made, inside root.
func mkdirHost(root, host string, meta DirMeta) error {
	root = filepath.Clean(root)
	var missing []string
	for q := host; q != root && q != filepath.Dir(q); q = filepath.Dir(q) {
		_, err := os.Lstat(q)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		missing = append(missing, q)
	}
	for i := len(missing) - 1; i >= 0; i-- {
		d := missing[i]
		img := "/" + strings.TrimPrefix(filepath.ToSlash(strings.TrimPrefix(d, root)), "/")
		if err := os.Mkdir(d, 0o755); err != nil {
			var pe *fs.PathError
			if errors.As(err, &pe) {
				err = pe.Err // the image path, not the host's
			}
			return fmt.Errorf("mkdir %s: %w", img, err)
		}
		fi, err := os.Lstat(d)
		if err != nil {
			return err
		}
		if err := setMeta(d, fi, meta.Owner.UID, meta.Owner.GID, meta.Mode); err != nil {
			return err
		}
	}
	return nil
}
