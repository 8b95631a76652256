package xattr

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/userns"
)

// OwnerName is the xattr in which kiln keeps the owner of a file that its user
// namespace cannot give it: rootless kiln without subordinate ids maps uid and gid 0
// alone, and the kernel refuses a chown to any other id (EINVAL). Unpacking a base
// whose /home/app is 1000:1000, or COPY --chown=1000:1000, would then fail or lose the
// owner; instead the file stays 0:0 on disk and OwnerName says "1000:1000". The layer
// writer puts that owner in the tar header and never the xattr itself, so the layer
// is the one a root build writes (containers/storage's user.containers.override_stat
// is the same idea). RUN steps see such files as root's: a step that needs the real
// owner needs subordinate ids. The xattr lives in the user namespace, which regular
// files and directories accept; a symlink cannot carry one (the kernel refuses user.*
// on symlinks), so a symlink owned by another id still fails.
const OwnerName = "user.kiln.owner"

// IsOwner reports whether name is OwnerName: bookkeeping, never content of a layer.
func IsOwner(name string) bool { return name == OwnerName }

// Lchown sets the owner of path (not following a symlink). In a user namespace that
// does not map uid or gid it records them in OwnerName instead, or, where that is
// refused too (a symlink), returns the kernel's EINVAL for userns.Explain to hint at.
// A successful chown in a user namespace removes a stale OwnerName.
func Lchown(path string, uid, gid int) error {
	err := unix.Lchown(path, uid, gid)
	if userns.Current() == userns.Host {
		return err
	}
	if err == nil {
		if rerr := unix.Lremovexattr(path, OwnerName); rerr != nil && !errors.Is(rerr, unix.ENODATA) && !errors.Is(rerr, unix.ENOTSUP) && !errors.Is(rerr, unix.EPERM) {
			return fmt.Errorf("remove xattr %s of %s: %w", OwnerName, path, rerr)
		}
		return nil
	}
	if !errors.Is(err, unix.EINVAL) {
		return err
	}
	v := strconv.Itoa(uid) + ":" + strconv.Itoa(gid)
	if serr := unix.Lsetxattr(path, OwnerName, []byte(v), 0); serr != nil {
		return err
	}
	return nil
}

// Owner returns the owner recorded in OwnerName of path, else uid and gid (the
// owner on disk). Outside kiln's user namespace no file has one, and nothing is read.
func Owner(path string, uid, gid int) (int, int, error) {
	if userns.Current() == userns.Host {
		return uid, gid, nil
	}
	v, ok, err := Get(path, OwnerName)
	if err != nil || !ok {
		return uid, gid, err
	}
	return ParseOwner(path, v, uid, gid)
}

// ParseOwner parses the value v of OwnerName ("uid:gid") of path.
func ParseOwner(path string, v []byte, uid, gid int) (int, int, error) {
	us, gs, ok := strings.Cut(string(v), ":")
	u, err1 := strconv.ParseUint(us, 10, 32)
	g, err2 := strconv.ParseUint(gs, 10, 32)
	if !ok || err1 != nil || err2 != nil {
		return uid, gid, fmt.Errorf("xattr %s of %s: %q is not uid:gid", OwnerName, path, v)
	}
	return int(u), int(g), nil
}
