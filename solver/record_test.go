package solver

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
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
