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
	"time"

	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/lease"
)

// A workDir is a scratch dir under active/ or tmp/ owned by one live process.
//
// Several kiln processes may share one snapshot root, so New must not delete another
// process's work in progress when it clears leftovers of killed runs. Each work dir is
// named by a random id and its owner holds the dir's lease (package lease: an flock on
// the dir itself) for the dir's lifetime: the kernel drops it when the owner dies (even
// on SIGKILL, even while it is an unreaped zombie), so a dir whose lease can be taken is
// stale. The dir is created, then leased; a cleaner that leased it in between removes
// it, and the owner, told so by lease.Take, makes another.
//
// Dirs of kiln versions before leases are told apart too: "<pid>-<random>" dirs with a
// "lock" file flocked by their owner, and ".<pid>-<random>" dirs that existed only while
// being set up (a moment), stale once older than hiddenStaleAge.
type workDir struct {
	path  string
	lease *lease.Lease
}

// legacyLockName is the lock file inside work dirs of kiln versions before leases.
const legacyLockName = "lock"

// hiddenStaleAge is how old a pre-lease ".<pid>-…" dir must be to be a leftover.
const hiddenStaleAge = 10 * time.Minute

func newWorkDir(parent string) (*workDir, error) {
	for try := 0; try < 5; try++ {
		var b [8]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, err
		}
		p := filepath.Join(parent, hex.EncodeToString(b[:]))
		if err := os.Mkdir(p, 0o700); err != nil {
			if errors.Is(err, os.ErrExist) {
				continue
			}
			return nil, fmt.Errorf("create work dir: %w", err)
		}
		l, err := lease.Take(p)
		if errors.Is(err, lease.ErrHeld) || errors.Is(err, os.ErrNotExist) {
			continue // a cleaner took it for a leftover: it removes it
		}
		if err != nil {
			os.Remove(p)
			return nil, fmt.Errorf("create work dir: %w", err)
		}
		return &workDir{path: p, lease: l}, nil
	}
	return nil, fmt.Errorf("create work dir in %s: every new dir was taken for a leftover", parent)
}

func (w *workDir) sub(name string) string { return filepath.Join(w.path, name) }

// remove deletes the dir (its mounts must already be gone) and drops the lease last,
// so no other process treats it as stale while it is being deleted.
func (w *workDir) remove() error {
	err := os.RemoveAll(w.path)
	w.lease.Release()
	w.lease = nil
	if err != nil {
		return fmt.Errorf("remove %s: %w", w.path, err)
	}
	return nil
}

// takeStale returns the lease of work dir p if it belongs to no live process (the
// caller removes p, then releases it), or nil if p is live or gone.
func takeStale(p string) (*lease.Lease, bool) {
	if name := filepath.Base(p); strings.HasPrefix(name, ".") {
		fi, err := os.Lstat(p)
		if err != nil || time.Since(fi.ModTime()) < hiddenStaleAge {
			return nil, false
		}
	}
	l, err := lease.Take(p)
	if err != nil {
		return nil, false
	}
	legacy := filepath.Join(p, legacyLockName)
	if _, err := os.Lstat(legacy); err == nil && !lease.Abandoned(legacy) {
		l.Release()
		return nil, false // a pre-lease kiln holds its lock file
	}
	return l, true
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
		l, ok := takeStale(p)
		if !ok {
			continue
		}
		err := unmountUnder(p)
		if err == nil {
			if err = os.RemoveAll(p); err != nil {
				err = fmt.Errorf("remove leftover %s: %w", p, err)
			}
		}
		l.Release()
		if err != nil {
			return err
		}
	}
	return nil
}

// MountsUnder lists the mount points at or below dir from /proc/self/mountinfo,
// deepest first (the order to unmount them in).
func MountsUnder(dir string) ([]string, error) {
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
	mps, err := MountsUnder(dir)
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
