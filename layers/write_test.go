package layers

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/kiln-build/kiln/internal/testenv"
)

func TestRoundTrip(t *testing.T) {
	testenv.RequireRoot(t)
	src := t.TempDir()
	makeRichTree(t, src)
	want := describeTree(t, src)

	for _, c := range []Compression{Gzip, Zstd, Uncompressed} {
		t.Run(string(c), func(t *testing.T) {
			_, empty, blob := writeUpper(t, src, WriteOptions{Compression: c})
			if empty {
				t.Fatal("empty = true for a full tree")
			}
			dest := t.TempDir()
			must(t, Unpack(context.Background(), bytes.NewReader(blob), dest, UnpackOptions{Whiteouts: ApplyWhiteouts, KeepOwners: true}))
			if got := describeTree(t, dest); got != want {
				t.Errorf("unpacked tree differs\n got:\n%s\nwant:\n%s", got, want)
			}
		})
	}
	t.Run("WriteTree", func(t *testing.T) {
		var buf bytes.Buffer
		must(t, WriteTree(context.Background(), src, &buf, WriteOptions{Compression: Zstd}))
		if buf.Len() < 2 || bytes.HasPrefix(buf.Bytes(), magicZstd) {
			t.Fatal("WriteTree output is not a plain tar")
		}
		dest := t.TempDir()
		must(t, Unpack(context.Background(), &buf, dest, UnpackOptions{Whiteouts: NoWhiteouts, KeepOwners: true}))
		if got := describeTree(t, dest); got != want {
			t.Errorf("unpacked tree differs\n got:\n%s\nwant:\n%s", got, want)
		}
	})
}

func TestTarFormat(t *testing.T) {
	testenv.RequireRoot(t)
	src := t.TempDir()
	makeRichTree(t, src)
	_, _, blob := writeUpper(t, src, WriteOptions{Compression: Uncompressed})
	es := readTar(t, blob)
	got := fmt.Sprint(entryNames(es))
	want := "[a/ a/b/ a/b/deep a/file a/hl abs-link blk cap fifo null owned rel-link sgid-dir/ sgid-dir/keep suid]"
	if got != want {
		t.Errorf("entries = %s\nwant      %s", got, want)
	}
	for _, e := range es {
		h := e.hdr
		if h.Uname != "" || h.Gname != "" || !h.AccessTime.IsZero() || !h.ChangeTime.IsZero() {
			t.Errorf("%s: uname %q gname %q atime %v ctime %v, want none", h.Name, h.Uname, h.Gname, h.AccessTime, h.ChangeTime)
		}
		if h.ModTime.Nanosecond() != 0 {
			t.Errorf("%s: mtime %v not truncated to seconds", h.Name, h.ModTime)
		}
		switch h.Name {
		case "a/hl":
			if h.Typeflag != '1' || h.Linkname != "a/file" {
				t.Errorf("a/hl = type %c link %q, want hard link to a/file", h.Typeflag, h.Linkname)
			}
		case "suid":
			if h.Mode != 0o4755 {
				t.Errorf("suid mode %o", h.Mode)
			}
		case "cap":
			if h.PAXRecords[paxXattr+"security.capability"] != string(capNetBindService) {
				t.Errorf("cap xattrs %v", h.PAXRecords)
			}
		case "owned":
			if h.Uid != 1000 || h.Gid != 2000 {
				t.Errorf("owned uid/gid %d/%d", h.Uid, h.Gid)
			}
		}
	}
}

func TestDeterministicAndEpoch(t *testing.T) {
	testenv.RequireRoot(t)
	src := t.TempDir()
	makeRichTree(t, src)
	writeFile(t, filepath.Join(src, "new"), "now", 0o644) // mtime: now
	for _, c := range []Compression{Gzip, Zstd, Uncompressed} {
		b1, _, blob1 := writeUpper(t, src, WriteOptions{Compression: c})
		b2, _, blob2 := writeUpper(t, src, WriteOptions{Compression: c})
		if b1.Digest != b2.Digest || b1.DiffID != b2.DiffID || b1.Size != b2.Size || !bytes.Equal(blob1, blob2) {
			t.Errorf("%s: two writes of one tree differ: %v vs %v", c, b1, b2)
		}
	}
	epoch := time.Date(2021, 6, 1, 0, 0, 0, 0, time.UTC)
	_, _, blob := writeUpper(t, src, WriteOptions{SourceDateEpoch: &epoch})
	for _, e := range readTar(t, blob) {
		want := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC) // older than the epoch: kept
		if e.hdr.Name == "new" {
			want = epoch // newer than the epoch: clamped
		}
		if !e.hdr.ModTime.Equal(want) {
			t.Errorf("%s: mtime %v, want %v", e.hdr.Name, e.hdr.ModTime, want)
		}
	}
}

func TestBlobDigests(t *testing.T) {
	testenv.RequireRoot(t)
	src := t.TempDir()
	makeRichTree(t, src)
	tests := []struct {
		c    Compression
		want types.MediaType
	}{
		{Gzip, "application/vnd.oci.image.layer.v1.tar+gzip"},
		{"", "application/vnd.oci.image.layer.v1.tar+gzip"},
		{Zstd, "application/vnd.oci.image.layer.v1.tar+zstd"},
		{Uncompressed, "application/vnd.oci.image.layer.v1.tar"},
	}
	for _, tt := range tests {
		b, _, blob := writeUpper(t, src, WriteOptions{Compression: tt.c, Level: map[Compression]int{Zstd: 3, Gzip: 9}[tt.c]})
		if b.MediaType != tt.want {
			t.Errorf("%q: media type %s, want %s", tt.c, b.MediaType, tt.want)
		}
		if b.Size != int64(len(blob)) {
			t.Errorf("%q: size %d, blob is %d bytes", tt.c, b.Size, len(blob))
		}
		if got := fmt.Sprintf("%x", sha256.Sum256(blob)); b.Digest.String() != "sha256:"+got {
			t.Errorf("%q: digest %s, blob hashes to %s", tt.c, b.Digest, got)
		}
		rc, err := Decompress(bytes.NewReader(blob))
		must(t, err)
		h := sha256.New()
		_, err = io.Copy(h, rc)
		must(t, err)
		if got := fmt.Sprintf("sha256:%x", h.Sum(nil)); b.DiffID.String() != got {
			t.Errorf("%q: diffID %s, uncompressed blob hashes to %s", tt.c, b.DiffID, got)
		}
	}
	if _, _, err := WriteUpperDiff(context.Background(), src, io.Discard, WriteOptions{Compression: "lz4"}); err == nil {
		t.Error("unknown compression accepted")
	}
}

func TestEmptyUpper(t *testing.T) {
	_, empty, _ := writeUpper(t, t.TempDir(), WriteOptions{})
	if !empty {
		t.Error("empty = false for an empty dir")
	}
	dir := t.TempDir()
	must(t, os.Mkdir(filepath.Join(dir, "d"), 0o755))
	if _, empty, _ := writeUpper(t, dir, WriteOptions{}); empty {
		t.Error("empty = true for a dir with a subdir")
	}
}

func TestWriteCancelled(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "f"), "x", 0o644)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := WriteUpperDiff(ctx, dir, io.Discard, WriteOptions{}); err == nil {
		t.Error("cancelled write succeeded")
	}
}

// hashingWriter is a Digester as the store's blob writer is one: it hashes what it
// keeps. Its digest is the one a layer written to it reports.
type hashingWriter struct {
	bytes.Buffer
	h       hash.Hash
	digests int
}

func (w *hashingWriter) Write(p []byte) (int, error) {
	n, err := w.Buffer.Write(p)
	w.h.Write(p[:n])
	return n, err
}

func (w *hashingWriter) Digest() v1.Hash {
	w.digests++
	return v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", w.h.Sum(nil))}
}

// A layer written to a Digester takes its digest from it, and the blob is the one
// a plain writer gets, with the same digest, diffID and size, for every codec.
func TestDigesterGivesTheDigest(t *testing.T) {
	src := t.TempDir()
	makeManyFiles(t, src, 200, 7)
	for _, c := range []Compression{Gzip, Zstd, Uncompressed} {
		t.Run(string(c), func(t *testing.T) {
			want, _, plain := writeUpper(t, src, WriteOptions{Compression: c})
			if got := fmt.Sprintf("%x", sha256.Sum256(plain)); want.Digest.Hex != got {
				t.Fatalf("plain writer: digest %s, content %s", want.Digest.Hex, got)
			}
			hw := &hashingWriter{h: sha256.New()}
			got, _, err := WriteUpperDiff(context.Background(), src, hw, WriteOptions{Compression: c})
			must(t, err)
			if !bytes.Equal(hw.Bytes(), plain) {
				t.Fatalf("%d bytes through the Digester, %d through a plain writer", hw.Len(), len(plain))
			}
			if got.Digest != want.Digest || got.DiffID != want.DiffID || got.Size != want.Size {
				t.Fatalf("through the Digester: %s %s %d, want %s %s %d", got.Digest, got.DiffID, got.Size, want.Digest, want.DiffID, want.Size)
			}
			if c != Uncompressed && hw.digests == 0 {
				t.Fatal("the layer hashed the blob itself instead of asking the Digester")
			}
		})
	}
}
