package snapshot

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	cfs "github.com/containerd/continuity/fs"
	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/xattr"
)

// diffWriter writes the changes from a copy-mode Active's lower tree to its Root
// (merged) into upper in overlay format: what overlay's copy-up would have put there.
// Paths are "/"-rooted and relative to merged, as cfs.Changes reports them.
type diffWriter struct {
	ctx           context.Context
	cs            *copyState
	merged, upper string
	links         map[uint64]string // merged inode → its first copy in upper
	dirs          []string          // dirs made in upper, whose times are set last
	created       map[string]bool   // dirs that exist in upper
	opaque        []string          // dirs copied whole; changes below them are in upper
	checked       map[string]bool   // ancestors already checked for being recreated
	// unchangedLinks holds files cfs.Changes reports unmodified only because they are
	// hard-linked, by merged inode. If the step linked a new name to one of them,
	// overlay copies the file up with the new link; so does linkUnchanged.
	unchangedLinks map[uint64][]string
}

// writeDiff writes the changes from cs.lower to merged into upper in overlay format.
func (cs *copyState) writeDiff(ctx context.Context, merged, upper string) error {
	d := &diffWriter{ctx: ctx, cs: cs, merged: merged, upper: upper, links: map[uint64]string{},
		created: map[string]bool{"/": true}, checked: map[string]bool{}, unchangedLinks: map[uint64][]string{}}
	if err := cfs.Changes(ctx, cs.lower, merged, d.change); err != nil {
		return err
	}
	if err := filepath.WalkDir(merged, d.metadataChange); err != nil {
		return err
	}
	if err := d.linkUnchanged(); err != nil {
		return err
	}
	var st unix.Stat_t
	if err := unix.Lstat(merged, &st); err != nil {
		return err
	}
	if err := copyMeta(merged, upper, &st, false); err != nil {
		return err
	}
	return setDirTimes(merged, upper, append(d.dirs, "/"))
}

// ensureParents creates upper's missing ancestors of rel with merged's metadata,
// as overlay's copy-up does.
func (d *diffWriter) ensureParents(rel string) error {
	var missing []string
	for p := filepath.Dir(rel); !d.created[p]; p = filepath.Dir(p) {
		missing = append(missing, p)
	}
	for i := len(missing) - 1; i >= 0; i-- {
		p := missing[i]
		if err := mkdirLike(filepath.Join(d.merged, p), filepath.Join(d.upper, p)); err != nil {
			return err
		}
		d.created[p] = true
		d.dirs = append(d.dirs, p)
	}
	return nil
}

// copyOpaque copies the dir rel whole and marks it opaque. applyLayer copies times
// too, dirs' last. It would take a 0/0 device in merged for a whiteout and leave it
// out: in an opaque dir that is the same.
func (d *diffWriter) copyOpaque(rel string) error {
	if err := d.ensureParents(rel); err != nil {
		return err
	}
	dst := filepath.Join(d.upper, rel)
	if err := applyLayer(d.ctx, filepath.Join(d.merged, rel), dst, true); err != nil {
		return err
	}
	d.opaque = append(d.opaque, rel)
	d.created[rel] = true
	return xattr.SetOpaque(dst)
}

func (d *diffWriter) inOpaque(rel string) bool {
	for _, o := range d.opaque {
		if rel == o || strings.HasPrefix(rel, o+"/") {
			return true
		}
	}
	return false
}

// recreated reports whether rel is a dir of lower that the step removed and made anew.
func (d *diffWriter) recreated(rel string) (bool, error) {
	orig, ok := d.cs.dirIDs[rel]
	if !ok {
		return false, nil
	}
	cur, err := identify(filepath.Join(d.merged, rel))
	return err == nil && cur != orig, err
}

// change handles one change cfs.Changes reports.
func (d *diffWriter) change(k cfs.ChangeKind, rel string, fi os.FileInfo, err error) error {
	if err != nil {
		return err
	}
	if d.inOpaque(rel) {
		return nil
	}
	if k == cfs.ChangeKindUnmodified {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			d.unchangedLinks[st.Ino] = append(d.unchangedLinks[st.Ino], rel)
		}
		return nil
	}
	// Changes does not report a recreated dir whose metadata is unchanged, only
	// its children: check the ancestors of every change.
	for _, anc := range ancestors(rel) {
		if d.checked[anc] {
			continue
		}
		d.checked[anc] = true
		if again, err := d.recreated(anc); err != nil || again {
			if err != nil {
				return err
			}
			return d.copyOpaque(anc)
		}
	}
	if err := d.ensureParents(rel); err != nil {
		return err
	}
	src, dst := filepath.Join(d.merged, rel), filepath.Join(d.upper, rel)
	if k == cfs.ChangeKindDelete {
		return unix.Mknod(dst, unix.S_IFCHR, 0)
	}
	var st unix.Stat_t
	if err := unix.Lstat(src, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return copyNode(src, dst, &st, d.links)
	}
	// A dir that replaced a lower dir (removed and recreated) or a lower non-dir is
	// opaque, as overlay makes any dir created over a whiteout, and holds all of its
	// content.
	replaced := k == cfs.ChangeKindModify
	if _, ok := d.cs.dirIDs[rel]; ok {
		if replaced, err = d.recreated(rel); err != nil {
			return err
		}
	}
	if replaced {
		return d.copyOpaque(rel)
	}
	return d.mkdir(rel, src)
}

func (d *diffWriter) mkdir(rel, src string) error {
	if err := mkdirLike(src, filepath.Join(d.upper, rel)); err != nil {
		return err
	}
	d.created[rel] = true
	d.dirs = append(d.dirs, rel)
	return nil
}

// metadataChange is called for every path of merged after cfs.Changes, and adds what
// Changes cannot see. It compares a file's mode, owner, size, mtime and capabilities
// and a dir's mode and owner, so a step that only sets an xattr, only changes a dir's
// mtime (creating and removing a file in it) or only removes and recreates an empty
// dir changes nothing it reports; overlay copies each of those up. The walk costs
// about what Changes does, small beside the two copies of the rootfs copy mode makes.
func (d *diffWriter) metadataChange(p string, de fs.DirEntry, err error) error {
	if err != nil {
		return err
	}
	if err := d.ctx.Err(); err != nil {
		return err
	}
	rel := "/" + strings.TrimPrefix(strings.TrimPrefix(p, d.merged), "/")
	if rel == "/" {
		return nil
	}
	if d.inOpaque(rel) {
		return fs.SkipDir // a dir: skip it; a file: skip the rest of its dir, all copied
	}
	var up, lo, cur unix.Stat_t
	if unix.Lstat(filepath.Join(d.upper, rel), &up) == nil {
		return nil // in the diff already
	}
	// Changes reported whatever is new or changed type, so rel is in lower with
	// the same type; if not, Changes decided (a socket, which is not copied).
	low := filepath.Join(d.cs.lower, rel)
	if unix.Lstat(low, &lo) != nil || unix.Lstat(p, &cur) != nil || lo.Mode&unix.S_IFMT != cur.Mode&unix.S_IFMT {
		return nil
	}
	if de.IsDir() {
		if again, err := d.recreated(rel); err != nil || again {
			if err != nil {
				return err
			}
			if err := d.copyOpaque(rel); err != nil {
				return err
			}
			return fs.SkipDir
		}
	}
	same, err := sameXattrs(p, low)
	if err != nil {
		return err
	}
	if same && (!de.IsDir() || cur.Mtim == lo.Mtim) {
		return nil
	}
	if err := d.ensureParents(rel); err != nil {
		return err
	}
	if de.IsDir() {
		return d.mkdir(rel, p)
	}
	return copyNode(p, filepath.Join(d.upper, rel), &cur, d.links)
}

// linkUnchanged adds to upper the unchanged files that share an inode with a file
// copied into it: the step linked a new name to them.
func (d *diffWriter) linkUnchanged() error {
	for ino, rels := range d.unchangedLinks {
		first, ok := d.links[ino]
		if !ok {
			continue
		}
		for _, rel := range rels {
			dst := filepath.Join(d.upper, rel)
			if _, err := os.Lstat(dst); err == nil {
				continue
			}
			if err := d.ensureParents(rel); err != nil {
				return err
			}
			if err := os.Link(first, dst); err != nil {
				return err
			}
		}
	}
	return nil
}

// ancestors lists the dirs above "/"-rooted rel, outermost first, without "/".
func ancestors(rel string) []string {
	var out []string
	for d := filepath.Dir(rel); d != "/" && d != "."; d = filepath.Dir(d) {
		out = append([]string{d}, out...)
	}
	return out
}
