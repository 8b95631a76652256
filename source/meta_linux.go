package source

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/xattr"
)

// fileXattr is one extended attribute of a file.
type fileXattr struct {
	name  string
	value []byte
}

// listXattrs returns the extended attributes of path (not following a symlink), sorted
// by name. trusted.overlay.* are overlayfs' bookkeeping, never content, so they are
// left out; one removed meanwhile or unreadable is skipped: there is nothing to copy.
func listXattrs(path string) ([]fileXattr, error) {
	names, err := xattr.List(path)
	if err != nil {
		return nil, err
	}
	var out []fileXattr
	for _, name := range names {
		if xattr.IsOverlay(name) || xattr.IsKiln(name) {
			continue
		}
		if v, ok, err := xattr.Get(path, name); err == nil && ok {
			out = append(out, fileXattr{name: name, value: v})
		}
	}
	return out, nil
}

// copyXattrs copies what it can: like BuildKit, an attribute the destination refuses
// (security.* without privilege, a filesystem without support) is skipped, not fatal.
func copyXattrs(src, dst string) {
	xs, err := listXattrs(src)
	if err != nil {
		return
	}
	for _, x := range xs {
		_ = unix.Lsetxattr(dst, x.name, x.value, 0)
	}
}

// statOf returns the raw stat of fi.
func statOf(fi fs.FileInfo) *syscall.Stat_t {
	st, _ := fi.Sys().(*syscall.Stat_t)
	if st == nil {
		st = &syscall.Stat_t{}
	}
	return st
}

// unixMode is the permission and special bits of fi in st_mode form (04755 for a
// setuid binary), the form chmod takes and digests record.
func unixMode(m fs.FileMode) uint32 {
	v := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		v |= unix.S_ISUID
	}
	if m&fs.ModeSetgid != 0 {
		v |= unix.S_ISGID
	}
	if m&fs.ModeSticky != 0 {
		v |= unix.S_ISVTX
	}
	return v
}

// hashKey identifies a file's state for the HashCache: any change to content, xattrs,
// mode or owner changes ctime, and a replaced file has another inode.
func hashKey(host string, fi fs.FileInfo) string {
	st := statOf(fi)
	// strconv rather than fmt: this runs once per file on every warm rebuild.
	b := make([]byte, 0, 96+len(host))
	b = append(b, "buildctx/v1:"...)
	for _, n := range [...]int64{int64(st.Dev), int64(st.Ino), st.Size, st.Mtim.Nano(), st.Ctim.Nano()} {
		b = strconv.AppendInt(b, n, 10)
		b = append(b, ':')
	}
	return string(append(b, host...))
}

// setMeta sets owner, mode and times of path after its content is in place: chown
// first, since chown clears setuid bits. Symlinks get no chmod (Linux has none).
func setMeta(path string, fi fs.FileInfo, uid, gid int, mode uint32) error {
	if err := xattr.Lchown(path, uid, gid); err != nil && !(os.Geteuid() != 0 && errors.Is(err, fs.ErrPermission)) {
		return fmt.Errorf("chown %s: %w", path, err)
	}
	if fi.Mode()&fs.ModeSymlink == 0 {
		if err := unix.Fchmodat(unix.AT_FDCWD, path, mode, 0); err != nil {
			return fmt.Errorf("chmod %s: %w", path, err)
		}
	}
	st := statOf(fi)
	ts := []unix.Timespec{unix.NsecToTimespec(st.Atim.Nano()), unix.NsecToTimespec(st.Mtim.Nano())}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, path, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set times of %s: %w", path, err)
	}
	return nil
}

// mknod recreates a device node or fifo at path.
func mknod(path string, fi fs.FileInfo) error {
	st := statOf(fi)
	if err := unix.Mknod(path, st.Mode, int(st.Rdev)); err != nil {
		return fmt.Errorf("mknod %s: %w", path, err)
	}
	return nil
}

// rdev is the device number of a device node.
func rdev(fi fs.FileInfo) uint64 { return statOf(fi).Rdev }

// ids is the owner of fi, the file at path: the one xattr.OwnerName records where
// rootless kiln could not give it (see xattr.Owner), else its own.
func ids(path string, fi fs.FileInfo) (int, int, error) {
	st := statOf(fi)
	uid, gid, err := xattr.Owner(path, int(st.Uid), int(st.Gid))
	if err != nil {
		return 0, 0, err
	}
	return uid, gid, nil
}

// osNoFollow makes open fail on a symlink instead of following it.
const osNoFollow = syscall.O_NOFOLLOW
