package layers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/testenv"
)

// TestPendingFilesSameBytes writes one tree twice: once with its regular files in the
// upper dir, once with them pending (read from elsewhere). The layers must be the same
// bytes: a COPY that skips writing its files must not change the image.
func TestPendingFilesSameBytes(t *testing.T) {
	testenv.RequireRoot(t)
	real, sparse, src := t.TempDir(), t.TempDir(), t.TempDir()
	mtime := time.Date(2021, 5, 6, 7, 8, 9, 500, time.UTC)
	type file struct {
		name, body string
		mode       uint32
		uid, gid   int
		xattrs     map[string][]byte
	}
	files := []file{
		{name: "app/a.txt", body: "a", mode: 0o644},
		{name: "app/b/deep", body: strings.Repeat("d", 200<<10), mode: 0o600, uid: 1000, gid: 1000},
		{name: "app/b/empty", mode: 0o640},
		{name: "app/c", body: "c", mode: 0o4755, xattrs: map[string][]byte{"user.k": []byte("v")}},
		{name: "app/z", body: "z", mode: 0o644},
		{name: "top", body: "t", mode: 0o644},
	}
	for _, root := range []string{real, sparse} {
		must(t, os.MkdirAll(filepath.Join(root, "app/b"), 0o755))
		must(t, os.Mkdir(filepath.Join(root, "app/sub"), 0o700))
		must(t, os.Symlink("a.txt", filepath.Join(root, "app/link")))
		// A whiteout where the copy replaced a lower file: the file wins.
		must(t, unix.Mknod(filepath.Join(root, "app/z"), unix.S_IFCHR, 0))
	}
	must(t, os.Remove(filepath.Join(real, "app/z")))
	var pending []PendingFile
	for i, f := range files {
		for _, p := range []string{filepath.Join(real, f.name), filepath.Join(src, f.name)} {
			writeFile(t, p, f.body, 0o600)
			must(t, os.Lchown(p, f.uid, f.gid))
			must(t, unix.Chmod(p, f.mode))
			for k, v := range f.xattrs {
				must(t, unix.Lsetxattr(p, k, v, 0))
			}
			must(t, os.Chtimes(p, mtime, mtime))
		}
		pending = append(pending, PendingFile{
			Name: f.name, Source: filepath.Join(src, f.name), Size: int64(len(f.body)),
			Mode: f.mode, UID: f.uid, GID: f.gid, ModTime: mtime.Add(time.Duration(i)), Xattrs: f.xattrs,
		})
	}
	// Directory times last: creating files bumped them.
	for _, root := range []string{real, sparse} {
		for _, d := range []string{"app/b", "app/sub", "app", "."} {
			must(t, os.Chtimes(filepath.Join(root, d), mtime, mtime))
		}
	}

	wantBlob, _, want := writeUpper(t, real, WriteOptions{})
	var buf bytes.Buffer
	gotBlob, empty, err := WriteUpperDiff(context.Background(), sparse, &buf, WriteOptions{Pending: PendingSlice(pending)})
	must(t, err)
	if empty {
		t.Fatal("layer with pending files reported empty")
	}
	if gotBlob.DiffID != wantBlob.DiffID {
		t.Errorf("pending layer differs:\n got %q\nwant %q", entryNames(readTar(t, buf.Bytes())), entryNames(readTar(t, want)))
	}
	for _, e := range readTar(t, buf.Bytes()) {
		if e.hdr.Name == "app/b/deep" && len(e.body) != 200<<10 {
			t.Errorf("app/b/deep: %d bytes", len(e.body))
		}
	}
}

func TestPendingFilesRefused(t *testing.T) {
	testenv.RequireRoot(t)
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "f"), "12345", 0o644)
	const big = 300 << 10 // more than one read of the writer's buffer
	writeFile(t, filepath.Join(src, "big"), strings.Repeat("x", big), 0o644)
	must(t, unix.Mkfifo(filepath.Join(src, "fifo"), 0o644))
	cases := []struct {
		name    string
		setup   func(upper string)
		pending PendingFile
		twice   bool // listed twice
		want    string
		wantErr error
	}{
		{name: "no directory in the upper dir", pending: PendingFile{Name: "missing/f", Source: filepath.Join(src, "f"), Size: 5},
			want: "pending file outside"},
		{name: "not clean", pending: PendingFile{Name: "../f", Source: filepath.Join(src, "f"), Size: 5}, want: "not a clean relative path"},
		{name: "absolute", pending: PendingFile{Name: "/f", Source: filepath.Join(src, "f"), Size: 5}, want: "not a clean relative path"},
		{name: "over a directory", setup: func(u string) { must(t, os.Mkdir(filepath.Join(u, "f"), 0o755)) },
			pending: PendingFile{Name: "f", Source: filepath.Join(src, "f"), Size: 5}, want: "over a directory"},
		{name: "source grew", pending: PendingFile{Name: "f", Source: filepath.Join(src, "f"), Size: 4}, want: "file changed while writing the layer: more than the 4 bytes"},
		{name: "source shrank", pending: PendingFile{Name: "f", Source: filepath.Join(src, "f"), Size: 6}, want: "file changed while writing the layer: 5 bytes, expected 6"},
		{name: "big source grew", pending: PendingFile{Name: "f", Source: filepath.Join(src, "big"), Size: big - 1}, want: "more than the"},
		{name: "big source shrank", pending: PendingFile{Name: "f", Source: filepath.Join(src, "big"), Size: big + 1}, want: fmt.Sprintf("%d bytes, expected %d", big, big+1)},
		{name: "source is a fifo", pending: PendingFile{Name: "f", Source: filepath.Join(src, "fifo"), Size: 5}, want: "file changed"},
		{name: "source is a link", setup: func(string) { _ = os.Symlink("f", filepath.Join(src, "l")) },
			pending: PendingFile{Name: "f", Source: filepath.Join(src, "l"), Size: 5}, want: "symbolic links"},
		{name: "listed twice", pending: PendingFile{Name: "f", Source: filepath.Join(src, "f"), Size: 5}, twice: true, want: "listed twice"},
		{name: "whiteout name", pending: PendingFile{Name: ".wh.etc", Source: filepath.Join(src, "f"), Size: 5}, wantErr: ErrReservedName},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			upper := t.TempDir()
			if tc.setup != nil {
				tc.setup(upper)
			}
			list := []PendingFile{tc.pending}
			if tc.twice {
				list = append(list, tc.pending)
			}
			var buf bytes.Buffer
			_, _, err := WriteUpperDiff(context.Background(), upper, &buf, WriteOptions{Pending: PendingSlice(list)})
			if err == nil {
				t.Fatal("no error")
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("error %v, want %v", err, tc.wantErr)
			}
			if tc.want != "" && !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q, want it to contain %q", err, tc.want)
			}
		})
	}
}
