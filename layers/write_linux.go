package layers

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/xattr"
)

// Whiteout names of the OCI image spec (inherited from AUFS).
const (
	whiteoutPrefix = ".wh."
	whiteoutMeta   = whiteoutPrefix + whiteoutPrefix
	whiteoutOpaque = whiteoutMeta + ".opq"
)

// writeLayer writes the tree at root as a tar through the codec of opts. With
// overlay set, overlayfs whiteouts and opaque dirs become OCI whiteout entries.
func writeLayer(ctx context.Context, root string, w io.Writer, opts WriteOptions, overlay bool) (Blob, bool, error) {
	bw, err := newBlobWriter(w, opts)
	if err != nil {
		return Blob{}, false, err
	}
	tw := &treeWriter{
		ctx:     ctx,
		root:    root,
		tw:      bw.newTar(),
		overlay: overlay,
		epoch:   opts.SourceDateEpoch,
		modTime: opts.ModTime,
		norm:    opts.NormalizeTree,
		below:   opts.Below,
		links:   map[fileID]string{},
		buf:     make([]byte, 128<<10),
	}
	if overlay {
		if err := tw.setPending(opts.Pending); err != nil {
			bw.abort()
			return Blob{}, false, err
		}
	}
	if err := tw.walk(); err != nil {
		bw.abort()
		return Blob{}, false, fmt.Errorf("write layer of %s: %w", root, err)
	}
	if err := tw.tw.Close(); err != nil {
		bw.abort()
		return Blob{}, false, fmt.Errorf("write layer of %s: close tar: %w", root, err)
	}
	blob, err := bw.close()
	if err != nil {
		return Blob{}, false, fmt.Errorf("write layer of %s: %w", root, err)
	}
	return blob, tw.entries == 0, nil
}

// fileID names an inode, to spot hard links inside the tree.
type fileID struct{ dev, ino uint64 }

// treeWriter turns one directory tree into tar entries.
type treeWriter struct {
	ctx     context.Context
	root    string
	tw      *layerTar
	overlay bool
	epoch   *time.Time
	modTime *time.Time
	norm    bool                           // NormalizeTree
	below   func(rel string) (bool, error) // WriteOptions.Below
	links   map[fileID]string              // first tar name of each multiply-linked inode
	buf     []byte
	entries int

	pending     PendingFiles
	pendingDirs map[string]bool // the directories of pending files: true once walked
	pendingDone int
}

// setPending checks the directories of the pending files: each must be a clean
// relative path (else the walk could never find its files where they belong).
func (t *treeWriter) setPending(files PendingFiles) error {
	if files == nil || files.Len() == 0 {
		return nil
	}
	t.pending = files
	t.pendingDirs = map[string]bool{}
	for _, dir := range files.Dirs() {
		if dir != "" && !cleanRel(dir) {
			return fmt.Errorf("pending files in %q: not a clean relative path", dir)
		}
		t.pendingDirs[dir] = false
	}
	return nil
}

// walk visits the tree depth first in lexical order (each directory's names sorted,
// as filepath.WalkDir does), which is what makes the same tree give the same bytes.
// Pending files take their place among the names of their directory.
func (t *treeWriter) walk() error {
	if err := t.walkDir(t.root, ""); err != nil {
		return err
	}
	if t.pending != nil && t.pendingDone != t.pending.Len() {
		for dir, walked := range t.pendingDirs {
			if fs := t.pending.InDir(dir); !walked && len(fs) > 0 {
				return fmt.Errorf("%s: pending file outside the upper dir's directories", fs[0].Name)
			}
		}
		return fmt.Errorf("%d pending files listed, %d written", t.pending.Len(), t.pendingDone)
	}
	return nil
}

// pendingIn returns the pending files of the directory rel by base name, checking
// that each is named as one entry of rel.
func (t *treeWriter) pendingIn(rel string) (map[string]*PendingFile, error) {
	if _, ok := t.pendingDirs[rel]; !ok {
		return nil, nil
	}
	t.pendingDirs[rel] = true
	files := t.pending.InDir(rel)
	byName := make(map[string]*PendingFile, len(files))
	for i := range files {
		pf := &files[i]
		dir, base := path.Split(pf.Name)
		if !cleanRel(pf.Name) || strings.TrimSuffix(dir, "/") != rel {
			return nil, fmt.Errorf("pending file %q: not a clean relative path in %q", pf.Name, rel)
		}
		if _, dup := byName[base]; dup {
			return nil, fmt.Errorf("pending file %q listed twice", pf.Name)
		}
		byName[base] = pf
	}
	return byName, nil
}

func (t *treeWriter) walkDir(dir, rel string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return fmt.Errorf("read dir %s: %w", rel, err)
	}
	pending, err := t.pendingIn(rel)
	if err != nil {
		return err
	}
	if t.norm && t.overlay && hasWhiteoutName(names) {
		if names, err = t.applyWhiteoutNames(dir, rel, names, pending); err != nil {
			return err
		}
	}
	var real map[string]bool // the names the upper dir has, when pending files join them
	if len(pending) > 0 {
		real = make(map[string]bool, len(names))
		for _, n := range names {
			real[n] = true
		}
		for name := range pending {
			if !real[name] {
				names = append(names, name)
			}
		}
	}
	slices.Sort(names)
	for _, name := range names {
		if err := t.ctx.Err(); err != nil {
			return err
		}
		child := path.Join(rel, name)
		host := filepath.Join(dir, name)
		if pf, ok := pending[name]; ok {
			if err := t.addPending(host, pf, real[name]); err != nil {
				return fmt.Errorf("%s: %w", child, err)
			}
			continue
		}
		isDir, err := t.add(host, child)
		if err != nil {
			return fmt.Errorf("%s: %w", child, err)
		}
		if isDir {
			if err := t.walkDir(host, child); err != nil {
				return err
			}
		}
	}
	return nil
}

// mtime truncates to whole seconds as containerd's and BuildKit's differs do (without
// PAX the standard library would round instead), then clamps to SOURCE_DATE_EPOCH.
// Access and change times are never written: they would make layers unreproducible.
func (t *treeWriter) mtime(ts unix.Timespec) time.Time {
	if t.modTime != nil {
		return t.modTime.Truncate(time.Second).UTC()
	}
	m := time.Unix(ts.Sec, 0)
	if t.epoch != nil {
		if e := t.epoch.Truncate(time.Second); m.After(e) {
			m = e
		}
	}
	return m.UTC()
}

// add writes the entry for p, named name in the tar, and reports whether p is a
// directory to descend into.
func (t *treeWriter) add(p, name string) (isDir bool, err error) {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return false, fmt.Errorf("lstat: %w", err)
	}
	isDir = st.Mode&unix.S_IFMT == unix.S_IFDIR
	return isDir, t.addStat(p, name, &st)
}

func (t *treeWriter) addStat(p, name string, st *unix.Stat_t) error {
	// A file named .wh.* cannot be stored in a layer as a file: every reader takes
	// it for a whiteout. A step's are made whiteouts first (applyWhiteoutNames,
	// under NormalizeTree); one met here is in a tree the writer does not own (a
	// snapshot tarred again to check it), which a step's tree never holds. The
	// overlay whiteouts this writer makes are char devices and come through
	// writeWhiteout.
	if base := path.Base(name); t.overlay && strings.HasPrefix(base, whiteoutPrefix) && !(st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0) {
		return reservedName(name)
	}
	hdr := &tar.Header{
		Name:    name,
		Mode:    int64(st.Mode & 0o7777), // keeps setuid, setgid and sticky
		Uid:     int(st.Uid),
		Gid:     int(st.Gid),
		ModTime: t.mtime(st.Mtim),
		Format:  tar.FormatPAX,
	}
	if t.norm && st.Mtim.Nsec != 0 && st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		if err := setMtime(p, unix.Timespec{Sec: st.Mtim.Sec}); err != nil {
			return err
		}
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFSOCK:
		// A socket is a live endpoint, not content: Docker and BuildKit drop them.
		if t.norm {
			return removeKeepingParentTime(p)
		}
		return nil
	case unix.S_IFCHR:
		if t.overlay && st.Rdev == 0 {
			return t.writeWhiteout(name)
		}
		hdr.Typeflag = tar.TypeChar
		hdr.Devmajor, hdr.Devminor = int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
	case unix.S_IFBLK:
		hdr.Typeflag = tar.TypeBlock
		hdr.Devmajor, hdr.Devminor = int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
	case unix.S_IFIFO:
		hdr.Typeflag = tar.TypeFifo
	case unix.S_IFDIR:
		hdr.Typeflag = tar.TypeDir
		hdr.Name += "/"
	case unix.S_IFLNK:
		target, err := os.Readlink(p)
		if err != nil {
			return err
		}
		hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, target
	case unix.S_IFREG:
		hdr.Typeflag, hdr.Size = tar.TypeReg, st.Size
		if st.Nlink > 1 {
			id := fileID{dev: st.Dev, ino: st.Ino}
			if first, ok := t.links[id]; ok {
				hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeLink, first, 0
			} else {
				t.links[id] = name
			}
		}
	default:
		return fmt.Errorf("unsupported file type %#o", st.Mode&unix.S_IFMT)
	}
	opaque, err := t.xattrs(p, hdr)
	if err != nil {
		return err
	}
	if err := t.tw.WriteHeader(hdr); err != nil {
		return err
	}
	t.entries++
	if hdr.Typeflag == tar.TypeReg && hdr.Size > 0 {
		if err := t.copyFile(p, hdr.Size); err != nil {
			return err
		}
	}
	if opaque {
		// The opaque marker follows its directory, before the children that the
		// layer itself adds back, as BuildKit writes it.
		return t.tw.WriteHeader(&tar.Header{
			Typeflag: tar.TypeReg,
			Name:     name + "/" + whiteoutOpaque,
			ModTime:  whiteoutTime(),
			Format:   tar.FormatPAX,
		})
	}
	return nil
}

// setMtime sets p's mtime (not following a symlink), leaving its atime.
func setMtime(p string, m unix.Timespec) error {
	ts := []unix.Timespec{{Nsec: unix.UTIME_OMIT}, m}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("normalize mtime: %w", err)
	}
	return nil
}

// removeKeepingParentTime removes p and gives its directory back the mtime it had
// (already written to the layer).
func removeKeepingParentTime(p string) error {
	var dir unix.Stat_t
	if err := unix.Lstat(filepath.Dir(p), &dir); err != nil {
		return fmt.Errorf("lstat: %w", err)
	}
	if err := os.Remove(p); err != nil {
		return err
	}
	return setMtime(filepath.Dir(p), dir.Mtim)
}

func reservedName(name string) error {
	base := path.Base(name)
	return fmt.Errorf("%w (a reader would delete %q); rename it", ErrReservedName, path.Join(path.Dir(name), strings.TrimPrefix(base, whiteoutPrefix)))
}

// addPending writes a pending file. Whatever the upper dir holds under its name (a
// whiteout, or a link the copy replaced) is what the file replaces, so it is not
// written; a directory there means the copy went wrong. Only a name the directory's
// listing has (inUpper) is looked at: most pending files have nothing under them.
func (t *treeWriter) addPending(host string, pf *PendingFile, inUpper bool) error {
	t.pendingDone++
	var st unix.Stat_t
	if inUpper {
		if err := unix.Lstat(host, &st); err == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR {
			return fmt.Errorf("pending file over a directory")
		}
	}
	if strings.HasPrefix(path.Base(pf.Name), whiteoutPrefix) {
		return reservedName(pf.Name)
	}
	hdr := &tar.Header{
		Typeflag: tar.TypeReg,
		Name:     pf.Name,
		Size:     pf.Size,
		Mode:     int64(pf.Mode & 0o7777),
		Uid:      pf.UID,
		Gid:      pf.GID,
		ModTime:  t.mtime(unix.NsecToTimespec(pf.ModTime.UnixNano())),
		Format:   tar.FormatPAX,
	}
	for k, v := range pf.Xattrs {
		if xattr.IsOverlay(k) || xattr.IsKiln(k) {
			continue
		}
		if hdr.PAXRecords == nil {
			hdr.PAXRecords = map[string]string{}
		}
		hdr.PAXRecords[paxXattr+k] = string(v)
	}
	if err := t.tw.WriteHeader(hdr); err != nil {
		return err
	}
	t.entries++
	if pf.Size > 0 {
		return t.copyFile(pf.Source, pf.Size)
	}
	return t.checkEmpty(pf.Source)
}

// checkEmpty checks that an empty pending file is still an empty regular file.
func (t *treeWriter) checkEmpty(src string) error {
	var st unix.Stat_t
	if err := unix.Lstat(src, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Size != 0 {
		return fmt.Errorf("file changed while writing the layer")
	}
	return nil
}

// xattrs copies the extended attributes of p into hdr, except overlayfs's own, and
// reports whether p is an overlay opaque directory. Overlay features that would make
// the upper dir an incomplete description of the change are refused, as BuildKit's
// overlay differ does, instead of producing a wrong layer.
func (t *treeWriter) xattrs(p string, hdr *tar.Header) (opaque bool, err error) {
	names, err := xattr.List(p)
	if err != nil {
		return false, err
	}
	for _, n := range names {
		if n == xattr.OwnerName {
			// Rootless kiln's record of an owner its namespace cannot map: the
			// layer gets the owner, not the record.
			v, ok, err := xattr.Get(p, n)
			if err != nil {
				return false, err
			}
			if ok {
				if hdr.Uid, hdr.Gid, err = xattr.ParseOwner(p, v, hdr.Uid, hdr.Gid); err != nil {
					return false, err
				}
			}
			continue
		}
		if n == xattr.DeviceName {
			// The stand-in of a device rootless kiln could not create.
			v, ok, err := xattr.Get(p, n)
			if err != nil {
				return false, err
			}
			if ok && hdr.Typeflag == tar.TypeReg && hdr.Size == 0 {
				if hdr.Typeflag, hdr.Devmajor, hdr.Devminor, err = xattr.ParseDevice(p, v); err != nil {
					return false, err
				}
			}
			continue
		}
		if short, ok := xattr.OverlayName(n); ok {
			if !t.overlay {
				continue
			}
			switch short {
			case "opaque":
				v, _, err := xattr.Get(p, n)
				if err != nil {
					return false, err
				}
				opaque = hdr.Typeflag == tar.TypeDir && string(v) == "y"
			case "redirect", "metacopy":
				return false, fmt.Errorf("overlay %s is not supported in an upper dir: mount overlay with redirect_dir=off,metacopy=off", n)
			}
			continue
		}
		v, ok, err := xattr.Get(p, n)
		if err != nil {
			return false, err
		}
		if !ok {
			continue
		}
		if hdr.PAXRecords == nil {
			hdr.PAXRecords = map[string]string{}
		}
		hdr.PAXRecords[paxXattr+n] = string(v)
	}
	return opaque, nil
}

// whiteoutTime dates whiteout entries: the Unix epoch, as BuildKit's (containerd
// v2's) layers have them, whatever the clock or SOURCE_DATE_EPOCH says. A marker
// carries no content whose age means anything, and a fixed date keeps a layer that
// deletes a file the same bytes whenever it is made.
func whiteoutTime() time.Time { return time.Unix(0, 0).UTC() }

// writeWhiteout writes the OCI whiteout of name: an empty, mode 0, root-owned regular
// file ".wh.NAME" next to it, dated whiteoutTime().
func (t *treeWriter) writeWhiteout(name string) error {
	dir, base := path.Split(name)
	if err := t.tw.WriteHeader(&tar.Header{
		Typeflag: tar.TypeReg,
		Name:     dir + whiteoutPrefix + base,
		ModTime:  whiteoutTime(),
		Format:   tar.FormatPAX,
	}); err != nil {
		return err
	}
	t.entries++
	return nil
}

// copyFile streams the content of p into the tar, checking ctx between chunks. A
// file that changed size since it was stat'ed is an error, not a corrupt layer.
//
// It reads through a bare descriptor: an os.File would also offer a regular file to
// the poller, two fcntl and an epoll_ctl a file (W2 copies 21,000). The last read
// asks for one byte more than the file should have left, so a short read is its end
// and a full one means it grew, without a read more to find out. O_NONBLOCK: a
// file swapped for a fifo fails its read instead of hanging the build.
func (t *treeWriter) copyFile(p string, size int64) error {
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: p, Err: err}
	}
	defer unix.Close(fd)
	var n int64
	for {
		if err := t.ctx.Err(); err != nil {
			return err
		}
		want := int(min(int64(len(t.buf)), size-n+1))
		m, err := unix.Read(fd, t.buf[:want])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("copy content: %w", &os.PathError{Op: "read", Path: p, Err: err})
		}
		if n+int64(m) > size {
			return fmt.Errorf("file changed while writing the layer: more than the %d bytes expected", size)
		}
		if _, err := t.tw.Write(t.buf[:m]); err != nil {
			return fmt.Errorf("copy content: %w", err)
		}
		n += int64(m)
		if m < want {
			break
		}
	}
	if n != size {
		return fmt.Errorf("file changed while writing the layer: %d bytes, expected %d", n, size)
	}
	return nil
}
