package cache

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	bolt "go.etcd.io/bbolt"

	"github.com/kiln-build/kiln/layers"
)

// Part tables: for a blob kiln wrote in pieces (a gzip layer cut into members by
// package layers), the size and sha256 of each consecutive piece, recorded from the
// same bytes, in the same pass, that gave the blob its digest. A blob with a table
// is checked as it leaves the store a part at a time, on every core (package image),
// where one sha256 of the whole runs on one core: W6's 1.6 GB layer takes 1.4 s of
// sha256 on this machine's kind, most of its warm rebuild.
//
// A table is trusted as the rest of the index is, and checked for what damage could
// do to it: one that does not decode, or whose parts do not add up to the blob's
// size, is no table (the blob is hashed whole); one whose sums do not match the
// bytes marks the blob damaged, which costs its rebuild, never a wrong byte.

// BlobPart is one consecutive piece of a blob: its length and the sha256 of its bytes.
type BlobPart struct {
	Size int64
	Sum  [sha256.Size]byte
}

// partsVersion starts an encoded table: another encoding is no table.
const partsVersion = 1

// encodeParts is the table of a blob made of members, which must lie end to end from
// the blob's first byte; false when they do not (no table is kept).
func encodeParts(members []layers.Member) ([]byte, bool) {
	out := make([]byte, 1, 1+len(members)*(binary.MaxVarintLen64+sha256.Size))
	out[0] = partsVersion
	var at int64
	for _, m := range members {
		sum, err := hex.DecodeString(m.Sum.Hex)
		if m.Offset != at || m.Size <= 0 || m.Sum.Algorithm != "sha256" || err != nil || len(sum) != sha256.Size {
			return nil, false
		}
		out = binary.AppendUvarint(out, uint64(m.Size))
		out = append(out, sum...)
		at += m.Size
	}
	return out, len(members) > 0
}

// decodeParts reads what encodeParts wrote; false for anything else.
func decodeParts(b []byte) ([]BlobPart, bool) {
	if len(b) < 1 || b[0] != partsVersion {
		return nil, false
	}
	b = b[1:]
	var parts []BlobPart
	for len(b) > 0 {
		size, n := binary.Uvarint(b)
		if n <= 0 || size == 0 || size > maxMemberSize || len(b) < n+sha256.Size {
			return nil, false
		}
		p := BlobPart{Size: int64(size)}
		copy(p.Sum[:], b[n:n+sha256.Size])
		parts = append(parts, p)
		b = b[n+sha256.Size:]
	}
	return parts, len(parts) > 0
}

// putParts records blob's part table in tx, when its members make one.
func putParts(tx *bolt.Tx, blob v1.Hash, members []layers.Member) error {
	v, ok := encodeParts(members)
	if !ok {
		return nil
	}
	return tx.Bucket(bucketBlobParts).Put([]byte(blob.String()), v)
}

// BlobParts returns the part table of blob h, false when the store has none. A
// table whose parts do not add up to the blob's size is the caller's to refuse.
func (s *Store) BlobParts(ctx context.Context, h v1.Hash) ([]BlobPart, bool) {
	var parts []BlobPart
	var ok bool
	// An index that cannot be read is no table: the blob is hashed whole.
	_ = s.db.view(ctx, func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketBlobParts).Get([]byte(h.String())); v != nil {
			parts, ok = decodeParts(v)
		}
		return nil
	})
	return parts, ok
}
