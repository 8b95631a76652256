package cache

import (
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"strings"

	berrors "go.etcd.io/bbolt/errors"
	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/panicsite"
)

// damageError is an index bbolt could not read: it reported it invalid, or it panicked
// or faulted while reading it.
type damageError struct {
	path  string
	cause string      // what bbolt said
	file  os.FileInfo // the file found damaged (nil if unknown)
}

func (e *damageError) Error() string {
	return fmt.Sprintf("cache index %s is damaged: %s", e.path, e.cause)
}

// isDamage reports whether an error of bolt.Open means the file's contents are bad
// (rather than, say, a lock timeout or a permission). "file size too small" is an
// unexported fmt.Errorf in bbolt: a file cut below its two meta pages.
func isDamage(err error) bool {
	return errors.Is(err, berrors.ErrInvalid) || errors.Is(err, berrors.ErrVersionMismatch) ||
		errors.Is(err, berrors.ErrChecksum) || errors.Is(err, berrors.ErrInvalidMapping) ||
		strings.Contains(err.Error(), "file size too small")
}

// guard runs fn, which opens the index and runs one transaction, and turns what bbolt
// does on a damaged file into a *damageError:
//
//   - bbolt checks only its meta pages; any other damaged page makes it panic
//     ("invalid freelist page", "invalid page type", an index out of range) where it
//     meets the page, on open or deep in a read;
//   - a truncated file is still mapped at its old size, so reading a page past the new
//     end is a SIGBUS, which the Go runtime makes a fatal error unless the goroutine
//     asked for a panic instead (debug.SetPanicOnFault).
//
// A panic raised by kiln's own code in fn (not in bbolt, not a fault in the mapping)
// is a bug, not damage, and is re-raised. After a panic bbolt's DB may hold its locks
// in a state Close cannot undo (a rollback that panicked too leaves its mutex locked),
// so guard unlocks and closes the file itself (file returns it); the mapping, a few
// MiB at most once per damaged file, is left to the process's exit.
//
// The cost on the hot path is two calls to SetPanicOnFault and a deferred recover:
// nanoseconds, against the ~100µs of an open. A full bbolt Tx.Check on every open would
// walk every page (the hash cache alone holds an entry per context file) and is not run.
func (d *db) guard(file func() (*os.File, os.FileInfo), fn func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		p := recover()
		if p == nil {
			return
		}
		f, fi := file()
		if f != nil {
			// The mapping holds the open file, so closing the fd alone would not drop
			// the flock: unlock first.
			unix.Flock(int(f.Fd()), unix.LOCK_UN)
			f.Close()
		}
		if !panicIsDamage(p) {
			panic(p)
		}
		err = &damageError{path: d.path, cause: fmt.Sprint(p), file: fi}
	}()
	return fn()
}

// panicIsDamage tells a panic caused by the index file from a bug: a fault at an address
// past the first page (a read of the mapping), or a panic raised inside bbolt. It must
// be called from the deferred function that recovered p (see panicsite.In).
func panicIsDamage(p any) bool {
	if f, ok := p.(interface{ Addr() uintptr }); ok && f.Addr() >= 4096 {
		return true // below is a nil dereference
	}
	return panicsite.In("go.etcd.io/bbolt")
}
