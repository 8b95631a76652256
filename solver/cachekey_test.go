package solver

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/cache"
)

func baseInputs() keyInputs {
	return keyInputs{
		Parent: "p", Op: "RUN make", Env: []string{"PATH=/bin", "V=1"}, User: "app", Workdir: "/src",
		Extra: map[string]string{"network": "host"}, Content: "sha256:c", Platform: "linux/amd64",
		Compression: "gzip",
	}
}

// Every input of a step is part of its key, except the per-file digests (the content
// digest covers them; they are kept only to explain a miss).
func TestKeyInputsKey(t *testing.T) {
	base := baseInputs()
	baseKey := base.key()
	if base.key() != baseKey {
		t.Fatal("key is not deterministic")
	}
	for _, tc := range []struct {
		name   string
		change func(in *keyInputs)
		same   bool
	}{
		{"parent", func(in *keyInputs) { in.Parent = "q" }, false},
		{"op", func(in *keyInputs) { in.Op = "RUN make all" }, false},
		{"env value", func(in *keyInputs) { in.Env = []string{"PATH=/bin", "V=2"} }, false},
		{"env order", func(in *keyInputs) { in.Env = []string{"V=1", "PATH=/bin"} }, false},
		{"user", func(in *keyInputs) { in.User = "root" }, false},
		{"workdir", func(in *keyInputs) { in.Workdir = "/" }, false},
		{"extra", func(in *keyInputs) { in.Extra = map[string]string{"network": "none"} }, false},
		{"content", func(in *keyInputs) { in.Content = "sha256:d" }, false},
		{"platform", func(in *keyInputs) { in.Platform = "linux/arm64" }, false},
		{"compression", func(in *keyInputs) { in.Compression = "zstd" }, false},
		{"epoch", func(in *keyInputs) { in.Epoch = "1700000000" }, false},
		{"files only", func(in *keyInputs) { in.Files = map[string]string{"a": "sha256:1"} }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := baseInputs()
			in.Extra = map[string]string{"network": "host"}
			tc.change(&in)
			files := in.Files
			got := in.key()
			if (got == baseKey) != tc.same {
				t.Errorf("key changed = %v, want %v", got != baseKey, !tc.same)
			}
			if len(files) != len(in.Files) {
				t.Error("key() dropped Files from the inputs")
			}
		})
	}
}

// explainMiss names the first input that differs from the last build at this position.
func TestExplainMiss(t *testing.T) {
	ctx := context.Background()
	store, err := cache.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	b := &build{opts: Options{Store: store}}

	if got := b.explainMiss(ctx, "never-built", &keyInputs{}); got != "" {
		t.Errorf("first build at a position: %q, want no explanation", got)
	}
	for _, tc := range []struct {
		name   string
		change func(in *keyInputs)
		want   string
	}{
		{"parent", func(in *keyInputs) { in.Parent = "q"; in.Op = "RUN other" }, "a previous step changed"},
		{"platform", func(in *keyInputs) { in.Platform = "linux/arm64" }, "platform changed"},
		{"compression", func(in *keyInputs) { in.Compression = "zstd" }, "layer compression changed"},
		{"epoch", func(in *keyInputs) { in.Epoch = "1" }, "SOURCE_DATE_EPOCH changed"},
		{"instruction", func(in *keyInputs) { in.Op = "RUN make all" }, "instruction changed"},
		{"one file", func(in *keyInputs) {
			in.Content = "sha256:new"
			in.Files = map[string]string{"src/main.go": "sha256:2", "README": "sha256:r"}
		}, "src/main.go changed"},
		{"files added and removed", func(in *keyInputs) {
			in.Content = "sha256:new"
			in.Files = map[string]string{"src/main.go": "sha256:1", "new.go": "sha256:n"}
		}, "README removed, new.go added"},
		{"content without file list", func(in *keyInputs) { in.Content = "sha256:new"; in.Files = nil; in.Op = "COPY --from=x" }, "instruction changed"},
		{"build arg", func(in *keyInputs) { in.Env = []string{"PATH=/bin", "V=2", "NEW=1"} }, "build arg or env NEW, V changed"},
		{"env removed", func(in *keyInputs) { in.Env = []string{"PATH=/bin"} }, "build arg or env V changed"},
		{"user", func(in *keyInputs) { in.User = "root" }, "user changed"},
		{"workdir", func(in *keyInputs) { in.Workdir = "/" }, "workdir changed"},
		{"extra", func(in *keyInputs) { in.Extra = map[string]string{"network": "none"} }, "network changed"},
		{"nothing", func(in *keyInputs) {}, "the cache entry was removed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			old := baseInputs()
			old.Files = map[string]string{"src/main.go": "sha256:1", "README": "sha256:r"}
			data, _ := json.Marshal(&old)
			scope := "scope-" + tc.name
			if err := store.SetLastInputs(ctx, scope, data); err != nil {
				t.Fatal(err)
			}
			in := baseInputs()
			in.Extra = map[string]string{"network": "host"}
			in.Files = map[string]string{"src/main.go": "sha256:1", "README": "sha256:r"}
			tc.change(&in)
			if got := b.explainMiss(ctx, scope, &in); got != tc.want {
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
			if got := describeFileChanges(tc.old, tc.cur); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// The stage key after a step depends on the step's result, so that steps cached on
// one result of a non-reproducible step are not reused on another.
func TestApplyEntryKeysByResult(t *testing.T) {
	ctx := context.Background()
	store, err := cache.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	b := &build{opts: Options{Store: store}}
	layer := func(diffID string) *cache.Entry {
		return &cache.Entry{Key: "k", Layer: &cache.Layer{
			Digest: "sha256:" + strings.Repeat("a", 64), DiffID: "sha256:" + strings.Repeat(diffID, 64),
			Size: 1, MediaType: "application/vnd.oci.image.layer.v1.tar+gzip", Snapshot: "s-x",
		}}
	}
	keyAfter := func(e *cache.Entry) string {
		st := &stageState{cfg: &v1.ConfigFile{}}
		if err := b.applyEntry(st, e, "k", "RUN x"); err != nil {
			t.Fatal(err)
		}
		return st.key
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
