package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// checkDest refuses, before the build, a dest the output cannot be written to, and
// says what to give instead; a dest that does not exist yet, or of the right kind,
// passes.
func TestCheckDest(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		typ, dest, want string // want "": accepted
	}{
		{"oci", dir, "is a directory, and type=oci writes one file: name the file (dest=" + filepath.Join(dir, "image.tar")},
		{"docker", dir, "is a directory"},
		{"tar", dir, "is a directory"},
		{"local", file, "is a file, and type=local writes a directory"},
		{"oci", filepath.Join(file, "x.tar"), "a parent of the path is a file"},
		{"local", filepath.Join(file, "x"), "a parent of the path is a file"},
		{"oci", file, ""},
		{"oci", filepath.Join(dir, "new", "x.tar"), ""},
		{"local", dir, ""},
		{"local", filepath.Join(dir, "new"), ""},
		{"tar", "-", ""},
		{"registry", "", ""},
	} {
		err := checkDest(outputSpec{Type: tc.typ, Dest: tc.dest})
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("type=%s,dest=%s: %v, want it accepted", tc.typ, tc.dest, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("type=%s,dest=%s: %v, want an error saying %q", tc.typ, tc.dest, err, tc.want)
		}
	}
}
