package testenv

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

// Tests that need root call RequireRoot, which fails on CI instead of skipping: a
// runner that lost its root would otherwise pass with the root tests silently
// skipped. This finds the hand-written alternative in every test file of the module:
// an if on os.Geteuid() or os.Getuid() whose body skips.
func TestRootChecksUseRequireRoot(t *testing.T) {
	root := filepath.Join("..", "..")
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not found: %v", err)
	}
	fset := token.NewFileSet()
	var found []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(p, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, p, nil, 0)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			ifs, ok := n.(*ast.IfStmt)
			if ok && callsAny(ifs.Cond, "Geteuid", "Getuid") && callsAny(ifs.Body, "Skip", "Skipf", "SkipNow") {
				found = append(found, fset.Position(ifs.Pos()).String())
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range found {
		t.Errorf("%s: skips when not root; call testenv.RequireRoot(t)", f)
	}
}

// callsAny reports whether n calls a function or method with one of names.
func callsAny(n ast.Node, names ...string) bool {
	hit := false
	ast.Inspect(n, func(n ast.Node) bool {
		if c, ok := n.(*ast.CallExpr); ok {
			if sel, ok := c.Fun.(*ast.SelectorExpr); ok {
				for _, name := range names {
					hit = hit || sel.Sel.Name == name
				}
			}
		}
		return !hit
	})
	return hit
}
