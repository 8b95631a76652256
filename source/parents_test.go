package source

import (
	"context"
	"strings"
	"testing"
)

// The cases follow BuildKit's testCopyParents, testCopyRelativeParents and
// testCopyParentsMissingDirectory (frontend/dockerfile/dockerfile_parents_test.go).
func TestCopyParents(t *testing.T) {
	tree := map[string]string{
		"test/a/b/c/d/foo":     "foo",
		"test/a/b/c/d/e/bay":   "bay",
		"test/a/b2/c/d/e/bar":  "bar",
		"test/a/b/c2/d/e/baz":  "baz1",
		"test/a/b/c2/d/e2/baz": "baz2",
	}
	for _, tc := range []struct {
		name    string
		sources []string
		dest    string
		exclude []string
		ignore  string
		want    []string // paths that must exist under the dest root
		wantNot []string // paths that must not
		wantErr string
	}{
		{name: "keeps parents", sources: []string{"test/a/b/c/d/foo"}, dest: "/", want: []string{"test/a/b/c/d/foo"}, wantNot: []string{"test/a/b/c/d/e"}},
		{name: "wildcard", sources: []string{"test/a/b/c/d/*"}, dest: "/out/", want: []string{"out/test/a/b/c/d/foo", "out/test/a/b/c/d/e/bay"}},
		{name: "pivot", sources: []string{"/test/a/b/./c/d"}, dest: "/out/", want: []string{"out/c/d/e/", "out/c/d/foo"}, wantNot: []string{"out/a", "out/e", "out/test"}},
		{name: "trailing dot is no pivot", sources: []string{"/test/a/b/c/d/."}, dest: "/out/", want: []string{"out/test/a/b/c/d/e/", "out/test/a/b/c/d/foo"}},
		{name: "leading dot slash", sources: []string{"./test/a/b/c/d"}, dest: "/out/", want: []string{"out/test/a/b/c/d/foo"}},
		{name: "two pivots: the first one counts", sources: []string{"/test/a/./b/./c"}, dest: "/out/", want: []string{"out/b/c/d/e/", "out/b/c/d/foo"}},
		{name: "wildcard after pivot", sources: []string{"/test/a/./*/c"}, dest: "/out/", want: []string{"out/b/c/d/e/", "out/b2/c/d/e/bar"}, wantNot: []string{"out/b/c2"}},
		{name: "wildcard base and double star", sources: []string{"/test/a/b*/./c/**/e"}, dest: "/out/", want: []string{"out/c/d/e/bay", "out/c/d/e/bar"}, wantNot: []string{"out/c/d/foo"}},
		{
			name: "two inputs", sources: []string{"/test/a/b/c*/./d/**/baz", "/test/a/b*/./c/**/bar"}, dest: "/out/",
			want: []string{"out/d/e/baz", "out/d/e2/baz", "out/c/d/e/bar"}, wantNot: []string{"out/d/e/bay"},
		},
		{name: "missing file is an error", sources: []string{"/test/nonexistent-file"}, dest: "/out/", wantErr: "file not found"},
		{name: "wildcard matching nothing creates dest", sources: []string{"/test/a/b2*/x"}, dest: "/out/", want: []string{"out/"}, wantNot: []string{"out/test"}},
		{name: "exclude is relative to the base", sources: []string{"/test/./a"}, dest: "/out/", exclude: []string{"a/b/c2"}, want: []string{"out/a/b/c/d/foo"}, wantNot: []string{"out/a/b/c2"}},
		{name: "dockerignore applies", sources: []string{"test/a/b/c/d"}, dest: "/out/", ignore: "**/e\n", want: []string{"out/test/a/b/c/d/foo"}, wantNot: []string{"out/test/a/b/c/d/e"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctxDir, root := t.TempDir(), t.TempDir()
			writeTree(t, ctxDir, tree)
			if tc.ignore != "" {
				writeTree(t, ctxDir, map[string]string{".dockerignore": tc.ignore})
			}
			src := Source{Root: ctxDir, Context: openCtx(t, ctxDir)}
			opts := CopyOptions{Sources: tc.sources, Dest: tc.dest, Excludes: tc.exclude, Parents: true, Line: 3}
			err := Copy(context.Background(), src, root, opts)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := readTree(t, root)
			for _, p := range tc.want {
				if _, ok := got[p]; !ok {
					t.Errorf("missing %s in %v", p, keysOf(got))
				}
			}
			for _, p := range tc.wantNot {
				for k := range got {
					if k == p || strings.HasPrefix(k, strings.TrimSuffix(p, "/")+"/") {
						t.Errorf("unexpected %s", k)
					}
				}
			}
			// The digest lists the files as they land under dest.
			sum, err := Digest(context.Background(), src, opts, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range sum.Files {
				p := strings.TrimPrefix(tc.dest, "/") + f.Path
				if _, ok := got[p]; !ok {
					if _, ok := got[p+"/"]; !ok {
						t.Errorf("digest names %s, which the copy did not write", p)
					}
				}
			}
		})
	}
}
