package cache

import (
	"context"
	"encoding/binary"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	bolt "go.etcd.io/bbolt"

	"github.com/kiln-build/kiln/layers"
)

// Part tables: for a blob kiln wrote in pieces (a gzip layer cut into members by
// package layers), the size and digest (BLAKE3, layers.PartSum) of each consecutive
// piece, recorded from the same bytes, in the same pass, that gave the blob its
// digest. A blob with a table is checked as it leaves the store a part at a time,
// on every core (package image), where one sha256 of the whole runs on one core:
// W6's 1.6 GB layer takes 1.4 s of sha256 on this machine's kind, most of its warm
// rebuild.
//
// A table is trusted as the rest of the index is, and checked for what damage could
// do to it: one that does not decode, or whose parts do not add up to the blob's
// size, is no table (the blob is hashed whole); one whose sums do not match the
// bytes marks the blob damaged, which costs its rebuild, never a wrong byte.

// BlobPart is one consecutive piece of a blob: its length and the digest of its
// bytes, BLAKE3 (layers.PartSum) unless SHA256 says the table is of the first format.
type BlobPart struct {
	Size   int64
	Sum    [32]byte
	SHA256 bool
}

// Table formats: the version byte that starts an encoded table says which digest
// its sums are. Version 1 (sha256) is still read, so the blobs of an older store
// keep their tables; another encoding is no table.
const (
	partsSHA256 = 1
	partsBLAKE3 = 2
)

// encodeParts is the table of a blob made of members, which must lie end to end from
// the blob's first byte; false when they do not (no table is kept).
func encodeParts(members []layers.Member) ([]byte, bool) {
	out := make([]byte, 1, 1+len(members)*(binary.MaxVarintLen64+len(layers.PartSum{})))
	out[0] = partsBLAKE3
	var at int64
	for _, m := range members {
		if m.Offset != at || m.Size <= 0 {
			return nil, false
		}
		out = binary.AppendUvarint(out, uint64(m.Size))
		out = append(out, m.Sum[:]...)
		at += m.Size
	}
	return out, len(members) > 0
}

// decodeParts reads what encodeParts wrote; false for anything else.
func decodeParts(b []byte) ([]BlobPart, bool) {
	if len(b) < 1 || (b[0] != partsSHA256 && b[0] != partsBLAKE3) {
		return nil, false
	}
	isSHA256 := b[0] == partsSHA256
	b = b[1:]
	var parts []BlobPart
	for len(b) > 0 {
		size, n := binary.Uvarint(b)
		if n <= 0 || size == 0 || size > maxMemberSize || len(b) < n+len(BlobPart{}.Sum) {
			return nil, false
		}
		p := BlobPart{Size: int64(size), SHA256: isSHA256}
		copy(p.Sum[:], b[n:n+len(p.Sum)])
		parts = append(parts, p)
		b = b[n+len(p.Sum):]
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
