package layers

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/testenv"
)

// FuzzWriteUpperDiff builds an overlay-format upper dir from the fuzz input (files,
// dirs, symlinks, whiteout devices, opaque dirs, hard links) and writes it as a layer:
// it must not fail or panic, every name must be relative and clean, entries sorted,
// and two writes of the same dir must give the same digest.
func FuzzWriteUpperDiff(f *testing.F) {
	testenv.RequireRoot(f) // whiteouts are char devices, opaque dirs trusted.* xattrs
	f.Add([]byte("f a\nd b\nw c\no b\nl b/x ../a\nh b/y a\n"))
	f.Add([]byte("d x\nd x/y\nf x/y/z\nw x/gone\nl x/up /etc/passwd\n"))
	f.Add([]byte("f ..\nf .wh.evil\nd ./a/../b\n"))
	f.Fuzz(func(t *testing.T, script []byte) {
		upper := t.TempDir()
		for _, line := range strings.Split(string(script), "\n") {
			op, rest, _ := strings.Cut(line, " ")
			name, arg, _ := strings.Cut(rest, " ")
			name = path.Clean("/" + name)[1:]
			if name == "" || strings.ContainsRune(name, 0) || len(name) > 200 {
				continue
			}
			p := filepath.Join(upper, name)
			_ = os.MkdirAll(filepath.Dir(p), 0o755)
			switch op {
			case "f":
				_ = os.WriteFile(p, []byte(arg), 0o644)
			case "d":
				_ = os.MkdirAll(p, 0o755)
			case "l":
				_ = os.Symlink(arg, p)
			case "w":
				_ = unix.Mknod(p, unix.S_IFCHR, 0)
			case "o":
				if err := os.MkdirAll(p, 0o755); err == nil {
					_ = unix.Setxattr(p, "trusted.overlay.opaque", []byte("y"), 0)
				}
			case "h":
				_ = os.Link(filepath.Join(upper, path.Clean("/" + arg)[1:]), p)
			}
		}
		write := func() (Blob, []string) {
			var buf bytes.Buffer
			b, _, err := WriteUpperDiff(context.Background(), upper, &buf, WriteOptions{Compression: Uncompressed})
			if errors.Is(err, ErrReservedName) {
				return Blob{}, nil // refused on purpose: a .wh. file cannot be stored
			}
			if err != nil {
				t.Fatalf("WriteUpperDiff: %v", err)
			}
			var names []string
			tr := tar.NewReader(&buf)
			for {
				h, err := tr.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("read back layer: %v", err)
				}
				n := strings.TrimSuffix(h.Name, "/")
				if path.IsAbs(n) || path.Clean(n) != n || n == ".." || strings.HasPrefix(n, "../") {
					t.Fatalf("unclean name %q in layer", h.Name)
				}
				if _, ok := h.PAXRecords["SCHILY.xattr.trusted.overlay.opaque"]; ok {
					t.Fatalf("overlay xattr leaked into the layer at %q", h.Name)
				}
				names = append(names, h.Name)
			}
			return b, names
		}
		b1, names := write()
		b2, _ := write()
		if b1.Digest != b2.Digest {
			t.Fatalf("same upper dir gave two digests: %s, %s", b1.Digest, b2.Digest)
		}
		// Entries come in the walk order: each dir before what is inside it.
		seen := map[string]bool{}
		for _, n := range names {
			n = strings.TrimSuffix(n, "/")
			if dir := path.Dir(n); dir != "." && !seen[dir] && !strings.HasPrefix(path.Base(n), ".wh.") {
				t.Fatalf("%q comes before its parent dir %q: %v", n, dir, names)
			}
			seen[n] = true
		}
	})
}
