package cache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	bolt "go.etcd.io/bbolt"
)

// GetStep returns the entry for key; ok is false when absent or when its blob or
// snapshot is missing or corrupt (such an entry is dropped, not an error).
//
// Blobs are checked by presence and size only: hashing every layer on every hit would
// cost more than the step it saves. VerifyBlob is there for callers that need more.
func (s *Store) GetStep(ctx context.Context, key string) (e *Entry, ok bool, err error) {
	var raw []byte
	err = s.db.view(ctx, func(tx *bolt.Tx) error {
		raw = nil // a retry on a fresh index after damage starts over
		if v := tx.Bucket(bucketSteps).Get([]byte(key)); v != nil {
			raw = append([]byte(nil), v...)
		}
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("get step: %w", err)
	}
	if raw == nil {
		return nil, false, nil
	}
	e = &Entry{}
	if decodeEntry(raw, e) != nil || !s.entryUsable(e) {
		if err := s.deleteStep(ctx, key); err != nil {
			return nil, false, err
		}
		return nil, false, nil
	}
	// Use times are buffered and written by Flush/Close: a write transaction (fsync)
	// per cache hit would cost more than the hit saves.
	now := time.Now().UTC()
	e.Used = now
	s.usedMu.Lock()
	s.used[key] = now
	s.usedMu.Unlock()
	return e, true, nil
}

// entryUsable checks that everything e refers to is on disk.
func (s *Store) entryUsable(e *Entry) bool {
	if e.Layer != nil {
		h, err := v1.NewHash(e.Layer.Digest)
		if err != nil {
			return false
		}
		fi, err := os.Stat(s.BlobPath(h))
		if err != nil || !fi.Mode().IsRegular() || (e.Layer.Size > 0 && fi.Size() != e.Layer.Size) {
			return false
		}
		// A missing snapshot is not: the solver unpacks it from the blob when a
		// later step needs it (a COPY may write only its layer).
	}
	for _, d := range e.KeepBlobs {
		h, err := v1.NewHash(d)
		if err != nil || !s.HasBlob(h) {
			return false
		}
	}
	for _, id := range e.KeepSnapshots {
		if !s.snapshotExists(id) {
			return false
		}
	}
	return true
}

// snapshotExists checks package snapshot's committed/<id> dir. The layout is shared by
// convention rather than by importing package snapshot, which keeps the store free of
// mount code.
func (s *Store) snapshotExists(id string) bool {
	if id == "" || id == "." || id == ".." || strings.ContainsAny(id, "/\x00") {
		return false
	}
	fi, err := os.Stat(filepath.Join(s.SnapshotsDir(), "committed", id))
	return err == nil && fi.IsDir()
}

func (s *Store) deleteStep(ctx context.Context, key string) error {
	err := s.db.update(ctx, func(tx *bolt.Tx) error { return tx.Bucket(bucketSteps).Delete([]byte(key)) })
	if err != nil {
		return fmt.Errorf("drop step entry: %w", err)
	}
	return nil
}

// A step entry is stored as its JSON with one more member at its end, "sum": the
// sha256 of the JSON without it. bbolt checks only its meta pages: a byte changed
// inside a stored entry (a digest's hex digit, a config's env value) would otherwise
// read as a valid entry that names another layer or makes another config. An entry
// whose sum does not match is dropped as damaged, as one that does not parse is, and
// the step is made again. The member is one an older kiln's decoder ignores, so a
// root shared with one stays readable to it (its GC keeps what these entries hold).

// entrySumOpen and entrySumClose frame the sum member at the end of the JSON.
const (
	entrySumOpen  = `,"sum":"`
	entrySumClose = `"}`
	entrySumLen   = len(entrySumOpen) + 2*sha256.Size + len(entrySumClose)
)

// sealEntry adds the sum member to b, an entry's JSON object.
func sealEntry(b []byte) []byte {
	sum := sha256.Sum256(b)
	out := append(b[:len(b)-1:len(b)-1], entrySumOpen...)
	out = hex.AppendEncode(out, sum[:])
	return append(out, entrySumClose...)
}

var (
	// errDamagedEntry is decodeEntry's error for an entry whose bytes fail their sum.
	errDamagedEntry = errors.New("step entry is damaged: its bytes do not match their sum")
	// errUnsealedEntry is decodeEntry's error for an entry without a sum, an older
	// kiln's, which it decodes all the same.
	errUnsealedEntry = errors.New("step entry has no sum (an older kiln's)")
)

// decodeEntry checks a stored entry against its sum and decodes it into e.
func decodeEntry(v []byte, e *Entry) error {
	n := len(v) - entrySumLen
	if n < 1 || string(v[n:n+len(entrySumOpen)]) != entrySumOpen || string(v[len(v)-len(entrySumClose):]) != entrySumClose {
		if json.Unmarshal(v, e) != nil {
			return errDamagedEntry
		}
		return errUnsealedEntry
	}
	want, err := hex.DecodeString(string(v[n+len(entrySumOpen) : len(v)-len(entrySumClose)]))
	if err != nil {
		return errDamagedEntry
	}
	b := append(v[:n:n], '}')
	if got := sha256.Sum256(b); !bytes.Equal(got[:], want) {
		return errDamagedEntry
	}
	if json.Unmarshal(b, e) != nil {
		return errDamagedEntry
	}
	return nil
}

// encodeEntry is e as it is stored (sealEntry): its times default to now.
func encodeEntry(e *Entry) (Entry, []byte, error) {
	if e.Key == "" {
		return Entry{}, nil, fmt.Errorf("put step: empty key")
	}
	now := time.Now().UTC()
	c := *e
	if c.Created.IsZero() {
		c.Created = now
	}
	if c.Used.IsZero() {
		c.Used = now
	}
	b, err := json.Marshal(&c)
	if err != nil {
		return Entry{}, nil, fmt.Errorf("put step: %w", err)
	}
	return c, sealEntry(b), nil
}

// PutStep records e (its blob and snapshot must already be committed).
func (s *Store) PutStep(ctx context.Context, e *Entry) error {
	c, b, err := encodeEntry(e)
	if err != nil {
		return err
	}
	err = s.db.update(ctx, func(tx *bolt.Tx) error { return tx.Bucket(bucketSteps).Put([]byte(c.Key), b) })
	if err != nil {
		return fmt.Errorf("put step: %w", err)
	}
	return nil
}

// PutStepIfAbsent records e unless a usable entry for its key is recorded already, and
// returns the entry now recorded under the key: e, or the one found. The check and the
// write are one transaction, so builds racing to record one step all end up with the
// first one's result (a step that is not reproducible may give each a different one).
func (s *Store) PutStepIfAbsent(ctx context.Context, e *Entry) (*Entry, error) {
	c, b, err := encodeEntry(e)
	if err != nil {
		return nil, err
	}
	var found *Entry
	err = s.db.update(ctx, func(tx *bolt.Tx) error {
		found = nil // a retry on a fresh index after damage starts over
		bucket := tx.Bucket(bucketSteps)
		if v := bucket.Get([]byte(c.Key)); v != nil {
			prev := &Entry{}
			if decodeEntry(v, prev) == nil && s.entryUsable(prev) {
				found = prev
				return nil
			}
		}
		return bucket.Put([]byte(c.Key), b)
	})
	if err != nil {
		return nil, fmt.Errorf("put step: %w", err)
	}
	if found != nil {
		return found, nil
	}
	return &c, nil
}

// flushUsed writes buffered use times into their entries in one transaction.
// usedResolution is how stale a recorded use time may be before a hit rewrites it:
// prune works on hours and days, and a write per entry per build is not free.
const usedResolution = time.Hour

func (s *Store) flushUsed(ctx context.Context) error {
	s.usedMu.Lock()
	used := s.used
	s.used = map[string]time.Time{}
	s.usedMu.Unlock()
	if len(used) == 0 {
		return nil
	}
	err := s.db.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSteps)
		for key, t := range used {
			v := b.Get([]byte(key))
			if v == nil {
				continue // pruned meanwhile
			}
			var e Entry
			if decodeEntry(v, &e) != nil || !e.Used.Before(t.Add(-usedResolution)) {
				continue
			}
			e.Used = t
			nv, err := json.Marshal(&e)
			if err != nil {
				return err
			}
			if err := b.Put([]byte(key), sealEntry(nv)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("record cache use: %w", err)
	}
	return nil
}

// entries returns every step entry.
func (s *Store) entries(ctx context.Context) ([]*Entry, error) {
	var out []*Entry
	err := s.db.view(ctx, func(tx *bolt.Tx) error {
		out = out[:0] // a retry on a fresh index after damage starts over
		return tx.Bucket(bucketSteps).ForEach(func(k, v []byte) error {
			e := &Entry{}
			if err := decodeEntry(v, e); err != nil && !errors.Is(err, errUnsealedEntry) {
				e = &Entry{} // unreadable: keeps nothing alive, pruned as oldest
			}
			e.Key = string(k)
			out = append(out, e)
			return nil
		})
	})
	return out, err
}

func (s *Store) getString(ctx context.Context, bucket []byte, key string) ([]byte, bool) {
	var out []byte
	err := s.db.view(ctx, func(tx *bolt.Tx) error {
		out = nil // a retry on a fresh index after damage starts over
		if v := tx.Bucket(bucket).Get([]byte(key)); v != nil {
			out = append([]byte{}, v...)
		}
		return nil
	})
	return out, err == nil && out != nil
}

func (s *Store) put(ctx context.Context, bucket []byte, key string, v []byte) error {
	return s.db.update(ctx, func(tx *bolt.Tx) error { return tx.Bucket(bucket).Put([]byte(key), v) })
}

// LastInputs returns the Inputs of the most recent entry recorded under scope (the
// solver uses "stage/step position"), to explain a miss.
func (s *Store) LastInputs(ctx context.Context, scope string) ([]byte, bool) {
	return s.getString(ctx, bucketInputs, scope)
}

// SetLastInputs records inputs under scope.
func (s *Store) SetLastInputs(ctx context.Context, scope string, inputs []byte) error {
	if err := s.put(ctx, bucketInputs, scope, inputs); err != nil {
		return fmt.Errorf("record inputs of %s: %w", scope, err)
	}
	return nil
}

// GetRef returns the manifest digest a ref (e.g. "127.0.0.1:5000/busybox:latest@linux/amd64")
// resolved to when last pulled.
func (s *Store) GetRef(ctx context.Context, ref string) (string, bool) {
	v, ok := s.getString(ctx, bucketRefs, ref)
	return string(v), ok
}

// PutRef records ref → digest.
func (s *Store) PutRef(ctx context.Context, ref, digest string) error {
	if err := s.put(ctx, bucketRefs, ref, []byte(digest)); err != nil {
		return fmt.Errorf("record ref %s: %w", ref, err)
	}
	return nil
}
