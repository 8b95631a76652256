package solver

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/klauspost/compress/gzip"
)

// opRecord is what is kept of a step's op to explain a later miss at its position:
// the op and the per-file digests of what it read.
type opRecord struct {
	Op    Op          `json:"op"`
	Files fileDigests `json:"files,omitempty"`
}

// FileDigest is the digest of one file an op reads, as a miss explanation compares
// it: any string that changes with the file.
type FileDigest struct {
	Path, Digest string
}

// fileDigests are sorted by path, each path once. In JSON they are one object from
// path to digest, the form older records have.
type fileDigests []FileDigest

// recordCompressAbove is the size of an encoded opRecord above which it is kept
// gzip-compressed: a COPY of 200,000 files has an 11 MB record, mostly paths that
// repeat their directories, which compresses about fivefold; a small record is
// kept as plain JSON.
const recordCompressAbove = 4 << 10

// encodeRecord is rec as Store.SetLastInputs keeps it. The files are written one at
// a time into the (compressed) output: a big COPY's are never in memory as JSON.
func encodeRecord(rec *opRecord) ([]byte, error) {
	op, err := json.Marshal(rec.Op)
	if err != nil {
		return nil, fmt.Errorf("encode the step's inputs: %w", err)
	}
	size := len(op)
	for _, f := range rec.Files {
		size += len(f.Path) + len(f.Digest) + 6
	}
	var buf bytes.Buffer
	if size <= recordCompressAbove {
		writeRecord(&buf, op, rec.Files)
		return buf.Bytes(), nil
	}
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed) // a valid level: no error
	writeRecord(zw, op, rec.Files)
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("compress the step's inputs: %w", err)
	}
	// Kept through the step: not in the buffer that doubled as it grew.
	return bytes.Clone(buf.Bytes()), nil
}

// writeRecord writes the JSON of an opRecord whose op is encoded already. Writes
// into a bytes.Buffer or a gzip writer over one do not fail.
func writeRecord(w io.Writer, op []byte, files fileDigests) {
	io.WriteString(w, `{"op":`)
	w.Write(op)
	if len(files) > 0 {
		io.WriteString(w, `,"files":`)
		files.writeJSON(w)
	}
	io.WriteString(w, "}")
}

func (fs fileDigests) writeJSON(w io.Writer) {
	io.WriteString(w, "{")
	for i, f := range fs {
		if i > 0 {
			io.WriteString(w, ",")
		}
		k, _ := json.Marshal(f.Path) // a string always encodes
		v, _ := json.Marshal(f.Digest)
		w.Write(k)
		io.WriteString(w, ":")
		w.Write(v)
	}
	io.WriteString(w, "}")
}

// MarshalJSON writes fs as one object.
func (fs fileDigests) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	fs.writeJSON(&buf)
	return buf.Bytes(), nil
}

// decodeRecord reads what encodeRecord wrote (or plain JSON, as kiln wrote before,
// with the files as a map). It reads the JSON a token at a time from the
// decompressing reader: a big record is never in memory whole, as bytes or as a map.
func decodeRecord(data []byte, rec *opRecord) error {
	var r io.Reader = bytes.NewReader(data)
	if len(data) >= 2 && data[0] == 0x1f && data[1] == 0x8b {
		zr, err := gzip.NewReader(r)
		if err != nil {
			return err
		}
		defer zr.Close()
		r = zr
	}
	dec := json.NewDecoder(r)
	if err := expectDelim(dec, '{'); err != nil {
		return err
	}
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return err
		}
		switch k {
		case "op":
			err = dec.Decode(&rec.Op)
		case "files":
			rec.Files, err = decodeFiles(dec)
		default:
			var skip json.RawMessage
			err = dec.Decode(&skip)
		}
		if err != nil {
			return fmt.Errorf("record %v: %w", k, err)
		}
	}
	return expectDelim(dec, '}')
}

// decodeFiles reads an object from path to digest, sorted and each path once.
func decodeFiles(dec *json.Decoder) (fileDigests, error) {
	if err := expectDelim(dec, '{'); err != nil {
		return nil, err
	}
	var out fileDigests
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return nil, err
		}
		f := FileDigest{}
		f.Path, _ = k.(string)
		if err := dec.Decode(&f.Digest); err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	if err := expectDelim(dec, '}'); err != nil {
		return nil, err
	}
	slices.SortStableFunc(out, func(a, b FileDigest) int { return strings.Compare(a.Path, b.Path) })
	return slices.CompactFunc(out, func(a, b FileDigest) bool { return a.Path == b.Path }), nil
}

func expectDelim(dec *json.Decoder, d json.Delim) error {
	t, err := dec.Token()
	if err != nil {
		return err
	}
	if t != d {
		return fmt.Errorf("want %v, found %v", d, t)
	}
	return nil
}

// describeFileChanges names the files added, changed and removed between two
// records, the first three in order.
func describeFileChanges(old, cur fileDigests) string {
	var changed []string
	note := func(s string) {
		changed = append(changed, s)
	}
	i, j := 0, 0
	for i < len(old) || j < len(cur) {
		switch {
		case j == len(cur) || (i < len(old) && old[i].Path < cur[j].Path):
			note(old[i].Path + " removed")
			i++
		case i == len(old) || cur[j].Path < old[i].Path:
			note(cur[j].Path + " added")
			j++
		default:
			if old[i].Digest != cur[j].Digest {
				note(cur[j].Path + " changed")
			}
			i++
			j++
		}
	}
	if len(changed) == 0 {
		return "source files changed"
	}
	if len(changed) > 3 {
		return fmt.Sprintf("%s and %d more", strings.Join(changed[:3], ", "), len(changed)-3)
	}
	return strings.Join(changed, ", ")
}

// heldInputsAbove is the size of an encoded record above which it waits out its
// step in a file: W6's 210,000-file COPY has 2.6 MB of it, which would otherwise be
// held through the layer write of the same files.
const heldInputsAbove = 1 << 20

// heldInputs is an encoded record kept through the step it describes, in memory
// or, when big, in a scratch file of the store (removed by the next build if kiln
// is killed first).
type heldInputs struct {
	data []byte
	dir  string // the scratch dir of the file, when held in one
}

// holdInputs holds data, in a file when it is more than above bytes.
func (e *Engine) holdInputs(data []byte, above int) heldInputs {
	if len(data) <= above {
		return heldInputs{data: data}
	}
	dir, err := e.opts.Store.TempDir("kiln-inputs-")
	if err != nil {
		return heldInputs{data: data}
	}
	if err := os.WriteFile(filepath.Join(dir, "inputs"), data, 0o600); err != nil {
		os.RemoveAll(dir)
		return heldInputs{data: data} // kept in memory, as a small one
	}
	return heldInputs{dir: dir}
}

// take returns the record and removes its file.
func (h *heldInputs) take() ([]byte, error) {
	if h.dir == "" {
		return h.data, nil
	}
	defer h.drop()
	data, err := os.ReadFile(filepath.Join(h.dir, "inputs"))
	if err != nil {
		return nil, fmt.Errorf("read the step's inputs back: %w", err)
	}
	return data, nil
}

// drop removes the record's file, if any; take and a failed step call it.
func (h *heldInputs) drop() {
	if h.dir != "" {
		os.RemoveAll(h.dir)
		h.dir = ""
	}
}
