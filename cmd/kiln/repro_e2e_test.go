package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// --repro-check builds twice from nothing (the second Dockerfile writes a random
// uuid, different in every build) and says whether the images are the
// same, or names the first file that differs; it leaves nothing behind.
func TestReproCheck(t *testing.T) {
	e2e(t)
	host := busyboxRegistry(t)
	parent := t.TempDir()
	root := filepath.Join(parent, "root")
	epoch := []string{"--build-arg", "SOURCE_DATE_EPOCH=1700000000"}
	dir := project(t, map[string]string{
		"Dockerfile":   "FROM " + host + "/busybox\nCOPY f /f\nRUN echo stable > /s && mkdir -p /d && touch /d/x\n",
		"Dockerfile.2": "FROM " + host + "/busybox\nCOPY f /f\nRUN echo stable > /s\nRUN cat /proc/sys/kernel/random/uuid > /var/t; touch /var/u\n",
		"f":            "f\n",
	})
	r := kiln(t, dir, append([]string{"build", "--root", root, "--progress", "quiet", "--repro-check"}, append(epoch, ".")...)...)
	if r.code != 0 || !strings.HasPrefix(r.stdout, "reproducible: two builds from nothing gave sha256:") {
		t.Errorf("a reproducible build: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = kiln(t, dir, append([]string{"build", "--root", root, "--progress", "quiet", "--repro-check", "-f", filepath.Join(dir, "Dockerfile.2")}, append(epoch, ".")...)...)
	if r.code != 1 || !strings.Contains(r.stderr, "layer 4 of 4 (RUN /bin/sh -c cat /proc/sys/kernel/random/uuid") || !strings.Contains(r.stderr, "/var/t differs: content sha256:") {
		t.Errorf("a build that writes a random uuid: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := kiln(t, dir, "build", "--root", root, "--repro-check", "."); r.code == 0 || !strings.Contains(r.stderr, "--repro-check needs SOURCE_DATE_EPOCH") {
		t.Errorf("without SOURCE_DATE_EPOCH: exit %d %s", r.code, r.stderr)
	}
	if r := kiln(t, dir, append([]string{"build", "--root", root, "--repro-check", "-o", "type=oci,dest=x.tar"}, append(epoch, ".")...)...); r.code == 0 || !strings.Contains(r.stderr, "writes nothing") {
		t.Errorf("with an output: exit %d %s", r.code, r.stderr)
	}
	entries, _ := os.ReadDir(parent)
	for _, e := range entries {
		t.Errorf("left beside the root: %s", e.Name())
	}
	noKilnMounts(t, parent)
}
