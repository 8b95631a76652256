package snapshot

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/xattr"
)

// pruneCopyUps removes from upper the directories overlayfs copied up without the step
// changing them. Creating anything inside a lower dir copies the dir up; when the
// step (or kiln's own mount-point stubs for /etc/hosts and /etc/resolv.conf) removes
// that thing again, an empty copy of the dir is left behind, identical to the one
// below. Left in place it would put "etc/" into every RUN layer, where BuildKit's
// differ, comparing against the lower layers, records no change.
//
// A dir is removed only if it is empty in upper, not opaque, and a dir with the same
// mode, owner, mtime and xattrs is what the lowers (top first) show at that path; a
// removed dir can make its parent prunable in turn, so the walk is post-order.
//
// With files, a regular file or symlink that overlayfs copied up and the step left
// as it was (opened for writing and not written, as useradd's flock of
// /etc/.pwd.lock; a chmod or chown to what it was) is removed too, when the file the
// lowers show there has the same type, mode, owner, size, mtime, xattrs and (where
// the mtimes have no nanoseconds, as files unpacked from a tar) content: BuildKit's
// overlay differ leaves such a file out of the layer. A file with hard links on
// either side stays. Nothing under an opaque dir of upper is pruned: the lowers are
// hidden there, so nothing in it is a copy of theirs.
//
// keep names dirs (relative to upper) that stay whatever they look like.
func pruneCopyUps(ctx context.Context, upper string, lowers []string, keep map[string]bool, files bool) error {
	var walk func(rel string, hidden bool) (empty bool, err error)
	walk = func(rel string, hidden bool) (bool, error) {
		if err := ctx.Err(); err != nil {
			return false, err
		}
		dir := filepath.Join(upper, rel)
		var before unix.Stat_t
		if err := unix.Lstat(dir, &before); err != nil {
			return false, err
		}
		if rel != "." && !hidden {
			opaque, err := xattr.IsOpaque(dir)
			if err != nil {
				return false, err
			}
			hidden = opaque
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			return false, err
		}
		remaining, pruned := len(entries), false
		var werr error
		for _, e := range entries {
			child := filepath.Join(rel, e.Name())
			if !e.IsDir() {
				if !files || hidden {
					continue
				}
				same, err := sameFileAsLower(filepath.Join(upper, child), child, lowers)
				if err != nil {
					werr = err
					break
				}
				if same {
					if err := unix.Unlink(filepath.Join(upper, child)); err != nil {
						werr = fmt.Errorf("prune copied-up file %s: %w", child, err)
						break
					}
					remaining--
					pruned = true
				}
				continue
			}
			empty, err := walk(child, hidden)
			if err != nil {
				werr = err
				break
			}
			if !empty || keep[child] || hidden {
				continue
			}
			same, err := sameAsLower(filepath.Join(upper, child), child, lowers)
			if err != nil {
				werr = err
				break
			}
			if same {
				if err := unix.Rmdir(filepath.Join(upper, child)); err != nil {
					werr = fmt.Errorf("prune copied-up dir %s: %w", child, err)
					break
				}
				remaining--
				pruned = true
			}
		}
		if pruned {
			// Removing a child bumped this dir's mtime: put it back, so the dir still
			// reads as unchanged if it is otherwise, and keeps its real time if not.
			// Also when stopping early, so that pruning again sees the dir as it was.
			ts := []unix.Timespec{before.Atim, before.Mtim}
			if err := unix.UtimesNanoAt(unix.AT_FDCWD, dir, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil && werr == nil {
				werr = fmt.Errorf("restore times of %s: %w", rel, err)
			}
		}
		if werr != nil {
			return false, werr
		}
		return remaining == 0, nil
	}
	_, err := walk(".", false)
	return err
}

// sameFileAsLower reports whether the upper file p (at rel) is a regular file or
// symlink with one link, identical to the one the lowers show at rel (see
// pruneCopyUps for what identical means).
func sameFileAsLower(p, rel string, lowers []string) (bool, error) {
	var up unix.Stat_t
	if err := unix.Lstat(p, &up); err != nil {
		return false, err
	}
	kind := up.Mode & unix.S_IFMT
	if (kind != unix.S_IFREG && kind != unix.S_IFLNK) || up.Nlink != 1 {
		return false, nil
	}
	low, ok, err := lowerPath(rel, lowers, false)
	if err != nil || !ok {
		return false, err
	}
	var lo unix.Stat_t
	if err := unix.Lstat(low, &lo); err != nil {
		return false, err
	}
	if up.Mode != lo.Mode || up.Uid != lo.Uid || up.Gid != lo.Gid || up.Size != lo.Size ||
		up.Mtim != lo.Mtim || lo.Nlink != 1 {
		return false, nil
	}
	if same, err := sameXattrs(p, low); err != nil || !same {
		return false, err
	}
	if up.Mtim.Nsec != 0 {
		return true, nil
	}
	// A time with no nanoseconds may have been cut to whole seconds (a tar), so it
	// says little: the content decides.
	if kind == unix.S_IFLNK {
		a, err := os.Readlink(p)
		if err != nil {
			return false, err
		}
		b, err := os.Readlink(low)
		return err == nil && a == b, err
	}
	return sameContent(p, low)
}

// sameContent reports whether two regular files hold the same bytes.
func sameContent(a, b string) (bool, error) {
	fa, err := os.Open(a)
	if err != nil {
		return false, err
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		return false, err
	}
	defer fb.Close()
	ba, bb := make([]byte, 64<<10), make([]byte, 64<<10)
	for {
		na, ea := io.ReadFull(fa, ba)
		nb, eb := io.ReadFull(fb, bb)
		if !bytes.Equal(ba[:na], bb[:nb]) {
			return false, nil
		}
		aDone := ea == io.EOF || ea == io.ErrUnexpectedEOF
		bDone := eb == io.EOF || eb == io.ErrUnexpectedEOF
		if ea != nil && !aDone {
			return false, ea
		}
		if eb != nil && !bDone {
			return false, eb
		}
		if aDone || bDone {
			return aDone == bDone, nil
		}
	}
}

// sameAsLower reports whether the upper dir p (at rel) is not opaque and is identical
// in metadata to the dir the lowers show at rel.
func sameAsLower(p, rel string, lowers []string) (bool, error) {
	if opaque, err := xattr.IsOpaque(p); err != nil || opaque {
		return false, err
	}
	var up unix.Stat_t
	if err := unix.Lstat(p, &up); err != nil {
		return false, err
	}
	low, ok, err := lowerDir(rel, lowers)
	if err != nil || !ok {
		return false, err
	}
	var lo unix.Stat_t
	if err := unix.Lstat(low, &lo); err != nil {
		return false, err
	}
	if up.Mode != lo.Mode || up.Uid != lo.Uid || up.Gid != lo.Gid || up.Mtim != lo.Mtim {
		return false, nil
	}
	return sameXattrs(p, low)
}

// lowerDir finds the dir the overlay of lowers (top first) shows at rel: the topmost
// layer that has it, unless a layer above hides it with a whiteout, a non-dir in its
// path or an opaque ancestor.
func lowerDir(rel string, lowers []string) (string, bool, error) {
	return lowerPath(rel, lowers, true)
}

// lowerPath finds what the overlay of lowers (top first) shows at rel, a dir when
// dir is true and a non-dir otherwise: the topmost layer's entry at rel, unless a
// layer above hides it with a whiteout, a non-dir in its path or an opaque ancestor.
// Every component before the last has been seen to be a directory (lstat, not
// followed) before the next is looked up below it.
func lowerPath(rel string, lowers []string, dir bool) (string, bool, error) {
	parts := strings.Split(filepath.ToSlash(rel), "/")
	for _, l := range lowers {
		cur := l
		for i, part := range parts {
			cur = filepath.Join(cur, part)
			var st unix.Stat_t
			err := unix.Lstat(cur, &st)
			if errors.Is(err, fs.ErrNotExist) {
				// Not in this layer; an opaque dir above it (any of the
				// ancestors this layer has) hides the layers below.
				for a := filepath.Dir(cur); i > 0; i-- {
					if opaque, _ := xattr.IsOpaque(a); opaque {
						return "", false, nil
					}
					a = filepath.Dir(a)
				}
				goto next
			}
			if err != nil {
				return "", false, err
			}
			isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
			if i < len(parts)-1 {
				if !isDir {
					return "", false, nil // a whiteout or a file: nothing below it
				}
				continue
			}
			whiteout := st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0
			if whiteout || isDir != dir {
				return "", false, nil
			}
			return cur, true, nil
		}
	next:
	}
	return "", false, nil
}

// getxattr is the value of name on p, nil when it is not set.
func getxattr(p, name string) ([]byte, error) {
	v, _, err := xattr.Get(p, name)
	return v, err
}

// sameXattrs compares the xattrs of two paths, ignoring overlayfs's own.
func sameXattrs(a, b string) (bool, error) {
	na, err := contentXattrs(a)
	if err != nil {
		return false, err
	}
	nb, err := contentXattrs(b)
	if err != nil {
		return false, err
	}
	if !slices.Equal(na, nb) {
		return false, nil
	}
	for _, n := range na {
		va, err := getxattr(a, n)
		if err != nil {
			return false, err
		}
		vb, err := getxattr(b, n)
		if err != nil {
			return false, err
		}
		if !bytes.Equal(va, vb) {
			return false, nil
		}
	}
	return true, nil
}

// contentXattrs lists p's xattr names (sorted) without overlayfs's bookkeeping.
func contentXattrs(p string) ([]string, error) {
	names, err := xattr.List(p)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(names, func(n string) bool { return xattr.IsOverlay(n) }), nil
}
