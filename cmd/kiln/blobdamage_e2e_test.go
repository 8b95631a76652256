package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// scribble flips one byte in the middle of blob d in root's store, keeping its size
// (damage a build did not cause).
func scribble(t *testing.T, root string, d v1.Hash) {
	t.Helper()
	p := filepath.Join(root, "blobs", "sha256", d.Hex)
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("blob %s: %v", d, err)
	}
	data[len(data)/2] ^= 0xff
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// A store blob whose bytes were changed (size kept) is never exported: the build
// finds it as it reads it, says so, removes it, makes or pulls what needed it, and
// ends with the right image, the same as before the damage. Damage to a step's layer
// and to a base image's layer, for an OCI tarball and for a step that must unpack the
// damaged layer.
func TestDamagedBlobIsRepairedNotExported(t *testing.T) {
	host := busyboxRegistry(t)
	epoch := []string{"--build-arg", "SOURCE_DATE_EPOCH=1700000000"}
	for _, tc := range []struct {
		name, dockerfile string
		layer            func(ls []v1.Layer) v1.Layer // which layer to damage
		rebuild          string                       // a Dockerfile that reads the layer ("" = the same)
	}{
		{"step layer exported", "FROM %s/busybox\nRUN echo hi > /hi.txt\n",
			func(ls []v1.Layer) v1.Layer { return ls[len(ls)-1] }, ""},
		{"base layer exported", "FROM %s/busybox\nRUN echo hi > /hi.txt\n",
			func(ls []v1.Layer) v1.Layer { return ls[0] }, ""},
		// The COPY wrote only its layer: the next build unpacks it to run the RUN.
		{"step layer unpacked", "FROM %s/busybox\nCOPY f.txt /f.txt\n",
			func(ls []v1.Layer) v1.Layer { return ls[len(ls)-1] }, "FROM %s/busybox\nCOPY f.txt /f.txt\nRUN cat /f.txt > /g.txt\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root, out := e2e(t)
			dir := project(t, map[string]string{"Dockerfile": fmt.Sprintf(tc.dockerfile, host), "f.txt": "f\n"})
			first := filepath.Join(out, "1.tar")
			mustBuild(t, dir, append(epoch, "--root", root, "-o", "type=oci,dest="+first, ".")...)
			img := readOCI(t, first)
			ls, err := img.Layers()
			if err != nil {
				t.Fatal(err)
			}
			d, err := tc.layer(ls).Digest()
			if err != nil {
				t.Fatal(err)
			}
			scribble(t, root, d)
			want := first
			if tc.rebuild != "" {
				writeFile(t, filepath.Join(dir, "Dockerfile"), fmt.Sprintf(tc.rebuild, host))
				want = filepath.Join(out, "fresh.tar")
				mustBuild(t, dir, append(epoch, "--root", t.TempDir(), "-o", "type=oci,dest="+want, ".")...)
			}
			second := filepath.Join(out, "2.tar")
			r := mustBuild(t, dir, append(epoch, "--root", root, "--progress", "plain", "-o", "type=oci,dest="+second, ".")...)
			if !strings.Contains(r.stderr, "is damaged") || !strings.Contains(r.stderr, d.String()) {
				t.Errorf("the build did not say blob %s was damaged:\n%s", d, r.stderr)
			}
			got, _ := readOCI(t, second).Digest() // readOCI validates every layer's bytes
			wantDigest, _ := readOCI(t, want).Digest()
			if got != wantDigest {
				t.Errorf("after the repair the image is %s, want %s", got, wantDigest)
			}
			// The store holds good bytes again: the next build is quiet.
			r = mustBuild(t, dir, append(epoch, "--root", root, "--progress", "plain", "-o", "type=oci,dest="+filepath.Join(out, "3.tar"), ".")...)
			if strings.Contains(r.stderr, "is damaged") {
				t.Errorf("the damage came back:\n%s", r.stderr)
			}
		})
	}
}
