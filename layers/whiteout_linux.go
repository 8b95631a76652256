package layers

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/xattr"
)

// whiteout applies a ".wh." entry named base in directory dir according to the
// unpack mode (never called with NoWhiteouts).
func (u *unpacker) whiteout(dir, base string) error {
	if base == whiteoutOpaque {
		return u.opaque(dir)
	}
	if strings.HasPrefix(base, whiteoutMeta) {
		// Other AUFS metadata (.wh..wh.plnk, .wh..wh.aufs) describes AUFS internals,
		// not the image: skip it as Docker and containerd do.
		return nil
	}
	name := strings.TrimPrefix(base, whiteoutPrefix)
	if name == "" || name == "." || name == ".." || strings.Contains(name, "/") {
		return fmt.Errorf("whiteout %q: %w", base, errInvalidArchive)
	}
	parent, ok, err := u.parentDir(dir, u.opts.Whiteouts == OverlayWhiteouts)
	if err != nil {
		return err
	}
	if !ok {
		return nil // nothing below to hide
	}
	target := filepath.Join(parent, name)
	// RemoveAll does not follow a final symlink: it removes the link itself.
	if err := u.removeAll(target); err != nil {
		return err
	}
	if u.opts.Whiteouts == ApplyWhiteouts {
		delete(u.created, target)
		return nil
	}
	// overlayfs hides a lower path behind a 0/0 character device of the same name.
	if err := unix.Mknod(target, unix.S_IFCHR, 0); err != nil {
		return fmt.Errorf("whiteout %s: mknod: %w", name, err)
	}
	return nil
}

// opaque applies ".wh..wh..opq": the directory hides everything below it in lower
// layers. In a snapshot that is overlayfs's opaque xattr; when flattening, it means
// removing every child this archive did not write itself (the marker may come after
// some of them, so they are told apart by the created set, as containerd does).
func (u *unpacker) opaque(dir string) error {
	p, _, err := u.parentDir(dir, true)
	if err != nil {
		return err
	}
	if u.opts.Whiteouts == OverlayWhiteouts {
		return xattr.SetOpaque(p)
	}
	return filepath.WalkDir(p, func(q string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if q == p {
			return nil
		}
		if _, ok := u.created[q]; ok {
			return nil
		}
		if err := u.removeAll(q); err != nil {
			return err
		}
		if d.IsDir() {
			return filepath.SkipDir
		}
		return nil
	})
}
