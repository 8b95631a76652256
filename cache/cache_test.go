package cache

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	cfs "github.com/containerd/continuity/fs"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	bolt "go.etcd.io/bbolt"
)

// childEnv makes the test binary run writerLoop instead of the tests (see TestMain).
const childEnv = "KILN_CACHE_TEST_WRITER"

func TestMain(m *testing.M) {
	if root := os.Getenv(holderEnv); root != "" {
		holdTemps(root) // never returns
	}
	if spec := os.Getenv(childEnv); spec != "" {
		var root, prefix string
		var n int
		fmt.Sscanf(spec, "%s %s %d", &root, &prefix, &n)
		if err := writerLoop(root, prefix, n); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// writerLoop puts n blobs and entries (forever if n <= 0), as a build would.
func writerLoop(root, prefix string, n int) error {
	ctx := context.Background()
	s, err := Open(ctx, root)
	if err != nil {
		return err
	}
	defer s.Close()
	for i := 0; n <= 0 || i < n; i++ {
		if err := putLayerEntry(ctx, s, fmt.Sprintf("%s-%d", prefix, i)); err != nil {
			return err
		}
	}
	return nil
}

func putLayerEntry(ctx context.Context, s *Store, key string) error {
	b := make([]byte, 1024+len(key))
	rand.Read(b)
	h, err := s.WriteBlob(b)
	if err != nil {
		return err
	}
	return s.PutStep(ctx, &Entry{Key: key, Layer: &Layer{Digest: h.String(), Size: int64(len(b))}, Inputs: []byte(key)})
}

func openStore(t *testing.T, root string) *Store {
	t.Helper()
	s, err := Open(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestBlobs(t *testing.T) {
	s := openStore(t, t.TempDir())
	h, err := s.WriteBlob([]byte("hello"))
	if err != nil || !s.HasBlob(h) || s.VerifyBlob(h) != nil {
		t.Fatalf("WriteBlob: %v %v", h, err)
	}
	if b, _ := os.ReadFile(s.BlobPath(h)); string(b) != "hello" {
		t.Errorf("blob content %q", b)
	}
	wrong, _ := v1.NewHash("sha256:" + fmt.Sprintf("%064d", 0))
	for _, tc := range []struct {
		name    string
		d       v1.Hash
		verify  bool
		wantErr bool
	}{
		{"mismatch refused", wrong, true, true},
		{"malformed digest", v1.Hash{Algorithm: "sha256", Hex: "../x"}, false, true},
		{"existing kept", h, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, err := s.NewBlobWriter()
			if err != nil {
				t.Fatal(err)
			}
			w.Write([]byte("hello"))
			err = w.Commit(tc.d, tc.verify)
			if (err != nil) != tc.wantErr {
				t.Fatalf("Commit err = %v", err)
			}
			if err := w.Abort(); err != nil {
				t.Fatal(err)
			}
			if tc.wantErr && s.HasBlob(tc.d) {
				t.Error("refused blob was stored")
			}
			if left := tempEntries(s); len(left) != 0 {
				t.Errorf("temp files left: %v", left)
			}
		})
	}
	os.WriteFile(s.BlobPath(h), []byte("jello"), 0o644)
	if s.VerifyBlob(h) == nil || s.HasBlob(h) {
		t.Error("corrupt blob passed VerifyBlob or was kept")
	}
}

// TestUnhashedBlobWriter: the bytes of an unhashed writer are verified by their
// source, so Commit with verify refuses (it cannot), and without it stores them.
func TestUnhashedBlobWriter(t *testing.T) {
	s := openStore(t, t.TempDir())
	h, _, _ := v1.SHA256(strings.NewReader("verified elsewhere"))
	for _, verify := range []bool{true, false} {
		w, err := s.NewUnhashedBlobWriter()
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, "verified elsewhere")
		if d := w.Digest(); d.Hex != "" {
			t.Errorf("Digest of an unhashed writer: %s, want none", d)
		}
		err = w.Commit(h, verify)
		w.Abort()
		if verify && (err == nil || s.HasBlob(h)) {
			t.Fatalf("Commit with verify: %v, stored %v; want it refused", err, s.HasBlob(h))
		}
		if !verify && (err != nil || !s.HasBlob(h)) {
			t.Fatalf("Commit without verify: %v, stored %v", err, s.HasBlob(h))
		}
	}
	if b, _ := os.ReadFile(s.BlobPath(h)); string(b) != "verified elsewhere" {
		t.Errorf("blob content %q", b)
	}
	if left := tempEntries(s); len(left) != 0 {
		t.Errorf("temp files left: %v", left)
	}
}

func TestStepsRefsInputs(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	s := openStore(t, root)
	blob, _ := s.WriteBlob([]byte("layer"))
	base, _ := s.WriteBlob([]byte("base manifest"))
	os.MkdirAll(filepath.Join(s.SnapshotsDir(), "committed", "snap1"), 0o755)
	e := &Entry{
		Key:       "k1",
		Layer:     &Layer{Digest: blob.String(), DiffID: "sha256:x", Size: 5, MediaType: "m", Snapshot: "snap1"},
		Config:    []byte(`{"a":1}`),
		History:   v1.History{CreatedBy: "RUN x"},
		Inputs:    []byte("inputs"),
		KeepBlobs: []string{base.String()},
	}
	if err := s.PutStep(ctx, e); err != nil {
		t.Fatal(err)
	}
	got, ok, err := s.GetStep(ctx, "k1")
	if err != nil || !ok || got.Layer.Snapshot != "snap1" || string(got.Config) != `{"a":1}` || got.History.CreatedBy != "RUN x" || got.Created.IsZero() {
		t.Fatalf("GetStep = %+v %v %v", got, ok, err)
	}
	if _, ok, _ := s.GetStep(ctx, "absent"); ok {
		t.Error("absent key hit")
	}
	s.PutRef(ctx, "r", base.String())
	if d, ok := s.GetRef(ctx, "r"); !ok || d != base.String() {
		t.Errorf("GetRef = %q %v", d, ok)
	}
	s.SetLastInputs(ctx, "0/1", []byte("in"))
	if in, ok := s.LastInputs(ctx, "0/1"); !ok || string(in) != "in" {
		t.Errorf("LastInputs = %q %v", in, ok)
	}
	hc := s.HashCache()
	hc.Put("f", "sha256:f")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := openStore(t, root)
	if d, ok := s2.HashCache().Get("f"); !ok || d != "sha256:f" {
		t.Errorf("hash cache after reopen = %q %v", d, ok)
	}

	// A missing snapshot leaves the entry usable: the solver unpacks it from the
	// layer blob when a step needs it.
	os.RemoveAll(filepath.Join(s2.SnapshotsDir(), "committed", "snap1"))
	if _, ok, err := s2.GetStep(ctx, "k1"); !ok || err != nil {
		t.Fatalf("GetStep with the snapshot missing: ok=%v err=%v, want the entry", ok, err)
	}

	// Entries whose files are gone are dropped.
	for _, tc := range []struct {
		name   string
		break_ func()
	}{
		{"blob truncated", func() { os.WriteFile(s2.BlobPath(blob), []byte("la"), 0o644) }},
		{"keep blob missing", func() { os.Remove(s2.BlobPath(base)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.MkdirAll(filepath.Join(s2.SnapshotsDir(), "committed", "snap1"), 0o755)
			s2.WriteBlob([]byte("layer"))
			os.WriteFile(s2.BlobPath(blob), []byte("layer"), 0o644)
			s2.WriteBlob([]byte("base manifest"))
			if err := s2.PutStep(ctx, e); err != nil {
				t.Fatal(err)
			}
			tc.break_()
			if _, ok, err := s2.GetStep(ctx, "k1"); ok || err != nil {
				t.Fatalf("GetStep ok=%v err=%v", ok, err)
			}
			es, _ := s2.entries(ctx)
			if len(es) != 0 {
				t.Errorf("entry not dropped: %d left", len(es))
			}
		})
	}
}

func TestConcurrentGoroutines(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir())
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hc := s.HashCache()
			for i := range 10 {
				key := fmt.Sprintf("g%d-%d", g, i)
				if err := putLayerEntry(ctx, s, key); err != nil {
					t.Error(err)
					return
				}
				if _, ok, err := s.GetStep(ctx, key); !ok || err != nil {
					t.Errorf("GetStep %s: %v %v", key, ok, err)
				}
				hc.Put(key, "d")
				hc.Get(key)
			}
			if err := s.FlushHashes(ctx); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if es, _ := s.entries(ctx); len(es) != 40 {
		t.Errorf("%d entries, want 40", len(es))
	}
}

func runWriter(t *testing.T, root, prefix string, n int) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %s %d", childEnv, root, prefix, n))
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd
}

func TestTwoProcesses(t *testing.T) {
	root := t.TempDir()
	a, b := runWriter(t, root, "a", 15), runWriter(t, root, "b", 15)
	if err := a.Wait(); err != nil {
		t.Fatal(err)
	}
	if err := b.Wait(); err != nil {
		t.Fatal(err)
	}
	s := openStore(t, root)
	for _, p := range []string{"a", "b"} {
		for i := range 15 {
			if _, ok, err := s.GetStep(context.Background(), p+"-"+strconv.Itoa(i)); !ok || err != nil {
				t.Errorf("entry %s-%d: %v %v", p, i, ok, err)
			}
		}
	}
}

func TestSIGKILLLeavesUsableStore(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	for round := range 4 {
		cmd := runWriter(t, root, fmt.Sprintf("r%d", round), 0)
		time.Sleep(time.Duration(30+round*37) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()

		s, err := Open(ctx, root)
		if err != nil {
			t.Fatalf("round %d: Open after SIGKILL: %v", round, err)
		}
		es, err := s.entries(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("round %d: %d entries survived the kill", round, len(es))
		for _, e := range es {
			h, _ := v1.NewHash(e.Layer.Digest)
			if !s.HasBlob(h) || s.VerifyBlob(h) != nil {
				t.Errorf("round %d: entry %s has no valid blob", round, e.Key)
			}
			if _, ok, err := s.GetStep(ctx, e.Key); !ok || err != nil {
				t.Errorf("round %d: GetStep %s: %v %v", round, e.Key, ok, err)
			}
		}
		if err := putLayerEntry(ctx, s, fmt.Sprintf("after-%d", round)); err != nil {
			t.Fatalf("round %d: write after SIGKILL: %v", round, err)
		}
		if left := tempEntries(s); len(left) != 0 {
			t.Errorf("round %d: temp files of the dead writer kept: %v", round, left)
		}
		s.Close()
	}
}

// tempEntries lists tmp/ but for s's own owner file.
func tempEntries(s *Store) []string {
	entries, _ := os.ReadDir(filepath.Join(s.Root(), "tmp"))
	var out []string
	for _, e := range entries {
		if e.Name() != s.ownerID+ownerSuffix {
			out = append(out, e.Name())
		}
	}
	return out
}

func TestPruneKeepStorage(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir())
	snaps := map[string]bool{}
	opts := PruneOptions{
		ListSnapshots: func() ([]string, error) {
			var ids []string
			for id := range snaps {
				ids = append(ids, id)
			}
			return ids, nil
		},
		RemoveSnapshot: func(_ context.Context, id string) error {
			delete(snaps, id)
			return os.RemoveAll(filepath.Join(s.SnapshotsDir(), "committed", id))
		},
	}
	now := time.Now()
	for i := range 5 {
		h, _ := s.WriteBlob(bytes.Repeat([]byte{byte(i)}, 1000))
		id := fmt.Sprint("s", i)
		snaps[id] = true
		os.MkdirAll(filepath.Join(s.SnapshotsDir(), "committed", id), 0o755)
		s.PutStep(ctx, &Entry{Key: fmt.Sprint("k", i), Layer: &Layer{Digest: h.String(), Size: 1000, Snapshot: id},
			Used: now.Add(time.Duration(i) * time.Minute)})
	}
	orphan, _ := s.WriteBlob([]byte("orphan"))
	snaps["orphan"] = true
	du, err := cfs.DiskUsage(ctx, filepath.Join(s.SnapshotsDir(), "committed", "s0"))
	if err != nil {
		t.Fatal(err)
	}
	perEntry := 1000 + du.Size
	freed, err := s.Prune(ctx, PruneOptions{KeepStorage: 2*perEntry + perEntry/2, ListSnapshots: opts.ListSnapshots, RemoveSnapshot: opts.RemoveSnapshot})
	if err != nil {
		t.Fatal(err)
	}
	if freed < 3*perEntry {
		t.Errorf("freed %d, want >= %d", freed, 3*perEntry)
	}
	for i := range 5 {
		_, ok, _ := s.GetStep(ctx, fmt.Sprint("k", i))
		if want := i >= 3; ok != want {
			t.Errorf("k%d kept=%v, want %v (LRU)", i, ok, want)
		}
	}
	if s.HasBlob(orphan) || snaps["orphan"] || snaps["s0"] || !snaps["s4"] {
		t.Errorf("unreferenced blob/snapshot not collected or live one removed: %v", snaps)
	}
	dir, _ := s.CacheMountDir(ctx, "../../etc")
	if filepath.Dir(dir) != filepath.Join(s.Root(), "mounts") {
		t.Errorf("cache mount dir escaped: %s", dir)
	}
	os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o644)
	if _, err := s.Prune(ctx, PruneOptions{All: true, ListSnapshots: opts.ListSnapshots, RemoveSnapshot: opts.RemoveSnapshot}); err != nil {
		t.Fatal(err)
	}
	u, err := s.DiskUsage(ctx)
	if err != nil || u.Entries != 0 || len(snaps) != 0 {
		t.Errorf("after prune all: %+v %v %v", u, err, snaps)
	}
	if _, err := os.Stat(dir); err == nil {
		t.Error("cache mount kept by prune all")
	}
}

// A step entry whose stored bytes changed (a byte of its config, as a flipped bit
// inside a bbolt page would change it: bbolt checks only its meta pages) is a miss,
// not an entry that makes another image; a sound entry beside it still hits.
func TestStepEntryWithChangedBytesIsDropped(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	s := openStore(t, root)
	blob, _ := s.WriteBlob([]byte("layer"))
	for _, k := range []string{"damaged", "sound"} {
		e := &Entry{Key: k, Layer: &Layer{Digest: blob.String(), Size: 5}, Config: []byte(`{"env":["A=1"]}`)}
		if err := s.PutStep(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(filepath.Join(root, "meta.db"), 0o644, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSteps)
		// The config is stored in base64: "QT0x" is "A=1", "QT0y" "A=2".
		v := bytes.Clone(b.Get([]byte("damaged")))
		i := bytes.Index(v, []byte("QT0x"))
		if i < 0 {
			return fmt.Errorf("the config is not in the stored entry: %q", v)
		}
		v[i+3] = 'y'
		return b.Put([]byte("damaged"), v)
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	s = openStore(t, root)
	if e, ok, err := s.GetStep(ctx, "damaged"); err != nil || ok {
		t.Errorf("the changed entry: GetStep = %+v, %v, %v; want a miss", e, ok, err)
	}
	if _, ok, err := s.GetStep(ctx, "sound"); err != nil || !ok {
		t.Errorf("the sound entry: GetStep = %v, %v; want a hit", ok, err)
	}
}

// kiln check reports a step entry whose bytes fail their sum; --repair drops it.
func TestCheckFindsDamagedEntry(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	s := openStore(t, root)
	blob, _ := s.WriteBlob([]byte("layer"))
	if err := s.PutStep(ctx, &Entry{Key: "k", Layer: &Layer{Digest: blob.String(), Size: 5}}); err != nil {
		t.Fatal(err)
	}
	err := s.db.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSteps)
		v := bytes.Clone(b.Get([]byte("k")))
		v[len(v)/2] ^= 1
		return b.Put([]byte("k"), v)
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, repair := range []bool{false, true} {
		r, err := s.Check(ctx, noSnapshotChecks{}, repair)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.DamagedEntries) != 1 || r.DamagedEntries[0] != "k" {
			t.Errorf("repair %v: DamagedEntries = %q, want [k]", repair, r.DamagedEntries)
		}
	}
	if r, err := s.Check(ctx, noSnapshotChecks{}, false); err != nil || len(r.DamagedEntries) != 0 {
		t.Errorf("after --repair: DamagedEntries = %q, %v", r.DamagedEntries, err)
	}
}

// noSnapshotChecks is a SnapshotChecker of a store without snapshots.
type noSnapshotChecks struct{}

func (noSnapshotChecks) Exists(string) bool { return false }
func (noSnapshotChecks) TreeDiffID(context.Context, string) (v1.Hash, error) {
	return v1.Hash{}, errors.New("no snapshots")
}
func (noSnapshotChecks) Usage(context.Context, string) (int64, error) { return 0, nil }
func (noSnapshotChecks) Remove(context.Context, string) error         { return nil }

// An entry is stored so that an older kiln's decoder (plain JSON into Entry) still
// reads it, and an older kiln's entry, without a sum, is a miss for this one but no
// damage: kiln check does not report it, and GC still sees what it holds.
func TestEntrySumAndOlderEntries(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir())
	blob, _ := s.WriteBlob([]byte("layer"))
	e := &Entry{Key: "new", Layer: &Layer{Digest: blob.String(), Size: 5}, Config: []byte(`{"a":1}`)}
	if err := s.PutStep(ctx, e); err != nil {
		t.Fatal(err)
	}
	old, _ := json.Marshal(&Entry{Key: "old", Layer: &Layer{Digest: blob.String(), Size: 5}})
	var stored []byte
	err := s.db.update(ctx, func(tx *bolt.Tx) error {
		stored = bytes.Clone(tx.Bucket(bucketSteps).Get([]byte("new")))
		return tx.Bucket(bucketSteps).Put([]byte("old"), old)
	})
	if err != nil {
		t.Fatal(err)
	}
	var asOlder Entry
	if err := json.Unmarshal(stored, &asOlder); err != nil || asOlder.Layer == nil || asOlder.Layer.Digest != blob.String() {
		t.Errorf("an older kiln cannot read the stored entry: %+v, %v", asOlder, err)
	}
	r, err := s.Check(ctx, noSnapshotChecks{}, false)
	if err != nil || len(r.DamagedEntries) != 0 {
		t.Errorf("kiln check: DamagedEntries %q, %v; an entry without a sum is not damage", r.DamagedEntries, err)
	}
	all, err := s.Entries(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, got := range all {
		if got.Key == "old" && (got.Layer == nil || got.Layer.Digest != blob.String()) {
			t.Errorf("GC's listing lost what the older entry holds: %+v", got)
		}
	}
	if _, ok, err := s.GetStep(ctx, "old"); ok || err != nil {
		t.Errorf("an older kiln's entry: hit %v, %v; want a miss", ok, err)
	}
	if _, ok, err := s.GetStep(ctx, "new"); !ok || err != nil {
		t.Errorf("the sealed entry: hit %v, %v", ok, err)
	}
}
