// Package lease tells a live process's scratch files, dirs and cgroups from the
// leftovers of one that was killed.
//
// A lease is an exclusive flock(2) on a file or directory, held by the process that
// uses the path for as long as it does. The kernel drops it when the holder exits, even
// on kill -9, and at the exit itself rather than when the parent reaps it, so a path
// whose lease can be taken has no live holder. This replaces probing a pid recorded in
// the name with kill(pid, 0), which calls a zombie alive and a reused pid alive.
//
// The protocol, for a holder: make the path under a fresh name, then Hold or Take it;
// if that fails, a cleaner took the lease in the moment between (the path may be gone):
// make another name. For a cleaner: Take the path; on success remove it while the lease
// is held, then Release. A cleaner never removes a path whose lease it could not take,
// and a holder never uses a path whose lease it does not hold, so neither can destroy
// the other's work.
//
// Not supported: network filesystems, where flock may be emulated or local to a host.
package lease

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// ErrHeld is returned by Take and Hold when another open file holds the lease: a live
// process is using the path (or, for a holder, a cleaner is examining it).
var ErrHeld = errors.New("held by a live process")

// A Lease is a held flock on one path.
type Lease struct {
	f     *os.File
	owned bool // f was opened by Take, so Release closes it
}

// Take opens path (a file or a directory) and takes its lease without waiting. It fails
// with ErrHeld while another open file holds it, and with an error matching
// os.ErrNotExist when path is gone or now names another file than the one locked.
func Take(path string) (*Lease, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("lease %s: %w", path, err)
	}
	l := &Lease{f: f, owned: true}
	if err := hold(f, path); err != nil {
		f.Close()
		return nil, err
	}
	return l, nil
}

// Hold takes the lease of path through f, a file the caller opened or created at path
// and keeps open; Release then unlocks f without closing it. Errors are as for Take.
func Hold(f *os.File, path string) (*Lease, error) {
	if err := hold(f, path); err != nil {
		return nil, err
	}
	return &Lease{f: f}, nil
}

func hold(f *os.File, path string) error {
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		if errors.Is(err, unix.EWOULDBLOCK) {
			return fmt.Errorf("lease %s: %w", path, ErrHeld)
		}
		return fmt.Errorf("lease %s: %w", path, err)
	}
	// The lock is on the open file; path must still name it, or a cleaner removed the
	// path (and perhaps something else took the name) before the lock was taken.
	locked, err := f.Stat()
	if err != nil {
		unix.Flock(int(f.Fd()), unix.LOCK_UN)
		return fmt.Errorf("lease %s: %w", path, err)
	}
	if cur, err := os.Lstat(path); err != nil || !os.SameFile(cur, locked) {
		unix.Flock(int(f.Fd()), unix.LOCK_UN)
		return fmt.Errorf("lease %s: removed before it was locked: %w", path, os.ErrNotExist)
	}
	return nil
}

// Release drops the lease. Remove the path before, not after: once released, another
// process may take the lease and find the path.
func (l *Lease) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	f := l.f
	l.f = nil
	if l.owned {
		return f.Close()
	}
	return unix.Flock(int(f.Fd()), unix.LOCK_UN)
}

// Abandoned reports whether path has no live holder, taking and at once dropping its
// lease. It is for listing; a cleaner that removes the path uses Take and holds the
// lease while it does.
func Abandoned(path string) bool {
	l, err := Take(path)
	if err != nil {
		return false
	}
	l.Release()
	return true
}
