// Package xattr reads extended attributes without following a final symlink, robust
// to lists that change between the size query and the read, and treating a filesystem
// without xattr support as having none. The layer writer, the context copier and the
// snapshot pruner all read xattrs; this is the one implementation they share.
package xattr

import (
	"bytes"
	"errors"
	"fmt"
	"sort"

	"golang.org/x/sys/unix"
)

// List returns the names of the extended attributes of path (not following a
// final symlink), sorted. A filesystem without xattr support has none.
func List(path string) ([]string, error) {
	size, err := unix.Llistxattr(path, nil)
	for {
		if err != nil {
			if errors.Is(err, unix.ENOTSUP) {
				return nil, nil
			}
			return nil, fmt.Errorf("list xattrs of %s: %w", path, err)
		}
		if size == 0 {
			return nil, nil
		}
		buf := make([]byte, size)
		var n int
		n, err = unix.Llistxattr(path, buf)
		if errors.Is(err, unix.ERANGE) {
			// The list grew between the two calls: ask again.
			size, err = unix.Llistxattr(path, nil)
			continue
		}
		if err != nil {
			continue
		}
		var names []string
		for _, name := range bytes.Split(buf[:n], []byte{0}) {
			if len(name) > 0 {
				names = append(names, string(name))
			}
		}
		sort.Strings(names)
		return names, nil
	}
}

// Get returns the value of one extended attribute of path (not following a
// final symlink); ok is false when it is not set.
func Get(path, name string) (value []byte, ok bool, err error) {
	size, err := unix.Lgetxattr(path, name, nil)
	for {
		if errors.Is(err, unix.ENODATA) || errors.Is(err, unix.ENOTSUP) {
			return nil, false, nil
		}
		if err != nil {
			return nil, false, fmt.Errorf("get xattr %s of %s: %w", name, path, err)
		}
		buf := make([]byte, size)
		var n int
		n, err = unix.Lgetxattr(path, name, buf)
		if errors.Is(err, unix.ERANGE) {
			size, err = unix.Lgetxattr(path, name, nil)
			continue
		}
		if err != nil {
			continue
		}
		return buf[:n], true, nil
	}
}
