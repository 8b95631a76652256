package cache

import (
	"context"
	"fmt"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	bolt "go.etcd.io/bbolt"
)

// Tree records: the diffID of a fresh layer tar (layers.WriteUpperDiff) of a snapshot
// that no step committed, a base image layer unpacked from a blob another tool wrote,
// so that its tree can be checked before an output copies it. A step snapshot needs
// none: its tree makes its step's own layer. The record is found once from the
// verified blob and holds for as long as the id names that layer, so it outlives the
// snapshot. Records live in the refs bucket under treeRecordPrefix.
const treeRecordPrefix = "tree:"

// TreeDiffID returns the recorded tree diffID of snapshot id.
func (s *Store) TreeDiffID(ctx context.Context, id string) (v1.Hash, bool) {
	v, ok := s.getString(ctx, bucketRefs, treeRecordPrefix+id)
	if !ok {
		return v1.Hash{}, false
	}
	h, err := v1.NewHash(string(v))
	return h, err == nil
}

// PutTreeDiffID records h as snapshot id's tree diffID.
func (s *Store) PutTreeDiffID(ctx context.Context, id string, h v1.Hash) error {
	if err := s.put(ctx, bucketRefs, treeRecordPrefix+id, []byte(h.String())); err != nil {
		return fmt.Errorf("record the tree of snapshot %s: %w", id, err)
	}
	return nil
}

// treeRecords returns every tree record, by snapshot id.
func (s *Store) treeRecords(ctx context.Context) (map[string]v1.Hash, error) {
	out := map[string]v1.Hash{}
	err := s.db.view(ctx, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketRefs).ForEach(func(k, v []byte) error {
			if !isTreeRecord(k) {
				return nil
			}
			if h, err := v1.NewHash(string(v)); err == nil {
				out[strings.TrimPrefix(string(k), treeRecordPrefix)] = h
			}
			return nil
		})
	})
	return out, err
}

// isTreeRecord says whether a refs key is a tree record rather than an image ref.
func isTreeRecord(key []byte) bool { return strings.HasPrefix(string(key), treeRecordPrefix) }

// StepLayers maps each snapshot a step committed to that step's layer.
func (s *Store) StepLayers(ctx context.Context) (map[string]Layer, error) {
	entries, err := s.entries(ctx)
	if err != nil {
		return nil, fmt.Errorf("read step entries: %w", err)
	}
	out := map[string]Layer{}
	for _, e := range entries {
		if e.Layer != nil && e.Layer.Snapshot != "" {
			out[e.Layer.Snapshot] = *e.Layer
		}
	}
	return out, nil
}
