package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestRemoteCacheMountsTravel: --cache-to ...,cache-mounts=true carries the content of
// RUN --mount=type=cache dirs. Runner 1 fills the mount and exports; runner 2 (an
// empty root, a RUN whose key changed so it runs again) finds runner 1's files in
// its mount. Without cache-mounts=true it finds none. A runner whose RUN is a cache
// hit never restores the mount, and exporting again carries the mount over.
func TestRemoteCacheMountsTravel(t *testing.T) {
	_, out := e2e(t)
	host := busyboxRegistry(t)
	dir := project(t, map[string]string{
		"Dockerfile": "FROM " + host + "/busybox\n" +
			"ARG V\n" +
			"RUN --mount=type=cache,target=/cache echo $V >> /cache/log && cat /cache/log > /seen\n",
	})
	caches := t.TempDir()
	withMounts, without, carried := filepath.Join(caches, "with"), filepath.Join(caches, "without"), filepath.Join(caches, "carried")
	seen := func(tarName string) string {
		t.Helper()
		return flatten(t, readOCI(t, filepath.Join(out, tarName)))["/seen"].content
	}

	mustBuild(t, dir, "--root", t.TempDir(), "--progress", "plain", "--build-arg", "V=one",
		"--cache-to", "type=local,mode=max,cache-mounts=true,dest="+withMounts,
		"--cache-to", "type=local,mode=max,dest="+without, "-o", "type=oci,dest="+filepath.Join(out, "1.tar"), ".")
	if got := seen("1.tar"); got != "one\n" {
		t.Fatalf("runner 1 saw %q", got)
	}

	r := mustBuild(t, dir, "--root", t.TempDir(), "--progress", "plain", "--build-arg", "V=two",
		"--cache-from", "type=local,src="+withMounts, "-o", "type=oci,dest="+filepath.Join(out, "2.tar"), ".")
	if got := seen("2.tar"); got != "one\ntwo\n" {
		t.Errorf("runner 2 saw %q in its cache mount, want runner 1's line then its own", got)
	}
	if !strings.Contains(r.stderr, "restored from "+withMounts) {
		t.Errorf("progress does not say the cache mount was restored:\n%s", r.stderr)
	}

	mustBuild(t, dir, "--root", t.TempDir(), "--progress", "plain", "--build-arg", "V=two",
		"--cache-from", "type=local,src="+without, "-o", "type=oci,dest="+filepath.Join(out, "3.tar"), ".")
	if got := seen("3.tar"); got != "two\n" {
		t.Errorf("from a cache without cache mounts the runner saw %q", got)
	}

	// A hit: the mount is not restored, and an export carries the remote's over.
	r = mustBuild(t, dir, "--root", t.TempDir(), "--progress", "plain", "--build-arg", "V=one",
		"--cache-from", "type=local,src="+withMounts, "--cache-to", "type=local,mode=max,cache-mounts=true,dest="+carried,
		"-o", "type=oci,dest="+filepath.Join(out, "4.tar"), ".")
	requireAllCached(t, r.stderr)
	if strings.Contains(r.stderr, "restored from") {
		t.Errorf("a runner whose RUN hit restored its cache mount:\n%s", r.stderr)
	}
	mustBuild(t, dir, "--root", t.TempDir(), "--progress", "plain", "--build-arg", "V=three",
		"--cache-from", "type=local,src="+carried, "-o", "type=oci,dest="+filepath.Join(out, "5.tar"), ".")
	if got := seen("5.tar"); got != "one\nthree\n" {
		t.Errorf("from a cache exported by a runner that hit, the runner saw %q", got)
	}
}
