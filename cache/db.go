package cache

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Why meta.db is opened per operation: bbolt holds an flock on the file for as long
// as the DB is open (exclusive for read-write), so a Store keeping it open would block
// every other kiln process sharing the root for a whole build. Each operation instead
// opens, runs one transaction and closes, which costs an open+mmap (well under a
// millisecond) and holds the lock only for the transaction. Readers open read-only and
// share the lock. Within one process an RWMutex orders the operations so goroutines
// queue on the mutex instead of on bbolt's 50ms flock retry loop.
type db struct {
	path string
	mu   sync.RWMutex
}

// dbTimeout bounds the wait for another process's transaction; transactions are short,
// so hitting it means a process is stuck holding meta.db.
const dbTimeout = time.Minute

var (
	bucketSteps  = []byte("steps")
	bucketInputs = []byte("lastInputs")
	bucketRefs   = []byte("refs")
	bucketHashes = []byte("hashes")
	allBuckets   = [][]byte{bucketSteps, bucketInputs, bucketRefs, bucketHashes}
)

func openDB(ctx context.Context, path string) (*db, error) {
	d, err := createDB(ctx, path)
	if err != nil && isCorrupt(err) {
		// The index is a cache: a corrupt one (power loss while a build ran) is set
		// aside and rebuilt rather than making the store unusable.
		aside := fmt.Sprintf("%s.corrupt-%d", path, time.Now().Unix())
		if rerr := os.Rename(path, aside); rerr != nil {
			return nil, fmt.Errorf("%w (and could not move it aside: %v)", err, rerr)
		}
		return createDB(ctx, path)
	}
	return d, err
}

func isCorrupt(err error) bool {
	return errors.Is(err, berrors.ErrInvalid) || errors.Is(err, berrors.ErrVersionMismatch) ||
		errors.Is(err, berrors.ErrChecksum) || errors.Is(err, berrors.ErrInvalidMapping)
}

func createDB(ctx context.Context, path string) (*db, error) {
	d := &db{path: path}
	// Create the file and buckets once, so read-only opens never find them missing.
	err := d.update(ctx, func(tx *bolt.Tx) error {
		for _, b := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return d, nil
}

func (d *db) open(ctx context.Context, readOnly bool) (*bolt.DB, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b, err := bolt.Open(d.path, 0o600, &bolt.Options{Timeout: dbTimeout, ReadOnly: readOnly})
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, fmt.Errorf("open %s: another kiln process has held it for %s; is one stuck? (%w)", d.path, dbTimeout, err)
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", d.path, err)
	}
	return b, nil
}

// view runs fn in a read-only transaction.
func (d *db) view(ctx context.Context, fn func(tx *bolt.Tx) error) error {
	d.mu.RLock()
	defer d.mu.RUnlock()
	b, err := d.open(ctx, true)
	if err != nil {
		return err
	}
	defer b.Close()
	return b.View(fn)
}

// update runs fn in a read-write transaction, committed before return. The commit is
// not fsynced: a killed process cannot tear a bbolt commit that reached the page cache,
// and the store is synced once when the build closes it (Store.Close), which is what
// power-loss durability needs without two fsyncs on every step.
func (d *db) update(ctx context.Context, fn func(tx *bolt.Tx) error) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	b, err := d.open(ctx, false)
	if err != nil {
		return err
	}
	b.NoSync = true
	if err := b.Update(fn); err != nil {
		b.Close()
		return err
	}
	return b.Close()
}
