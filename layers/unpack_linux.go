package layers

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/rootpath"
	"github.com/kiln-build/kiln/internal/userns"
	"github.com/kiln-build/kiln/internal/xattr"
)

// errInvalidArchive marks entries that no honest archive contains.
var errInvalidArchive = errors.New("invalid archive entry")

// unpacker applies one tar stream to a directory. Every host path it touches is
// rootpath.Resolve(root, parent) joined with one clean name component that is never
// followed, so nothing in the archive can reach outside root.
type unpacker struct {
	ctx  context.Context
	root string
	opts UnpackOptions
	// created holds the host paths this archive wrote (true) and their parents
	// (false), so that an opaque whiteout in ApplyWhiteouts mode removes only what
	// came from lower layers.
	created map[string]bool
	// parents caches parentDir: the host path of each directory of the archive
	// already resolved and known to exist. Only a removal (of an entry's old path,
	// or by a whiteout) can turn such a directory into something else, so each
	// removal forgets them all. A base layer of a few thousand files in a few
	// hundred directories otherwise resolves every component of every parent once
	// per file.
	parents map[string]string
	dirs    []dirTime
	buf     []byte
	hostIDs bool // owners are set by fchown: kiln runs in the host's user namespace
}

// dirTime is a directory mtime to set once all entries are in: writing a child
// changes its parent's mtime.
type dirTime struct {
	rel          string
	atime, mtime time.Time
}

func unpack(ctx context.Context, r io.Reader, dest string, opts UnpackOptions) error {
	root, err := filepath.Abs(dest)
	if err != nil {
		return fmt.Errorf("unpack into %s: %w", dest, err)
	}
	rc, err := decompress(r)
	if err != nil {
		return fmt.Errorf("unpack into %s: %w", dest, err)
	}
	defer rc.Close()
	u := &unpacker{
		ctx: ctx, root: root, opts: opts,
		created: map[string]bool{}, parents: map[string]string{},
		buf: make([]byte, 128<<10), hostIDs: userns.Current() == userns.Host,
	}
	tr := tar.NewReader(rc)
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("unpack into %s: %w", dest, err)
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("unpack into %s: read tar: %w", dest, err)
		}
		if err := u.entry(hdr, tr); err != nil {
			return fmt.Errorf("unpack %s: %w", hdr.Name, err)
		}
	}
	return u.setDirTimes()
}

// cleanName makes a tar name relative to the root: "../../x", "/x" and "./x" all
// become "x"; the root itself becomes "".
func cleanName(name string) string {
	return strings.TrimPrefix(path.Clean("/"+name), "/")
}

// parentDir returns the host path of dir inside root, creating it (0755, like
// containerd and Docker for implied parents) when create is set. exists is false when
// it does not exist and create is not set.
func (u *unpacker) parentDir(dir string, create bool) (p string, exists bool, err error) {
	if dir == "" {
		return u.root, true, nil
	}
	if p, ok := u.parents[dir]; ok {
		return p, true, nil
	}
	p, err = rootpath.Resolve(u.root, dir)
	if err != nil {
		return "", false, err
	}
	fi, err := os.Lstat(p)
	switch {
	case err == nil && fi.IsDir():
		u.parents[dir] = p
		return p, true, nil
	case err == nil:
		return "", false, fmt.Errorf("parent %s is not a directory", dir)
	case !errors.Is(err, fs.ErrNotExist):
		return "", false, err
	case !create:
		return "", false, nil
	}
	// The levels about to be made, deepest first: an implied parent gets the zero
	// time (Unix 0) once the archive is in, unless a later entry names it, so that
	// unpacking a layer twice gives the same tree whatever the clock says (kiln
	// checks snapshots against such trees).
	var missing []string
	for d := path.Clean(dir); d != "." && d != "/"; d = path.Dir(d) {
		q, err := rootpath.Resolve(u.root, d)
		if err != nil {
			break
		}
		if _, err := os.Lstat(q); err == nil {
			break
		}
		missing = append(missing, d)
	}
	p, err = rootpath.MkdirAll(u.root, dir, 0o755)
	if err != nil {
		return "", false, err
	}
	for i := len(missing) - 1; i >= 0; i-- {
		u.dirs = append(u.dirs, dirTime{rel: missing[i], atime: time.Unix(0, 0), mtime: time.Unix(0, 0)})
	}
	u.markCreated(p, false)
	u.parents[dir] = p
	return p, true, nil
}

// removeAll removes p (never following it, if it is a symlink) and forgets every
// resolved parent, since p may have been one or lain on the way to one.
func (u *unpacker) removeAll(p string) error {
	clear(u.parents)
	return os.RemoveAll(p)
}

// markCreated records p, and its parents up to the root as implicitly created.
func (u *unpacker) markCreated(p string, explicit bool) {
	if u.opts.Whiteouts != ApplyWhiteouts {
		return
	}
	u.created[p] = u.created[p] || explicit
	for d := filepath.Dir(p); d != u.root && strings.HasPrefix(d, u.root); d = filepath.Dir(d) {
		if _, ok := u.created[d]; ok {
			return
		}
		u.created[d] = false
	}
}

func (u *unpacker) entry(hdr *tar.Header, r io.Reader) error {
	rel := cleanName(hdr.Name)
	if rel == "" {
		// The root's own entry ("./"): dest's metadata belongs to the caller.
		return nil
	}
	dir, base := path.Split(rel)
	if u.opts.Whiteouts != NoWhiteouts && strings.HasPrefix(base, whiteoutPrefix) {
		return u.whiteout(dir, base)
	}
	if hdr.Typeflag == tar.TypeXGlobalHeader {
		return nil
	}
	parent, _, err := u.parentDir(dir, true)
	if err != nil {
		return err
	}
	target := filepath.Join(parent, base)

	var linkSrc string
	if hdr.Typeflag == tar.TypeLink {
		if linkSrc, err = u.hardlinkSource(hdr.Linkname); err != nil {
			return err
		}
		if linkSrc == target {
			return nil // a link to itself: the file is already there
		}
	}
	// The entry is made first and its old path looked at only if it is taken:
	// unpacking into a new snapshot, nothing ever is.
	made, err := u.make(hdr, target, linkSrc, r)
	if errors.Is(err, fs.ErrExist) {
		fi, lerr := os.Lstat(target)
		switch {
		case lerr != nil:
			return lerr
		case fi.IsDir() && hdr.Typeflag == tar.TypeDir:
			err = nil // a directory again: its contents stay
		default:
			if err := u.removeAll(target); err != nil {
				return err
			}
			made, err = u.make(hdr, target, linkSrc, r)
			if err == nil && hdr.Typeflag == tar.TypeDir && u.opts.Whiteouts == OverlayWhiteouts && isWhiteout(fi) {
				// ".wh.NAME" then "NAME/" in one layer: the directory holds only
				// what this layer puts in it (readers delete the lower NAME, then
				// make it again), which overlayfs records as an opaque directory,
				// as it does for a directory created over a whiteout.
				err = xattr.SetOpaque(target)
			}
		}
	}
	if err != nil {
		return err
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		u.dirs = append(u.dirs, dirTime{rel: rel, atime: hdr.AccessTime, mtime: hdr.ModTime})
	case tar.TypeLink:
		u.markCreated(target, true)
		// The link's header applies to the inode it shares, as containerd's and
		// moby's unpackers apply it (so BuildKit's ADD and layers): an archive whose
		// link entry says 0644 0:0 over a 0600 5:6 file gives both names 0644 0:0.
		// Not through a link to a symlink: chmod and utimes would follow it.
		fi, err := os.Lstat(target)
		if err != nil {
			return err
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return nil
		}
		return u.setMetadata(-1, target, hdr)
	}
	u.markCreated(target, true)
	if made >= 0 {
		return u.setFileMetadata(made, target, hdr)
	}
	return u.setMetadata(-1, target, hdr)
}

// isWhiteout says whether fi is an overlay whiteout: a 0/0 character device.
func isWhiteout(fi fs.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && fi.Mode()&fs.ModeCharDevice != 0 && st.Rdev == 0
}

// hardlinkSource resolves a hard link's target inside root. Its parent is resolved
// like any path; its last component is not followed, so a hard link to a symlink
// links the symlink, as link(2) does.
func (u *unpacker) hardlinkSource(linkname string) (string, error) {
	rel := cleanName(linkname)
	if rel == "" {
		return "", fmt.Errorf("hard link to the root: %w", errInvalidArchive)
	}
	dir, base := path.Split(rel)
	parent, ok, err := u.parentDir(dir, false)
	if err != nil {
		return "", fmt.Errorf("hard link target %s: %w", linkname, err)
	}
	if !ok {
		return "", fmt.Errorf("hard link target %s: %w", linkname, fs.ErrNotExist)
	}
	return filepath.Join(parent, base), nil
}

// make creates the entry's inode at target, never following or replacing what is
// there (an error satisfying fs.ErrExist then). For a regular file it returns the
// open descriptor of the written file, so that its metadata is set without looking
// the path up again; the caller closes it. Else it returns -1.
func (u *unpacker) make(hdr *tar.Header, target, linkSrc string, r io.Reader) (int, error) {
	switch hdr.Typeflag {
	case tar.TypeDir:
		return -1, os.Mkdir(target, 0o700)
	case tar.TypeReg, tar.TypeRegA: //nolint:staticcheck // old archives still use '\x00'
		return u.writeFile(target, r)
	case tar.TypeSymlink:
		// The target is written as is, absolute or not: kiln only ever follows it
		// through rootpath, inside the rootfs.
		return -1, os.Symlink(hdr.Linkname, target)
	case tar.TypeLink:
		return -1, os.Link(linkSrc, target)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		mode := map[byte]uint32{tar.TypeChar: unix.S_IFCHR, tar.TypeBlock: unix.S_IFBLK, tar.TypeFifo: unix.S_IFIFO}[hdr.Typeflag]
		dev := unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
		if err := xattr.Mknod(target, mode|0o600, dev); err != nil {
			return -1, fmt.Errorf("mknod: %w", err)
		}
		return -1, nil
	default:
		return -1, fmt.Errorf("unsupported tar entry type %q", hdr.Typeflag)
	}
}

// writeFile creates target exclusively, without following a symlink, streams the
// entry's content into it and returns its descriptor. The descriptor is a bare one:
// an os.File would also try to register a regular file with the poller.
func (u *unpacker) writeFile(target string, r io.Reader) (int, error) {
	fd, err := unix.Open(target, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return -1, &fs.PathError{Op: "open", Path: target, Err: err}
	}
	for {
		if err := u.ctx.Err(); err != nil {
			unix.Close(fd)
			return -1, err
		}
		n, rerr := io.ReadFull(r, u.buf)
		if werr := writeAll(fd, u.buf[:n]); werr != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("write content: %w", werr)
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			return fd, nil
		}
		if rerr != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("write content: %w", rerr)
		}
	}
}

// writeAll writes b to fd whole, across short writes and interruptions.
func writeAll(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := unix.Write(fd, b)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// setFileMetadata is setMetadata for a regular file written through fd, which it
// closes: owner, mode and times are set on the descriptor.
func (u *unpacker) setFileMetadata(fd int, target string, hdr *tar.Header) error {
	err := u.setMetadata(fd, target, hdr)
	if cerr := unix.Close(fd); err == nil && cerr != nil {
		err = fmt.Errorf("close: %w", cerr)
	}
	return err
}

// setMetadata applies owner, mode, xattrs and times in the order the kernel needs:
// chown clears setuid bits and security.capability, so mode and xattrs come after.
// With fd >= 0 (a regular file just written) they are set on the descriptor, else by
// path.
func (u *unpacker) setMetadata(fd int, target string, hdr *tar.Header) error {
	if u.opts.KeepOwners {
		var err error
		if fd >= 0 && u.hostIDs {
			err = unix.Fchown(fd, hdr.Uid, hdr.Gid)
		} else {
			// xattr.Lchown: where rootless kiln's namespace lacks the ids, it
			// records them for the layer writer instead of failing.
			err = xattr.Lchown(target, hdr.Uid, hdr.Gid)
		}
		if err != nil {
			return fmt.Errorf("chown: %w", err)
		}
	}
	if hdr.Typeflag != tar.TypeSymlink {
		var err error
		if fd >= 0 {
			err = unix.Fchmod(fd, uint32(hdr.Mode&0o7777))
		} else {
			err = unix.Fchmodat(unix.AT_FDCWD, target, uint32(hdr.Mode&0o7777), 0)
		}
		if err != nil {
			return fmt.Errorf("chmod: %w", err)
		}
	}
	if err := setXattrs(target, hdr); err != nil {
		return err
	}
	switch {
	case hdr.Typeflag == tar.TypeDir:
		return nil // set last, in setDirTimes
	case fd >= 0:
		if err := futimens(fd, hdr.AccessTime, hdr.ModTime); err != nil {
			return fmt.Errorf("set times: %w", err)
		}
		return nil
	}
	return setTimes(target, hdr.AccessTime, hdr.ModTime)
}

// setXattrs applies the archive's SCHILY.xattr records. trusted.overlay.* records are
// dropped: they would let an archive steer overlayfs (opaque, redirect); so is
// xattr.OwnerName, which would let it forge the owner its files are exported with. A filesystem
// without support for a namespace is tolerated except for security.*, whose loss
// (file capabilities) would silently change what a program may do.
func setXattrs(target string, hdr *tar.Header) error {
	for k, v := range hdr.PAXRecords {
		name, ok := strings.CutPrefix(k, paxXattr)
		if !ok || xattr.IsOverlay(name) || xattr.IsKiln(name) {
			continue
		}
		err := unix.Lsetxattr(target, name, []byte(v), 0)
		if errors.Is(err, unix.ENOTSUP) && !strings.HasPrefix(name, "security.") {
			continue
		}
		if err != nil {
			return fmt.Errorf("set xattr %s: %w", name, err)
		}
	}
	return nil
}

func setTimes(target string, atime, mtime time.Time) error {
	ts := timespecs(atime, mtime)
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, target, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set times: %w", err)
	}
	return nil
}

// timespecs are utimensat's times: an archive without an atime gets the mtime.
func timespecs(atime, mtime time.Time) []unix.Timespec {
	if atime.IsZero() {
		atime = mtime
	}
	return []unix.Timespec{unix.NsecToTimespec(atime.UnixNano()), unix.NsecToTimespec(mtime.UnixNano())}
}

// futimens is utimensat(fd, NULL, times, 0), which x/sys/unix does not wrap.
func futimens(fd int, atime, mtime time.Time) error {
	ts := timespecs(atime, mtime)
	_, _, errno := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}

// setDirTimes dates the directories once nothing more will be written into them.
// Each path is resolved again because a later entry may have replaced a parent with
// a symlink; one that a later entry removed is skipped.
func (u *unpacker) setDirTimes() error {
	for _, d := range u.dirs {
		p, err := rootpath.Resolve(u.root, d.rel)
		if err != nil {
			return fmt.Errorf("unpack %s: %w", d.rel, err)
		}
		fi, err := os.Lstat(p)
		if err != nil || !fi.IsDir() {
			continue
		}
		if err := setTimes(p, d.atime, d.mtime); err != nil {
			return fmt.Errorf("unpack %s: %w", d.rel, err)
		}
	}
	return nil
}
