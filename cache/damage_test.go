package cache

import (
	"bytes"
	"context"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// damagedIndexKeys is how many entries filledIndex holds: enough for several leaf and
// branch pages, so damage can land on any kind of page.
const damagedIndexKeys = 400

// filledIndex returns a meta.db that holds damagedIndexKeys step entries and refs.
func filledIndex(t *testing.T) []byte {
	t.Helper()
	b, err := buildFilledIndex(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// placeIndex makes a store at root whose meta.db is index.
func placeIndex(t *testing.T, root string, index []byte) {
	t.Helper()
	s := openStore(t, root) // the layout around meta.db
	s.Close()
	if err := os.WriteFile(filepath.Join(root, "meta.db"), index, 0o600); err != nil {
		t.Fatal(err)
	}
}

func buildFilledIndex(root string) ([]byte, error) {
	ctx := context.Background()
	s, err := Open(ctx, root)
	if err != nil {
		return nil, err
	}
	err = s.db.update(ctx, func(tx *bolt.Tx) error {
		for i := 0; i < damagedIndexKeys; i++ {
			e := &Entry{Key: fmt.Sprint("key-", i), Config: bytes.Repeat([]byte{'x'}, 200)}
			c, b, err := encodeEntry(e)
			if err != nil {
				return err
			}
			if err := tx.Bucket(bucketSteps).Put([]byte(c.Key), b); err != nil {
				return err
			}
			if err := tx.Bucket(bucketRefs).Put([]byte(fmt.Sprint("ref-", i)), []byte(refDigest)); err != nil {
				return err
			}
		}
		return nil
	})
	if cerr := s.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	return os.ReadFile(filepath.Join(root, "meta.db"))
}

const refDigest = "sha256:abababababababababababababababababababababababababababababababab"

// warnings collects what a store warns about.
type warnings struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warnings) add(m string) { w.mu.Lock(); w.msgs = append(w.msgs, m); w.mu.Unlock() }

func (w *warnings) list() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.msgs...)
}

// useDamagedIndex opens the store and reads and writes every kind of record. It fails
// the test if any call panics (the test binary dies) or returns an error, or if a hit
// is not exactly what filledIndex holds. It returns what the store warned and how many
// of filledIndex's entries and refs it still found.
func useDamagedIndex(t *testing.T, root string) (warned []string, hits int) {
	t.Helper()
	ctx := context.Background()
	var w warnings
	s, err := Open(ctx, root, WithWarnings(w.add))
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer s.Close()
	for i := 0; i < damagedIndexKeys; i++ {
		key := fmt.Sprint("key-", i)
		e, ok, err := s.GetStep(ctx, key)
		if err != nil {
			t.Fatalf("GetStep %s: %v", key, err)
		}
		if ok && (e.Key != key || !bytes.Equal(e.Config, bytes.Repeat([]byte{'x'}, 200))) {
			t.Fatalf("GetStep %s served a wrong entry: %+v", key, e)
		}
		d, refOK := s.GetRef(ctx, fmt.Sprint("ref-", i))
		if refOK && d != refDigest {
			t.Fatalf("GetRef served a wrong digest %q", d)
		}
		if ok && refOK {
			hits++
		}
	}
	if _, err := s.entries(ctx); err != nil {
		t.Fatalf("entries: %v", err)
	}
	if err := s.PutStep(ctx, &Entry{Key: "after"}); err != nil {
		t.Fatalf("write after damage: %v", err)
	}
	if _, ok, err := s.GetStep(ctx, "after"); !ok || err != nil {
		t.Fatalf("entry written after damage = %v, %v; want a hit", ok, err)
	}
	if _, err := s.Prune(ctx, PruneOptions{Until: time.Hour}); err != nil {
		t.Fatalf("prune: %v", err)
	}
	return w.list(), hits
}

// requireSetAside checks that one warning names the damaged file and that exactly one
// damaged copy was kept.
func requireSetAside(t *testing.T, root string, warned []string) {
	t.Helper()
	aside, _ := filepath.Glob(filepath.Join(root, "meta.db.damaged-*"))
	if len(aside) != 1 || len(warned) != 1 {
		t.Fatalf("damaged copies %v, warnings %q; want one of each", aside, warned)
	}
	if !strings.Contains(warned[0], aside[0]) || !strings.Contains(warned[0], "damaged") {
		t.Errorf("warning %q does not say the index was damaged and where it went (%s)", warned[0], aside[0])
	}
}

// A meta.db cut short (a truncated copy, a disk that lost its tail) made bbolt read past
// the end of its mapping: SIGBUS, a fatal error, on open or on a read. Now the store
// sets it aside, warns once, and works on a fresh index; a cut that took only free
// pages loses nothing and needs no warning.
func TestTruncatedIndex(t *testing.T) {
	index := filledIndex(t)
	for _, tenths := range []int{0, 1, 3, 5, 7, 9} {
		t.Run(fmt.Sprintf("%d0%%", tenths), func(t *testing.T) {
			root := t.TempDir()
			placeIndex(t, root, index[:len(index)*tenths/10+1])
			warned, hits := useDamagedIndex(t, root)
			if len(warned) == 0 && hits == damagedIndexKeys {
				return // only free pages were cut off: nothing lost, nothing to say
			}
			requireSetAside(t, root, warned)
		})
	}
}

// Random bytes over a page made bbolt panic ("invalid freelist page", "invalid page
// type", index out of range) in every build. Whichever page is hit, the store never
// panics or serves a wrong entry; damage it detects is set aside with one warning.
func TestScribbledIndex(t *testing.T) {
	index := filledIndex(t)
	pages := len(index) / 4096
	detected := 0
	for page := 0; page < pages; page++ {
		t.Run(fmt.Sprint("page", page), func(t *testing.T) {
			root := t.TempDir()
			scribbled := bytes.Clone(index)
			rand.New(rand.NewSource(int64(page))).Read(scribbled[page*4096 : (page+1)*4096])
			placeIndex(t, root, scribbled)
			warned, hits := useDamagedIndex(t, root)
			// bbolt falls back from a bad meta page (0 or 1) to the other one, the
			// previous commit, which is consistent but may predate the entries.
			if len(warned) == 0 && hits != damagedIndexKeys && page > 1 {
				t.Fatalf("entries lost without a warning: %d of %d found", hits, damagedIndexKeys)
			}
			if len(warned) > 0 {
				detected++
				requireSetAside(t, root, warned)
			}
		})
	}
	// Most pages are live (meta, freelist, branches, leaves): scribbling them must be
	// noticed, or the test is not reaching the damage paths.
	if detected < pages/2 {
		t.Errorf("damage detected on %d of %d pages; want most", detected, pages)
	}
}

// Garbage where the index should be (ErrInvalid from bbolt's meta pages) is set aside.
func TestGarbageIndex(t *testing.T) {
	root := t.TempDir()
	placeIndex(t, root, []byte(strings.Repeat("garbage!", 1024)))
	warned, _ := useDamagedIndex(t, root)
	requireSetAside(t, root, warned)
}

// Damaged copies set aside do not pile up: beside five older ones, setting a new one
// aside keeps the keepDamaged newest (the new one among them), and the warning says so.
func TestDamagedCopiesAreCapped(t *testing.T) {
	root := t.TempDir()
	var older []string
	for i := range 5 {
		p := filepath.Join(root, fmt.Sprintf("meta.db.damaged-2020010%dT000000.000000000Z", i+1))
		if err := os.WriteFile(p, []byte("old damaged index"), 0o644); err != nil {
			t.Fatal(err)
		}
		older = append(older, p)
	}
	placeIndex(t, root, []byte(strings.Repeat("garbage!", 1024)))
	warned, _ := useDamagedIndex(t, root)
	aside, _ := filepath.Glob(filepath.Join(root, "meta.db.damaged-*"))
	if len(aside) != keepDamaged || len(warned) != 1 {
		t.Fatalf("damaged copies %v, warnings %q; want %d copies and one warning", aside, warned, keepDamaged)
	}
	// The newest: the one just set aside (named now) and the two youngest of the old.
	want := append(slices.Clone(older[5-keepDamaged+1:]), aside[len(aside)-1])
	if !slices.Equal(aside, want) {
		t.Errorf("kept %v, want %v", aside, want)
	}
	if !strings.Contains(warned[0], aside[len(aside)-1]) || !strings.Contains(warned[0], "3 older one(s) removed") {
		t.Errorf("warning %q does not name the new copy and the removed ones", warned[0])
	}
}

// A panic in kiln's own code inside a transaction is a bug, not damage: it is
// re-raised, and the index is left alone.
func TestPanicInTransactionIsNotDamage(t *testing.T) {
	root := t.TempDir()
	placeIndex(t, root, filledIndex(t))
	var w warnings
	s, err := Open(context.Background(), root, WithWarnings(w.add))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	func() {
		defer func() {
			if recover() == nil {
				t.Error("a panic in the transaction's function was swallowed")
			}
		}()
		s.db.view(context.Background(), func(tx *bolt.Tx) error {
			var m map[string]int
			m["x"] = 1 // kiln's bug
			return nil
		})
	}()
	if aside, _ := filepath.Glob(filepath.Join(root, "meta.db.damaged-*")); len(aside) != 0 || len(w.list()) != 0 {
		t.Errorf("a healthy index was set aside: %v %q", aside, w.list())
	}
	if _, ok, err := s.GetStep(context.Background(), "key-1"); !ok || err != nil {
		t.Errorf("GetStep after the panic = %v, %v; want the entry", ok, err)
	}
	// The panicking transaction's lock on meta.db was dropped: a write does not time
	// out waiting for it (dbTimeout).
	if err := s.PutStep(context.Background(), &Entry{Key: "after"}); err != nil {
		t.Errorf("write after the panic: %v", err)
	}
}
