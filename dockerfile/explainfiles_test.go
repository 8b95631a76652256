package dockerfile

import (
	"reflect"
	"testing"

	"github.com/kiln-build/kiln/solver"
	"github.com/kiln-build/kiln/source"
)

// A COPY's per-file digests come sorted by path, each once, the later source's
// where two parts give one path; the parts' digests are let go once given.
func TestExplainFiles(t *testing.T) {
	tree := &copyPart{fileSums: []source.FileSum{{Path: "a", Sum: [32]byte{1}}, {Path: "b", Sum: [32]byte{2}}}}
	url := &copyPart{files: map[string]string{"b": "sha256:url", "0": "sha256:zero"}}
	got := explainFiles([]*copyPart{tree, url})()
	want := []solver.FileDigest{{Path: "0", Digest: "sha256:zero"}, {Path: "a", Digest: "0100000000000000"}, {Path: "b", Digest: "sha256:url"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("files %v, want %v", got, want)
	}
	if tree.fileSums != nil {
		t.Error("the tree's digests are still held")
	}
	one := &copyPart{fileSums: []source.FileSum{{Path: "x", Sum: [32]byte{0xab}}}}
	if got := explainFiles([]*copyPart{one})(); !reflect.DeepEqual(got, []solver.FileDigest{{Path: "x", Digest: "ab00000000000000"}}) {
		t.Fatalf("one part: %v", got)
	}
}
