package layers

import (
	"github.com/kiln-build/kiln/internal/testenv"
	"github.com/kiln-build/kiln/internal/xattr"

	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// mountOverlay mounts lower+upper at a merged dir and unmounts it when the test ends,
// even on failure. It returns the merged path and an explicit unmount for tests that
// need the upper dir settled before reading it.
func mountOverlay(t *testing.T, lower, upper string) (merged string, unmount func()) {
	t.Helper()
	base := t.TempDir()
	work, merged := filepath.Join(base, "work"), filepath.Join(base, "merged")
	must(t, os.Mkdir(work, 0o755))
	must(t, os.Mkdir(merged, 0o755))
	// index/metacopy/redirect_dir off: the plain upper-dir format WriteUpperDiff reads.
	opts := "lowerdir=" + lower + ",upperdir=" + upper + ",workdir=" + work + ",index=off,metacopy=off,redirect_dir=off"
	if err := unix.Mount("overlay", merged, "overlay", 0, opts); err != nil {
		t.Skipf("overlayfs not available: %v", err)
	}
	mounted := true
	unmount = func() {
		if mounted {
			must(t, unix.Unmount(merged, 0))
			mounted = false
		}
	}
	t.Cleanup(func() {
		if mounted {
			_ = unix.Unmount(merged, unix.MNT_DETACH)
		}
	})
	return merged, unmount
}

func TestWriteUpperDiffOverlay(t *testing.T) {
	testenv.RequireRoot(t)
	lower, upper := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(lower, "a"), "a", 0o644)
	writeFile(t, filepath.Join(lower, "keep"), "k", 0o644)
	writeFile(t, filepath.Join(lower, "d/x"), "x", 0o644)
	writeFile(t, filepath.Join(lower, "d/sub/y"), "y", 0o644)

	merged, unmount := mountOverlay(t, lower, upper)
	must(t, os.Remove(filepath.Join(merged, "a")))
	must(t, os.RemoveAll(filepath.Join(merged, "d")))
	must(t, os.Mkdir(filepath.Join(merged, "d"), 0o755))
	writeFile(t, filepath.Join(merged, "d/new"), "new", 0o644)
	writeFile(t, filepath.Join(merged, "n"), "n", 0o644)
	unmount()

	_, empty, blob := writeUpper(t, upper, WriteOptions{})
	if empty {
		t.Fatal("empty = true")
	}
	es := readTar(t, blob)
	names := strings.Join(entryNames(es), " ")
	if want := ".wh.a d/ d/.wh..wh..opq d/new n"; names != want {
		t.Fatalf("entries %q, want %q", names, want)
	}
	for _, e := range es {
		for k := range e.hdr.PAXRecords {
			if strings.HasPrefix(k, paxXattr+"trusted.overlay.") {
				t.Errorf("%s carries %s", e.hdr.Name, k)
			}
		}
		if strings.Contains(e.hdr.Name, ".wh.") {
			h := e.hdr
			if h.Typeflag != '0' || h.Size != 0 || h.Mode != 0 || h.Uid != 0 || h.Gid != 0 {
				t.Errorf("whiteout %s: type %c size %d mode %o uid %d gid %d", h.Name, h.Typeflag, h.Size, h.Mode, h.Uid, h.Gid)
			}
			// Dated the Unix epoch, as BuildKit v0.32 (containerd v2) writes them.
			if h.ModTime.Unix() != 0 {
				t.Errorf("whiteout %s dated %v, want the Unix epoch", h.Name, h.ModTime)
			}
		}
	}

	t.Run("OverlayWhiteouts", func(t *testing.T) {
		dest := t.TempDir()
		must(t, Unpack(context.Background(), bytes.NewReader(blob), dest, UnpackOptions{Whiteouts: OverlayWhiteouts, KeepOwners: true}))
		var st unix.Stat_t
		must(t, unix.Lstat(filepath.Join(dest, "a"), &st))
		if st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
			t.Errorf("a: mode %o rdev %d, want a 0/0 char device", st.Mode, st.Rdev)
		}
		if v, _, _ := xattr.Get(filepath.Join(dest, "d"), "trusted.overlay.opaque"); string(v) != "y" {
			t.Errorf("d: trusted.overlay.opaque = %q, want y", v)
		}
		if _, err := os.Lstat(filepath.Join(dest, "d/.wh..wh..opq")); err == nil {
			t.Error("opaque marker written as a file")
		}
		// The unpacked snapshot stacks on the lower dir like the original upper did.
		merged, _ := mountOverlay(t, lower, dest)
		got := describeNames(t, merged)
		if want := "d d/new keep n"; got != want {
			t.Errorf("merged view %q, want %q", got, want)
		}
	})

	t.Run("ApplyWhiteouts", func(t *testing.T) {
		dest := t.TempDir()
		for _, p := range []string{"a", "keep", "d/x", "d/sub/y"} {
			writeFile(t, filepath.Join(dest, p), p, 0o644)
		}
		must(t, Unpack(context.Background(), bytes.NewReader(blob), dest, UnpackOptions{Whiteouts: ApplyWhiteouts, KeepOwners: true}))
		if got, want := describeNames(t, dest), "d d/new keep n"; got != want {
			t.Errorf("flattened %q, want %q", got, want)
		}
	})
}

// TestApplyOpaqueAfterChildren: the opaque marker may follow entries of the same
// layer (e.g. names sorting before ".wh."), which must survive while lower content
// inside a merged subdirectory does not.
func TestApplyOpaqueAfterChildren(t *testing.T) {
	testenv.RequireRoot(t)
	dest := t.TempDir()
	for _, p := range []string{"d/old", "d/sub/old", "d/-x"} {
		writeFile(t, filepath.Join(dest, p), "lower", 0o644)
	}
	blob := buildTar(t, hdrs(
		hdrDir("d/"), hdrReg("d/-x"), hdrDir("d/sub/"), hdrReg("d/sub/new"), hdrReg("d/.wh..wh..opq"),
	), map[string]string{"d/-x": "upper", "d/sub/new": "n"})
	must(t, Unpack(context.Background(), bytes.NewReader(blob), dest, UnpackOptions{Whiteouts: ApplyWhiteouts}))
	if got, want := describeNames(t, dest), "d d/-x d/sub d/sub/new"; got != want {
		t.Errorf("tree %q, want %q", got, want)
	}
	if b, _ := os.ReadFile(filepath.Join(dest, "d/-x")); string(b) != "upper" {
		t.Errorf("d/-x = %q", b)
	}
}

func describeNames(t *testing.T, dir string) string {
	t.Helper()
	var names []string
	must(t, filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err == nil && p != dir {
			rel, _ := filepath.Rel(dir, p)
			names = append(names, rel)
		}
		return err
	}))
	return strings.Join(names, " ")
}
