package sbom

import (
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

	"github.com/kiln-build/kiln/internal/rootpath"
)

// Per-file read bounds. A cataloguer never holds more than one file's bytes at once,
// so these bound the scanner's memory whatever the tree holds. Sizes seen in practice:
// a full Debian desktop's dpkg status is ~10 MB, a large monorepo's package-lock.json
// ~30 MB, a package.json or METADATA header a few KB.
const (
	maxStatusBytes   = 64 << 20 // dpkg status, status.d entries
	maxLockBytes     = 64 << 20 // package-lock.json
	maxManifestBytes = 4 << 20  // package.json, os-release, a copyright file
	maxHeaderBytes   = 1 << 20  // the header of METADATA/PKG-INFO (the body is a README)
)

var (
	errNotRegular = errors.New("not a regular file")
	errTooLarge   = errors.New("file too large")
)

// tree is the scanned directory, opened once as an os.Root: every open goes through
// it, so no name, symlink or concurrent rename can reach a file outside the tree
// (os.Root refuses an escape rather than following it).
type tree struct {
	dir  string
	root *os.Root
}

func openTree(dir string) (*tree, error) {
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("open scan root %s: %w", dir, err)
	}
	return &tree{dir: dir, root: r}, nil
}

func (t *tree) Close() error { return t.root.Close() }

// resolve returns the tree-relative path of name ("/etc/os-release") as the image
// itself would see it: every symlink, absolute ones included, is resolved as if the
// tree were "/" (an image's etc/os-release -> /usr/lib/os-release means the image's
// file, never the host's). The result may not exist.
func (t *tree) resolve(name string) (string, error) {
	p, err := rootpath.Resolve(t.dir, name)
	if err != nil {
		return "", err
	}
	rel, err := filepath.Rel(t.dir, p)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", fmt.Errorf("resolve %s: outside the scan root", name)
	}
	return filepath.ToSlash(rel), nil
}

// open opens the tree-relative file rel for reading if, and only if, it is a regular
// file. The Lstat first means a fifo or device is never opened at all (opening a tape
// or a terminal can act on it); O_NONBLOCK and the Fstat after cover a file swapped
// for one between the two calls, so a fifo cannot block the scan either.
func (t *tree) open(rel string) (*os.File, os.FileInfo, error) {
	fi, err := t.root.Lstat(rel)
	if err != nil {
		return nil, nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, nil, fmt.Errorf("%s: %w", rel, errNotRegular)
	}
	f, err := t.root.OpenFile(rel, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, nil, err
	}
	fi, err = f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, nil, fmt.Errorf("%s: %w", rel, errNotRegular)
	}
	return f, fi, nil
}

// readFile reads the regular file rel whole; a file over limit bytes is refused
// (errTooLarge) rather than catalogued from a truncated copy.
func (t *tree) readFile(rel string, limit int64) ([]byte, error) {
	f, fi, err := t.open(rel)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi.Size() > limit {
		return nil, fmt.Errorf("%s: %w (%d bytes, limit %d)", rel, errTooLarge, fi.Size(), limit)
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit { // it grew since the Stat
		return nil, fmt.Errorf("%s: %w (limit %d)", rel, errTooLarge, limit)
	}
	return b, nil
}

// readPrefix reads at most limit bytes from the start of the regular file rel: for
// formats whose useful part is a header before a long body.
func (t *tree) readPrefix(rel string, limit int64) ([]byte, error) {
	f, _, err := t.open(rel)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, limit))
}

// readImageFile resolves name as the image sees it and reads it whole.
func (t *tree) readImageFile(name string, limit int64) (rel string, b []byte, err error) {
	rel, err = t.resolve(name)
	if err != nil {
		return "", nil, err
	}
	b, err = t.readFile(rel, limit)
	return rel, b, err
}

// walk calls fn for every regular file of the tree, in lexical order, with its
// tree-relative path and type bits. Symlinks are not followed (a symlinked directory
// is not descended into, so no loop and no escape), directories that cannot be read
// are skipped, and ctx is checked at every entry.
func (t *tree) walk(ctx context.Context, fn func(rel string, d fs.DirEntry) error) error {
	return fs.WalkDir(t.root.FS(), ".", func(rel string, d fs.DirEntry, err error) error {
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		if err != nil {
			if d != nil && d.IsDir() && rel != "." {
				return fs.SkipDir
			}
			if rel == "." {
				return fmt.Errorf("read scan root %s: %w", t.dir, err)
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		return fn(rel, d)
	})
}

// imagePath is the path of a tree-relative file as the image sees it, for the
// document (syft's convention: absolute, slash-separated).
func imagePath(rel string) string { return path.Join("/", rel) }
