package source

import (
	"context"
	"strings"
	"testing"
)

func TestCopyRules(t *testing.T) {
	for _, tc := range []struct {
		name    string
		ctx     map[string]string // build context
		image   map[string]string // destination rootfs before the copy
		sources []string
		dest    string
		exclude []string
		want    map[string]string // whole destination rootfs after the copy
		wantErr string
	}{
		{
			name: "file to dir/", ctx: map[string]string{"a.txt": "A"},
			sources: []string{"a.txt"}, dest: "/app/",
			want: map[string]string{"app/": "", "app/a.txt": "A"},
		},
		{
			name: "file to new name", ctx: map[string]string{"a.txt": "A"},
			sources: []string{"a.txt"}, dest: "/app/b.txt",
			want: map[string]string{"app/": "", "app/b.txt": "A"},
		},
		{
			name: "file to existing dir without slash", ctx: map[string]string{"a.txt": "A"},
			image:   map[string]string{"app/": ""},
			sources: []string{"a.txt"}, dest: "/app",
			want: map[string]string{"app/": "", "app/a.txt": "A"},
		},
		{
			name: "file replaces file", ctx: map[string]string{"a.txt": "new"},
			image:   map[string]string{"etc/conf": "old"},
			sources: []string{"a.txt"}, dest: "/etc/conf",
			want: map[string]string{"etc/": "", "etc/conf": "new"},
		},
		{
			name: "leading slash is the context root", ctx: map[string]string{"a.txt": "A"},
			sources: []string{"/a.txt"}, dest: "/",
			want: map[string]string{"a.txt": "A"},
		},
		{
			name: "dir copies its contents", ctx: map[string]string{"d/x": "X", "d/sub/y": "Y"},
			sources: []string{"d"}, dest: "/app",
			want: map[string]string{"app/": "", "app/x": "X", "app/sub/": "", "app/sub/y": "Y"},
		},
		{
			name: "dir merges into existing dir", ctx: map[string]string{"d/x": "X"},
			image:   map[string]string{"app/old": "O"},
			sources: []string{"d"}, dest: "/app/",
			want: map[string]string{"app/": "", "app/x": "X", "app/old": "O"},
		},
		{
			name: "wildcard", ctx: map[string]string{"a.txt": "A", "b.txt": "B", "c.md": "C", "s/d.txt": "D"},
			sources: []string{"*.txt"}, dest: "/app/",
			want: map[string]string{"app/": "", "app/a.txt": "A", "app/b.txt": "B"},
		},
		{
			name: "wildcard in a middle component", ctx: map[string]string{"s1/a.txt": "A", "s2/a.txt": "B", "t/a.txt": "C"},
			sources: []string{"s*/a.txt"}, dest: "/app/",
			want: map[string]string{"app/": "", "app/a.txt": "B"},
		},
		{
			name: "wildcard matching nothing is fine", ctx: map[string]string{"a.txt": "A"},
			sources: []string{"*.none"}, dest: "/app/",
			want: map[string]string{},
		},
		// Several sources with a destination not spelt as a directory: each by the
		// one-source rule, over what the ones before it left (BuildKit v0.32).
		{
			name: "several sources onto a new path: the last one stays", ctx: map[string]string{"a": "A", "b": "B"},
			sources: []string{"a", "b"}, dest: "/app",
			want: map[string]string{"app": "B"},
		},
		{
			name: "wildcard matching several onto a new path: the last match stays", ctx: map[string]string{"a.txt": "A", "b.txt": "B"},
			sources: []string{"*.txt"}, dest: "/app",
			want: map[string]string{"app": "B"},
		},
		{
			name: "several sources into an existing dir without slash", ctx: map[string]string{"a": "A", "b": "B"},
			image:   map[string]string{"app/": ""},
			sources: []string{"a", "b"}, dest: "/app",
			want: map[string]string{"app/": "", "app/a": "A", "app/b": "B"},
		},
		{
			name: "several sources onto an existing file", ctx: map[string]string{"a": "A", "b": "B"},
			image:   map[string]string{"app": "old"},
			sources: []string{"a", "b"}, dest: "/app",
			want: map[string]string{"app": "B"},
		},
		{
			name: "a dir after a file cannot be copied onto it", ctx: map[string]string{"a": "A", "d/x": "X"},
			sources: []string{"a", "d"}, dest: "/app",
			wantErr: "cannot copy directory d to non-directory /app",
		},
		{
			name: "a file after a dir goes into it", ctx: map[string]string{"a": "A", "d/x": "X"},
			sources: []string{"d", "a"}, dest: "/app",
			want: map[string]string{"app/": "", "app/x": "X", "app/a": "A"},
		},
		{
			name: "missing source names it", ctx: map[string]string{"a": "A"},
			sources: []string{"nope"}, dest: "/app/",
			wantErr: "file not found in build context or excluded by .dockerignore: stat nope",
		},
		{
			// BuildKit stops ".." at the context root: "../x" is the context's x.
			name: "dotdot stops at the context root", ctx: map[string]string{"x": "X", "a/": ""},
			sources: []string{"../x"}, dest: "/app/",
			want: map[string]string{"app/": "", "app/x": "X"},
		},
		{
			name: "dotdot after a dir stops at the root too", ctx: map[string]string{"x": "X", "a/": ""},
			sources: []string{"a/../../../x"}, dest: "/app/",
			want: map[string]string{"app/": "", "app/x": "X"},
		},
		{
			name: "ignored source is absent", ctx: map[string]string{".dockerignore": "secret\n", "secret": "S"},
			sources: []string{"secret"}, dest: "/app/",
			wantErr: "excluded by .dockerignore: stat secret",
		},
		{
			name: "context root honours ignore rules and keeps Dockerfile",
			ctx: map[string]string{
				".dockerignore": "*.log\nd\n!d/keep\n", "Dockerfile": "FROM x", "a.log": "L", "b": "B",
				"d/keep": "K", "d/drop": "D", "e/f.log": "-",
			},
			sources: []string{"."}, dest: "/app/",
			want: map[string]string{
				"app/": "", "app/.dockerignore": "*.log\nd\n!d/keep\n", "app/Dockerfile": "FROM x",
				"app/b": "B", "app/d/": "", "app/d/keep": "K", "app/e/": "", "app/e/f.log": "-",
			},
		},
		{
			name:    "symlinks below a source are copied as links",
			ctx:     map[string]string{"d/abs": "->/etc/passwd", "d/rel": "->../../outside", "d/f": "F"},
			sources: []string{"d"}, dest: "/app/",
			want: map[string]string{"app/": "", "app/abs": "->/etc/passwd", "app/rel": "->../../outside", "app/f": "F"},
		},
		{
			name:    "top-level symlink to a file is followed",
			ctx:     map[string]string{"f": "F", "fl": "->f"},
			sources: []string{"fl"}, dest: "/app/",
			want: map[string]string{"app/": "", "app/fl": "F"},
		},
		{
			name:    "top-level symlink to a dir is followed",
			ctx:     map[string]string{"real/x": "X", "link": "->real"},
			sources: []string{"link"}, dest: "/app/",
			want: map[string]string{"app/": "", "app/x": "X"},
		},
		{
			name:    "top-level absolute symlink resolves inside the context",
			ctx:     map[string]string{"etc/hostname": "inside", "hn": "->/etc/hostname"},
			sources: []string{"hn"}, dest: "/app/",
			want: map[string]string{"app/": "", "app/hn": "inside"},
		},
		{
			name:    "symlink escaping the context is not followed to the host",
			ctx:     map[string]string{"esc": "->/../../../../etc/passwd"},
			sources: []string{"esc"}, dest: "/app/",
			wantErr: "stat esc",
		},
		{
			name:    "symlinked parent resolved inside the context",
			ctx:     map[string]string{"real/f": "F", "p": "->/real"},
			sources: []string{"p/f"}, dest: "/app/",
			want: map[string]string{"app/": "", "app/f": "F"},
		},
		{
			name: "missing parents created", ctx: map[string]string{"a": "A"},
			sources: []string{"a"}, dest: "/x/y/z/f",
			want: map[string]string{"x/": "", "x/y/": "", "x/y/z/": "", "x/y/z/f": "A"},
		},
		{
			name: "dest parent symlink to / stays in the rootfs", ctx: map[string]string{"a": "A"},
			image:   map[string]string{"lnk": "->/"},
			sources: []string{"a"}, dest: "/lnk/sub/",
			want: map[string]string{"lnk": "->/", "sub/": "", "sub/a": "A"},
		},
		{
			name: "dest symlink with dotdot stays in the rootfs", ctx: map[string]string{"a": "A"},
			image:   map[string]string{"up": "->../../../../"},
			sources: []string{"a"}, dest: "/up/a",
			want: map[string]string{"up": "->../../../../", "a": "A"},
		},
		{
			name: "dest symlink to a missing absolute path: parents made inside", ctx: map[string]string{"a": "A"},
			image:   map[string]string{"l": "->/opt/t/file"},
			sources: []string{"a"}, dest: "/l",
			want: map[string]string{"l": "->/opt/t/file", "opt/": "", "opt/t/": "", "opt/t/file": "A"},
		},
		{
			name: "dir to a dest under a dangling symlink", ctx: map[string]string{"d/x": "X"},
			image:   map[string]string{"l": "->/opt/t"},
			sources: []string{"d"}, dest: "/l/a/b",
			want: map[string]string{"l": "->/opt/t", "opt/": "", "opt/t/": "", "opt/t/a/": "", "opt/t/a/b/": "", "opt/t/a/b/x": "X"},
		},
		{
			name: "dir over a file is refused", ctx: map[string]string{"d/x": "X"},
			image:   map[string]string{"app": "file"},
			sources: []string{"d"}, dest: "/app",
			wantErr: "non-directory",
		},
		{
			name: "exclude patterns", ctx: map[string]string{"d/a.log": "L", "d/a.txt": "T", "d/s/b.log": "L"},
			sources: []string{"d"}, dest: "/app/", exclude: []string{"*.log", "s"},
			want: map[string]string{"app/": "", "app/a.txt": "T"},
		},
		{
			name: "exclude applies to wildcard matches", ctx: map[string]string{"home.txt": "T", "homer.go": "G"},
			sources: []string{"hom*"}, dest: "/app/", exclude: []string{"*.txt"},
			want: map[string]string{"app/": "", "app/homer.go": "G"},
		},
		{
			name:    "ignored dir whose exception names nothing is absent",
			ctx:     map[string]string{".dockerignore": "d\n!d/missing\n!d/sub/missing\n", "d/x": "X", "d/sub/y": "Y"},
			sources: []string{"d"}, dest: "/app/",
			wantErr: "excluded by .dockerignore",
		},
		{
			name:    "ignored dir whose exception names nothing matches no wildcard",
			ctx:     map[string]string{".dockerignore": "d\n!d/missing\n", "d/x": "X"},
			sources: []string{"d*"}, dest: "/app/",
			want: map[string]string{},
		},
		{
			name:    "ignored dir brings back what its exception names",
			ctx:     map[string]string{".dockerignore": "d\n!d/sub/keep\n", "d/x": "X", "d/sub/keep": "K", "d/sub/y": "Y"},
			sources: []string{"d"}, dest: "/app/",
			want: map[string]string{"app/": "", "app/sub/": "", "app/sub/keep": "K"},
		},
		{
			name:    "wildcard matching a symlink copies its target",
			ctx:     map[string]string{"t.txt": "T", "l1": "->t.txt"},
			sources: []string{"l*"}, dest: "/app/",
			want: map[string]string{"app/": "", "app/l1": "T"},
		},
		{
			name:    "wildcard matching a dangling symlink fails, as in BuildKit",
			ctx:     map[string]string{"t.txt": "T", "l1": "->t.txt", "l2": "->/nonexistent"},
			sources: []string{"l*"}, dest: "/app/",
			wantErr: "l* matches symlink l2, whose target is not in the build context",
		},
		{
			name:    "wildcard matching a symlink to an ignored file fails",
			ctx:     map[string]string{".dockerignore": "t.txt\n", "t.txt": "T", "l1": "->t.txt"},
			sources: []string{"l*"}, dest: "/app/",
			wantErr: "matches symlink l1",
		},
		{
			name:    "an ignored dangling symlink is not matched",
			ctx:     map[string]string{".dockerignore": "l2\n", "l1": "->t.txt", "t.txt": "T", "l2": "->/nonexistent"},
			sources: []string{"l*"}, dest: "/app/",
			want: map[string]string{"app/": "", "app/l1": "T"},
		},
		{
			name:    "unusual names",
			ctx:     map[string]string{"d/with space.txt": "1", "d/ünïcødé": "2", "d/bad\xff\xfe": "3", "d/-dash": "4"},
			sources: []string{"d"}, dest: "/app/",
			want: map[string]string{"app/": "", "app/with space.txt": "1", "app/ünïcødé": "2", "app/bad\xff\xfe": "3", "app/-dash": "4"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctxDir, root := t.TempDir(), t.TempDir()
			writeTree(t, ctxDir, tc.ctx)
			writeTree(t, root, tc.image)
			c := openCtx(t, ctxDir)
			opts := CopyOptions{Sources: tc.sources, Dest: tc.dest, Excludes: tc.exclude, Line: 7}
			err := Copy(context.Background(), Source{Root: ctxDir, Context: c}, root, opts)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			sameTree(t, readTree(t, root), tc.want)
		})
	}
}

func TestCopyFromStageResolvesInsideItsRoot(t *testing.T) {
	stage, root := t.TempDir(), t.TempDir()
	// An absolute symlink in the source rootfs must resolve inside it, never to the
	// host's /usr/lib.
	writeTree(t, stage, map[string]string{"usr/lib/x": "X", "lib": "->/usr/lib", "etc/l": "->/etc/shadow"})
	opts := CopyOptions{Sources: []string{"lib/x", "etc"}, Dest: "/out/"}
	if err := Copy(context.Background(), Source{Root: stage}, root, opts); err != nil {
		t.Fatal(err)
	}
	sameTree(t, readTree(t, root), map[string]string{"out/": "", "out/x": "X", "out/l": "->/etc/shadow"})
	_, err := Digest(context.Background(), Source{Root: stage}, CopyOptions{Sources: []string{"nope"}, Dest: "/"}, nil)
	if err == nil || !strings.Contains(err.Error(), "file not found in source: stat nope") {
		t.Fatalf("err = %v", err)
	}
}
