package source

import (
	"context"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/kiln-build/kiln/internal/testenv"
)

type meta struct {
	uid, gid int
	mode     fs.FileMode // fs form: perm plus ModeSetuid etc., type bits dropped
}

func metaOf(t *testing.T, p string) meta {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return meta{int(st.Uid), int(st.Gid), fi.Mode() &^ fs.ModeType}
}

func TestCopyOwnersAndModes(t *testing.T) {
	testenv.RequireRoot(t)
	chown := &Owner{UID: 1234, GID: 5678}
	chmod := func(s string) *Chmod {
		m, err := ParseChmod(s)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	for _, tc := range []struct {
		name    string
		fromCtx bool
		chown   *Owner
		chmod   *Chmod
		want    map[string]meta // paths in the destination rootfs
	}{
		{
			name: "context files become root", fromCtx: true,
			want: map[string]meta{
				"opt/": {0, 0, 0o755}, "opt/app/": {0, 0, 0o755},
				"opt/app/run": {0, 0, 0o755 | fs.ModeSetuid}, "opt/app/sub/": {0, 0, 0o750},
				"opt/app/sub/f": {0, 0, 0o600},
			},
		},
		{
			name: "other stages keep owners",
			want: map[string]meta{
				"opt/": {0, 0, 0o755}, "opt/app/": {0, 0, 0o755},
				"opt/app/run": {7, 8, 0o755 | fs.ModeSetuid}, "opt/app/sub/": {9, 9, 0o750},
				"opt/app/sub/f": {7, 8, 0o600},
			},
		},
		{
			name: "chown applies to content and created dirs", fromCtx: true, chown: chown,
			want: map[string]meta{
				"opt/":          {0, 0, 0o755}, // existed before
				"opt/app/":      {1234, 5678, 0o755},
				"opt/app/run":   {1234, 5678, 0o755 | fs.ModeSetuid}, // setuid survives chown
				"opt/app/sub/":  {1234, 5678, 0o750},
				"opt/app/sub/f": {1234, 5678, 0o600},
			},
		},
		{
			// As BuildKit v0.32: the directory the copy creates for dest gets the
			// --chmod mode too; one that existed keeps its own.
			name: "chmod applies to files and dirs", fromCtx: true, chmod: chmod("0640"),
			want: map[string]meta{
				"opt/": {0, 0, 0o755}, "opt/app/": {0, 0, 0o640},
				"opt/app/run": {0, 0, 0o640}, "opt/app/sub/": {0, 0, 0o640},
				"opt/app/sub/f": {0, 0, 0o640},
			},
		},
		{
			// A symbolic mode changes each entry's own mode (X: directories and
			// what is already executable); a created directory stays 0755.
			name: "symbolic chmod applies to each entry", fromCtx: true, chmod: chmod("go-w,a+X,u-s,g+s"),
			want: map[string]meta{
				"opt/": {0, 0, 0o755}, "opt/app/": {0, 0, 0o755},
				"opt/app/run": {0, 0, 0o755 | fs.ModeSetgid}, "opt/app/sub/": {0, 0, 0o751 | fs.ModeSetgid},
				"opt/app/sub/f": {0, 0, 0o600 | fs.ModeSetgid},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srcDir, root := t.TempDir(), t.TempDir()
			writeTree(t, srcDir, map[string]string{"d/run": "#!", "d/sub/f": "F"})
			writeTree(t, root, map[string]string{"opt/": ""})
			mtime := time.Date(2001, 2, 3, 4, 5, 6, 7000, time.UTC)
			for p, m := range map[string]struct {
				mode     fs.FileMode
				uid, gid int
			}{"d/run": {0o755 | fs.ModeSetuid, 7, 8}, "d/sub/f": {0o600, 7, 8}, "d/sub": {0o750, 9, 9}} {
				p = filepath.Join(srcDir, p)
				if err := os.Lchown(p, m.uid, m.gid); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(p, m.mode); err != nil {
					t.Fatal(err)
				}
			}
			for _, p := range []string{"d/run", "d/sub/f", "d/sub"} {
				if err := os.Chtimes(filepath.Join(srcDir, p), mtime, mtime); err != nil {
					t.Fatal(err)
				}
			}
			src := Source{Root: srcDir}
			if tc.fromCtx {
				src.Context = openCtx(t, srcDir)
			}
			opts := CopyOptions{Sources: []string{"d"}, Dest: "/opt/app/", Chown: tc.chown, Chmod: tc.chmod}
			if err := Copy(context.Background(), src, root, opts); err != nil {
				t.Fatal(err)
			}
			for p, want := range tc.want {
				if got := metaOf(t, filepath.Join(root, p)); got != want {
					t.Errorf("%s: got uid %d gid %d mode %v, want uid %d gid %d mode %v", p, got.uid, got.gid, got.mode, want.uid, want.gid, want.mode)
				}
			}
			// Source mtimes are kept, on directories too.
			for _, p := range []string{"opt/app/run", "opt/app/sub/f", "opt/app/sub"} {
				fi, err := os.Lstat(filepath.Join(root, p))
				if err != nil {
					t.Fatal(err)
				}
				if !fi.ModTime().Equal(mtime) {
					t.Errorf("%s mtime %v, want %v", p, fi.ModTime(), mtime)
				}
			}
		})
	}
}

func TestCopyKeepsXattrsAndLinkOwners(t *testing.T) {
	testenv.RequireRoot(t)
	srcDir, root := t.TempDir(), t.TempDir()
	writeTree(t, srcDir, map[string]string{"d/f": "F", "d/l": "->f"})
	if err := os.Lchown(filepath.Join(srcDir, "d/l"), 3, 4); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Setxattr(filepath.Join(srcDir, "d/f"), "user.kiln", []byte("v"), 0); err != nil {
		t.Skipf("no user xattrs on this filesystem: %v", err)
	}
	if err := Copy(context.Background(), Source{Root: srcDir}, root, CopyOptions{Sources: []string{"d"}, Dest: "/x/"}); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	n, err := syscall.Getxattr(filepath.Join(root, "x/f"), "user.kiln", buf)
	if err != nil || string(buf[:n]) != "v" {
		t.Errorf("xattr = %q, %v", buf[:n], err)
	}
	if got := metaOf(t, filepath.Join(root, "x/l")); got.uid != 3 || got.gid != 4 {
		t.Errorf("link owner %d:%d, want 3:4", got.uid, got.gid)
	}
}

// A socket in the context is copied as an empty regular file with its permission bits,
// as BuildKit's context transfer sends it, and digests as that file does; with the
// copy's files left pending too.
func TestSocketIsCopiedAsEmptyFile(t *testing.T) {
	testenv.RequireRoot(t)
	withSocket, withFile := t.TempDir(), t.TempDir()
	for _, dir := range []string{withSocket, withFile} {
		writeTree(t, dir, map[string]string{"regular": "r"})
	}
	l, err := net.Listen("unix", filepath.Join(withSocket, "s.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := os.WriteFile(filepath.Join(withFile, "s.sock"), nil, 0o640); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{withSocket, withFile} {
		if err := os.Chmod(filepath.Join(dir, "s.sock"), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	opts := CopyOptions{Sources: []string{"."}, Dest: "/app/"}
	sums := map[string]string{}
	for name, dir := range map[string]string{"socket": withSocket, "file": withFile} {
		sum, err := Digest(context.Background(), Source{Root: dir, Context: openCtx(t, dir)}, opts, nil)
		if err != nil {
			t.Fatal(err)
		}
		sums[name] = sum.Digest
	}
	if sums["socket"] != sums["file"] {
		t.Errorf("a socket digests as %s, an empty 0640 file as %s", sums["socket"], sums["file"])
	}
	for _, mode := range []string{"copy", "pending", "add"} {
		pending := mode == "pending"
		root := t.TempDir()
		o := opts
		if pending {
			o.Pending = NewPending(root)
		}
		if mode == "add" {
			// A socket selected by name is no archive to look into.
			o.Add, o.Sources = true, []string{"*"}
		}
		if err := Copy(context.Background(), Source{Root: withSocket, Context: openCtx(t, withSocket)}, root, o); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(root, "app", "s.sock")
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
		if !fi.Mode().IsRegular() || fi.Size() != 0 || metaOf(t, p).mode != 0o640 {
			t.Errorf("%s: the socket was copied as %v, size %d; want an empty -rw-r----- file", mode, fi.Mode(), fi.Size())
		}
	}
}
