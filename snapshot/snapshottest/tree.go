package snapshottest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/xattr"
)

// An Applier changes the tree at root: the suite builds layers, steps and expected
// trees from lists of them, as containerd's fstest does.
type Applier func(root string) error

// Apply runs as on root in order, stopping at the first error.
func Apply(root string, as ...Applier) error {
	for _, a := range as {
		if err := a(root); err != nil {
			return err
		}
	}
	return nil
}

// WriteFile creates or replaces the regular file p with content and mode (07777 bits,
// not masked by the umask).
func WriteFile(p, content string, mode uint32) Applier {
	return func(root string) error {
		full := filepath.Join(root, p)
		if err := os.WriteFile(full, []byte(content), 0o600); err != nil {
			return err
		}
		return unix.Chmod(full, mode)
	}
}

// Mkdir creates the dir p (its parent must exist) with mode.
func Mkdir(p string, mode uint32) Applier {
	return func(root string) error {
		full := filepath.Join(root, p)
		if err := os.Mkdir(full, 0o700); err != nil {
			return err
		}
		return unix.Chmod(full, mode)
	}
}

// Symlink creates p as a symlink to target.
func Symlink(p, target string) Applier {
	return func(root string) error { return os.Symlink(target, filepath.Join(root, p)) }
}

// Hardlink creates p as a hard link to the existing path old.
func Hardlink(p, old string) Applier {
	return func(root string) error { return os.Link(filepath.Join(root, old), filepath.Join(root, p)) }
}

// Mknod creates p as a device or fifo: typ is unix.S_IFCHR, S_IFBLK or S_IFIFO.
func Mknod(p string, typ, mode uint32, major, minor uint32) Applier {
	return func(root string) error {
		full := filepath.Join(root, p)
		if err := unix.Mknod(full, typ|mode, int(unix.Mkdev(major, minor))); err != nil {
			return err
		}
		return unix.Chmod(full, mode)
	}
}

// Whiteout creates p as an overlay whiteout: a 0/0 character device.
func Whiteout(p string) Applier { return Mknod(p, unix.S_IFCHR, 0, 0, 0) }

// Opaque marks the dir p opaque, as overlay does a dir that replaced a deleted one.
func Opaque(p string) Applier { return Xattr(p, "trusted.overlay.opaque", "y") }

// Xattr sets the extended attribute name of p (not following a symlink).
func Xattr(p, name, value string) Applier {
	return func(root string) error { return unix.Lsetxattr(filepath.Join(root, p), name, []byte(value), 0) }
}

// Chown sets the owner of p (not following a symlink).
func Chown(p string, uid, gid int) Applier {
	return func(root string) error { return os.Lchown(filepath.Join(root, p), uid, gid) }
}

// Chmod sets the mode (07777 bits) of p.
func Chmod(p string, mode uint32) Applier {
	return func(root string) error { return unix.Chmod(filepath.Join(root, p), mode) }
}

// Chtimes sets the access and modification times of p (not following a symlink).
func Chtimes(p string, t time.Time) Applier {
	return func(root string) error {
		ts := []unix.Timespec{unix.NsecToTimespec(t.UnixNano()), unix.NsecToTimespec(t.UnixNano())}
		return unix.UtimesNanoAt(unix.AT_FDCWD, filepath.Join(root, p), ts, unix.AT_SYMLINK_NOFOLLOW)
	}
}

// Remove deletes the file or empty dir p.
func Remove(p string) Applier {
	return func(root string) error { return os.Remove(filepath.Join(root, p)) }
}

// RemoveAll deletes p and everything below it.
func RemoveAll(p string) Applier {
	return func(root string) error { return os.RemoveAll(filepath.Join(root, p)) }
}

// Rename moves old to p.
func Rename(p, old string) Applier {
	return func(root string) error { return os.Rename(filepath.Join(root, old), filepath.Join(root, p)) }
}

// Entry describes one path of a tree: everything a layer records about it except
// times, which Tree carries only when asked for (see Describe).
type Entry struct {
	Path     string // slash-separated, relative; "." is the root
	Type     string // dir, file, symlink, fifo, char, block, socket or whiteout
	Mode     uint32 // permission, setuid, setgid and sticky bits
	UID, GID uint32
	Size     int64             // regular files
	Digest   string            // regular files: sha256 of the content (16 hex digits)
	Target   string            // symlinks
	Dev      string            // devices: "major:minor"
	Xattrs   map[string]string // all of them, overlay's own included
	Link     string            // a file sharing its inode with an earlier path: that path
	Mtime    int64             // ns; only in a Tree described WithTimes, never for "."
}

func (e Entry) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %04o %d:%d", e.Path, e.Type, e.Mode, e.UID, e.GID)
	switch e.Type {
	case "file":
		fmt.Fprintf(&b, " size=%d sha256=%s", e.Size, e.Digest)
	case "symlink":
		fmt.Fprintf(&b, " -> %s", e.Target)
	case "char", "block":
		fmt.Fprintf(&b, " dev=%s", e.Dev)
	}
	if e.Link != "" {
		fmt.Fprintf(&b, " link=%s", e.Link)
	}
	names := make([]string, 0, len(e.Xattrs))
	for n := range e.Xattrs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(&b, " %s=%q", n, e.Xattrs[n])
	}
	if e.Mtime != 0 {
		fmt.Fprintf(&b, " mtime=%s", time.Unix(0, e.Mtime).UTC().Format(time.RFC3339Nano))
	}
	return b.String()
}

// Tree is a whole tree's description, sorted by path.
type Tree []Entry

func (t Tree) String() string {
	lines := make([]string, len(t))
	for i, e := range t {
		lines[i] = e.String()
	}
	return strings.Join(lines, "\n")
}

// DescribeOption changes what Describe records.
type DescribeOption int

// WithTimes records the mtime of every path but the root. The root's times belong to
// the mount or the dir holding the tree, not to its content.
const WithTimes DescribeOption = 1

// Describe walks the tree at root without following symlinks.
func Describe(root string, opts ...DescribeOption) (Tree, error) {
	withTimes := len(opts) > 0 && opts[0] == WithTimes
	var tree Tree
	type inode struct{ dev, ino uint64 }
	firstPath := map[inode]string{}
	err := filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return fmt.Errorf("lstat %s: %w", p, err)
		}
		e := Entry{Path: filepath.ToSlash(rel), Mode: st.Mode & 0o7777, UID: st.Uid, GID: st.Gid}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			e.Type = "dir"
		case unix.S_IFREG:
			e.Type, e.Size = "file", st.Size
			if e.Digest, err = fileDigest(p); err != nil {
				return err
			}
			if st.Nlink > 1 {
				key := inode{st.Dev, st.Ino}
				if first, ok := firstPath[key]; ok {
					e.Link = first
				} else {
					firstPath[key] = e.Path
				}
			}
		case unix.S_IFLNK:
			e.Type = "symlink"
			if e.Target, err = os.Readlink(p); err != nil {
				return err
			}
		case unix.S_IFIFO:
			e.Type = "fifo"
		case unix.S_IFSOCK:
			e.Type = "socket"
		case unix.S_IFCHR, unix.S_IFBLK:
			e.Type = "char"
			if st.Mode&unix.S_IFMT == unix.S_IFBLK {
				e.Type = "block"
			}
			e.Dev = fmt.Sprintf("%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
			if e.Type == "char" && st.Rdev == 0 {
				e.Type, e.Dev = "whiteout", ""
			}
		}
		names, err := xattr.List(p)
		if err != nil {
			return err
		}
		for _, n := range names {
			if overlayBookkeeping[n] {
				continue
			}
			v, _, err := xattr.Get(p, n)
			if err != nil {
				return err
			}
			if e.Xattrs == nil {
				e.Xattrs = map[string]string{}
			}
			e.Xattrs[n] = string(v)
		}
		if withTimes && e.Path != "." {
			e.Mtime = st.Mtim.Nano()
		}
		tree = append(tree, e)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("describe %s: %w", root, err)
	}
	sort.Slice(tree, func(i, j int) bool { return tree[i].Path < tree[j].Path })
	return tree, nil
}

// overlayBookkeeping are the xattrs overlayfs sets in an upper dir for its own use:
// the inode a copy-up came from, that a dir holds copied-up entries, the filesystem's
// uuid. They say nothing about the tree (the layer writer drops every
// trusted.overlay. xattr but opaque), so Describe leaves them out; the others, opaque
// and those the snapshotter must never let overlay write (redirect, metacopy), it
// records.
var overlayBookkeeping = map[string]bool{
	"trusted.overlay.origin": true, "trusted.overlay.impure": true,
	"trusted.overlay.uuid": true, "trusted.overlay.nlink": true,
}

func fileDigest(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// describe is Describe failing t on error.
func describe(t testing.TB, root string, opts ...DescribeOption) Tree {
	t.Helper()
	tree, err := Describe(root, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

// Build makes a tree from as in a fresh dir whose root is 0755 and owned by root, as
// a rootfs's is, and describes it.
func Build(t testing.TB, as ...Applier) Tree {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tree")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	apply(t, dir, as...)
	return describe(t, dir)
}

// apply is Apply failing t on error.
func apply(t testing.TB, root string, as ...Applier) {
	t.Helper()
	if err := Apply(root, as...); err != nil {
		t.Fatalf("build tree in %s: %v", root, err)
	}
}

// checkTree reports every path where got differs from want, as "-want"/"+got" lines.
func checkTree(t testing.TB, what string, got, want Tree) bool {
	t.Helper()
	g, w := byPath(got), byPath(want)
	var diffs []string
	for p, we := range w {
		ge, ok := g[p]
		switch {
		case !ok:
			diffs = append(diffs, "-"+we)
		case ge != we:
			diffs = append(diffs, "-"+we, "+"+ge)
		}
	}
	for p, ge := range g {
		if _, ok := w[p]; !ok {
			diffs = append(diffs, "+"+ge)
		}
	}
	if len(diffs) == 0 {
		return true
	}
	sort.SliceStable(diffs, func(i, j int) bool { return diffs[i][1:] < diffs[j][1:] })
	t.Errorf("%s differs (-want +got):\n%s", what, strings.Join(diffs, "\n"))
	return false
}

func byPath(t Tree) map[string]string {
	m := make(map[string]string, len(t))
	for _, e := range t {
		m[e.Path] = e.String()
	}
	return m
}
