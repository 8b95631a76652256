package solver

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/cache"
)

// A step's record is kept compressed when it is big, as plain JSON when small, and
// either form (and the map form kiln wrote before) reads back as sorted digests.
func TestRecordEncoding(t *testing.T) {
	var big fileDigests
	for i := range 20000 {
		big = append(big, FileDigest{Path: fmt.Sprintf("src/d%03d/f%05d.txt", i/100, i), Digest: fmt.Sprintf("%016x", i*7919)})
	}
	small := fileDigests{{Path: "a \"quoted\" <name>", Digest: "1"}, {Path: "b/é", Digest: "2"}}
	for _, tc := range []struct {
		name       string
		files      fileDigests
		compressed bool
	}{
		{"none", nil, false},
		{"small", small, false},
		{"big", big, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &opRecord{Op: Op{Parent: "p", Copy: &CopyOp{Sources: []string{"."}}}, Files: tc.files}
			data, err := encodeRecord(rec)
			if err != nil {
				t.Fatal(err)
			}
			if gz := len(data) > 1 && data[0] == 0x1f && data[1] == 0x8b; gz != tc.compressed {
				t.Fatalf("compressed %v, want %v (%d bytes)", gz, tc.compressed, len(data))
			}
			if plain, _ := json.Marshal(rec); tc.compressed && len(data) > len(plain)/3 {
				t.Errorf("%d bytes of record take %d compressed", len(plain), len(data))
			}
			if !tc.compressed && !json.Valid(data) {
				t.Fatalf("not JSON: %s", data)
			}
			var got opRecord
			if err := decodeRecord(data, &got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, *rec) {
				t.Fatalf("decoded %+v, want %+v", got, *rec)
			}
		})
	}
	t.Run("map form", func(t *testing.T) {
		old, _ := json.Marshal(map[string]any{"op": Op{Parent: "p"}, "files": map[string]string{"z": "1", "a": "2"}})
		var got opRecord
		if err := decodeRecord(old, &got); err != nil {
			t.Fatal(err)
		}
		if want := (fileDigests{{"a", "2"}, {"z", "1"}}); !reflect.DeepEqual(got.Files, want) {
			t.Fatalf("files %v, want %v", got.Files, want)
		}
	})
	t.Run("damaged", func(t *testing.T) {
		data, _ := encodeRecord(&opRecord{Files: big})
		var got opRecord
		if err := decodeRecord(data[:len(data)/2], &got); err == nil {
			t.Fatal("half a compressed record decoded")
		}
	})
}

// A big record waits out its step in a scratch file of the store: it comes back
// byte for byte, and its file is gone after take, or after drop when the step fails.
func TestHeldInputs(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	store, err := cache.Open(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	e := New(Options{Store: store})
	data := bytes.Repeat([]byte("inputs "), 1000)
	scratch := func() []string {
		t.Helper()
		var dirs []string
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() && strings.Contains(d.Name(), "kiln-inputs-") {
				dirs = append(dirs, p)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return dirs
	}

	small := e.holdInputs(data, len(data))
	if small.dir != "" || len(scratch()) != 0 {
		t.Fatal("a record under the limit went to a file")
	}
	if got, err := small.take(); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("small record back: %v, equal %v", err, bytes.Equal(got, data))
	}

	big := e.holdInputs(data, 10)
	if big.dir == "" || big.data != nil || len(scratch()) != 1 {
		t.Fatalf("a record over the limit: dir %q, %d bytes in memory, scratch %v", big.dir, len(big.data), scratch())
	}
	if got, err := big.take(); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("big record back: %v, equal %v", err, bytes.Equal(got, data))
	}
	if s := scratch(); len(s) != 0 {
		t.Errorf("take left %v", s)
	}

	failed := e.holdInputs(data, 10)
	failed.drop()
	if s := scratch(); len(s) != 0 {
		t.Errorf("drop left %v", s)
	}
}
