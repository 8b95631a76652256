package exec

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	securejoin "github.com/cyphar/filepath-securejoin"
)

// A mount target that does not exist in the image must be created for the mount,
// but must not end up in the step's layer (BuildKit's MountStubsCleaner does the
// same). The parent creates those stubs in the merged rootfs before the sandbox
// starts, so it knows exactly what it created, and removes the ones still empty
// after the step, in the merged view, restoring the parent directory's times so
// that the directory does not look changed.

// stubTarget is a path inside the rootfs that a mount needs.
type stubTarget struct {
	path string // absolute, inside the rootfs
	dir  bool   // a directory, else a regular file
}

// stub is one path created by createStubs.
type stub struct {
	rel          string // relative to the rootfs, symlinks resolved
	dir          bool
	parentBefore times // the parent's times before the stub was created
	parentAfter  times // ... and right after
}

type times struct{ atime, mtime time.Time }

// stubs is what createStubs made, in creation order.
type stubs struct {
	rootfs string
	list   []stub
}

// runtimeDirs are the mount points of the sandbox's /proc, /dev and /sys. Unlike other
// mount points they stay: runc creates them in the rootfs as it mounts (0755, root's)
// and BuildKit's stub cleaner removes only the step's own mount points and /etc/hosts
// and /etc/resolv.conf, so a RUN in FROM scratch leaves /dev, /proc and /sys, empty,
// in its layer. createRuntimeDirs makes the ones the image lacks, before the stubs.
var runtimeDirs = []string{"proc", "dev", "sys"}

func createRuntimeDirs(rootfs string) error {
	root, err := os.OpenRoot(rootfs)
	if err != nil {
		return fmt.Errorf("open rootfs: %w", err)
	}
	defer root.Close()
	for _, d := range runtimeDirs {
		// Whatever is there already (a dir, or a link the stubs resolve) is kept.
		if _, err := root.Lstat(d); err == nil || !errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err := root.Mkdir(d, 0o755); err != nil {
			return fmt.Errorf("create /%s in rootfs: %w", d, err)
		}
		if err := root.Chmod(d, 0o755); err != nil { // whatever the umask
			return fmt.Errorf("create /%s in rootfs: %w", d, err)
		}
	}
	return nil
}

// createStubs creates every missing component of each target inside rootfs.
func createStubs(rootfs string, targets []stubTarget) (*stubs, error) {
	s := &stubs{rootfs: rootfs}
	root, err := os.OpenRoot(rootfs)
	if err != nil {
		return s, fmt.Errorf("open rootfs: %w", err)
	}
	defer root.Close()
	for _, t := range targets {
		// SecureJoin resolves symlinks inside the rootfs (an image's
		// /etc/resolv.conf may be a link into /run), so the stub is created where
		// the mount will land; os.Root keeps the creation itself inside.
		resolved, err := securejoin.SecureJoin(rootfs, t.path)
		if err != nil {
			return s, fmt.Errorf("resolve %s in rootfs: %w", t.path, err)
		}
		rel, err := filepath.Rel(rootfs, resolved)
		if err != nil || rel == "." || strings.HasPrefix(rel, "..") {
			continue // the rootfs itself, nothing to create
		}
		parts := strings.Split(rel, string(filepath.Separator))
		for i := range parts {
			p := filepath.Join(parts[:i+1]...)
			if _, err := root.Lstat(p); err == nil {
				continue
			} else if !errors.Is(err, fs.ErrNotExist) {
				return s, fmt.Errorf("stat %s in rootfs: %w", p, err)
			}
			parent := filepath.Dir(p)
			before, err := statTimes(root, parent)
			if err != nil {
				return s, err
			}
			isDir := t.dir || i < len(parts)-1
			mode := os.FileMode(0o644)
			if isDir {
				mode = 0o755
				err = root.Mkdir(p, mode)
			} else {
				var f *os.File
				f, err = root.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode)
				if err == nil {
					err = f.Close()
				}
			}
			if err == nil {
				// A stub the step fills stays in the layer: its mode must not
				// depend on the umask kiln was started with.
				err = root.Chmod(p, mode)
			}
			if err != nil {
				return s, fmt.Errorf("create mount point %s in rootfs: %w", p, err)
			}
			after, err := statTimes(root, parent)
			if err != nil {
				return s, err
			}
			s.list = append(s.list, stub{rel: p, dir: isDir, parentBefore: before, parentAfter: after})
		}
	}
	return s, nil
}

// remove deletes the stubs that are still empty, newest first. A stub the step
// filled (a file written through a bind mount cannot be, but a directory under a
// mount target can gain entries in the rootfs) is kept: it is the step's content.
func (s *stubs) remove() error {
	if s == nil || len(s.list) == 0 {
		return nil
	}
	root, err := os.OpenRoot(s.rootfs)
	if err != nil {
		return fmt.Errorf("open rootfs: %w", err)
	}
	defer root.Close()
	var errs []error
	for i := len(s.list) - 1; i >= 0; i-- {
		st := s.list[i]
		empty, err := isEmptyStub(root, st)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !empty {
			continue
		}
		parent := filepath.Dir(st.rel)
		now, err := statTimes(root, parent)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := root.Remove(st.rel); err != nil {
			errs = append(errs, fmt.Errorf("remove mount point %s: %w", st.rel, err))
			continue
		}
		// If nothing but our stub touched the parent, give it back its original
		// times; otherwise keep the step's change but hide our removal.
		restore := now
		if now.mtime.Equal(st.parentAfter.mtime) {
			restore = st.parentBefore
		}
		if err := root.Chtimes(parent, restore.atime, restore.mtime); err != nil {
			errs = append(errs, fmt.Errorf("restore times of %s: %w", parent, err))
		}
	}
	return errors.Join(errs...)
}

func isEmptyStub(root *os.Root, st stub) (bool, error) {
	fi, err := root.Lstat(st.rel)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if st.dir {
		if !fi.IsDir() {
			return false, nil
		}
		d, err := root.Open(st.rel)
		if err != nil {
			return false, err
		}
		defer d.Close()
		_, err = d.Readdirnames(1)
		if errors.Is(err, io.EOF) {
			return true, nil
		}
		return false, err
	}
	return fi.Mode().IsRegular() && fi.Size() == 0, nil
}

func statTimes(root *os.Root, p string) (times, error) {
	fi, err := root.Lstat(p)
	if err != nil {
		return times{}, fmt.Errorf("stat %s in rootfs: %w", p, err)
	}
	t := times{atime: fi.ModTime(), mtime: fi.ModTime()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		t.atime = time.Unix(st.Atim.Sec, st.Atim.Nsec)
	}
	return t, nil
}
