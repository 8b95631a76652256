package solver

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/cache"
)

// fullOp is an op with every field set, so a change of any one of them is a change
// from a non-zero value too.
func fullOp() Op {
	mount := MountOp{Type: "bind", Target: "/m", ReadOnly: true, Source: "/s", Content: "sha256:m",
		UID: "1", GID: "2", Mode: "755", Size: 1024, ID: "id", Env: "E", Required: true}
	return Op{
		Parent: "p", Platform: "linux/amd64",
		Run: &RunOp{Args: []string{"/bin/sh", "-c", "make"}, Env: []string{"PATH=/bin", "V=1"}, User: "app",
			Workdir: "/src", Network: "host", Security: "sandbox",
			Limits:     LimitsOp{MemoryBytes: 1 << 30, MilliCPUs: 1500, Pids: 4096},
			Mounts:     []MountOp{mount, mount},
			ExtraHosts: []string{"db=10.0.0.1", "v6=::1"}, ShmSize: 128 << 20, Ulimits: []string{"7=1000:2000", "6=1:2"}},
		Copy: &CopyOp{Add: true, Sources: []string{"a", "b"}, Content: []string{"sha256:c"}, Dest: "/d/",
			Chown: "1:1", Chmod: "755", Link: true, Parents: true, Excludes: []string{"*.o"},
			Unpack: "true", KeepGitDir: "false", Checksum: "sha256:x"},
		Workdir: &WorkdirOp{Path: "/w", User: "app"},
	}
}

// Every field of an op is part of its key: the test walks the op by reflection,
// changes each leaf (a string, number, bool, or a slice's length) on its own, and
// requires a new key. A field added to Op later is covered without editing the test;
// a field of a kind the walk does not know fails it.
func TestOpKeyCoversEveryField(t *testing.T) {
	base := fullOp()
	baseKey := base.key()
	if k := fullOp(); k.key() != baseKey {
		t.Fatal("key is not deterministic")
	}
	n := 0
	var walk func(path string, get func(*Op) reflect.Value)
	walk = func(path string, get func(*Op) reflect.Value) {
		op := fullOp()
		v := get(&op)
		changed := true
		switch v.Kind() {
		case reflect.String:
			v.SetString(v.String() + "x")
		case reflect.Int64, reflect.Int:
			v.SetInt(v.Int() + 1)
		case reflect.Bool:
			v.SetBool(!v.Bool())
		case reflect.Pointer:
			v.SetZero()
			for i := range v.Type().Elem().NumField() {
				f := v.Type().Elem().Field(i)
				walk(path+"."+f.Name, func(o *Op) reflect.Value { return get(o).Elem().Field(i) })
			}
			changed = v.IsNil()
		case reflect.Struct:
			for i := range v.NumField() {
				f := v.Type().Field(i)
				walk(path+"."+f.Name, func(o *Op) reflect.Value { return get(o).Field(i) })
			}
			return
		case reflect.Slice:
			v.Set(v.Slice(0, v.Len()-1))
			for i := range v.Len() + 1 {
				walk(fmt.Sprintf("%s[%d]", path, i), func(o *Op) reflect.Value { return get(o).Index(i) })
			}
		default:
			t.Fatalf("%s: a field of kind %s: teach this test (and the canonical encoding) about it", path, v.Kind())
		}
		if changed && op.key() == baseKey {
			t.Errorf("changing %s does not change the key", path)
		}
		n++
	}
	walk("Op", func(o *Op) reflect.Value { return reflect.ValueOf(o).Elem() })
	if n < 40 {
		t.Errorf("walked only %d fields", n)
	}
}

// Values that collided when keys were formatted strings are distinct ops now.
func TestOpKeyDistinguishesArgv(t *testing.T) {
	run := func(args ...string) string {
		return (&Op{Run: &RunOp{Args: args}}).key()
	}
	for _, pair := range [][2][]string{
		{{"touch", "/x y"}, {"touch", "/x", "y"}},
		{{"/bin/sh", "-c", "echo a"}, {"/bin/sh", "-c echo", "a"}},
		{{"/bin/sh -c", "echo"}, {"/bin/sh", "-c", "echo"}},
		{{"a,b"}, {"a", "b"}},
		{{""}, {}},
	} {
		if run(pair[0]...) == run(pair[1]...) {
			t.Errorf("argv %q and %q have one key", pair[0], pair[1])
		}
	}
	// A RUN, a COPY and a WORKDIR with the same strings never share a key.
	if (&Op{Workdir: &WorkdirOp{Path: "/x"}}).key() == (&Op{Copy: &CopyOp{Dest: "/x"}}).key() {
		t.Error("WORKDIR and COPY ops share a key")
	}
}

// explainMiss names the first input that differs from the last build at this position.
func TestExplainMiss(t *testing.T) {
	ctx := context.Background()
	b, store := engineOnNewStore(t)

	if got := b.explainMiss(ctx, "never-built", &opRecord{}); got != "" {
		t.Errorf("first build at a position: %q, want no explanation", got)
	}
	files := func() fileDigests {
		return digestsOf(map[string]string{"src/main.go": "sha256:1", "README": "sha256:r"})
	}
	for _, tc := range []struct {
		name   string
		change func(r *opRecord)
		want   string
	}{
		{"parent", func(r *opRecord) { r.Op.Parent = "q"; r.Op.Run.Args = []string{"other"} }, "a previous step changed"},
		{"platform", func(r *opRecord) { r.Op.Platform = "linux/arm64" }, "platform changed"},
		{"argv", func(r *opRecord) { r.Op.Run.Args = []string{"make", "all"} }, "run.args changed"},
		{"one file", func(r *opRecord) {
			r.Op.Copy.Content = []string{"sha256:new"}
			r.Files = digestsOf(map[string]string{"src/main.go": "sha256:2", "README": "sha256:r"})
		}, "src/main.go changed"},
		{"files added and removed", func(r *opRecord) {
			r.Op.Copy.Content = []string{"sha256:new"}
			r.Files = digestsOf(map[string]string{"src/main.go": "sha256:1", "new.go": "sha256:n"})
		}, "README removed, new.go added"},
		{"sources changed", func(r *opRecord) {
			r.Op.Copy.Content = []string{"sha256:new"}
			r.Op.Copy.Sources = []string{"other"}
		}, "copy.sources changed"},
		{"build arg", func(r *opRecord) { r.Op.Run.Env = []string{"PATH=/bin", "V=2", "NEW=1"} }, "build arg or env NEW, V changed"},
		{"env removed", func(r *opRecord) { r.Op.Run.Env = []string{"PATH=/bin"} }, "build arg or env V changed"},
		{"user", func(r *opRecord) { r.Op.Run.User = "root" }, "run.user changed"},
		{"mount option", func(r *opRecord) { r.Op.Run.Mounts[1].UID = "0" }, "run.mounts[1].uid changed"},
		{"mount added", func(r *opRecord) { r.Op.Run.Mounts = r.Op.Run.Mounts[:1] }, "run.mounts changed"},
		{"limits", func(r *opRecord) { r.Op.Run.Limits.Pids = 10 }, "run.limits.pids changed"},
		{"network", func(r *opRecord) { r.Op.Run.Network = "none" }, "run.network changed"},
		{"nothing", func(r *opRecord) {}, "the cache entry was removed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			old := opRecord{Op: fullOp(), Files: files()}
			data, _ := json.Marshal(&old)
			scope := "scope-" + tc.name
			if err := store.SetLastInputs(ctx, scope, data); err != nil {
				t.Fatal(err)
			}
			cur := opRecord{Op: fullOp(), Files: files()}
			tc.change(&cur)
			if got := b.explainMiss(ctx, scope, &cur); got != tc.want {
				t.Errorf("explainMiss = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestDescribeFileChanges(t *testing.T) {
	for _, tc := range []struct {
		name     string
		old, cur map[string]string
		want     string
	}{
		{"changed", map[string]string{"a": "1"}, map[string]string{"a": "2"}, "a changed"},
		{"added", map[string]string{}, map[string]string{"b": "1"}, "b added"},
		{"removed", map[string]string{"c": "1"}, nil, "c removed"},
		{"sorted", map[string]string{"z": "1", "a": "1"}, map[string]string{"z": "2", "a": "2"}, "a changed, z changed"},
		{"many", nil, map[string]string{"a": "1", "b": "1", "c": "1", "d": "1", "e": "1"}, "a added, b added, c added and 2 more"},
		{"same files", map[string]string{"a": "1"}, map[string]string{"a": "1"}, "source files changed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := describeFileChanges(digestsOf(tc.old), digestsOf(tc.cur)); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// The stage key after a step depends on the step's result, so that steps cached on
// one result of a non-reproducible step are not reused on another.
func TestApplyEntryKeysByResult(t *testing.T) {
	b, _ := engineOnNewStore(t)
	layer := func(diffID string) *cache.Entry {
		return &cache.Entry{Key: "k", Layer: &cache.Layer{
			Digest: "sha256:" + strings.Repeat("a", 64), DiffID: "sha256:" + strings.Repeat(diffID, 64),
			Size: 1, MediaType: "application/vnd.oci.image.layer.v1.tar+gzip", Snapshot: "s-x",
		}}
	}
	keyAfter := func(e *cache.Entry) string {
		r, err := b.applyEntry(State{Key: "parent"}, e, "k")
		if err != nil {
			t.Fatal(err)
		}
		return r.State.Key
	}
	one, two, again := keyAfter(layer("1")), keyAfter(layer("2")), keyAfter(layer("1"))
	if one == two {
		t.Error("two results of one step give later steps the same parent key")
	}
	if one != again {
		t.Error("the same result gives different parent keys")
	}
	if got := keyAfter(&cache.Entry{Key: "k"}); got != "k" {
		t.Errorf("an empty step's key after it = %q, want its own key", got)
	}
}

// digestsOf is m as a record's sorted file digests.
func digestsOf(m map[string]string) fileDigests {
	var fs fileDigests
	for _, p := range slices.Sorted(maps.Keys(m)) {
		fs = append(fs, FileDigest{Path: p, Digest: m[p]})
	}
	return fs
}

// The earlier record's files are compared as they are read; the result is the same
// as a comparison of the two path sets, for lists that differ in every way.
func TestFileChangesMatchSetComparison(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 300 {
		old, cur := map[string]string{}, map[string]string{}
		for i := range rng.IntN(40) {
			p := fmt.Sprintf("d%d/f%02d", i%3, rng.IntN(30))
			switch rng.IntN(4) {
			case 0:
				old[p] = "1"
			case 1:
				cur[p] = "1"
			case 2:
				old[p], cur[p] = "1", "1"
			default:
				old[p], cur[p] = "1", "2"
			}
		}
		// The reference: every path of either, in order, with what happened to it.
		var changes []string
		for _, p := range slices.Sorted(maps.Keys(merged(old, cur))) {
			o, inOld := old[p]
			c, inCur := cur[p]
			switch {
			case !inCur:
				changes = append(changes, p+" removed")
			case !inOld:
				changes = append(changes, p+" added")
			case o != c:
				changes = append(changes, p+" changed")
			}
		}
		want := strings.Join(changes, ", ")
		switch {
		case len(changes) == 0:
			want = "source files changed"
		case len(changes) > 3:
			want = fmt.Sprintf("%s and %d more", strings.Join(changes[:3], ", "), len(changes)-3)
		}
		if got := describeFileChanges(digestsOf(old), digestsOf(cur)); got != want {
			t.Fatalf("round %d: old %v cur %v: got %q, want %q", round, old, cur, got, want)
		}
	}
}

func merged(a, b map[string]string) map[string]string {
	m := maps.Clone(a)
	maps.Copy(m, b)
	return m
}

// A record whose files are out of order or listed twice (kiln never writes one, a
// damaged or hand-made one may) is explained as its sorted list would be.
func TestExplainMissUnsortedRecord(t *testing.T) {
	ctx := context.Background()
	b, store := engineOnNewStore(t)
	op, _ := json.Marshal(fullOp())
	cur := opRecord{Op: fullOp(), Files: digestsOf(map[string]string{"a": "1", "b": "2", "c": "3"})}
	cur.Op.Copy.Content = []string{"sha256:new"}
	for name, files := range map[string]string{
		"sorted":       `{"a":"1","b":"1","c":"3"}`,
		"out of order": `{"c":"3","a":"1","b":"1"}`,
		"twice":        `{"a":"1","b":"1","b":"9","c":"3"}`,
	} {
		t.Run(name, func(t *testing.T) {
			data := []byte(`{"op":` + string(op) + `,"files":` + files + `}`)
			if err := store.SetLastInputs(ctx, "scope-"+name, data); err != nil {
				t.Fatal(err)
			}
			if got, want := b.explainMiss(ctx, "scope-"+name, &cur), "b changed"; got != want {
				t.Errorf("explainMiss = %q, want %q", got, want)
			}
		})
	}
}

// engineOnNewStore is an engine over a new store of its own, closed when t ends.
func engineOnNewStore(t *testing.T) (*Engine, *cache.Store) {
	t.Helper()
	store, err := cache.Open(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return New(Options{Store: store}), store
}
