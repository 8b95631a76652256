package xattr

import (
	"archive/tar"
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

// DeviceName is the xattr of the stand-in for a device node that kiln in a user
// namespace cannot create (mknod of a real device is EPERM there; debootstrap's
// /dev/console and friends are in Debian bases): an empty regular file whose
// DeviceName is "c MAJOR MINOR" or "b MAJOR MINOR", which the layer writer writes back
// as that device. RUN steps never see them: the sandbox mounts its own /dev. A
// COPY --from of such a stand-in copies an empty file, not a device.
const DeviceName = "user.kiln.device"

// IsKiln reports whether name is one of kiln's own xattrs (OwnerName, DeviceName):
// bookkeeping, never content of a layer, never taken from an archive.
func IsKiln(name string) bool { return strings.HasPrefix(name, "user.kiln.") }

// Mknod creates the character or block device (or fifo) path with mode (type and
// permission bits) and dev. Where the kernel refuses a device in kiln's user
// namespace it creates the DeviceName stand-in instead.
func Mknod(path string, mode uint32, dev uint64) error {
	err := unix.Mknod(path, mode, int(dev))
	typ := mode & unix.S_IFMT
	if err == nil || !errors.Is(err, unix.EPERM) || userns.Current() == userns.Host || (typ != unix.S_IFCHR && typ != unix.S_IFBLK) {
		return err
	}
	fd, ferr := unix.Open(path, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, mode&0o7777)
	if ferr != nil {
		return err
	}
	unix.Close(fd)
	kind := "c"
	if typ == unix.S_IFBLK {
		kind = "b"
	}
	v := fmt.Sprintf("%s %d %d", kind, unix.Major(dev), unix.Minor(dev))
	if serr := unix.Lsetxattr(path, DeviceName, []byte(v), 0); serr != nil {
		_ = unix.Unlink(path)
		return fmt.Errorf("%w (and its stand-in: %v)", err, serr)
	}
	return nil
}

// ParseDevice parses the value of DeviceName: the tar type and the device numbers.
func ParseDevice(path string, v []byte) (typ byte, major, minor int64, err error) {
	var kind string
	if _, err := fmt.Sscanf(string(v), "%s %d %d", &kind, &major, &minor); err != nil || (kind != "c" && kind != "b") {
		return 0, 0, 0, fmt.Errorf("xattr %s of %s: %q is not \"c|b MAJOR MINOR\"", DeviceName, path, v)
	}
	if kind == "b" {
		return tar.TypeBlock, major, minor, nil
	}
	return tar.TypeChar, major, minor, nil
}

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
