package snapshot

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// A workDir is a scratch dir under active/ or tmp/ owned by one live process.
//
// Several kiln processes may share one snapshot root, so New must not delete another
// process's work in progress when it clears leftovers of killed runs. Each work dir is
// named "<pid>-<random>" and holds a "lock" file flocked for the dir's lifetime: the
// kernel drops the flock when its owner dies (even on SIGKILL), so a dir whose lock can
// be taken is stale. The dir is set up under a hidden name ".<pid>-<random>" and
// renamed to its final name only once its lock is held (a flock follows the inode
// through the rename), so a visible dir without a held lock is never one being set
// up; a hidden one is stale when the pid in its name is not running.
type workDir struct {
	path string
	lock *os.File
}

const lockName = "lock"

func newWorkDir(parent string) (*workDir, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	name := strconv.Itoa(os.Getpid()) + "-" + hex.EncodeToString(b[:])
	hidden, p := filepath.Join(parent, "."+name), filepath.Join(parent, name)
	if err := os.Mkdir(hidden, 0o700); err != nil {
		return nil, fmt.Errorf("create work dir: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(hidden, lockName), os.O_CREATE|os.O_RDWR, 0o600)
	if err == nil {
		if err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err == nil {
			err = os.Rename(hidden, p)
		}
		if err != nil {
			f.Close()
		}
	}
	if err != nil {
		os.RemoveAll(hidden)
		return nil, fmt.Errorf("lock work dir %s: %w", p, err)
	}
	return &workDir{path: p, lock: f}, nil
}

func (w *workDir) sub(name string) string { return filepath.Join(w.path, name) }

// remove deletes the dir (its mounts must already be gone) and drops the lock last,
// so no other process treats it as stale while it is being deleted.
func (w *workDir) remove() error {
	err := os.RemoveAll(w.path)
	if w.lock != nil {
		w.lock.Close()
		w.lock = nil
	}
	if err != nil {
		return fmt.Errorf("remove %s: %w", w.path, err)
	}
	return nil
}

// stale reports whether work dir p belongs to no live process.
func stale(p string) bool {
	if name := filepath.Base(p); strings.HasPrefix(name, ".") {
		pid, err := strconv.Atoi(strings.SplitN(name[1:], "-", 2)[0])
		if err != nil || pid <= 0 {
			return true
		}
		return unix.Kill(pid, 0) == unix.ESRCH
	}
	f, err := os.OpenFile(filepath.Join(p, lockName), os.O_RDWR, 0)
	if err != nil {
		return true
	}
	defer f.Close() // closing releases the probe lock at once
	return unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil
}

// cleanStale removes stale work dirs under parent, detaching any mount left under them
// first: RemoveAll through a still-mounted overlay would delete the files of the
// committed layers below it.
func cleanStale(parent string) error {
	entries, err := os.ReadDir(parent)
	if err != nil {
		return err
	}
	for _, e := range entries {
		p := filepath.Join(parent, e.Name())
		if !stale(p) {
			continue
		}
		if err := unmountUnder(p); err != nil {
			return err
		}
		if err := os.RemoveAll(p); err != nil {
			return fmt.Errorf("remove leftover %s: %w", p, err)
		}
	}
	return nil
}

// mountsUnder lists mount points at or below dir from /proc/self/mountinfo, deepest first.
func mountsUnder(dir string) ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMountinfo(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	sort.Sort(sort.Reverse(sort.StringSlice(out)))
	return out, nil
}

// unescapeMountinfo undoes the octal escapes (\040 for space, ...) of mountinfo paths.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// unmountUnder lazily detaches every mount at or below dir.
func unmountUnder(dir string) error {
	mps, err := mountsUnder(dir)
	if err != nil {
		return fmt.Errorf("read mounts: %w", err)
	}
	for _, mp := range mps {
		if err := unix.Unmount(mp, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("unmount leftover %s: %w", mp, err)
		}
	}
	return nil
}
