package cache

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

func noSnapshots() ([]string, error)                { return nil, nil }
func removeNone(_ context.Context, id string) error { return fmt.Errorf("no snapshot %s", id) }

func entryCount(t *testing.T, s *Store) int {
	t.Helper()
	u, err := s.DiskUsage(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return u.Entries
}

// LockWait bounds only the wait for the GC lock: a prune that got the lock at once
// finishes however long it takes (it once shared a 100 ms deadline with the wait, so
// automatic GC did nothing on a large store), and one that cannot get it is ErrBusy.
func TestPruneLockWait(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	s := openStore(t, root)
	for i := range 3 {
		if err := putLayerEntry(ctx, s, fmt.Sprint("k", i)); err != nil {
			t.Fatal(err)
		}
	}
	other := openStore(t, root) // a build running on the same root
	_, err := s.Prune(ctx, PruneOptions{All: true, LockWait: 20 * time.Millisecond, ListSnapshots: noSnapshots, RemoveSnapshot: removeNone})
	if !errors.Is(err, ErrBusy) {
		t.Fatalf("prune beside an open store: %v, want ErrBusy", err)
	}
	if n := entryCount(t, s); n != 3 {
		t.Fatalf("a busy prune removed entries: %d left", n)
	}
	other.Close()
	if _, err := s.Prune(ctx, PruneOptions{All: true, LockWait: time.Nanosecond, ListSnapshots: noSnapshots, RemoveSnapshot: removeNone}); err != nil {
		t.Fatalf("prune with the lock free: %v", err)
	}
	if n := entryCount(t, s); n != 0 {
		t.Fatalf("prune left %d entries", n)
	}
}

// AutoGC trims a store over its cap, at most once per interval, and says nothing
// when another build holds the store.
func TestAutoGC(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	s := openStore(t, root)
	var warnings []string
	opts := AutoGCOptions{KeepStorage: 1, ListSnapshots: noSnapshots, RemoveSnapshot: removeNone,
		Warn: func(m string) { warnings = append(warnings, m) }}
	put := func(key string) {
		if err := putLayerEntry(ctx, s, key); err != nil {
			t.Fatal(err)
		}
	}

	put("a")
	s.AutoGC(ctx, opts)
	if n := entryCount(t, s); n != 1 || len(warnings) > 0 {
		t.Fatalf("GC within the interval from the store's creation: %d entries, warnings %q", n, warnings)
	}
	os.Remove(s.path("gc.stamp"))
	other := openStore(t, root)
	s.AutoGC(ctx, opts)
	if n := entryCount(t, s); n != 1 || len(warnings) > 0 {
		t.Fatalf("GC beside another build: %d entries, warnings %q", n, warnings)
	}
	other.Close()
	os.Remove(s.path("gc.stamp"))
	s.AutoGC(ctx, opts)
	if n := entryCount(t, s); n != 0 {
		t.Fatalf("GC over the cap left %d entries", n)
	}
	put("b")
	s.AutoGC(ctx, opts)
	if n := entryCount(t, s); n != 1 {
		t.Fatalf("GC ran again within its interval: %d entries", n)
	}
	os.Remove(s.path("gc.stamp"))
	s.AutoGC(ctx, AutoGCOptions{KeepStorage: 1 << 40, ListSnapshots: noSnapshots, RemoveSnapshot: removeNone})
	if n := entryCount(t, s); n != 1 {
		t.Fatalf("GC under the cap removed entries: %d left", n)
	}
	if len(warnings) > 0 {
		t.Errorf("warnings: %s", strings.Join(warnings, "; "))
	}
}

func TestParsePruneFilter(t *testing.T) {
	for _, c := range []struct {
		in   string
		want time.Duration
		err  bool
	}{{"until=24h", 24 * time.Hour, false}, {"until=1m30s", 90 * time.Second, false}, {"until=soon", 0, true}, {"type=regular", 0, true}} {
		var o PruneOptions
		err := ParsePruneFilter(c.in, &o)
		if (err != nil) != c.err || o.Until != c.want {
			t.Errorf("%s: until %v, err %v", c.in, o.Until, err)
		}
	}
}
