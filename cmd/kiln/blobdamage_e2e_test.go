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
			// A step's layer is kiln's, written in parts: the export checks it a
			// part at a time, and names the damaged bytes; a base layer's is
			// hashed whole.
			byParts := strings.Contains(r.stderr, "do not hash to what was recorded")
			if want := tc.name == "step layer exported"; want != byParts && tc.name != "step layer unpacked" {
				t.Errorf("blob %s checked by parts: %v, want %v:\n%s", d, byParts, want, r.stderr)
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

// kiln check finds a damaged blob and a damaged step snapshot, --repair removes
// them, and the next build makes them again: the same image as before the damage.
func TestCheckAndRepair(t *testing.T) {
	root, out := e2e(t)
	host := busyboxRegistry(t)
	epoch := []string{"--build-arg", "SOURCE_DATE_EPOCH=1700000000"}
	dir := project(t, map[string]string{"Dockerfile": "FROM " + host + "/busybox\n" +
		"RUN echo one > /one.txt\nRUN echo two > /two.txt\n"})
	first := filepath.Join(out, "1.tar")
	mustBuild(t, dir, append(epoch, "--root", root, "-o", "type=oci,dest="+first, ".")...)
	if r := kiln(t, dir, "check", "--root", root); r.code != 0 || !strings.Contains(r.stdout, "checked") || !strings.Contains(r.stdout, "MB/s") {
		t.Fatalf("check of a sound store: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	ls, err := readOCI(t, first).Layers()
	if err != nil {
		t.Fatal(err)
	}
	d, _ := ls[len(ls)-1].Digest()
	scribble(t, root, d)
	snaps, err := filepath.Glob(filepath.Join(root, "snapshots", "committed", "s-*", "one.txt"))
	if err != nil || len(snaps) != 1 {
		t.Fatalf("the first RUN's snapshot: %v %v", snaps, err)
	}
	if err := os.WriteFile(snaps[0], []byte("eno\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := kiln(t, dir, "check", "--root", root)
	if r.code != 1 || !strings.Contains(r.stdout, "blob "+d.String()+": damaged") || !strings.Contains(r.stdout, "snapshot s-") {
		t.Fatalf("check of a damaged store: exit %d, want 1 naming the blob and the snapshot\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := kiln(t, dir, "check", "--root", root, "--repair"); r.code != 0 || strings.Count(r.stdout, "damaged, removed") != 2 {
		t.Fatalf("check --repair: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := kiln(t, dir, "check", "--root", root); r.code != 0 || strings.Contains(r.stdout, "damaged") {
		t.Fatalf("check after --repair: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	second := filepath.Join(out, "2.tar")
	mustBuild(t, dir, append(epoch, "--root", root, "-o", "type=oci,dest="+second, ".")...)
	want, _ := readOCI(t, first).Digest()
	if got, _ := readOCI(t, second).Digest(); got != want {
		t.Errorf("after the repair the image is %s, want %s", got, want)
	}
	files := flatten(t, readOCI(t, second))
	if files["/one.txt"].content != "one\n" {
		t.Errorf("/one.txt = %q after the repair", files["/one.txt"].content)
	}
}
