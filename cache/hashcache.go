package cache

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	bolt "go.etcd.io/bbolt"
)

// hashCache is the file-digest cache. Lookups go to the index a batch at a time
// (GetMany: one transaction for thousands of files), so memory holds only what a
// build asks for, never the whole bucket: a store that has seen a 200,000-file
// context would otherwise load all of it into every build. Puts are buffered and
// written flushAt at a time, in one transaction each, and at Flush.
// Safe for concurrent use.
type hashCache struct {
	db *db

	mu      sync.Mutex
	pending map[string]string // Puts not yet in the index
	writing chan struct{}     // closed when the batch write a Put started ends; nil: none runs
	failed  bool              // a batch write failed: Puts wait for Flush to retry
}

// flushAt is how many buffered Puts are written together before Flush: enough to
// make a transaction per file rare, few enough that a cold build of a big context
// does not hold every file's key in memory.
const flushAt = 8192

// Get returns the digest recorded for key. A DB that cannot be read is a miss: the
// file is hashed again, which is always correct.
func (c *hashCache) Get(key string) (string, bool) {
	d := c.GetMany([]string{key})[0]
	return d, d != ""
}

// GetMany returns the digests recorded for keys ("" where none is), read in one
// transaction.
func (c *hashCache) GetMany(keys []string) []string {
	out := make([]string, len(keys))
	var ask []int
	c.mu.Lock()
	for i, k := range keys {
		if d, ok := c.pending[k]; ok {
			out[i] = d
		} else {
			ask = append(ask, i)
		}
	}
	c.mu.Unlock()
	if len(ask) == 0 {
		return out
	}
	// In key order through one cursor: its page stack is reused from key to key,
	// where a Get per key would allocate a cursor each time.
	slices.SortFunc(ask, func(a, b int) int { return strings.Compare(keys[a], keys[b]) })
	err := c.db.view(context.Background(), func(tx *bolt.Tx) error {
		cur := tx.Bucket(bucketHashes).Cursor()
		var kb []byte
		for _, i := range ask {
			// A retry on a fresh index after damage starts over: it sets every
			// asked entry, known or not.
			kb = append(kb[:0], keys[i]...)
			out[i] = ""
			if k, v := cur.Seek(kb); bytes.Equal(k, kb) {
				out[i] = string(v)
			}
		}
		return nil
	})
	if err != nil {
		for _, i := range ask {
			out[i] = ""
		}
	}
	return out
}

// Put records key → digest; it reaches the index at the next batch write or Flush.
// A batch that fails to write stays buffered for Flush, which retries it and
// reports the error.
func (c *hashCache) Put(key, digest string) {
	c.mu.Lock()
	if c.pending == nil {
		c.pending = map[string]string{}
	}
	c.pending[key] = digest
	full := len(c.pending) >= flushAt && c.writing == nil && !c.failed
	var done chan struct{}
	var batch map[string]string
	if full {
		done = make(chan struct{})
		c.writing = done
		// Taken now, not when the write starts: the batch is what filled it,
		// however far the Puts have run on by then.
		batch = maps.Clone(c.pending)
	}
	c.mu.Unlock()
	if !full {
		return
	}
	// Written beside the caller: Puts come from the workers hashing a cold
	// context, which a transaction of thousands of keys would hold up.
	go func() {
		err := c.write(context.Background(), batch)
		c.mu.Lock()
		c.writing = nil
		c.failed = err != nil
		c.mu.Unlock()
		close(done)
	}()
}

// Flush writes the buffered Puts in one transaction, in key order: bbolt inserts
// into a node by shifting the keys after the new one, so a transaction that puts
// keys in random order costs the square of their number (W6, 200,000 context
// files: minutes at the end of a build, against 0.6 s for 80,000 sorted keys).
// Lookups meanwhile still see the batch being written. It waits for a batch write
// that a Put started first, so what it writes is all that is left.
func (c *hashCache) Flush(ctx context.Context) error {
	c.mu.Lock()
	done := c.writing
	c.mu.Unlock()
	if done != nil {
		<-done
	}
	c.mu.Lock()
	batch := maps.Clone(c.pending)
	c.mu.Unlock()
	return c.write(ctx, batch)
}

// write puts batch in the index and drops from the buffer what it wrote (unless
// a later Put changed it meanwhile).
func (c *hashCache) write(ctx context.Context, batch map[string]string) error {
	if len(batch) == 0 {
		return nil
	}
	keys := slices.Sorted(maps.Keys(batch))
	err := c.db.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketHashes)
		for _, k := range keys {
			if err := b.Put([]byte(k), []byte(batch[k])); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("flush hash cache: %w", err)
	}
	c.mu.Lock()
	c.failed = false
	for k, d := range batch {
		if c.pending[k] == d {
			delete(c.pending, k)
		}
	}
	c.mu.Unlock()
	return nil
}

// HashCache is the file-digest cache package source uses (key: dev/inode/size/mtime/ctime).
// Puts are buffered in memory until a batch is full, FlushHashes or Close. Safe for
// concurrent use.
func (s *Store) HashCache() interface {
	Get(key string) (string, bool)
	GetMany(keys []string) []string
	Put(key, digest string)
} {
	return s.hashes
}
