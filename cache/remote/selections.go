package remote

import (
	"maps"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// A COPY --from (or a bind or cache mount's seed) is keyed by the digest of what it
// selects in another stage or image (BuildKit keys it so too). A warm root memoises
// that digest by the tree's identity and the selection; an empty one would have to
// unpack the whole source stage, base image included, to hash it, even when every
// step then comes from the cache. So a remote cache carries the memos its build used
// (keys beginning with StoreOptions.MemoPrefix), and a runner looks them up there
// when its own store has none. A memo is only a key for a cache lookup: a lying one
// can make a step hit an entry it should not, which a lying record can do anyway.

// hashCache is the local digest memo with the remote caches' memos behind it.
type hashCache struct{ s *Store }

func (h hashCache) Get(key string) (string, bool) {
	if d, ok := h.s.Store.HashCache().Get(key); ok {
		h.s.usedMemo(key, d)
		return d, true
	}
	return h.fromSources(key)
}

// fromSources looks a memo the local store lacks up in the remote caches.
func (h hashCache) fromSources(key string) (string, bool) {
	if !h.s.shared(key) {
		return "", false
	}
	for _, src := range h.s.sources {
		if d, ok := src.memos[key]; ok {
			h.s.usedMemo(key, d)
			return d, true
		}
	}
	return "", false
}

func (h hashCache) GetMany(keys []string) []string {
	out := h.s.Store.HashCache().GetMany(keys)
	for i, k := range keys {
		if out[i] != "" {
			h.s.usedMemo(k, out[i])
		} else {
			out[i], _ = h.fromSources(k)
		}
	}
	return out
}

func (h hashCache) Put(key, digest string) {
	h.s.Store.HashCache().Put(key, digest)
	h.s.usedMemo(key, digest)
}

// HashCache implements solver.Store (see hashCache).
func (s *Store) HashCache() interface {
	Get(key string) (string, bool)
	GetMany(keys []string) []string
	Put(key, digest string)
} {
	return hashCache{s}
}

func (s *Store) shared(key string) bool {
	return s.memoPrefix != "" && strings.HasPrefix(key, s.memoPrefix)
}

// usedMemo records a memo this build used, for export.
func (s *Store) usedMemo(key, digest string) {
	if !s.shared(key) {
		return
	}
	s.mu.Lock()
	s.memos[key] = digest
	s.mu.Unlock()
}

// exportMemos are the memos to write: the ones this build used.
func (s *Store) exportMemos() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.memos) == 0 {
		return nil
	}
	return maps.Clone(s.memos)
}

// loadMemos keeps the memos of cfg that are of the shared kind and name a digest.
func (s *Store) loadMemos(src *source, memos map[string]string) {
	for k, d := range memos {
		if _, err := v1.NewHash(d); err == nil && s.shared(k) {
			src.memos[k] = d
		}
	}
}
