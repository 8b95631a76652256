package cache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	bolt "go.etcd.io/bbolt"
)

// BlobCheck is what CheckBlobs found.
type BlobCheck struct {
	Blobs   int       // blobs read
	Bytes   int64     // bytes read
	Damaged []v1.Hash // blobs whose bytes do not hash to their name
}

// CheckBlobs reads every blob and compares its sha256 with its name. With repair a
// damaged blob is removed, so that the entries needing it miss and the next build
// makes or pulls it again.
func (s *Store) CheckBlobs(ctx context.Context, repair bool) (BlobCheck, error) {
	var c BlobCheck
	dir := s.path("blobs", "sha256")
	names, err := os.ReadDir(dir)
	if err != nil {
		return c, fmt.Errorf("check blobs: %w", err)
	}
	buf := make([]byte, 1<<20)
	for _, n := range names {
		if err := ctx.Err(); err != nil {
			return c, err
		}
		h := v1.Hash{Algorithm: "sha256", Hex: n.Name()}
		if !n.Type().IsRegular() || validHash(h) != nil {
			continue // not a blob (a temp file of an older kiln, say)
		}
		got, size, err := hashFile(filepath.Join(dir, n.Name()), buf)
		if err != nil {
			return c, fmt.Errorf("check blob %s: %w", h, err)
		}
		c.Blobs++
		c.Bytes += size
		if got == h.Hex {
			continue
		}
		c.Damaged = append(c.Damaged, h)
		if repair {
			if err := s.RemoveBlob(h); err != nil {
				return c, err
			}
		}
	}
	return c, nil
}

func hashFile(p string, buf []byte) (string, int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.CopyBuffer(h, f, buf)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// Entries returns every step entry, for checks of what they name.
func (s *Store) Entries(ctx context.Context) ([]*Entry, error) { return s.entries(ctx) }

// SnapshotChecker is the part of the snapshotter that Check needs; package snapshot's
// Snapshotter implements it.
type SnapshotChecker interface {
	Exists(id string) bool
	// TreeDiffID is the diffID of a fresh layer tar of snapshot id's tree.
	TreeDiffID(ctx context.Context, id string) (v1.Hash, error)
	Usage(ctx context.Context, id string) (int64, error)
	Remove(ctx context.Context, id string) error
}

// SnapshotDamage is a snapshot whose tree no longer makes what it must: its step's
// layer, or the tree recorded for a base image layer.
type SnapshotDamage struct {
	ID        string
	Got, Want v1.Hash // the tree's diffID, the layer's
}

// Report is what Check found (and, with repair, removed).
type Report struct {
	Blobs            BlobCheck
	BlobTime         time.Duration
	Snapshots        int   // step snapshots checked
	SnapshotBytes    int64 // their disk usage
	SnapshotTime     time.Duration
	DamagedSnapshots []SnapshotDamage
	// DamagedEntries are the keys of step entries whose bytes fail their sum
	// (sealEntry): a build drops them as it meets them.
	DamagedEntries []string
}

// Damaged is how many objects Check found damaged.
func (r Report) Damaged() int {
	return len(r.Blobs.Damaged) + len(r.DamagedSnapshots) + len(r.DamagedEntries)
}

// Check verifies blobs by digest (CheckBlobs) and step snapshots by the diffID of
// their tree against their layer's. With repair what is damaged is removed, so that
// the next build redoes it. Base image snapshots are not re-tarred: another tool wrote
// their layers, so a fresh tar of the tree need not have the same bytes; their blobs
// are checked.
func (s *Store) Check(ctx context.Context, snaps SnapshotChecker, repair bool) (Report, error) {
	var r Report
	start := time.Now()
	bc, err := s.CheckBlobs(ctx, repair)
	if err != nil {
		return r, err
	}
	r.Blobs, r.BlobTime = bc, time.Since(start)

	if r.DamagedEntries, err = s.damagedEntries(ctx); err != nil {
		return r, err
	}
	if repair {
		for _, k := range r.DamagedEntries {
			if err := s.deleteStep(ctx, k); err != nil {
				return r, err
			}
		}
	}

	start = time.Now()
	entries, err := s.Entries(ctx)
	if err != nil {
		return r, err
	}
	// What each snapshot's tree must make: a step snapshot its step's layer; a base
	// image snapshot the tree recorded when an output first checked it (trees.go).
	// A base snapshot without a record is not re-tarred: another tool wrote its
	// layer, so a fresh tar of the tree need not have its bytes; its blob is checked.
	want := map[string]v1.Hash{}
	var ids []string
	for _, e := range entries {
		if e.Layer == nil || e.Layer.Snapshot == "" {
			continue
		}
		if _, ok := want[e.Layer.Snapshot]; ok {
			continue
		}
		h, err := v1.NewHash(e.Layer.DiffID)
		if err != nil {
			continue
		}
		want[e.Layer.Snapshot] = h
		ids = append(ids, e.Layer.Snapshot)
	}
	trees, err := s.treeRecords(ctx)
	if err != nil {
		return r, fmt.Errorf("read tree records: %w", err)
	}
	for _, id := range slices.Sorted(maps.Keys(trees)) {
		if _, ok := want[id]; !ok {
			want[id] = trees[id]
			ids = append(ids, id)
		}
	}
	for _, id := range ids {
		if !snaps.Exists(id) {
			continue
		}
		got, err := snaps.TreeDiffID(ctx, id)
		if err != nil {
			return r, err
		}
		r.Snapshots++
		if u, err := snaps.Usage(ctx, id); err == nil {
			r.SnapshotBytes += u
		}
		if got == want[id] {
			continue
		}
		r.DamagedSnapshots = append(r.DamagedSnapshots, SnapshotDamage{ID: id, Got: got, Want: want[id]})
		if repair {
			if err := snaps.Remove(ctx, id); err != nil {
				return r, err
			}
		}
	}
	r.SnapshotTime = time.Since(start)
	return r, nil
}

// damagedEntries lists the step entries that fail their sum or do not parse (not
// those of an older kiln, without a sum).
func (s *Store) damagedEntries(ctx context.Context) ([]string, error) {
	var keys []string
	err := s.db.view(ctx, func(tx *bolt.Tx) error {
		keys = keys[:0] // a retry on a fresh index after damage starts over
		return tx.Bucket(bucketSteps).ForEach(func(k, v []byte) error {
			if errors.Is(decodeEntry(v, &Entry{}), errDamagedEntry) {
				keys = append(keys, string(k))
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("check step entries: %w", err)
	}
	return keys, nil
}
