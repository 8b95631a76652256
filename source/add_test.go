package source

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/kiln-build/kiln/internal/testenv"
)

// testTar is a small archive: a directory, a file owned by 42:43 and a ".wh." name,
// which ADD must extract as a plain file.
func testTar(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range []*tar.Header{
		{Name: "top/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "top/f", Typeflag: tar.TypeReg, Mode: 0o644, Size: 2, Uid: 42, Gid: 43},
		{Name: ".wh.keep", Typeflag: tar.TypeReg, Mode: 0o644, Size: 2},
	} {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			tw.Write([]byte("hi"))
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func gz(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestAdd(t *testing.T) {
	testenv.RequireRoot(t)
	tarball := testTar(t)
	plainGz := gz(t, []byte("not a tar, just text"))
	for _, tc := range []struct {
		name    string
		file    string
		content []byte
		dest    string
		chown   *Owner
		want    map[string]string
		owner   map[string][2]int
	}{
		{
			name: "tar", file: "a.tar", content: tarball, dest: "/x/",
			want:  map[string]string{"x/": "", "x/pre": "P", "x/top/": "", "x/top/f": "hi", "x/.wh.keep": "hi"},
			owner: map[string][2]int{"x/top/f": {42, 43}, "x/pre": {0, 0}},
		},
		{
			name: "tar.gz to dest without slash", file: "a.tgz", content: gz(t, tarball), dest: "/x",
			want:  map[string]string{"x/": "", "x/pre": "P", "x/top/": "", "x/top/f": "hi", "x/.wh.keep": "hi"},
			owner: map[string][2]int{"x/top/f": {42, 43}},
		},
		{
			name: "chown applies to extracted entries only", file: "a.tar", content: tarball, dest: "/x/",
			chown: &Owner{UID: 7, GID: 8},
			want:  map[string]string{"x/": "", "x/pre": "P", "x/top/": "", "x/top/f": "hi", "x/.wh.keep": "hi"},
			owner: map[string][2]int{"x/top/f": {7, 8}, "x/top": {7, 8}, "x/pre": {0, 0}},
		},
		{
			name: "gzip that is not a tar is copied as is", file: "notes.gz", content: plainGz, dest: "/x/",
			want: map[string]string{"x/": "", "x/pre": "P", "x/notes.gz": string(plainGz)},
		},
		{
			name: "plain file is copied", file: "readme", content: []byte("text"), dest: "/x/",
			want: map[string]string{"x/": "", "x/pre": "P", "x/readme": "text"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctxDir, root := t.TempDir(), t.TempDir()
			if err := os.WriteFile(filepath.Join(ctxDir, tc.file), tc.content, 0o644); err != nil {
				t.Fatal(err)
			}
			writeTree(t, root, map[string]string{"x/pre": "P"})
			opts := CopyOptions{Sources: []string{tc.file}, Dest: tc.dest, Add: true, Chown: tc.chown}
			if err := Copy(context.Background(), Source{Root: ctxDir, Context: openCtx(t, ctxDir)}, root, opts); err != nil {
				t.Fatal(err)
			}
			sameTree(t, readTree(t, root), tc.want)
			for p, o := range tc.owner {
				if m := metaOf(t, filepath.Join(root, p)); m.uid != o[0] || m.gid != o[1] {
					t.Errorf("%s owned by %d:%d, want %d:%d", p, m.uid, m.gid, o[0], o[1])
				}
			}
		})
	}
}

func TestCopyDoesNotExtract(t *testing.T) {
	ctxDir, root := t.TempDir(), t.TempDir()
	tarball := testTar(t)
	if err := os.WriteFile(filepath.Join(ctxDir, "a.tar"), tarball, 0o644); err != nil {
		t.Fatal(err)
	}
	opts := CopyOptions{Sources: []string{"a.tar"}, Dest: "/x/"}
	if err := Copy(context.Background(), Source{Root: ctxDir, Context: openCtx(t, ctxDir)}, root, opts); err != nil {
		t.Fatal(err)
	}
	sameTree(t, readTree(t, root), map[string]string{"x/": "", "x/a.tar": string(tarball)})
}

// The directories on the way to dest are made by the first source, as BuildKit
// makes them (each source is a copy of its own there): without --chmod's mode when
// it is an archive ADD extracts, with it when it is a file ADD copies.
func TestAddChmodDirsFollowTheFirstSource(t *testing.T) {
	testenv.RequireRoot(t)
	chmod, err := ParseChmod("0600")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		sources []string
		want    os.FileMode
	}{
		{[]string{"a.tar"}, 0o755},
		{[]string{"a.tar", "readme"}, 0o755},
		{[]string{"readme", "a.tar"}, 0o600},
	} {
		ctxDir, root := t.TempDir(), t.TempDir()
		writeTree(t, ctxDir, map[string]string{"a.tar": string(testTar(t)), "readme": "text"})
		opts := CopyOptions{Sources: tc.sources, Dest: "/new/d/", Add: true, Chmod: chmod}
		if err := Copy(context.Background(), Source{Root: ctxDir, Context: openCtx(t, ctxDir)}, root, opts); err != nil {
			t.Fatal(err)
		}
		for _, d := range []string{"new", "new/d"} {
			fi, err := os.Stat(filepath.Join(root, d))
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != tc.want {
				t.Errorf("ADD --chmod=0600 %v /new/d/: /%s is %v, want %v", tc.sources, d, fi.Mode().Perm(), tc.want)
			}
		}
		if fi, err := os.Stat(filepath.Join(root, "new/d/top/f")); err != nil || fi.Mode().Perm() != 0o644 {
			t.Errorf("an extracted file's mode: %v %v, want the archive's 0644", fi, err)
		}
	}
}
