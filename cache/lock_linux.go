package cache

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// lockShared opens path and takes a shared flock on it, waiting while a Prune holds
// it exclusively.
func lockShared(ctx context.Context, path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if err := flockWait(ctx, f, unix.LOCK_SH); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return f, nil
}

// flockWait takes how (LOCK_SH or LOCK_EX) on f, polling so ctx can cancel the wait.
// Converting a held lock is not atomic (flock(2)): the old lock is dropped first, so two
// processes upgrading at once cannot deadlock.
func flockWait(ctx context.Context, f *os.File, how int) error {
	for {
		err := unix.Flock(int(f.Fd()), how|unix.LOCK_NB)
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// tempPrefix names temp files so Open can tell whose they are: blob-<pid>-<random>.
func tempPrefix() string { return "blob-" + strconv.Itoa(os.Getpid()) + "-" }

// staleTempAge is how old a temp file of a still-running pid must be before it is
// taken for a leftover of an earlier process that had the same pid.
const staleTempAge = 24 * time.Hour

// cleanTemp removes temp files left by dead processes. A live process's files are
// kept: the pid in the name is alive and the file was written recently.
func cleanTemp(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		name := e.Name()
		parts := strings.SplitN(strings.TrimPrefix(name, "blob-"), "-", 2)
		pid, err := strconv.Atoi(parts[0])
		alive := err == nil && pid > 0 && unix.Kill(pid, 0) != unix.ESRCH
		if alive {
			info, err := e.Info()
			if err != nil || time.Since(info.ModTime()) < staleTempAge {
				continue
			}
		}
		if err := os.RemoveAll(filepath.Join(dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}
