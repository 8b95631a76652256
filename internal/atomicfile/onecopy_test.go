package atomicfile

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A temp file takes its final name in one place, Commit, so kiln has one durability
// policy for it (fsync, rename, fsync of the directory). There were three copies with
// two policies (cmd/kiln's outputs, image's pulled blobs, cache's built blobs, the
// last without any fsync). This finds a new copy: an os.Rename of f.Name() outside this
// package.
func TestTempFilesAreNamedOnlyByCommit(t *testing.T) {
	root := filepath.Join("..", "..")
	self, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	var found []string
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if abs, _ := filepath.Abs(p); abs == self || d.Name() == ".git" || d.Name() == "testdata" {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, p, nil, 0)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if c, ok := n.(*ast.CallExpr); ok && isCall(c, "os", "Rename") && len(c.Args) == 2 {
				if arg, ok := c.Args[0].(*ast.CallExpr); ok {
					if sel, ok := arg.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "Name" {
						found = append(found, fset.Position(c.Pos()).String())
					}
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range found {
		t.Errorf("%s: renames a temp file into place; use atomicfile.Commit", f)
	}
}

func isCall(c *ast.CallExpr, pkg, fn string) bool {
	sel, ok := c.Fun.(*ast.SelectorExpr)
	if !ok || sel.Sel.Name != fn {
		return false
	}
	id, ok := sel.X.(*ast.Ident)
	return ok && id.Name == pkg
}

// Commit syncs and names the file, replacing what was there.
func TestCommit(t *testing.T) {
	dir := t.TempDir()
	dest := filepath.Join(dir, "blob")
	if err := Write(dest, 0o644, writeString("old")); err != nil {
		t.Fatal(err)
	}
	f, err := os.CreateTemp(dir, "t")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("new"); err != nil {
		t.Fatal(err)
	}
	if err := Commit(f, dest); err != nil {
		t.Fatal(err)
	}
	if got := names(t, dir); len(got) != 1 || got[0] != "blob" {
		t.Errorf("dir after Commit: %v", got)
	}
	if b, _ := os.ReadFile(dest); string(b) != "new" {
		t.Errorf("dest = %q", b)
	}
}
