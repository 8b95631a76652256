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
// decompressing reader: a big record is never in memory whole as bytes.
func decodeRecord(data []byte, rec *opRecord) error {
	var files fileDigests
	if err := scanRecord(data, rec, func(f FileDigest) { files = append(files, f) }); err != nil {
		return err
	}
	if files != nil {
		slices.SortStableFunc(files, func(a, b FileDigest) int { return strings.Compare(a.Path, b.Path) })
		rec.Files = slices.CompactFunc(files, func(a, b FileDigest) bool { return a.Path == b.Path })
	}
	return nil
}

// scanRecord decodes a record's op into rec and hands its files to onFile one at a
// time, in the order the record holds them, without collecting them.
func scanRecord(data []byte, rec *opRecord, onFile func(FileDigest)) error {
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
			err = scanFiles(dec, onFile)
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

// scanFiles reads an object from path to digest, handing each pair to onFile.
func scanFiles(dec *json.Decoder, onFile func(FileDigest)) error {
	if err := expectDelim(dec, '{'); err != nil {
		return err
	}
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return err
		}
		f := FileDigest{}
		f.Path, _ = k.(string)
		if err := dec.Decode(&f.Digest); err != nil {
			return err
		}
		onFile(f)
	}
	return expectDelim(dec, '}')
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
	c := fileChanges{cur: cur}
	for _, f := range old {
		c.old(f)
	}
	return c.describe()
}

// fileChanges compares the files of an earlier record with cur (sorted by path, each
// path once) as they are read, one at a time: the earlier record of a 200,000-file
// COPY is never a list in memory beside cur (W6: 20 MB of it, the peak of a
// rebuild). A record is written sorted; one that is not (a path out of order or
// twice) is noted as such, and the caller compares it as a sorted list instead.
type fileChanges struct {
	cur      fileDigests
	j        int      // the next of cur to compare
	last     string   // the earlier record's previous path
	seen     bool     // last is set
	unsorted bool     // a path came out of order
	first    []string // the first three changes
	n        int      // how many changes in all
}

// note counts a change to path; only the first three are spelt out (a COPY whose
// 200,000 files all changed makes three strings, not 200,000).
func (c *fileChanges) note(path, what string) {
	if len(c.first) < 3 {
		c.first = append(c.first, path+" "+what)
	}
	c.n++
}

// old takes the next file of the earlier record.
func (c *fileChanges) old(f FileDigest) {
	if c.unsorted {
		return
	}
	if c.seen && f.Path <= c.last {
		c.unsorted = true
		return
	}
	c.seen, c.last = true, f.Path
	for ; c.j < len(c.cur) && c.cur[c.j].Path < f.Path; c.j++ {
		c.note(c.cur[c.j].Path, "added")
	}
	if c.j < len(c.cur) && c.cur[c.j].Path == f.Path {
		if c.cur[c.j].Digest != f.Digest {
			c.note(f.Path, "changed")
		}
		c.j++
		return
	}
	c.note(f.Path, "removed")
}

// describe says what changed once the earlier record's files are all in.
func (c *fileChanges) describe() string {
	for ; c.j < len(c.cur); c.j++ {
		c.note(c.cur[c.j].Path, "added")
	}
	switch {
	case c.n == 0:
		return "source files changed"
	case c.n > 3:
		return fmt.Sprintf("%s and %d more", strings.Join(c.first, ", "), c.n-3)
	}
	return strings.Join(c.first, ", ")
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
