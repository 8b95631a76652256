package cache

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

// Why meta.db is opened per operation: bbolt holds an flock on the file for as long
// as the DB is open (exclusive for read-write), so a Store keeping it open would block
// every other kiln process sharing the root for a whole build. Each operation instead
// opens, runs one transaction and closes, which costs an open+mmap (well under a
// millisecond) and holds the lock only for the transaction. Readers open read-only and
// share the lock. Within one process an RWMutex orders the operations so goroutines
// queue on the mutex instead of on bbolt's 50ms flock retry loop.
//
// meta.db is a cache of what the rest of the store holds, so a damaged one (a disk
// that lost a write, a truncated copy, a scribbled page) is never fatal: every
// operation runs under guard (damage.go), and the first one that finds the file
// damaged sets it aside as meta.db.damaged-<time> (the keepDamaged newest such copies
// are kept) and starts an empty index.
type db struct {
	path string
	mu   sync.RWMutex
	warn func(msg string) // told when a damaged index is set aside; never nil
}

// dbTimeout bounds the wait for another process's transaction; transactions are short,
// so hitting it means a process is stuck holding meta.db.
const dbTimeout = time.Minute

// maxRecoveries bounds how often one operation sets a damaged index aside and retries:
// an index that is damaged again at once points at the disk, and the error says so.
const maxRecoveries = 2

var (
	bucketSteps   = []byte("steps")
	bucketInputs  = []byte("lastInputs")
	bucketRefs    = []byte("refs")
	bucketHashes  = []byte("hashes")
	bucketMembers = []byte("members")
	// bucketBlobParts holds part tables (parts.go), by blob digest.
	bucketBlobParts = []byte("blobParts")
	allBuckets      = [][]byte{bucketSteps, bucketInputs, bucketRefs, bucketHashes, bucketMembers, bucketBlobParts}
)

// openDB opens the index at path, creating it and its buckets. A damaged index is set
// aside (warn says so) and replaced by an empty one.
func openDB(ctx context.Context, path string, warn func(string)) (*db, error) {
	if warn == nil {
		warn = func(string) {}
	}
	d := &db{path: path, warn: warn}
	if err := d.create(ctx); err != nil {
		return nil, err
	}
	return d, nil
}

// create makes the file and buckets, so read-only opens never find them missing.
func (d *db) create(ctx context.Context) error {
	return d.update(ctx, func(tx *bolt.Tx) error {
		for _, b := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
}

// view runs fn in a read-only transaction. fn may run again (on a fresh, empty
// index) if the first run found the index damaged, so it must reset what it collects.
func (d *db) view(ctx context.Context, fn func(tx *bolt.Tx) error) error {
	return d.run(ctx, true, fn)
}

// update runs fn in a read-write transaction, committed before return. The commit is
// not fsynced: a killed process cannot tear a bbolt commit that reached the page cache,
// and the store is synced once when the build closes it (Store.Close), which is what
// power-loss durability needs without two fsyncs on every step. As for view, fn may run
// again on a fresh index.
func (d *db) update(ctx context.Context, fn func(tx *bolt.Tx) error) error {
	return d.run(ctx, false, fn)
}

func (d *db) run(ctx context.Context, readOnly bool, fn func(tx *bolt.Tx) error) error {
	for recoveries := 0; ; {
		err := d.transact(ctx, readOnly, fn)
		var dmg *damageError
		switch {
		case err == nil:
			return nil
		case readOnly && errors.Is(err, os.ErrNotExist):
			// Another process set a damaged index aside after this one opened the
			// store; read-only opens cannot create the file.
			if err := d.create(ctx); err != nil {
				return err
			}
		case errors.As(err, &dmg) && recoveries < maxRecoveries:
			recoveries++
			if err := d.setAside(ctx, dmg); err != nil {
				return err
			}
		default:
			return err
		}
	}
}

// dbMapSize is the least size of meta.db's memory map (see transact).
const dbMapSize = 256 << 20

// transact opens the index, runs fn in one transaction and closes it, under guard.
func (d *db) transact(ctx context.Context, readOnly bool, fn func(tx *bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if readOnly {
		d.mu.RLock()
		defer d.mu.RUnlock()
	} else {
		d.mu.Lock()
		defer d.mu.Unlock()
	}
	var f *os.File     // the file bbolt opened, to drop its lock if bbolt panics
	var fi os.FileInfo // and which file it was, to tell it from a replacement
	// NoGrowSync, with NoSync below: meta.db is made durable by the store's syncfs
	// at close, not per transaction, and a grow's fsync (one per few thousand hash
	// cache entries of a cold context) bought nothing more.
	//
	// InitialMmapSize: bbolt maps the file at its size, and a write transaction that
	// grows it past the map remaps, first copying every node it holds out of the old
	// map. The hash cache of a cold 20,000-file context grows meta.db by megabytes
	// and spent more time remapping than inserting. A map larger than the file
	// costs only address space; pages are read in as they are touched.
	opts := &bolt.Options{Timeout: dbTimeout, ReadOnly: readOnly, NoGrowSync: true, InitialMmapSize: dbMapSize,
		OpenFile: func(name string, flag int, perm os.FileMode) (*os.File, error) {
			var err error
			if f, err = os.OpenFile(name, flag, perm); err == nil {
				fi, err = f.Stat()
			}
			return f, err
		}}
	return d.guard(func() (*os.File, os.FileInfo) { return f, fi }, func() error {
		b, err := bolt.Open(d.path, 0o600, opts)
		if errors.Is(err, bolt.ErrTimeout) {
			return fmt.Errorf("open %s: another kiln process has held it for %s; is one stuck? (%w)", d.path, dbTimeout, err)
		}
		if err != nil && isDamage(err) {
			return &damageError{path: d.path, cause: err.Error(), file: fi}
		}
		if err != nil {
			return fmt.Errorf("open %s: %w", d.path, err)
		}
		if readOnly {
			err = b.View(fn)
		} else {
			b.NoSync = true
			err = b.Update(fn)
		}
		if cerr := b.Close(); err == nil {
			err = cerr
		}
		return err
	})
}

// setAside renames the damaged index out of the way, unless another goroutine or
// process has done so already, and tells the user. The next transaction creates a
// fresh file.
func (d *db) setAside(ctx context.Context, dmg *damageError) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	f, err := os.OpenFile(d.path, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil // set aside already
	}
	if err != nil {
		return fmt.Errorf("set aside damaged %s: %w", d.path, err)
	}
	defer f.Close()
	// bbolt's own lock: exclusive, so no other process is inside a transaction on it.
	if err := flockWait(ctx, f, unix.LOCK_EX); err != nil {
		return fmt.Errorf("set aside damaged %s: lock: %w", d.path, err)
	}
	locked, err := f.Stat()
	if err != nil {
		return fmt.Errorf("set aside damaged %s: %w", d.path, err)
	}
	if dmg.file != nil && !os.SameFile(locked, dmg.file) {
		return nil // replaced already
	}
	if cur, err := os.Stat(d.path); err != nil || !os.SameFile(cur, locked) {
		return nil // renamed while this process waited for the lock
	}
	aside := d.path + ".damaged-" + time.Now().UTC().Format("20060102T150405.000000000Z")
	if err := os.Rename(d.path, aside); err != nil {
		return fmt.Errorf("set aside damaged %s: %w", d.path, err)
	}
	msg := fmt.Sprintf("the cache index %s was damaged (%s); it was moved to %s and a new, empty index started, so steps cached before will run again", d.path, dmg.cause, aside)
	removed, err := trimDamaged(d.path, keepDamaged)
	switch {
	case err != nil:
		msg += fmt.Sprintf(" (removing older damaged copies failed: %v)", err)
	case removed > 0:
		msg += fmt.Sprintf(" (only the %d newest damaged copies are kept: %d older one(s) removed)", keepDamaged, removed)
	}
	d.warn(msg)
	return nil
}

// keepDamaged is how many damaged copies of the index are kept for inspection: a disk
// that keeps damaging it would otherwise fill the store with them.
const keepDamaged = 3

// trimDamaged removes all but the keep newest damaged copies of the index at path
// (path.damaged-<UTC time>, whose names sort by age), returning how many it removed.
func trimDamaged(path string, keep int) (int, error) {
	aside, err := filepath.Glob(path + ".damaged-*")
	if err != nil {
		return 0, err
	}
	sort.Strings(aside)
	removed := 0
	for _, p := range aside[:max(len(aside)-keep, 0)] {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return removed, err
		}
		removed++
	}
	return removed, nil
}
