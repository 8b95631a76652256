package source

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/layers"
)

// A pending copy skips the lstat of files that land in directories the step itself
// made; the rules must stay those of a copy that writes: a file over a directory an
// earlier source made is refused, a file over a file is replaced by the later one.
func TestPendingCopyInMadeDirectories(t *testing.T) {
	for _, pending := range []bool{false, true} {
		for _, tc := range []struct {
			name    string
			ctx     map[string]string
			wantErr string
			want    string // the pending source (or written content) of d/sub/x
		}{
			{name: "file over made dir", ctx: map[string]string{"a/sub/x/f": "F", "b/sub/x": "X"},
				wantErr: "cannot replace directory /d/sub/x with a file"},
			{name: "file over file", ctx: map[string]string{"a/sub/x": "first", "b/sub/x": "second"}, want: "second"},
		} {
			ctxDir, root := t.TempDir(), t.TempDir()
			writeTree(t, ctxDir, tc.ctx)
			opts := CopyOptions{Sources: []string{"a", "b"}, Dest: "/d/"}
			var p *Pending
			if pending {
				p = NewPending(root)
				opts.Pending = p
			}
			err := Copy(context.Background(), Source{Root: ctxDir, Context: openCtx(t, ctxDir)}, root, opts)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("%s (pending %v): error %v, want %q", tc.name, pending, err, tc.wantErr)
				}
				continue
			}
			if err != nil {
				t.Fatalf("%s (pending %v): %v", tc.name, pending, err)
			}
			got := readTree(t, root)["d/sub/x"]
			if pending {
				got = ""
				for _, f := range pendingFiles(p) {
					if f.Name == "d/sub/x" {
						got = readTree(t, filepath.Dir(f.Source))[filepath.Base(f.Source)]
					}
				}
			}
			if got != tc.want {
				t.Fatalf("%s (pending %v): d/sub/x is %q, want %q", tc.name, pending, got, tc.want)
			}
		}
	}
}

// pendingFiles lists all of p's files.
func pendingFiles(p *Pending) []layers.PendingFile {
	l := p.Files()
	var out []layers.PendingFile
	for _, d := range l.Dirs() {
		out = append(out, l.InDir(d)...)
	}
	return out
}

// Pending keeps its files compactly (directory numbers, names, rare fields aside);
// what it hands the layer must be what the copies selected: a renamed source read
// from its own name, xattrs kept, a file replaced by a later copy read from the
// later source, one replaced by a link no longer pending; each with the owner its
// copy gave it. With every file's index hash the same, the names alone must tell
// them apart.
func TestPendingFilesAsCopied(t *testing.T) {
	t.Run("hashed", func(t *testing.T) { testPendingFilesAsCopied(t, nil) })
	t.Run("every hash collides", func(t *testing.T) {
		testPendingFilesAsCopied(t, func(pendingKey) uint64 { return 7 })
	})
}

func testPendingFilesAsCopied(t *testing.T, hash func(pendingKey) uint64) {
	ctxDir, root := t.TempDir(), t.TempDir()
	writeTree(t, ctxDir, map[string]string{"a.txt": "A", "x/f": "F", "x/g": "G1", "y/f": "->g", "y/g": "G2", "y/sub/h": "H"})
	if err := unix.Lsetxattr(filepath.Join(ctxDir, "a.txt"), "user.k", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	// A file the walk finds (not a selection itself): its xattrs come from the walk's
	// stat workers.
	if err := unix.Lsetxattr(filepath.Join(ctxDir, "y/sub/h"), "user.walked", []byte("w"), 0); err != nil {
		t.Fatal(err)
	}
	p := NewPending(root)
	p.hash = hash
	src := Source{Root: ctxDir, Context: openCtx(t, ctxDir)}
	for _, opts := range []CopyOptions{
		{Sources: []string{"a.txt"}, Dest: "/d/renamed.txt", Chown: &Owner{UID: 7, GID: 8}},
		{Sources: []string{"x"}, Dest: "/d/"},
		{Sources: []string{"y"}, Dest: "/d/", Chown: &Owner{UID: 1000, GID: 1000}},
	} {
		opts.Pending = p
		if err := Copy(context.Background(), src, root, opts); err != nil {
			t.Fatal(err)
		}
	}
	type got struct {
		source   string
		size     int64
		xattrs   map[string][]byte
		uid, gid int
	}
	files := map[string]got{}
	for _, f := range pendingFiles(p) {
		files[f.Name] = got{f.Source, f.Size, f.Xattrs, f.UID, f.GID}
	}
	want := map[string]got{
		"d/renamed.txt": {filepath.Join(ctxDir, "a.txt"), 1, map[string][]byte{"user.k": []byte("v")}, 7, 8},
		"d/g":           {filepath.Join(ctxDir, "y/g"), 2, nil, 1000, 1000},
		"d/sub/h":       {filepath.Join(ctxDir, "y/sub/h"), 1, map[string][]byte{"user.walked": []byte("w")}, 1000, 1000},
	}
	if !reflect.DeepEqual(files, want) {
		t.Fatalf("pending files\n %v\nwant\n %v", files, want)
	}
	if l, err := os.Readlink(filepath.Join(root, "d/f")); err != nil || l != "g" {
		t.Fatalf("d/f: link %q, %v", l, err)
	}
	if n := p.Files().Len(); n != 0 {
		t.Fatalf("Files left %d files behind", n)
	}
}

// A nameRef numbers 2^16 chunks of names: an arena that has them all refuses the
// next name rather than give it a ref that names another file's bytes.
func TestNameArenaFull(t *testing.T) {
	var a nameArena
	ref, err := a.add("first")
	if err != nil || string(a.get(ref, 5)) != "first" {
		t.Fatalf("first name: %q, %v", a.get(ref, 5), err)
	}
	full := make([]byte, nameChunk)
	for len(a.chunks) < maxNameChunks {
		a.chunks = append(a.chunks, full)
	}
	if _, err := a.add("next"); err == nil || !strings.Contains(err.Error(), "file names in one step") {
		t.Fatalf("name past a full arena: %v", err)
	}
	if string(a.get(ref, 5)) != "first" {
		t.Fatal("the first name changed")
	}
}
