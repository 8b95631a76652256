package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A build trims the store to its cap by itself (KILN_GC_KEEP_STORAGE), and the store
// works afterwards.
func TestAutomaticGC(t *testing.T) {
	root, out := e2e(t)
	dir := project(t, map[string]string{"Dockerfile": "FROM scratch\nCOPY big /big\n"})
	if err := os.WriteFile(filepath.Join(dir, "big"), []byte(strings.Repeat("kiln ", 200_000)), 0o644); err != nil {
		t.Fatal(err)
	}
	mustBuild(t, dir, "--root", root, "-o", "type=oci,dest="+filepath.Join(out, "1.tar"), ".")
	before := kiln(t, dir, "du", "--root", root)
	if !strings.Contains(before.stdout, "Cache entries: 1") {
		t.Fatalf("du before:\n%s", before.stdout)
	}

	// Within the interval nothing is measured or removed.
	t.Setenv("KILN_GC_KEEP_STORAGE", "1")
	if err := os.WriteFile(filepath.Join(dir, "big"), []byte("changed"), 0o644); err != nil {
		t.Fatal(err)
	}
	mustBuild(t, dir, "--root", root, "-o", "type=oci,dest="+filepath.Join(out, "2.tar"), ".")
	if du := kiln(t, dir, "du", "--root", root); !strings.Contains(du.stdout, "Cache entries: 2") {
		t.Fatalf("GC ran before its interval:\n%s", du.stdout)
	}

	// Past the interval, the store over its cap is trimmed.
	os.Remove(filepath.Join(root, "gc.stamp"))
	mustBuild(t, dir, "--root", root, "-o", "type=oci,dest="+filepath.Join(out, "3.tar"), ".")
	if du := kiln(t, dir, "du", "--root", root); !strings.Contains(du.stdout, "Cache entries: 0") {
		t.Fatalf("GC did not trim the store:\n%s", du.stdout)
	}
	// And the next build still works and its image is complete.
	t.Setenv("KILN_GC_KEEP_STORAGE", "")
	mustBuild(t, dir, "--root", root, "-o", "type=oci,dest="+filepath.Join(out, "4.tar"), ".")
	if files := flatten(t, readOCI(t, filepath.Join(out, "4.tar"))); files["/big"].content != "changed" {
		t.Errorf("image after GC: %v", files["/big"])
	}
}
