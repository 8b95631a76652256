package layers

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/testenv"
	"github.com/kiln-build/kiln/internal/xattr"
)

// TestWhiteoutNamesBecomeWhiteouts: the ".wh." names a step leaves in its upper dir
// are refused by a plain write, and under NormalizeTree become what every reader
// takes them for, in the tree as in the layer: the tree then writes the same layer
// again, and the merged view of the tree is the layer applied on its lower.
func TestWhiteoutNamesBecomeWhiteouts(t *testing.T) {
	testenv.RequireRoot(t)
	lower, upper := t.TempDir(), t.TempDir()
	for _, p := range []string{"victim", "keep", "d/x", "d2/gone", "d2/stay", "m/old"} {
		writeFile(t, filepath.Join(lower, p), "lower", 0o644)
	}
	merged, unmount := mountOverlay(t, lower, upper)
	for p, content := range map[string]string{
		".wh.victim":      "",  // hides the lower victim
		".wh.nothing":     "x", // names nothing below: no whiteout
		".wh.keep":        "",  // the layer has keep itself: nothing to hide
		"keep":            "upper",
		"d/.wh..wh..opq":  "", // d hides its lower children
		"d/new":           "n",
		"d2/.wh.gone":     "",
		".wh..wh.plnk":    "aufs", // AUFS metadata: readers skip it
		"n/.wh..wh..opq":  "",     // a new dir made opaque
		"n/f":             "f",
		"d2/sub/.wh.none": "",
		".wh.m":           "", // the layer has m/ itself: m loses what is below
		"m/mine":          "mine",
	} {
		writeFile(t, filepath.Join(merged, p), content, 0o644)
	}
	unmount()
	fixed := time.Date(2021, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, d := range []string{"", "d", "d2", "n"} {
		must(t, setMtime(filepath.Join(upper, d), unix.NsecToTimespec(fixed.UnixNano())))
	}

	var discard bytes.Buffer
	if _, _, err := WriteUpperDiff(context.Background(), upper, &discard, WriteOptions{Compression: Uncompressed}); !errors.Is(err, ErrReservedName) {
		t.Fatalf("a plain write of a tree with .wh. names: %v, want ErrReservedName", err)
	}

	// What the lower shows (a single plain layer here; snapshot.Active.Below walks
	// the real stack).
	below := func(rel string) (bool, error) {
		_, err := os.Lstat(filepath.Join(lower, rel))
		return err == nil, nil
	}
	blob, _, raw := writeUpper(t, upper, WriteOptions{Compression: Uncompressed, NormalizeTree: true, Below: below})
	got := strings.Join(entryNames(readTar(t, raw)), " ")
	want := "d/ d/.wh..wh..opq d/new d2/ d2/.wh.gone d2/sub/ keep m/ m/.wh..wh..opq m/mine n/ n/.wh..wh..opq n/f .wh.victim"
	if got != want {
		t.Errorf("layer entries\n %q, want\n %q", got, want)
	}

	// The tree holds what the layer does.
	must(t, filepath.Walk(upper, func(p string, fi os.FileInfo, err error) error {
		if err == nil && strings.HasPrefix(fi.Name(), ".wh.") {
			t.Errorf("%s is still in the tree", p)
		}
		return err
	}))
	for _, p := range []string{"victim", "d2/gone"} {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(upper, p), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
			t.Errorf("%s: not a whiteout (%v, mode %o)", p, err, st.Mode)
		}
	}
	// Nothing below them: no whiteout, which overlayfs would list as a name that
	// cannot be looked up.
	for _, p := range []string{"nothing", "d2/sub/none"} {
		if _, err := os.Lstat(filepath.Join(upper, p)); !os.IsNotExist(err) {
			t.Errorf("%s: %v, want nothing", p, err)
		}
	}
	for _, d := range []string{"d", "n", "m"} {
		if ok, err := xattr.IsOpaque(filepath.Join(upper, d)); err != nil || !ok {
			t.Errorf("%s is not opaque: %v", d, err)
		}
	}
	for _, d := range []string{"", "d", "d2", "n"} {
		var st unix.Stat_t
		must(t, unix.Lstat(filepath.Join(upper, d), &st))
		if st.Mtim.Sec != fixed.Unix() || st.Mtim.Nsec != 0 {
			t.Errorf("%q: mtime changed to %d.%09d", d, st.Mtim.Sec, st.Mtim.Nsec)
		}
	}
	again, _, _ := writeUpper(t, upper, WriteOptions{Compression: Uncompressed})
	if again.DiffID != blob.DiffID {
		t.Errorf("the normalized tree writes another layer: %s, want %s", again.DiffID, blob.DiffID)
	}

	// What a later step sees is what a reader of the layer gets.
	merged, _ = mountOverlay(t, lower, upper)
	applied := t.TempDir()
	must(t, os.CopyFS(applied, os.DirFS(lower)))
	must(t, Unpack(context.Background(), bytes.NewReader(raw), applied, UnpackOptions{Whiteouts: ApplyWhiteouts, KeepOwners: true}))
	if m, a := describeNames(t, merged), describeNames(t, applied); m != a {
		t.Errorf("a later step sees %q, a reader of the image %q", m, a)
	}
	if got, want := describeNames(t, applied), "d d/new d2 d2/stay d2/sub keep m m/mine n n/f"; got != want {
		t.Errorf("the image holds %q, want %q", got, want)
	}
}

// A layer with ".wh.NAME" and then "NAME/" (BuildKit writes such a layer for a step
// that left .wh.NAME beside a directory NAME) unpacks into a snapshot whose NAME is
// opaque: over its lower, the merged view holds only what the layer put in NAME,
// which is what a reader that applies the layer gets.
func TestUnpackDirAfterItsWhiteoutIsOpaque(t *testing.T) {
	testenv.RequireRoot(t)
	lower, snap := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(lower, "m/old"), "lower", 0o644)
	blob := buildTar(t, hdrs(hdrReg(".wh.m"), hdrDir("m/"), hdrReg("m/mine")), map[string]string{"m/mine": "mine"})
	must(t, Unpack(context.Background(), bytes.NewReader(blob), snap, UnpackOptions{Whiteouts: OverlayWhiteouts, KeepOwners: true}))
	if ok, err := xattr.IsOpaque(filepath.Join(snap, "m")); err != nil || !ok {
		t.Fatalf("m is not opaque: %v", err)
	}
	merged, _ := mountOverlay(t, lower, snap)
	applied := t.TempDir()
	must(t, os.CopyFS(applied, os.DirFS(lower)))
	must(t, Unpack(context.Background(), bytes.NewReader(blob), applied, UnpackOptions{Whiteouts: ApplyWhiteouts, KeepOwners: true}))
	if m, a := describeNames(t, merged), describeNames(t, applied); m != a || a != "m m/mine" {
		t.Errorf("over its lower the snapshot shows %q, a reader gets %q; want \"m m/mine\"", m, a)
	}
}
