package snapshot

import (
	"bytes"
	"context"
	"errors"
	"fmt"
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
// keep names dirs (relative to upper) that stay whatever they look like.
func pruneCopyUps(ctx context.Context, upper string, lowers []string, keep map[string]bool) error {
	var walk func(rel string) (empty bool, err error)
	walk = func(rel string) (bool, error) {
		if err := ctx.Err(); err != nil {
			return false, err
		}
		dir := filepath.Join(upper, rel)
		var before unix.Stat_t
		if err := unix.Lstat(dir, &before); err != nil {
			return false, err
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			return false, err
		}
		remaining, pruned := len(entries), false
		var werr error
		for _, e := range entries {
			if !e.IsDir() {
				continue
			}
			child := filepath.Join(rel, e.Name())
			empty, err := walk(child)
			if err != nil {
				werr = err
				break
			}
			if !empty || keep[child] {
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
	_, err := walk(".")
	return err
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
	parts := strings.Split(filepath.ToSlash(rel), "/")
	for _, l := range lowers {
		cur := l
		for i, part := range parts {
			cur = filepath.Join(cur, part)
			var st unix.Stat_t
			err := unix.Lstat(cur, &st)
			if errors.Is(err, fs.ErrNotExist) {
				// Not in this layer; an opaque dir above it hides the layers below.
				if i > 0 {
					if opaque, _ := xattr.IsOpaque(filepath.Dir(cur)); opaque {
						return "", false, nil
					}
				}
				goto next
			}
			if err != nil {
				return "", false, err
			}
			if st.Mode&unix.S_IFMT != unix.S_IFDIR {
				return "", false, nil // a whiteout or a file: no dir here or below
			}
			if i == len(parts)-1 {
				return cur, true, nil
			}
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
