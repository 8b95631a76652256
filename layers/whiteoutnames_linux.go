package layers

import (
	"archive/tar"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/xattr"
)

// A step can leave a file whose name starts with ".wh." in its upper dir: a RUN
// that creates one, an ADDed archive's entry, a context file a COPY brings. Every
// reader of a layer takes such a name for a whiteout, and BuildKit stores the file as
// it is, so its image lacks the namesake (kaniko's whiteout tests).
// kiln makes the same image, and keeps its rule that a step's tree is exactly what
// its layer holds (NormalizeTree): the name is turned, in the tree, into what it
// means to a reader, and the layer is what a walk of that tree writes. So a later
// step, and a tree unpacked from the layer (a remote cache's, a repair's), see the
// image's files, not the name.

// hasWhiteoutName reports whether a directory listing holds a ".wh." name.
func hasWhiteoutName(names []string) bool {
	for _, n := range names {
		if strings.HasPrefix(n, whiteoutPrefix) {
			return true
		}
	}
	return false
}

// applyWhiteoutNames turns the ".wh." names in upper dir (rel in the layer, names
// its listing, pending the pending files that join it) into what readers make of
// them, as overlayfs records it:
//   - ".wh.NAME" hides NAME of the layers below: a 0/0 character device NAME, which
//     the walk then writes as the whiteout entry ".wh.NAME". Nothing when they
//     have no NAME (WriteOptions.Below). When the directory has NAME itself, the
//     whiteout applies only to what is below it (OCI image spec, "Whiteouts"): a
//     file NAME stays as it is; a directory NAME loses what the layers below put
//     in it, so it becomes opaque (what a reader makes of ".wh.NAME" followed by
//     "NAME/", and what overlayfs makes of a directory created over a whiteout).
//   - ".wh..wh..opq" makes dir opaque. The directory's entry is written already,
//     so the marker entry is written here: it comes next, before the children, as
//     for a directory that was opaque from the start.
//   - other ".wh..wh." names are AUFS metadata, which readers skip: dropped.
//
// The names themselves are removed; dir keeps the mtime its entry was written with.
// It returns the directory's new listing.
func (t *treeWriter) applyWhiteoutNames(dir, rel string, names []string, pending map[string]*PendingFile) ([]string, error) {
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return nil, fmt.Errorf("lstat: %w", err)
	}
	has := make(map[string]bool, len(names))
	for _, n := range names {
		has[n] = true
	}
	out := names[:0:0]
	var hide []string
	for _, n := range names {
		if !strings.HasPrefix(n, whiteoutPrefix) {
			out = append(out, n)
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, n)); err != nil {
			return nil, fmt.Errorf("%s: %w", path.Join(rel, n), err)
		}
		switch target := strings.TrimPrefix(n, whiteoutPrefix); {
		case n == whiteoutOpaque:
			if err := t.markOpaque(dir, rel); err != nil {
				return nil, err
			}
		case strings.HasPrefix(n, whiteoutMeta), target == "", target == ".", target == "..":
		case !has[target] && pending[target] == nil:
			hide = append(hide, target)
		case has[target]:
			// Its entry is still to come, so the xattr is enough: the walk
			// writes the marker after it.
			p := filepath.Join(dir, target)
			if fi, err := os.Lstat(p); err == nil && fi.IsDir() {
				if err := xattr.SetOpaque(p); err != nil {
					return nil, err
				}
			}
		}
	}
	for _, n := range hide {
		under := false
		if t.below != nil {
			var err error
			if under, err = t.below(path.Join(rel, n)); err != nil {
				return nil, fmt.Errorf("%s: %w", path.Join(rel, n), err)
			}
		}
		if !under {
			continue
		}
		if err := unix.Mknod(filepath.Join(dir, n), unix.S_IFCHR, 0); err != nil {
			return nil, fmt.Errorf("%s: whiteout: mknod: %w", path.Join(rel, n), err)
		}
		out = append(out, n)
	}
	if err := setMtime(dir, st.Mtim); err != nil {
		return nil, err
	}
	return out, nil
}

// markOpaque makes dir opaque and writes its marker entry, unless it was opaque
// already (its entry then came with the marker).
func (t *treeWriter) markOpaque(dir, rel string) error {
	if opaque, err := xattr.IsOpaque(dir); err != nil || opaque {
		return err
	}
	if err := xattr.SetOpaque(dir); err != nil {
		return err
	}
	return t.tw.WriteHeader(&tar.Header{
		Typeflag: tar.TypeReg,
		Name:     path.Join(rel, whiteoutOpaque),
		ModTime:  whiteoutTime(),
		Format:   tar.FormatPAX,
	})
}
