package cache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

// CacheMountDir returns the dir behind RUN --mount=type=cache,id=id, creating it. The
// id is user input, so the dir is named by its sha256 and can never escape mounts/.
func (s *Store) CacheMountDir(ctx context.Context, id string) (string, error) {
	sum := sha256.Sum256([]byte(id))
	dir := s.path("mounts", hex.EncodeToString(sum[:]))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("cache mount %q: %w", id, err)
	}
	return dir, nil
}

// DiskUsage measures the store.
func (s *Store) DiskUsage(ctx context.Context) (Usage, error) {
	var u Usage
	for _, d := range []struct {
		dir string
		n   *int64
	}{{s.path("blobs"), &u.Blobs}, {s.SnapshotsDir(), &u.Snapshots}, {s.path("mounts"), &u.CacheMounts}} {
		n, err := diskUsage(ctx, d.dir)
		if err != nil {
			return Usage{}, fmt.Errorf("disk usage of %s: %w", d.dir, err)
		}
		*d.n = n
	}
	es, err := s.entries(ctx)
	if err != nil {
		return Usage{}, fmt.Errorf("disk usage: %w", err)
	}
	u.Entries = len(es)
	return u, nil
}

// object names a blob ("b:" + hex) or snapshot ("s:" + id) an entry keeps alive.
func objectsOf(e *Entry) []string {
	var out []string
	blob := func(d string) {
		if h, err := v1.NewHash(d); err == nil && validHash(h) == nil {
			out = append(out, "b:"+h.Hex)
		}
	}
	if e.Layer != nil {
		blob(e.Layer.Digest)
		if e.Layer.Snapshot != "" {
			out = append(out, "s:"+e.Layer.Snapshot)
		}
	}
	for _, d := range e.KeepBlobs {
		blob(d)
	}
	for _, id := range e.KeepSnapshots {
		out = append(out, "s:"+id)
	}
	return out
}

// Prune removes step entries, blobs and snapshots nothing references any more.
//
// It takes root/gc.lock exclusively, so it waits until every other process that has
// the store open (each holds the lock shared) has closed it: a build's blobs and
// snapshots that no entry names yet are never collected under it. Entries go first
// (one transaction), then unreferenced files, so a kill part-way leaves only garbage
// that the next Prune collects.
func (s *Store) Prune(ctx context.Context, opts PruneOptions) (freed int64, err error) {
	lctx, cancel := ctx, context.CancelFunc(func() {})
	if opts.LockWait > 0 {
		lctx, cancel = context.WithTimeout(ctx, opts.LockWait)
	}
	err = flockWait(lctx, s.gc, unix.LOCK_EX)
	cancel()
	if err != nil {
		if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			return 0, ErrBusy
		}
		return 0, fmt.Errorf("prune: wait for running builds: %w", err)
	}
	defer flockWait(context.WithoutCancel(ctx), s.gc, unix.LOCK_SH)
	if err := s.Flush(ctx); err != nil {
		return 0, err
	}
	all, err := s.entries(ctx)
	if err != nil {
		return 0, fmt.Errorf("prune: %w", err)
	}
	sizes := map[string]int64{}
	sizeOf := func(obj string) int64 {
		if n, ok := sizes[obj]; ok {
			return n
		}
		var n int64
		if strings.HasPrefix(obj, "b:") {
			if fi, err := os.Stat(s.path("blobs", "sha256", obj[2:])); err == nil {
				n = fi.Size()
			}
		} else if s.snapshotExists(obj[2:]) {
			n, _ = diskUsage(ctx, filepath.Join(s.SnapshotsDir(), "committed", obj[2:]))
		}
		sizes[obj] = n
		return n
	}

	drop := map[string]bool{}
	refs := map[string]int{}
	var total int64
	cutoff := time.Now().Add(-opts.Until)
	for _, e := range all {
		if opts.All || (opts.Until > 0 && e.Used.Before(cutoff)) {
			drop[e.Key] = true
			continue
		}
		for _, o := range objectsOf(e) {
			if refs[o] == 0 {
				total += sizeOf(o)
			}
			refs[o]++
		}
	}
	if opts.KeepStorage > 0 && total > opts.KeepStorage {
		// Least recently used first; an object's bytes count once, when its last
		// referrer goes.
		sort.SliceStable(all, func(i, j int) bool { return all[i].Used.Before(all[j].Used) })
		for _, e := range all {
			if total <= opts.KeepStorage {
				break
			}
			if drop[e.Key] {
				continue
			}
			drop[e.Key] = true
			for _, o := range objectsOf(e) {
				if refs[o]--; refs[o] == 0 {
					total -= sizeOf(o)
				}
			}
		}
	}
	err = s.db.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSteps)
		for k := range drop {
			if err := b.Delete([]byte(k)); err != nil {
				return err
			}
		}
		if !opts.All {
			return nil
		}
		for _, name := range [][]byte{bucketRefs, bucketInputs, bucketHashes, bucketMembers, bucketBlobParts} {
			if err := tx.DeleteBucket(name); err != nil {
				return err
			}
			if _, err := tx.CreateBucket(name); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("prune entries: %w", err)
	}
	if opts.All {
		s.hashes.mu.Lock()
		clear(s.hashes.pending)
		s.hashes.mu.Unlock()
	} else if err := s.keepRefs(ctx, refs); err != nil {
		return 0, err
	}
	n, err := s.removeUnreferenced(ctx, opts, refs)
	freed += n
	if err != nil {
		return freed, err
	}
	if err := s.dropStaleMembers(ctx); err != nil {
		return freed, err
	}
	if opts.All {
		n, err := removeChildren(ctx, s.path("mounts"))
		freed += n
		if err != nil {
			return freed, err
		}
	}
	return freed, nil
}

// keepRefs marks the manifests that refs name as live: a pulled base stays resolvable.
func (s *Store) keepRefs(ctx context.Context, refs map[string]int) error {
	return s.db.view(ctx, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketRefs).ForEach(func(k, v []byte) error {
			if isTreeRecord(k) {
				return nil // names no blob
			}
			if h, err := v1.NewHash(string(v)); err == nil {
				refs["b:"+h.Hex]++
			}
			return nil
		})
	})
}

func (s *Store) removeUnreferenced(ctx context.Context, opts PruneOptions, refs map[string]int) (int64, error) {
	var freed int64
	blobDir := s.path("blobs", "sha256")
	blobs, err := os.ReadDir(blobDir)
	if err != nil {
		return 0, fmt.Errorf("prune blobs: %w", err)
	}
	for _, b := range blobs {
		if refs["b:"+b.Name()] > 0 {
			continue
		}
		if err := ctx.Err(); err != nil {
			return freed, err
		}
		fi, err := b.Info()
		if err != nil {
			continue
		}
		if err := os.Remove(filepath.Join(blobDir, b.Name())); err != nil {
			return freed, fmt.Errorf("prune blob %s: %w", b.Name(), err)
		}
		freed += fi.Size()
	}
	if opts.ListSnapshots == nil || opts.RemoveSnapshot == nil {
		return freed, nil
	}
	ids, err := opts.ListSnapshots()
	if err != nil {
		return freed, fmt.Errorf("prune snapshots: %w", err)
	}
	for _, id := range ids {
		if refs["s:"+id] > 0 {
			continue
		}
		n, _ := diskUsage(ctx, filepath.Join(s.SnapshotsDir(), "committed", id))
		if err := opts.RemoveSnapshot(ctx, id); err != nil {
			return freed, fmt.Errorf("prune snapshot %s: %w", id, err)
		}
		freed += n
	}
	return freed, nil
}

func removeChildren(ctx context.Context, dir string) (int64, error) {
	before, err := diskUsage(ctx, dir)
	if err != nil {
		return 0, err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return 0, fmt.Errorf("prune cache mount: %w", err)
		}
	}
	after, _ := diskUsage(ctx, dir)
	return before - after, nil
}
