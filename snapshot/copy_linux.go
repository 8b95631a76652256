package snapshot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/xattr"
)

// The copy fallback, for hosts where overlay cannot mount (rootless without
// user-namespace overlay, a root on overlayfs itself, old kernels). Prepare
// materialises the parents into a read-only "lower" tree and copies that to Root; the
// step changes Root freely; Unmount compares Root with lower and writes the
// difference into Upper in overlay's on-disk format, so package layers and later
// Prepares treat both modes alike. It costs two copies of the rootfs per step.

// copyState is what Unmount needs to diff a copy-mode Active.
type copyState struct {
	lower string
	// dirIDs maps each dir of lower (by path relative to Root, "/"-rooted) to the
	// identity of its copy in Root. A dir found in Root with another identity was
	// removed and recreated, which overlay records as an opaque dir: so do we.
	dirIDs map[string]dirID
}

// dirID identifies a dir across the step. The inode number alone is not enough:
// filesystems reuse a freed inode number at once (rm -rf d; mkdir d on ext4), so the
// birth time is part of it where the filesystem reports one.
type dirID struct {
	ino   uint64
	btime unix.StatxTimestamp
}

func identify(p string) (dirID, error) {
	var stx unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, p, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_INO|unix.STATX_BTIME, &stx); err != nil {
		return dirID{}, fmt.Errorf("statx %s: %w", p, err)
	}
	id := dirID{ino: stx.Ino}
	if stx.Mask&unix.STATX_BTIME != 0 {
		id.btime = stx.Btime
	}
	return id, nil
}

func prepareCopy(ctx context.Context, lowers []string, w *workDir, merged string) (*copyState, error) {
	lower := w.sub("lower")
	if err := os.Mkdir(lower, 0o755); err != nil {
		return nil, err
	}
	if err := materialise(ctx, lowers, lower); err != nil {
		return nil, err
	}
	// Root must show what an overlay over the parents shows: every dir's times as the
	// parents have them (applyLayer sets a dir's times after its entries; a plain
	// recursive copy leaves them at the time of the copy), and as its own root the
	// dir Prepare made, as overlay's merged root is its fresh upper root whatever the
	// parents' roots are.
	if err := applyLayer(ctx, lower, merged, false); err != nil {
		return nil, fmt.Errorf("copy parents to %s: %w", merged, err)
	}
	cs := &copyState{lower: lower, dirIDs: map[string]dirID{}}
	err := filepath.WalkDir(merged, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		id, err := identify(p)
		if err != nil {
			return err
		}
		cs.dirIDs["/"+strings.TrimPrefix(strings.TrimPrefix(p, merged), "/")] = id
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("index %s: %w", merged, err)
	}
	return cs, nil
}

// materialise applies layer dirs (top first, as for overlay) bottom-up onto dst,
// honouring whiteouts and opaque dirs as overlay would.
func materialise(ctx context.Context, lowersTopFirst []string, dst string) error {
	for i := len(lowersTopFirst) - 1; i >= 0; i-- {
		if err := applyLayer(ctx, lowersTopFirst[i], dst, true); err != nil {
			return fmt.Errorf("apply layer %s: %w", lowersTopFirst[i], err)
		}
	}
	return nil
}

// applyLayer copies one overlay-format layer dir onto dst. Relative paths come from
// walking our own layer dir, and WalkDir visits a dir before its children, which this
// loop turns into a real dir in dst first: so no parent in dst can be a symlink when a
// child is written, and joining the paths cannot escape dst. With withRoot, dst's
// root takes src's root metadata too; without, it is left as it is.
func applyLayer(ctx context.Context, src, dst string, withRoot bool) error {
	links := map[uint64]string{}
	var dirs []string
	err := filepath.WalkDir(src, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		if rel == "." && !withRoot {
			return nil
		}
		target := filepath.Join(dst, rel)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		if isWhiteout(&st) {
			return removeIfExists(target)
		}
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			var cur unix.Stat_t
			exists := unix.Lstat(target, &cur) == nil
			if exists && cur.Mode&unix.S_IFMT != unix.S_IFDIR {
				if err := os.RemoveAll(target); err != nil {
					return err
				}
				exists = false
			}
			if exists && isOpaque(p) {
				if err := emptyDir(target); err != nil {
					return err
				}
			}
			if !exists {
				if err := os.Mkdir(target, 0o700); err != nil {
					return err
				}
			}
			dirs = append(dirs, rel)
			return copyMeta(p, target, &st, false)
		}
		if err := removeIfExists(target); err != nil {
			return err
		}
		return copyNode(p, target, &st, links)
	})
	if err != nil {
		return err
	}
	return setDirTimes(src, dst, dirs)
}

func mkdirLike(src, dst string) error {
	var st unix.Stat_t
	if err := unix.Lstat(src, &st); err != nil {
		return err
	}
	if err := os.Mkdir(dst, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return copyMeta(src, dst, &st, false)
}

// copyNode creates dst as a copy of the non-directory src, hard-linking to an earlier
// copy of the same inode so links within a layer survive.
func copyNode(src, dst string, st *unix.Stat_t, links map[uint64]string) error {
	if st.Nlink > 1 {
		if first, ok := links[st.Ino]; ok {
			return os.Link(first, dst)
		}
		links[st.Ino] = dst
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		in, err := os.Open(src)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return fmt.Errorf("copy %s: %w", src, err)
		}
		if err := out.Close(); err != nil {
			return err
		}
	case unix.S_IFLNK:
		target, err := os.Readlink(src)
		if err != nil {
			return err
		}
		if err := os.Symlink(target, dst); err != nil {
			return err
		}
	case unix.S_IFCHR, unix.S_IFBLK, unix.S_IFIFO:
		if err := unix.Mknod(dst, st.Mode, int(st.Rdev)); err != nil {
			return err
		}
	default: // sockets cannot be copied and do not belong in an image
		return nil
	}
	return copyMeta(src, dst, st, true)
}

// copyMeta copies owner, mode, xattrs (except overlay's own) and, if withTimes, times.
// Owner first: chown clears setuid bits that chmod then restores.
func copyMeta(src, dst string, st *unix.Stat_t, withTimes bool) error {
	if err := unix.Lchown(dst, int(st.Uid), int(st.Gid)); err != nil {
		return fmt.Errorf("chown %s: %w", dst, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFLNK {
		if err := unix.Chmod(dst, st.Mode&07777); err != nil {
			return fmt.Errorf("chmod %s: %w", dst, err)
		}
	}
	if err := copyXattrs(src, dst); err != nil {
		return err
	}
	if withTimes {
		return setTimes(dst, st)
	}
	return nil
}

func setTimes(dst string, st *unix.Stat_t) error {
	ts := []unix.Timespec{st.Atim, st.Mtim}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, dst, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set times on %s: %w", dst, err)
	}
	return nil
}

// setDirTimes copies dir times last, after their contents stopped changing them.
func setDirTimes(srcRoot, dstRoot string, dirs []string) error {
	sort.Sort(sort.Reverse(sort.StringSlice(dirs)))
	for _, d := range dirs {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(srcRoot, d), &st); err != nil {
			return err
		}
		if err := setTimes(filepath.Join(dstRoot, d), &st); err != nil {
			return err
		}
	}
	return nil
}

func copyXattrs(src, dst string) error {
	names, err := listXattrs(src)
	if err != nil {
		return err
	}
	for _, n := range names {
		if xattr.IsOverlay(n) {
			continue
		}
		v, err := getXattr(src, n)
		if err != nil {
			return err
		}
		if err := unix.Lsetxattr(dst, n, v, 0); err != nil {
			return fmt.Errorf("set xattr %s on %s: %w", n, dst, err)
		}
	}
	return nil
}

func listXattrs(p string) ([]string, error) {
	n, err := unix.Llistxattr(p, nil)
	if err != nil || n == 0 {
		if errors.Is(err, unix.ENOTSUP) {
			return nil, nil
		}
		return nil, err
	}
	buf := make([]byte, n)
	n, err = unix.Llistxattr(p, buf)
	if err != nil {
		return nil, fmt.Errorf("list xattrs of %s: %w", p, err)
	}
	var out []string
	for _, s := range strings.Split(string(buf[:n]), "\x00") {
		if s != "" {
			out = append(out, s)
		}
	}
	return out, nil
}

func getXattr(p, name string) ([]byte, error) {
	n, err := unix.Lgetxattr(p, name, nil)
	if err != nil {
		return nil, fmt.Errorf("get xattr %s of %s: %w", name, p, err)
	}
	buf := make([]byte, n)
	n, err = unix.Lgetxattr(p, name, buf)
	if err != nil {
		return nil, fmt.Errorf("get xattr %s of %s: %w", name, p, err)
	}
	return buf[:n], nil
}

func isOpaque(p string) bool {
	opaque, err := xattr.IsOpaque(p)
	return err == nil && opaque
}

func removeIfExists(p string) error {
	if err := os.RemoveAll(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

func emptyDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}
