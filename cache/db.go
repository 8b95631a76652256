package cache

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
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

// update runs fn in a read-write transaction, committed (and fsynced) before return.
func (d *db) update(ctx context.Context, fn func(tx *bolt.Tx) error) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	b, err := d.open(ctx, false)
	if err != nil {
		return err
	}
	if err := b.Update(fn); err != nil {
		b.Close()
		return err
	}
	return b.Close()
}
