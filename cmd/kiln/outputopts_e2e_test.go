package main

import (
	"archive/tar"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// The output keys buildx documents work: annotations (flag and key) on the
// manifest, name= in the tarball, force-compression with a level recompressing the
// base layers too (same diff IDs, other blobs); the ones kiln cannot honour are
// refused by name.
func TestOutputOptions(t *testing.T) {
	root, out := e2e(t)
	host := busyboxRegistry(t)
	dir := project(t, map[string]string{"Dockerfile": "FROM " + host + "/busybox\nRUN seq 1 20000 > /n\n"})
	plainTar := filepath.Join(out, "plain.tar")
	mustBuild(t, dir, "--root", root, "-o", "type=oci,dest="+plainTar, ".")
	ociTar := filepath.Join(out, "opts.tar")
	mustBuild(t, dir, "--root", root, "--annotation", "org.opencontainers.image.source=https://example.com/src",
		"--annotation", "manifest:com.example.flag=1",
		"-o", "type=oci,dest="+ociTar+",name=example.com/app:v2,annotation.com.example.key=value,force-compression=true,compression-level=1", ".")

	plain, img := readOCI(t, plainTar), readOCI(t, ociTar)
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"org.opencontainers.image.source": "https://example.com/src", "com.example.flag": "1", "com.example.key": "value"} {
		if m.Annotations[k] != v {
			t.Errorf("manifest annotation %s = %q, want %q (all: %v)", k, m.Annotations[k], v, m.Annotations)
		}
	}
	var index v1.IndexManifest
	if err := json.Unmarshal(tarMember(t, ociTar, "index.json"), &index); err != nil {
		t.Fatal(err)
	}
	if got := index.Manifests[0].Annotations["io.containerd.image.name"]; got != "example.com/app:v2" {
		t.Errorf("name= gave the image the name %q, want example.com/app:v2", got)
	}
	pl, _ := plain.Layers()
	ol, _ := img.Layers()
	if len(pl) != len(ol) {
		t.Fatalf("%d layers vs %d", len(pl), len(ol))
	}
	for i := range pl {
		pd, _ := pl[i].Digest()
		od, _ := ol[i].Digest()
		pdiff, _ := pl[i].DiffID()
		odiff, _ := ol[i].DiffID()
		if pdiff != odiff {
			t.Errorf("layer %d: recompression changed the content (%s vs %s)", i, pdiff, odiff)
		}
		if pd == od {
			t.Errorf("layer %d: force-compression with compression-level=1 kept the blob %s (the base layer too must be recompressed)", i, pd)
		}
	}

	dockerTar := filepath.Join(out, "d.tar")
	mustBuild(t, dir, "--root", root, "-t", "ignored:tag", "-o", "type=docker,dest="+dockerTar+",name=example.com/app:v3", ".")
	var manifest []struct{ RepoTags []string }
	if err := json.Unmarshal(tarMember(t, dockerTar, "manifest.json"), &manifest); err != nil {
		t.Fatal(err)
	}
	if len(manifest) != 1 || strings.Join(manifest[0].RepoTags, ",") != "example.com/app:v3" {
		t.Errorf("docker tarball tags %v, want the name= one", manifest)
	}

	for opt, want := range map[string]string{
		"oci-mediatypes=false":                  "kiln writes OCI media types only",
		"annotation-index.a=b":                  "index and descriptor annotations are not supported",
		"compression-level=10":                  "compression-level=10 is above gzip's highest, 9",
		"compression=zstd,compression-level=23": "above zstd's highest, 22",
		"frobnicate=1":                          `option "frobnicate" is not supported`,
	} {
		r := kiln(t, dir, "build", "--root", root, "-o", "type=oci,dest="+filepath.Join(out, "x.tar")+","+opt, ".")
		if r.code == 0 || !strings.Contains(r.stderr, want) {
			t.Errorf("-o …,%s: exit %d, want a refusal saying %q:\n%s", opt, r.code, want, r.stderr)
		}
	}
	r := kiln(t, dir, "build", "--root", root, "--annotation", "index:a=b", ".")
	if r.code == 0 || !strings.Contains(r.stderr, `not "index"`) {
		t.Errorf("--annotation index:…: exit %d\n%s", r.code, r.stderr)
	}
	r = kiln(t, dir, "build", "--root", root, "--build-arg", "SOURCE_DATE_EPOCH=yesterday", ".")
	if r.code == 0 || !strings.Contains(r.stderr, `--build-arg SOURCE_DATE_EPOCH="yesterday" is not a Unix time in seconds`) {
		t.Errorf("an invalid SOURCE_DATE_EPOCH: exit %d\n%s", r.code, r.stderr)
	}
}

// tarMember is the content of one member of a tarball.
func tarMember(t *testing.T, tarPath, name string) []byte {
	t.Helper()
	f, err := os.Open(tarPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("%s has no %s: %v", tarPath, name, err)
		}
		if strings.TrimPrefix(h.Name, "./") == name {
			data, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			return data
		}
	}
}

// rewrite-timestamp=false keeps the files' times in the layers (BuildKit's
// meaning): SOURCE_DATE_EPOCH then dates only the image and its history. Without it
// (kiln's default) every file newer than the epoch is dated the epoch.
func TestRewriteTimestampFalse(t *testing.T) {
	t.Parallel()
	root, out := e2e(t)
	host := busyboxRegistry(t)
	dir := project(t, map[string]string{"Dockerfile": "FROM " + host + "/busybox\nRUN echo x > /made\n"})
	mtime := func(tarPath string) (time.Time, time.Time) {
		img := readOCI(t, tarPath)
		ls, err := img.Layers()
		if err != nil {
			t.Fatal(err)
		}
		rc, err := ls[len(ls)-1].Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if err != nil {
				t.Fatalf("no /made in the step's layer: %v", err)
			}
			if h.Name == "made" {
				return h.ModTime, config(t, img).Created.Time
			}
		}
	}
	epoch := []string{"--build-arg", "SOURCE_DATE_EPOCH=1000"}
	clamped := filepath.Join(out, "clamped.tar")
	mustBuild(t, dir, append(epoch, "--root", root, "-o", "type=oci,dest="+clamped, ".")...)
	if m, c := mtime(clamped); m.Unix() != 1000 || c.Unix() != 1000 {
		t.Errorf("by default: /made dated %v, image created %v; want both the epoch", m, c)
	}
	kept := filepath.Join(out, "kept.tar")
	mustBuild(t, dir, append(epoch, "--root", root, "-o", "type=oci,dest="+kept+",rewrite-timestamp=false", ".")...)
	if m, c := mtime(kept); m.Unix() < time.Now().Add(-time.Hour).Unix() || c.Unix() != 1000 {
		t.Errorf("rewrite-timestamp=false: /made dated %v, image created %v; want the time it was made, and the epoch", m, c)
	}
}
