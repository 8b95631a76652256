package source

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/kiln-build/kiln/layers"
)

// unpack extracts a local archive for ADD into the directory destImg, as BuildKit does:
// dest is created (0755, --chown owner) whatever its spelling, and entries keep the
// archive's owners unless --chown is given, in which case every extracted entry gets
// that owner. --chmod does not apply to extracted entries (BuildKit ignores it there
// too). ".wh." names are extracted as plain files; the step's layer then makes them
// the whiteouts every reader takes them for (layers/whiteoutnames_linux.go), as
// BuildKit's image has them.
func (c *copier) unpack(ctx context.Context, sel selection, destImg string) error {
	destHost, err := MkdirAll(c.destRoot, destImg, NewDir(c.createdOwner()))
	if err != nil {
		return err
	}
	f, err := os.Open(sel.host)
	if err != nil {
		return err
	}
	defer f.Close()
	uo := layers.UnpackOptions{Whiteouts: layers.NoWhiteouts, KeepOwners: true}
	if c.opts.Chown == nil {
		return layers.Unpack(ctx, f, destHost, uo)
	}
	// To chown only what the archive brings (not what dest already holds), extract
	// into a staging directory on the same filesystem, chown it, and move it in.
	stage, err := os.MkdirTemp(c.destRoot, ".kiln-add-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(stage)
	if err := layers.Unpack(ctx, f, stage, uo); err != nil {
		return err
	}
	own := *c.opts.Chown
	err = filepath.WalkDir(stage, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == stage {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		// setMeta chowns, then restores mode (chown clears setuid) and times.
		return setMeta(p, fi, own.UID, own.GID, unixMode(fi.Mode()))
	})
	if err != nil {
		return err
	}
	return mergeInto(ctx, stage, destHost)
}

// mergeInto moves the entries of src into dst the way tar extraction over an existing
// tree behaves: directories merge (the archive's directory metadata wins), anything
// else replaces what is there.
func mergeInto(ctx context.Context, src, dst string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	ents, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, e := range ents {
		s, d := filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())
		fi, err := os.Lstat(d)
		if err == nil && fi.IsDir() && e.IsDir() {
			if err := mergeInto(ctx, s, d); err != nil {
				return err
			}
			sfi, err := os.Lstat(s)
			if err != nil {
				return err
			}
			uid, gid, err := ids(s, sfi)
			if err != nil {
				return err
			}
			if err := setMeta(d, sfi, uid, gid, unixMode(sfi.Mode())); err != nil {
				return err
			}
			copyXattrs(s, d)
			continue
		}
		if err == nil {
			if err := os.RemoveAll(d); err != nil {
				return err
			}
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		if err := os.Rename(s, d); err != nil {
			return fmt.Errorf("move %s into place: %w", e.Name(), err)
		}
	}
	return nil
}
