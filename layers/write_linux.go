package layers

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
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
		tw:      tar.NewWriter(bw.tar),
		overlay: overlay,
		epoch:   opts.SourceDateEpoch,
		links:   map[fileID]string{},
		buf:     make([]byte, 128<<10),
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
	tw      *tar.Writer
	overlay bool
	epoch   *time.Time
	links   map[fileID]string // first tar name of each multiply-linked inode
	buf     []byte
	entries int
}

// walk visits the tree depth first in lexical order (filepath.WalkDir sorts each
// directory), which is what makes the same tree give the same bytes.
func (t *treeWriter) walk() error {
	return filepath.WalkDir(t.root, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := t.ctx.Err(); err != nil {
			return err
		}
		if p == t.root {
			return nil
		}
		rel, err := filepath.Rel(t.root, p)
		if err != nil {
			return err
		}
		if err := t.add(p, filepath.ToSlash(rel)); err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
		return nil
	})
}

// mtime truncates to whole seconds as containerd's and BuildKit's differs do (without
// PAX the standard library would round instead), then clamps to SOURCE_DATE_EPOCH.
// Access and change times are never written: they would make layers unreproducible.
func (t *treeWriter) mtime(ts unix.Timespec) time.Time {
	m := time.Unix(ts.Sec, 0)
	if t.epoch != nil {
		if e := t.epoch.Truncate(time.Second); m.After(e) {
			m = e
		}
	}
	return m.UTC()
}

func (t *treeWriter) add(p, name string) error {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return fmt.Errorf("lstat: %w", err)
	}
	// A file named .wh.* cannot be stored in a layer: every reader takes it for a
	// whiteout and would delete its namesake from the layers below (an ADDed archive
	// or a RUN could otherwise remove /bin with a file named /.wh.bin). The overlay
	// whiteouts this writer makes are char devices and come through writeWhiteout.
	if base := path.Base(name); t.overlay && strings.HasPrefix(base, whiteoutPrefix) && !(st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0) {
		return fmt.Errorf("%w (a reader would delete %q); rename it", ErrReservedName, path.Join(path.Dir(name), strings.TrimPrefix(base, whiteoutPrefix)))
	}
	hdr := &tar.Header{
		Name:    name,
		Mode:    int64(st.Mode & 0o7777), // keeps setuid, setgid and sticky
		Uid:     int(st.Uid),
		Gid:     int(st.Gid),
		ModTime: t.mtime(st.Mtim),
		Format:  tar.FormatPAX,
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFSOCK:
		// A socket is a live endpoint, not content: Docker and BuildKit drop them.
		return nil
	case unix.S_IFCHR:
		if t.overlay && st.Rdev == 0 {
			return t.writeWhiteout(name, hdr.ModTime)
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
			ModTime:  hdr.ModTime,
			Format:   tar.FormatPAX,
		})
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
		if strings.HasPrefix(n, overlayXattrPrefix) {
			if !t.overlay {
				continue
			}
			switch strings.TrimPrefix(n, overlayXattrPrefix) {
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

// writeWhiteout writes the OCI whiteout of name: an empty, mode 0, root-owned regular
// file ".wh.NAME" next to it, dated like the overlay whiteout it stands for.
func (t *treeWriter) writeWhiteout(name string, mtime time.Time) error {
	dir, base := path.Split(name)
	if err := t.tw.WriteHeader(&tar.Header{
		Typeflag: tar.TypeReg,
		Name:     dir + whiteoutPrefix + base,
		ModTime:  mtime,
		Format:   tar.FormatPAX,
	}); err != nil {
		return err
	}
	t.entries++
	return nil
}

// copyFile streams the content of p into the tar, checking ctx between chunks. A
// file that changed size since it was stat'ed is an error, not a corrupt layer.
func (t *treeWriter) copyFile(p string, size int64) error {
	f, err := os.OpenFile(p, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	var n int64
	for {
		if err := t.ctx.Err(); err != nil {
			return err
		}
		m, err := io.CopyBuffer(t.tw, io.LimitReader(f, int64(len(t.buf))), t.buf)
		n += m
		if err != nil {
			return fmt.Errorf("copy content: %w", err)
		}
		if m == 0 {
			break
		}
	}
	if n != size {
		return fmt.Errorf("file changed while writing the layer: %d bytes, expected %d", n, size)
	}
	return nil
}
