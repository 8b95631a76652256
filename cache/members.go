package cache

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"slices"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	bolt "go.etcd.io/bbolt"

	"github.com/kiln-build/kiln/layers"
)

// The member index: where each gzip member of the store's layer blobs lies (package
// layers cuts gzip layers into members at file boundaries), so that the next layer
// holding the same bytes copies them instead of compressing again. A record is
// advice: its blob may be gone or damaged, and then the member is a miss, and the
// layer writer compresses it, which always gives the same bytes.

// memberRecord is where a member's compressed bytes lie.
type memberRecord struct {
	Blob   string         `json:"blob"` // the blob's digest
	Offset int64          `json:"offset"`
	Size   int64          `json:"size"`
	Sum    layers.PartSum `json:"sum"` // digest of the compressed bytes
}

// memberIndex is the members bucket, read into memory on first use (one
// transaction for a whole layer) and kept current by PutMembers. Safe for
// concurrent use.
type memberIndex struct {
	mu     sync.Mutex
	loaded bool
	recs   map[string]memberRecord
}

// maxMemberSize bounds what a record may make the store read: layers never writes a
// member bigger than a couple of MiB, so a bigger record is damage.
const maxMemberSize = 16 << 20

func (s *Store) memberRecord(key string) (memberRecord, bool) {
	m := &s.members
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.loaded {
		m.loaded = true
		m.recs = map[string]memberRecord{}
		// An index that cannot be read is no member at all: always correct.
		_ = s.db.view(context.Background(), func(tx *bolt.Tx) error {
			clear(m.recs)
			return tx.Bucket(bucketMembers).ForEach(func(k, v []byte) error {
				var r memberRecord
				if json.Unmarshal(v, &r) == nil {
					m.recs[string(k)] = r
				}
				return nil
			})
		})
	}
	r, ok := m.recs[key]
	return r, ok
}

// Member implements layers.MemberSource: the compressed bytes of member key, read
// from the blob its record names and verified against the record's sum.
func (s *Store) Member(key string, buf []byte) ([]byte, layers.PartSum, bool) {
	r, ok := s.memberRecord(key)
	if !ok || r.Size <= 0 || r.Size > maxMemberSize || r.Offset < 0 {
		return nil, layers.PartSum{}, false
	}
	h, err := v1.NewHash(r.Blob)
	if err != nil {
		return nil, layers.PartSum{}, false
	}
	p := s.BlobPath(h)
	if p == "" {
		return nil, layers.PartSum{}, false
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, layers.PartSum{}, false
	}
	defer f.Close()
	b := buf[:0]
	if int64(cap(b)) < r.Size {
		b = make([]byte, r.Size)
	}
	b = b[:r.Size]
	if _, err := f.ReadAt(b, r.Offset); err != nil {
		return nil, layers.PartSum{}, false
	}
	if layers.SumPart(b) != r.Sum {
		return nil, layers.PartSum{}, false
	}
	return b, r.Sum, true
}

// PutMembers records the members of blob (committed already), and the blob's part
// table (parts.go), in one transaction.
func (s *Store) PutMembers(ctx context.Context, blob v1.Hash, members []layers.Member) error {
	if len(members) == 0 {
		return nil
	}
	recs := make(map[string]memberRecord, len(members))
	for _, m := range members {
		recs[m.Key] = memberRecord{Blob: blob.String(), Offset: m.Offset, Size: m.Size, Sum: m.Sum}
	}
	err := s.db.update(ctx, func(tx *bolt.Tx) error {
		if err := putParts(tx, blob, members); err != nil {
			return err
		}
		b := tx.Bucket(bucketMembers)
		for _, k := range slices.Sorted(maps.Keys(recs)) { // bbolt puts: in key order (hashcache.go)
			v, err := json.Marshal(recs[k])
			if err != nil {
				return err
			}
			if err := b.Put([]byte(k), v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("record the gzip members of blob %s: %w", blob, err)
	}
	m := &s.members
	m.mu.Lock()
	if m.loaded {
		for k, r := range recs {
			m.recs[k] = r
		}
	}
	m.mu.Unlock()
	return nil
}

// dropStaleMembers removes the member records and part tables of blobs the store no
// longer holds: after a prune.
func (s *Store) dropStaleMembers(ctx context.Context) error {
	err := s.db.update(ctx, func(tx *bolt.Tx) error {
		held := map[string]bool{} // blob digest: still in the store
		blobHeld := func(d string) bool {
			ok, seen := held[d]
			if !seen {
				h, err := v1.NewHash(d)
				ok = err == nil && s.HasBlob(h)
				held[d] = ok
			}
			return ok
		}
		err := deleteWhere(tx.Bucket(bucketMembers), func(_, v []byte) bool {
			var r memberRecord
			return json.Unmarshal(v, &r) != nil || !blobHeld(r.Blob)
		})
		if err != nil {
			return err
		}
		// The part tables of blobs gone.
		return deleteWhere(tx.Bucket(bucketBlobParts), func(k, _ []byte) bool { return !blobHeld(string(k)) })
	})
	if err != nil {
		return fmt.Errorf("prune member records: %w", err)
	}
	m := &s.members
	m.mu.Lock()
	m.loaded = false
	m.mu.Unlock()
	return nil
}

// deleteWhere deletes the keys of b for which stale is true, after the walk that
// finds them: a bbolt cursor does not survive a delete.
func deleteWhere(b *bolt.Bucket, stale func(k, v []byte) bool) error {
	var keys [][]byte
	err := b.ForEach(func(k, v []byte) error {
		if stale(k, v) {
			keys = append(keys, append([]byte(nil), k...))
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range keys {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}
