// Package atomicfile writes files and directories that appear complete or not at all,
// and leaves nothing behind when the writer is killed. Commit is the last step of every
// such write in kiln (outputs, pulled blobs, built blobs): fsync, rename, fsync of the
// directory.
//
// A file is written into an anonymous O_TMPFILE inode in dest's directory, fsynced,
// and linked in by linkat(2) only once complete: straight at dest when dest does not
// exist, so a kill -9 at any instant leaves no name at all; else at a temp name renamed
// over dest. Where the filesystem has no O_TMPFILE (or linkat of it is refused) the data
// is written under the temp name from the start. Temp names are ".<base>.kiln-tmp-*",
// leased (package lease) by their writer, so the next write to the same dest removes
// those a killed writer left and never one a live writer is using. The directory is
// fsynced after the rename, so the new name survives power loss too.
//
// Not supported: preserving the mode, owner or xattrs of a replaced dest.
package atomicfile

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/lease"
)

// Write creates or replaces the file dest with what fn writes, mode perm. On error
// dest is unchanged and nothing is left beside it. It creates dest's directory.
func Write(dest string, perm os.FileMode, fn func(w io.Writer) error) error {
	dir, base := filepath.Split(filepath.Clean(dest))
	if dir == "" {
		dir = "."
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write %s: %w", dest, err)
	}
	removeStale(dir, base)
	f, err := openTmpfile(dir)
	if err != nil {
		return writeNamed(dir, base, dest, perm, fn)
	}
	defer f.Close()
	if err := fill(f, perm, fn); err != nil {
		return fmt.Errorf("write %s: %w", dest, err)
	}
	// Lease the inode before it has a name, so its temp name is never unleased. No
	// other process can reach a nameless inode, so the lock cannot be contended; it is
	// dropped when f is closed.
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return fmt.Errorf("write %s: lock: %w", dest, err)
	}
	err = link(f, dest)
	if errors.Is(err, unix.EEXIST) {
		tmp := filepath.Join(dir, tempName(base))
		if err = link(f, tmp); err == nil {
			if err = os.Rename(tmp, dest); err != nil {
				os.Remove(tmp)
			}
		}
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", dest, err)
	}
	return syncDir(dir)
}

// openTmpfile opens an anonymous file in dir, or fails where the filesystem (or
// kernel) has no O_TMPFILE.
func openTmpfile(dir string) (*os.File, error) {
	fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), dir+"/(O_TMPFILE)"), nil
}

// link gives the anonymous file f the name path: through /proc/self/fd, which needs no
// privilege, else by AT_EMPTY_PATH (which needs CAP_DAC_READ_SEARCH).
func link(f *os.File, path string) error {
	err := unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(int(f.Fd())), unix.AT_FDCWD, path, unix.AT_SYMLINK_FOLLOW)
	if errors.Is(err, unix.ENOENT) {
		if err2 := unix.Linkat(int(f.Fd()), "", unix.AT_FDCWD, path, unix.AT_EMPTY_PATH); err2 == nil || errors.Is(err2, unix.EEXIST) {
			return err2
		}
	}
	return err
}

// writeNamed is Write where O_TMPFILE is not available: a leased temp name from the start.
func writeNamed(dir, base, dest string, perm os.FileMode, fn func(io.Writer) error) (err error) {
	f, l, err := createLeased(dir, base)
	if err != nil {
		return fmt.Errorf("write %s: %w", dest, err)
	}
	defer func() {
		if err != nil {
			os.Remove(f.Name())
		}
		l.Release()
		f.Close()
	}()
	if err := fill(f, perm, fn); err != nil {
		return fmt.Errorf("write %s: %w", dest, err)
	}
	return Commit(f, dest)
}

// Commit gives f, a temp file in dest's directory (or on its filesystem) that the
// caller has written completely, the name dest: it fsyncs f, closes it, renames it over
// dest and fsyncs the directory, so once Commit returns dest is the whole new file,
// across a kill -9 or a power loss. This is kiln's one policy for a file appearing
// under its final name; on error the caller removes f.
func Commit(f *os.File, dest string) error {
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", f.Name(), err)
	}
	if err := f.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
		return fmt.Errorf("close %s: %w", f.Name(), err)
	}
	if err := os.Rename(f.Name(), dest); err != nil {
		return err
	}
	return syncDir(filepath.Dir(dest))
}

func createLeased(dir, base string) (*os.File, *lease.Lease, error) {
	for try := 0; ; try++ {
		f, err := os.OpenFile(filepath.Join(dir, tempName(base)), os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o600)
		if err != nil {
			if errors.Is(err, os.ErrExist) && try < 5 {
				continue
			}
			return nil, nil, err
		}
		l, err := lease.Hold(f, f.Name())
		if err == nil {
			return f, l, nil
		}
		f.Close()
		if try >= 5 || !(errors.Is(err, lease.ErrHeld) || errors.Is(err, os.ErrNotExist)) {
			return nil, nil, err
		}
		// Another writer's cleanup took it for a leftover: it removes it.
	}
}

func fill(f *os.File, perm os.FileMode, fn func(io.Writer) error) error {
	if err := fn(f); err != nil {
		return err
	}
	if err := f.Chmod(perm); err != nil {
		return err
	}
	return f.Sync()
}

// WriteDir creates the directory dest, mode perm, filled by fill in a leased temp dir
// beside it and renamed to dest once complete. dest must not exist. On error nothing
// is left. The files fill writes are not fsynced one by one.
func WriteDir(dest string, perm os.FileMode, fill func(dir string) error) (err error) {
	dir, base := filepath.Split(filepath.Clean(dest))
	if dir == "" {
		dir = "."
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write %s: %w", dest, err)
	}
	removeStale(dir, base)
	var tmp string
	var l *lease.Lease
	for try := 0; ; try++ {
		tmp = filepath.Join(dir, tempName(base))
		if err := os.Mkdir(tmp, 0o700); err != nil {
			return fmt.Errorf("write %s: %w", dest, err)
		}
		if l, err = lease.Take(tmp); err == nil {
			break
		}
		if try >= 5 || !(errors.Is(err, lease.ErrHeld) || errors.Is(err, os.ErrNotExist)) {
			os.Remove(tmp)
			return fmt.Errorf("write %s: %w", dest, err)
		}
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
		l.Release()
	}()
	if err := fill(tmp); err != nil {
		return err
	}
	if err := os.Chmod(tmp, perm); err != nil {
		return fmt.Errorf("write %s: %w", dest, err)
	}
	if err := os.Rename(tmp, dest); err != nil {
		return fmt.Errorf("write %s: %w", dest, err)
	}
	return syncDir(dir)
}

// tempName is a fresh temp name for base.
func tempName(base string) string {
	var b [8]byte
	rand.Read(b[:])
	return tempPrefix(base) + hex.EncodeToString(b[:])
}

func tempPrefix(base string) string { return "." + base + ".kiln-tmp-" }

// removeStale removes the temp files and dirs that killed writers of base left in dir:
// those whose lease is free. Failures are left for the next write.
func removeStale(dir, base string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	prefix := tempPrefix(base)
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), prefix) {
			continue
		}
		p := filepath.Join(dir, e.Name())
		l, err := lease.Take(p)
		if err != nil {
			continue // live, or gone
		}
		os.RemoveAll(p)
		l.Release()
	}
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// StartWriteback asks the kernel to start writing a range of f to disk, without
// waiting (sync_file_range SYNC_FILE_RANGE_WRITE), so that the fsync of Commit finds
// most of a big file on disk already. Only a hint: errors are ignored, the final
// fsync is what reports them.
func StartWriteback(f *os.File, off, n int64) {
	if n <= 0 {
		return
	}
	if rc, err := f.SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) {
			_ = unix.SyncFileRange(int(fd), off, n, unix.SYNC_FILE_RANGE_WRITE)
		})
	}
}
