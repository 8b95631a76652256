package cache

import (
	"context"
	"fmt"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// The hash cache answers from what is buffered and from the index alike, writes a
// batch to the index once flushAt Puts are buffered (a big cold context never holds
// them all), and what it wrote is there after a reopen.
func TestHashCacheBatches(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	s := openStore(t, root)
	hc := s.HashCache()
	n := flushAt + flushAt/2
	keys := make([]string, n)
	for i := range n {
		keys[i] = fmt.Sprintf("buildctx/v1:%d:/ctx/f%06d", i, i)
		hc.Put(keys[i], fmt.Sprintf("sha256:%064d", i))
	}
	// One batch reached the index already (written beside the Puts: wait for
	// that write to end); the rest is buffered.
	hc.Put(keys[0], fmt.Sprintf("sha256:%064d", 0)) // a Put while it runs starts none
	s.hashes.mu.Lock()
	done := s.hashes.writing
	s.hashes.mu.Unlock()
	if done != nil {
		<-done
	}
	var inIndex int
	if err := s.db.view(ctx, func(tx *bolt.Tx) error {
		inIndex = tx.Bucket(bucketHashes).Stats().KeyN
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if inIndex < flushAt || inIndex >= n {
		t.Fatalf("%d of %d Puts in the index before Flush, want one batch (%d)", inIndex, n, flushAt)
	}
	check := func(hc interface{ GetMany([]string) []string }, when string) {
		t.Helper()
		ask := append([]string{"unknown"}, keys...)
		got := hc.GetMany(ask)
		if got[0] != "" {
			t.Fatalf("%s: unknown key answered %q", when, got[0])
		}
		for i := range n {
			if want := fmt.Sprintf("sha256:%064d", i); got[i+1] != want {
				t.Fatalf("%s: key %d = %q, want %q", when, i, got[i+1], want)
			}
		}
	}
	check(hc, "buffered")
	if d, ok := hc.Get(keys[n-1]); !ok || d != fmt.Sprintf("sha256:%064d", n-1) {
		t.Fatalf("Get of a buffered key = %q %v", d, ok)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := openStore(t, root)
	check(s2.HashCache(), "reopened")
	if d, ok := s2.HashCache().Get("unknown"); ok {
		t.Fatalf("Get of an unknown key = %q", d)
	}
}
