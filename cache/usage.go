package cache

import (
	"context"
	"errors"
	"io/fs"
	"path/filepath"
	"syscall"
)

// diskUsage is the bytes the files under dir occupy, each inode counted once.
//
// Builds share the store while it is measured: a step's active snapshot (its upper and
// work dirs) can vanish between the readdir that names an entry and the lstat of it.
// A vanished entry no longer takes space, so it counts as zero instead of failing the
// measurement, which continuity's fs.DiskUsage does.
func diskUsage(ctx context.Context, dir string) (int64, error) {
	seen := map[[2]uint64]bool{}
	var size int64
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			size += fi.Size()
			return nil
		}
		ino := [2]uint64{uint64(st.Dev), st.Ino}
		if !seen[ino] {
			seen[ino] = true
			size += st.Blocks * 512
		}
		return nil
	})
	return size, err
}
