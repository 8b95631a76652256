package xattr

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// overlayfs keeps its bookkeeping (opaque, redirect, origin, ...) in xattrs of one of
// two namespaces: trusted.overlay.* when mounted by real root, user.overlay.* when
// mounted with "userxattr" inside a user namespace (Linux >= 5.11), where trusted.*
// cannot be set. kiln's stores are in one mode or the other, so every reader accepts
// both and the one writer (SetOpaque) picks the namespace the kernel lets it write.
var overlayPrefixes = [...]string{"trusted.overlay.", "user.overlay."}

// OverlayName reports whether name is an overlayfs bookkeeping xattr and, if so,
// returns its short name ("opaque", "redirect", ...). Such xattrs describe an upper
// dir to the kernel; they are never content of a layer.
func OverlayName(name string) (short string, ok bool) {
	for _, p := range overlayPrefixes {
		if s, ok := strings.CutPrefix(name, p); ok {
			return s, true
		}
	}
	return "", false
}

// IsOverlay reports whether name is an overlayfs bookkeeping xattr.
func IsOverlay(name string) bool {
	_, ok := OverlayName(name)
	return ok
}

// IsOpaque reports whether the dir at path is marked opaque (opaque=y) in either
// namespace.
func IsOpaque(path string) (bool, error) {
	for _, p := range overlayPrefixes {
		v, ok, err := Get(path, p+"opaque")
		if err != nil {
			return false, err
		}
		if ok && string(v) == "y" {
			return true, nil
		}
	}
	return false, nil
}

// SetOpaque marks the dir at path opaque: trusted.overlay.opaque as root, and
// user.overlay.opaque where the kernel refuses trusted.* (EPERM: no CAP_SYS_ADMIN in
// the initial user namespace), which is the one an overlay mounted with userxattr reads.
func SetOpaque(path string) error {
	err := unix.Lsetxattr(path, overlayPrefixes[0]+"opaque", []byte("y"), 0)
	if errors.Is(err, unix.EPERM) {
		err = unix.Lsetxattr(path, overlayPrefixes[1]+"opaque", []byte("y"), 0)
	}
	if err != nil {
		return fmt.Errorf("mark %s opaque: %w", path, err)
	}
	return nil
}
