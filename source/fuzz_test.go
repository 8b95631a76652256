package source

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzDockerignore feeds arbitrary .dockerignore files to Open and Digest over a small
// fixed context: no panic, and nothing Digest selects is outside the context or
// excluded by the rules.
func FuzzDockerignore(f *testing.F) {
	for _, seed := range []string{
		"*.log\n", "**/*.tmp\n!keep.tmp\n", "dir\n!dir/keep\n", "/abs\n..\n../x\n",
		"[\n", "\\\n", "!\n", "**\n!**/*.go\n", "# comment\n  spaced  \n", "a/**/b\n",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, ignore string) {
		dir := t.TempDir()
		for _, p := range []string{"a.txt", "b.log", "dir/keep", "dir/drop.tmp", "keep.tmp", "a/x/b", "deep/er/file.go"} {
			full := filepath.Join(dir, p)
			if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(full, []byte(p), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, ".dockerignore"), []byte(ignore), 0o644); err != nil {
			t.Fatal(err)
		}
		c, err := Open(dir, "")
		if err != nil {
			return // an invalid pattern is an error, which is fine
		}
		sum, err := Digest(context.Background(), Source{Root: dir, Context: c}, CopyOptions{Sources: []string{"."}, Dest: "/"}, nil)
		if err != nil {
			return
		}
		for _, fs := range sum.Files {
			if strings.HasPrefix(fs.Path, "..") || filepath.IsAbs(fs.Path) {
				t.Fatalf("selected a path outside the context: %q", fs.Path)
			}
			if fs.Path != "." && fs.Path != "" && c.Excluded(fs.Path) {
				// A dir kept only for an exception below it is fine; a file is not.
				if fi, err := os.Lstat(filepath.Join(dir, fs.Path)); err == nil && !fi.IsDir() {
					t.Fatalf("selected excluded file %q with rules %q", fs.Path, ignore)
				}
			}
		}
	})
}
