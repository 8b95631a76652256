package layers

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/xattr"
)

// capNetBindService is a valid VFS_CAP_REVISION_2 security.capability value granting
// cap_net_bind_service (effective, permitted): the kernel checks the format.
var capNetBindService = []byte{0x01, 0x00, 0x00, 0x02, 0x00, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, p, content string, mode os.FileMode) {
	t.Helper()
	must(t, os.MkdirAll(filepath.Dir(p), 0o755))
	must(t, os.WriteFile(p, []byte(content), mode))
	must(t, os.Chmod(p, mode))
}

// makeRichTree builds a tree with every kind of entry a layer carries.
func makeRichTree(t *testing.T, dir string) {
	t.Helper()
	old := time.Date(2020, 1, 2, 3, 4, 5, 600, time.UTC)
	must(t, os.MkdirAll(filepath.Join(dir, "a/b"), 0o755))
	writeFile(t, filepath.Join(dir, "a/file"), "hello", 0o644)
	must(t, os.Link(filepath.Join(dir, "a/file"), filepath.Join(dir, "a/hl")))
	writeFile(t, filepath.Join(dir, "a/b/deep"), strings.Repeat("x", 300<<10), 0o600)
	writeFile(t, filepath.Join(dir, "suid"), "#!/bin/sh\n", 0o755)
	must(t, unix.Chmod(filepath.Join(dir, "suid"), 0o4755))
	writeFile(t, filepath.Join(dir, "sgid-dir/keep"), "", 0o644)
	must(t, unix.Chmod(filepath.Join(dir, "sgid-dir"), 0o2775|0o1000))
	writeFile(t, filepath.Join(dir, "owned"), "x", 0o640)
	must(t, os.Lchown(filepath.Join(dir, "owned"), 1000, 2000))
	writeFile(t, filepath.Join(dir, "cap"), "bin", 0o755)
	must(t, unix.Lsetxattr(filepath.Join(dir, "cap"), "security.capability", capNetBindService, 0))
	must(t, unix.Lsetxattr(filepath.Join(dir, "a/file"), "user.note", []byte("v"), 0))
	must(t, os.Symlink("a/file", filepath.Join(dir, "rel-link")))
	must(t, os.Symlink("/etc/passwd", filepath.Join(dir, "abs-link")))
	must(t, unix.Mkfifo(filepath.Join(dir, "fifo"), 0o644))
	must(t, unix.Mknod(filepath.Join(dir, "null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	must(t, unix.Mknod(filepath.Join(dir, "blk"), unix.S_IFBLK|0o600, int(unix.Mkdev(7, 0))))
	// Children first so their parents' mtimes stay put.
	var paths []string
	must(t, filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		paths = append(paths, p)
		return err
	}))
	for i := len(paths) - 1; i > 0; i-- {
		ts := []unix.Timespec{unix.NsecToTimespec(old.UnixNano()), unix.NsecToTimespec(old.UnixNano())}
		must(t, unix.UtimesNanoAt(unix.AT_FDCWD, paths[i], ts, unix.AT_SYMLINK_NOFOLLOW))
	}
}

// describeTree lists every path under dir with the attributes a layer must keep, one
// line each, hard links shown as "link=FIRST".
func describeTree(t *testing.T, dir string) string {
	t.Helper()
	var lines []string
	seen := map[uint64]string{}
	must(t, filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		var st unix.Stat_t
		must(t, unix.Lstat(p, &st))
		line := fmt.Sprintf("%s type=%o mode=%o uid=%d gid=%d mtime=%d", rel, st.Mode&unix.S_IFMT, st.Mode&0o7777, st.Uid, st.Gid, st.Mtim.Sec)
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			if first, ok := seen[st.Ino]; ok {
				line += " link=" + first
			} else {
				seen[st.Ino] = rel
			}
			b, err := os.ReadFile(p)
			must(t, err)
			line += fmt.Sprintf(" sha=%x", sha256.Sum256(b))
		case unix.S_IFLNK:
			target, err := os.Readlink(p)
			must(t, err)
			line += " -> " + target
		case unix.S_IFCHR, unix.S_IFBLK:
			line += fmt.Sprintf(" dev=%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
		}
		names, err := xattr.List(p)
		must(t, err)
		for _, n := range names {
			v, _, err := xattr.Get(p, n)
			must(t, err)
			line += fmt.Sprintf(" xattr:%s=%q", n, v)
		}
		lines = append(lines, line)
		return nil
	}))
	return strings.Join(lines, "\n")
}

// tarEntry is what tests check of one tar header.
type tarEntry struct {
	hdr  *tar.Header
	body string
}

// readTar decompresses and reads a whole (small) test archive.
func readTar(t *testing.T, blob []byte) []tarEntry {
	t.Helper()
	rc, err := Decompress(bytes.NewReader(blob))
	must(t, err)
	defer rc.Close()
	tr := tar.NewReader(rc)
	var out []tarEntry
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		must(t, err)
		b, err := io.ReadAll(tr)
		must(t, err)
		out = append(out, tarEntry{hdr, string(b)})
	}
}

func entryNames(es []tarEntry) []string {
	var names []string
	for _, e := range es {
		names = append(names, e.hdr.Name)
	}
	return names
}

// buildTar writes hand-made entries: hostile archives are built with this.
func buildTar(t testing.TB, entries []*tar.Header, bodies map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range entries {
		body := bodies[h.Name]
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(body))
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if body != "" && h.Typeflag == tar.TypeReg {
			if _, err := io.WriteString(tw, body); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func writeUpper(t *testing.T, dir string, opts WriteOptions) (Blob, bool, []byte) {
	t.Helper()
	var buf bytes.Buffer
	b, empty, err := WriteUpperDiff(context.Background(), dir, &buf, opts)
	must(t, err)
	return b, empty, buf.Bytes()
}

func sortedKeys(m map[string]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func hdrs(hs ...*tar.Header) []*tar.Header { return hs }

func hdrDir(name string) *tar.Header {
	return &tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755}
}

func hdrReg(name string) *tar.Header { return &tar.Header{Typeflag: tar.TypeReg, Name: name} }

func hdrSym(name, target string) *tar.Header {
	return &tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target}
}

func hdrLink(name, target string) *tar.Header {
	return &tar.Header{Typeflag: tar.TypeLink, Name: name, Linkname: target}
}
