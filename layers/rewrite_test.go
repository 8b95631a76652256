package layers

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/testenv"
)

// The export transform of a cached layer: without an epoch the tar comes out entry
// for entry the same (one diffID, whatever the codec); with one, exactly the mtimes
// above it change, to it, as if the writer had clamped them.
func TestRewrite(t *testing.T) {
	testenv.RequireRoot(t)
	src := t.TempDir()
	makeRichTree(t, src)
	writeFile(t, filepath.Join(src, "new"), "now", 0o644) // mtime: now
	orig, _, blob := writeUpper(t, src, WriteOptions{Compression: Gzip})
	uncompressed := func(blob []byte) []byte {
		rc, err := Decompress(bytes.NewReader(blob))
		must(t, err)
		defer rc.Close()
		var b bytes.Buffer
		_, err = b.ReadFrom(rc)
		must(t, err)
		return b.Bytes()
	}
	for _, c := range []Compression{Gzip, Zstd, Uncompressed} {
		var out bytes.Buffer
		got, err := Rewrite(context.Background(), bytes.NewReader(uncompressed(blob)), &out, WriteOptions{Compression: c})
		must(t, err)
		if got.DiffID != orig.DiffID {
			t.Errorf("%s: rewritten without an epoch, diffID %s, want %s", c, got.DiffID, orig.DiffID)
		}
		if CompressionOf(string(got.MediaType)) != c {
			t.Errorf("%s: media type %s", c, got.MediaType)
		}
	}
	epoch := time.Date(2021, 6, 1, 0, 0, 0, 0, time.UTC)
	_, _, clampedBlob := writeUpper(t, src, WriteOptions{Compression: Gzip, SourceDateEpoch: &epoch})
	want, _, _ := writeUpper(t, src, WriteOptions{Compression: Uncompressed, SourceDateEpoch: &epoch})
	var out bytes.Buffer
	got, err := Rewrite(context.Background(), bytes.NewReader(uncompressed(blob)), &out, WriteOptions{Compression: Gzip, SourceDateEpoch: &epoch})
	must(t, err)
	if got.DiffID != want.DiffID {
		t.Errorf("rewritten with an epoch: diffID %s, want the clamping writer's %s", got.DiffID, want.DiffID)
	}
	if !bytes.Equal(uncompressed(out.Bytes()), uncompressed(clampedBlob)) {
		t.Error("rewritten with an epoch: the tar differs from the clamping writer's")
	}
}

// NormalizeTree makes the tree what its layer says: whole-second mtimes in the tree
// too, sockets gone, and the directory of a removed socket keeps the mtime its layer
// entry has.
func TestNormalizeTree(t *testing.T) {
	testenv.RequireRoot(t)
	src := t.TempDir()
	makeRichTree(t, src)
	frac := time.Date(2022, 3, 4, 5, 6, 7, 891011121, time.UTC)
	sock := filepath.Join(src, "a", "sock")
	l, err := net.Listen("unix", sock)
	must(t, err)
	defer l.Close()
	for _, p := range []string{filepath.Join(src, "a", "file"), filepath.Join(src, "a")} {
		ts := []unix.Timespec{unix.NsecToTimespec(frac.UnixNano()), unix.NsecToTimespec(frac.UnixNano())}
		must(t, unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW))
	}
	before, _, _ := writeUpper(t, src, WriteOptions{Compression: Uncompressed})
	after, _, _ := writeUpper(t, src, WriteOptions{Compression: Uncompressed, NormalizeTree: true})
	if before.DiffID != after.DiffID {
		t.Errorf("normalizing changed the layer: %s, then %s", before.DiffID, after.DiffID)
	}
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Errorf("the socket is still in the tree: %v", err)
	}
	for _, p := range []string{filepath.Join(src, "a", "file"), filepath.Join(src, "a")} {
		var st unix.Stat_t
		must(t, unix.Lstat(p, &st))
		if st.Mtim.Nsec != 0 || st.Mtim.Sec != frac.Unix() {
			t.Errorf("%s: mtime %d.%09d, want %d.000000000", p, st.Mtim.Sec, st.Mtim.Nsec, frac.Unix())
		}
	}
	// A tree made to match its layer writes that layer again.
	again, _, _ := writeUpper(t, src, WriteOptions{Compression: Uncompressed})
	if again.DiffID != before.DiffID {
		t.Errorf("the normalized tree writes another layer: %s, want %s", again.DiffID, before.DiffID)
	}
}
