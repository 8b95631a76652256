package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A bind mount of the context shows exactly what its key digests, as COPY would make
// it: no .dockerignore'd file, owners 0:0 whatever they are on the host, a socket as
// an empty file (as BuildKit's context transfer sends it); and writes to an rw mount
// never reach the host.
func TestBindMountOfContextIsTheFilteredView(t *testing.T) {
	root, out := e2e(t)
	host := busyboxRegistry(t)
	dir := project(t, map[string]string{
		"Dockerfile": "FROM " + host + "/busybox\n" +
			"RUN --mount=type=bind,target=/ctx ls -a /ctx | sort > /listing && stat -c '%u:%g' /ctx/a.txt > /owner && stat -c '%F %s' /ctx/sock > /sock\n" +
			"RUN --mount=type=bind,target=/w,rw echo scribble > /w/a.txt && cat /w/a.txt > /wrote\n",
		".dockerignore": "secret.txt\n",
		"a.txt":         "a\n",
		"secret.txt":    "do not leak\n",
	})
	if err := os.Chown(filepath.Join(dir, "a.txt"), 1234, 5678); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", filepath.Join(dir, "sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	tarPath := filepath.Join(out, "img.tar")
	mustBuild(t, dir, "--root", root, "-o", "type=oci,dest="+tarPath, ".")
	files := flatten(t, readOCI(t, tarPath))
	listing := files["/listing"].content
	for _, hidden := range []string{"secret.txt"} {
		if strings.Contains(listing, hidden) {
			t.Errorf("the bind mount shows %s:\n%s", hidden, listing)
		}
	}
	if !strings.Contains(listing, "a.txt") || !strings.Contains(listing, "Dockerfile") {
		t.Errorf("the bind mount lacks context files:\n%s", listing)
	}
	if got := files["/sock"].content; got != "regular empty file 0\n" {
		t.Errorf("the context's socket shows in the bind mount as %q, want an empty regular file", got)
	}
	if got := files["/owner"].content; got != "0:0\n" {
		t.Errorf("a context file in the bind mount is owned by %q, want 0:0 (as BuildKit)", got)
	}
	if got := files["/wrote"].content; got != "scribble\n" {
		t.Errorf("an rw bind mount was not writable: %q", got)
	}
	if data, _ := os.ReadFile(filepath.Join(dir, "a.txt")); string(data) != "a\n" {
		t.Errorf("a write to an rw bind mount reached the host: %q", data)
	}
}

// A bind or cache mount from another stage is keyed by the content it selects, as
// BuildKit's: a change elsewhere in that stage reuses the step, a change under the
// selected source reruns it, and the option values (target, ro, uid) are keyed too.
func TestMountFromStageKeyedBySelection(t *testing.T) {
	root, _ := e2e(t)
	host := busyboxRegistry(t)
	df := func(inside, outside, mount string) string {
		return fmt.Sprintf("FROM %s/busybox AS src\nRUN mkdir -p /o /p && echo %s > /o/f && echo %s > /p/f\n"+
			"FROM %s/busybox\nRUN --mount=%s cat /m/f > /seen\n", host, inside, outside, host, mount)
	}
	bind := "type=bind,from=src,source=/o,target=/m"
	dir := project(t, map[string]string{"Dockerfile": df("one", "x", bind)})
	buildPlain(t, dir, root)
	writeFile(t, filepath.Join(dir, "Dockerfile"), df("one", "y", bind))
	if s := findStep(t, buildPlain(t, dir, root).steps, "cat /m/f"); s.state != "CACHED" {
		t.Errorf("a change outside the bind mount's source reran the step (%s)", s.state)
	}
	writeFile(t, filepath.Join(dir, "Dockerfile"), df("two", "y", bind))
	if s := findStep(t, buildPlain(t, dir, root).steps, "cat /m/f"); s.state == "CACHED" {
		t.Error("a change under the bind mount's source reused the step")
	}
	for _, mount := range []string{
		"type=bind,from=src,source=/o,target=/m,rw",
		"type=cache,from=src,source=/o,target=/m",
		"type=cache,from=src,source=/o,target=/m,uid=1",
		"type=cache,from=src,source=/o,target=/m,ro",
	} {
		writeFile(t, filepath.Join(dir, "Dockerfile"), df("two", "y", mount))
		if s := findStep(t, buildPlain(t, dir, root).steps, "cat /m/f"); s.state == "CACHED" {
			t.Errorf("changing the mount to %s reused the step", mount)
		}
	}
}
