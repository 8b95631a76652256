package remote

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/kiln-build/kiln/image"
	"github.com/kiln-build/kiln/layers"
)

// Cache mounts in a remote cache (--cache-to ...,cache-mounts=true): the dir of each
// RUN --mount=type=cache that an executed step used is exported as a tar blob beside
// the step layers, named by the sha256 of the mount's identity (its id or target, and
// its seed or ownership: what the local store names its dir by). A runner that
// executes a step with that mount, and whose dir for it is empty, gets the content
// unpacked into it first (the safe unpack of layers, so a hostile tar cannot write
// outside the dir). A step that is a cache hit never touches its mounts: their
// content is not downloaded, and an export carries the remote's blob for them over
// unchanged. The content never enters a step's key or layer.

// mountRecord is one cache mount of a remote cache.
type mountRecord struct {
	layer  v1.Descriptor
	diffID v1.Hash
}

// mountID is the name of the cache mount of identity in a remote cache.
func mountID(identity string) string {
	sum := sha256.Sum256([]byte(identity))
	return hex.EncodeToString(sum[:])
}

// loadMounts reads the cache mounts of cfg into src: each must name one of the
// cache's layers and carry a diff ID; others are dropped.
func loadMounts(src *source, cfg *cacheConfig) {
	for _, m := range cfg.Kiln.Mounts {
		if len(m.ID) != 64 || m.LayerIndex < 0 || m.LayerIndex >= len(cfg.Layers) {
			continue
		}
		h, err := v1.NewHash(cfg.Layers[m.LayerIndex].Blob)
		if err != nil {
			continue
		}
		d, ok := src.layers[h]
		diffID, err := v1.NewHash(m.DiffID)
		if !ok || err != nil {
			continue
		}
		src.mounts[m.ID] = mountRecord{layer: d, diffID: diffID}
	}
}

// RestoreCacheMount implements solver.CacheMountRestorer: before an executed step
// uses the cache mount of identity, an empty local dir of it is filled from the
// first remote cache that has it. It also marks the mount for export.
func (s *Store) RestoreCacheMount(ctx context.Context, identity string) error {
	s.mu.Lock()
	u, ok := s.usedMounts[identity]
	if !ok {
		u = &mountUse{id: mountID(identity), done: make(chan struct{})}
		s.usedMounts[identity] = u
	}
	s.mu.Unlock()
	if ok { // another step restores it, or did: wait for its content
		select {
		case <-u.done:
			return u.err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	u.err = s.restoreMount(ctx, identity, u.id)
	close(u.done)
	return u.err
}

// mountUse is a cache mount an executed step used; done closes when its restore
// (if any) is over, with err.
type mountUse struct {
	id   string
	done chan struct{}
	err  error
}

func (s *Store) restoreMount(ctx context.Context, identity, id string) error {
	dir, err := s.Store.CacheMountDir(ctx, identity)
	if err != nil {
		return err
	}
	if ents, err := os.ReadDir(dir); err != nil || len(ents) > 0 {
		return err // the local content is newer than any remote's
	}
	for _, src := range s.sources {
		m, ok := src.mounts[id]
		if !ok {
			continue
		}
		start := time.Now()
		if err := s.ensure(src, m.layer.Digest, m.layer.Size); err != nil {
			return fmt.Errorf("cache mount from %s: %w", src.spec, err)
		}
		l := image.StoreLayer(s.Store, m.layer.Digest, m.diffID, m.layer.Size, m.layer.MediaType)
		rc, err := l.Uncompressed()
		if err != nil {
			return fmt.Errorf("cache mount from %s: %w", src.spec, err)
		}
		defer rc.Close()
		if err := layers.Unpack(ctx, rc, dir, layers.UnpackOptions{Whiteouts: layers.NoWhiteouts, KeepOwners: true}); err != nil {
			return fmt.Errorf("cache mount from %s: unpack %s: %w", src.spec, short(m.layer.Digest), err)
		}
		if _, err := io.Copy(io.Discard, rc); err != nil {
			return fmt.Errorf("cache mount from %s: %w", src.spec, err)
		}
		s.note(fmt.Sprintf("cache mount %.12s restored from %s (%d bytes) in %.1fs", id, src.spec, m.layer.Size, time.Since(start).Seconds()))
		return nil
	}
	return nil
}

// exportMounts adds the cache mounts to an export: the tar of each one executed
// steps used, and the remote's blob of each other one a --cache-from carries.
func (s *Store) exportMounts(ctx context.Context, add func(l v1.Layer, d v1.Descriptor) int) ([]kilnMount, error) {
	s.mu.Lock()
	used := map[string]string{}
	for identity, u := range s.usedMounts {
		used[identity] = u.id
	}
	s.mu.Unlock()
	identities := make([]string, 0, len(used))
	for identity := range used {
		identities = append(identities, identity)
	}
	slices.Sort(identities)
	var out []kilnMount
	done := map[string]bool{}
	for _, identity := range identities {
		dir, err := s.Store.CacheMountDir(ctx, identity)
		if err != nil {
			return nil, err
		}
		blob, err := s.tarMount(ctx, dir)
		if err != nil {
			return nil, fmt.Errorf("cache mount %.12s: %w", used[identity], err)
		}
		l := image.StoreLayer(s.Store, blob.Digest, blob.DiffID, blob.Size, blob.MediaType)
		i := add(l, v1.Descriptor{MediaType: blob.MediaType, Digest: blob.Digest, Size: blob.Size,
			Annotations: map[string]string{annotationDiffID: blob.DiffID.String()}})
		out = append(out, kilnMount{ID: used[identity], LayerIndex: i, DiffID: blob.DiffID.String()})
		done[used[identity]] = true
	}
	for _, src := range s.sources {
		ids := make([]string, 0, len(src.mounts))
		for id := range src.mounts {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		for _, id := range ids {
			if done[id] {
				continue
			}
			done[id] = true
			m := src.mounts[id]
			lz := &lazyLayer{s: s, src: src, digest: m.layer.Digest, diffID: m.diffID, size: m.layer.Size, mediaType: m.layer.MediaType}
			d := m.layer
			d.Annotations = map[string]string{annotationDiffID: m.diffID.String()}
			i := add(image.MountableFrom(lz, src.be.mountSource()), d)
			out = append(out, kilnMount{ID: id, LayerIndex: i, DiffID: m.diffID.String()})
		}
	}
	return out, nil
}

// tarMount writes the tree of dir as a gzip layer blob in the local store.
func (s *Store) tarMount(ctx context.Context, dir string) (layers.Blob, error) {
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(layers.WriteTree(ctx, dir, pw, layers.WriteOptions{Compression: layers.Uncompressed}))
	}()
	defer pr.Close()
	bw, err := s.Store.NewBlobWriter()
	if err != nil {
		return layers.Blob{}, err
	}
	defer bw.Abort()
	blob, err := layers.Rewrite(ctx, pr, bw, layers.WriteOptions{Compression: layers.Gzip})
	if err != nil {
		return layers.Blob{}, err
	}
	if err := bw.Commit(blob.Digest, false); err != nil {
		return layers.Blob{}, err
	}
	if blob.MediaType == "" {
		blob.MediaType = types.OCILayer
	}
	return blob, nil
}
