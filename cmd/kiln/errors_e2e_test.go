package main

import (
	"math/rand"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// Errors are shown as buildx shows them: the failed step's ERROR line with the
// message only, its last output lines in a block, then the Dockerfile excerpt with
// the line marked and the message once more, the location said once.
func TestErrorShapes(t *testing.T) {
	root, _ := e2e(t)
	host := busyboxRegistry(t)
	for _, tc := range []struct {
		name, dockerfile string
		want             []string // substrings of stderr, in order
		wantRe           string
	}{{
		name:       "RUN",
		dockerfile: "FROM " + host + "/busybox\nRUN echo out; exit 3\nRUN never\n",
		want: []string{
			"\n#2 ERROR: process \"/bin/sh -c echo out; exit 3\" did not complete successfully: exit code: 3\n",
			"------\n > [2/3] RUN echo out; exit 3:\n",
			"Dockerfile:2\n--------------------\n   1 |     FROM " + host + "/busybox\n   2 | >>> RUN echo out; exit 3\n   3 |     RUN never\n   4 |     \n--------------------\n",
			"ERROR: process \"/bin/sh -c echo out; exit 3\" did not complete successfully: exit code: 3\n",
		},
		wantRe: `\n\d+\.\d{3} out\n------\n`,
	}, {
		name:       "FROM",
		dockerfile: "FROM " + host + "/nosuch\n",
		want: []string{
			"Dockerfile:1\n--------------------\n   1 | >>> FROM " + host + "/nosuch\n",
			"ERROR: image " + host + "/nosuch:latest not found",
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := project(t, map[string]string{"Dockerfile": tc.dockerfile})
			r := kiln(t, dir, "build", "--root", root, "--progress", "plain", "--metadata-file", t.TempDir()+"/m.json", ".")
			if r.code == 0 {
				t.Fatal("the build succeeded")
			}
			rest := r.stderr
			for _, w := range tc.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("stderr lacks %q (after what came before):\n%s", w, r.stderr)
				}
				rest = rest[i+len(w):]
			}
			if tc.wantRe != "" && !regexp.MustCompile(tc.wantRe).MatchString(r.stderr) {
				t.Errorf("stderr does not match %q:\n%s", tc.wantRe, r.stderr)
			}
			if strings.Contains(r.stderr, "Dockerfile:2: ") || strings.Contains(r.stderr, "Dockerfile:1: ") {
				t.Errorf("a location said twice:\n%s", r.stderr)
			}
		})
	}
}

// The messages of a missing Dockerfile and of a build with no output.
func TestDockerfileMissingAndNoOutput(t *testing.T) {
	root, _ := e2e(t)
	dir := project(t, map[string]string{"a": "a"})
	r := kiln(t, dir, "build", "--root", root, "-f", "nosuch", ".")
	if r.code == 0 || !strings.Contains(r.stderr, "nosuch does not exist (-f is relative to the current directory, not to the context)") {
		t.Errorf("-f nosuch: exit %d\n%s", r.code, r.stderr)
	}
	r = kiln(t, dir, "build", "--root", root, ".")
	if r.code == 0 || !strings.Contains(r.stderr, "has no Dockerfile: add one, or name yours with -f") {
		t.Errorf("no Dockerfile: exit %d\n%s", r.code, r.stderr)
	}
	dir = project(t, map[string]string{"Dockerfile": "FROM scratch\nCOPY a /a\n", "a": "a"})
	r = kiln(t, dir, "build", "--root", root, "--progress", "plain", ".")
	if r.code != 0 || !strings.Contains(r.stderr, "WARNING: No output specified: the result stays in kiln's build cache only.") {
		t.Errorf("a build without output does not warn: exit %d\n%s", r.code, r.stderr)
	}
	r = kiln(t, dir, "build", "--root", root, "--progress", "fancy", ".")
	if r.code == 0 || !strings.Contains(r.stderr, "--progress=fancy is not a progress mode: use one of auto, plain, tty, rawjson, quiet") {
		t.Errorf("--progress fancy: exit %d\n%s", r.code, r.stderr)
	}
}

// A store on a full filesystem fails the step with the path that filled up, says
// what to do, writes no output and leaves nothing in the store's tmp/.
func TestFullDiskSaysWhatToDo(t *testing.T) {
	_, out := e2e(t)
	host := busyboxRegistry(t)
	root := filepath.Join(t.TempDir(), "small")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", root, "tmpfs", 0, "size=4m"); err != nil {
		t.Fatalf("mount a small tmpfs: %v", err)
	}
	defer unix.Unmount(root, unix.MNT_DETACH)
	big := make([]byte, 8<<20)
	rand.New(rand.NewSource(1)).Read(big) // does not compress below the tmpfs's size
	dir := project(t, map[string]string{"Dockerfile": "FROM " + host + "/busybox\nCOPY big /big\n", "big": string(big)})
	dest := filepath.Join(out, "img.tar")
	r := kiln(t, dir, "build", "--root", filepath.Join(root, "store"), "--progress", "plain", "-o", "type=oci,dest="+dest, ".")
	if r.code == 0 {
		t.Fatal("the build succeeded on a full disk")
	}
	for _, want := range []string{"Dockerfile:2", "no space left on device", "HINT: the filesystem of the path above is full", "kiln prune"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	if _, err := os.Stat(dest); err == nil {
		t.Error("an output was written")
	}
	if left, _ := os.ReadDir(filepath.Join(root, "store", "tmp")); len(left) > 0 {
		t.Errorf("the store's tmp/ holds %d entries after the build", len(left))
	}
}
