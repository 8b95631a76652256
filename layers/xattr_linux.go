package layers

import (
	"bytes"
	"errors"
	"fmt"
	"sort"

	"golang.org/x/sys/unix"
)

// paxXattr is the PAX record prefix that GNU tar, BuildKit and containerd use for
// extended attributes.
const paxXattr = "SCHILY.xattr."

// overlayXattrPrefix marks overlayfs's private metadata: it describes the upper dir
// to the kernel and must never travel in a layer, nor be accepted from one.
const overlayXattrPrefix = "trusted.overlay."

// listXattrs returns the names of the extended attributes of path (not following a
// final symlink), sorted. A filesystem without xattr support has none.
func listXattrs(path string) ([]string, error) {
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

// getXattr returns the value of one extended attribute of path (not following a
// final symlink); ok is false when it is not set.
func getXattr(path, name string) (value []byte, ok bool, err error) {
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
