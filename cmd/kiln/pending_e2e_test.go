package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"
)

// pendingProject is a context with the kinds of entries a COPY carries.
func pendingProject(t *testing.T, dockerfile string) string {
	t.Helper()
	dir := project(t, map[string]string{
		"Dockerfile":            dockerfile,
		"tree/a.txt":            "a\n",
		"tree/empty":            "",
		"tree/sub/b.txt":        strings.Repeat("b", 300<<10),
		"tree/sub/deeper/c.txt": "c\n",
		"tree/emptydir/":        "",
		"one.txt":               "one\n",
		"two.txt":               "two\n",
		"passwd":                "root:x:0:0:root:/root:/bin/sh\n",
	})
	if err := os.Chmod(filepath.Join(dir, "tree/a.txt"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("a.txt", filepath.Join(dir, "tree/link")); err != nil {
		t.Fatal(err)
	}
	if err := unix.Lsetxattr(filepath.Join(dir, "tree/sub/b.txt"), "user.kiln", []byte("x"), 0); err != nil {
		t.Logf("no user xattrs on the test fs: %v", err)
	}
	return dir
}

func lastDiffID(t *testing.T, img v1.Image) v1.Hash {
	t.Helper()
	cfg := config(t, img)
	ids := cfg.RootFS.DiffIDs
	if len(ids) == 0 {
		t.Fatal("image has no layers")
	}
	return ids[len(ids)-1]
}

// stepSnapshots counts the committed snapshots of steps (not of base layers) in root.
func stepSnapshots(t *testing.T, root string) int {
	t.Helper()
	matches, err := filepath.Glob(filepath.Join(root, "snapshots", "committed", "s-*"))
	if err != nil {
		t.Fatal(err)
	}
	return len(matches)
}

// TestCopyWithoutSnapshot: a COPY that is the last filesystem step of the image makes
// its layer from the sources without writing the files into a snapshot. The layer
// must be the very bytes of the ordinary path (a local output makes kiln keep the
// files, so the same build there takes the ordinary path), and a later build that
// needs the files (a step added after the COPY, a local output) gets them back from
// the layer.
func TestCopyWithoutSnapshot(t *testing.T) {
	_, _ = e2e(t)
	host := busyboxRegistry(t)
	epoch := []string{"--build-arg", "SOURCE_DATE_EPOCH=1700000000"}
	cases := []struct{ name, steps string }{
		{"new dir", "COPY tree/ /app/"},
		{"chown and chmod", "COPY --chown=1000:1000 --chmod=0700 tree/ /app/"},
		{"into an existing dir", "COPY one.txt two.txt /etc/"},
		{"over a file of the image", "COPY passwd /etc/passwd"},
		{"through an image symlink", "RUN mkdir /srv && ln -s /srv /data\nCOPY tree /data/"},
		{"file to a new name", "COPY one.txt /renamed"},
		{"link", "COPY --link tree/ /linked/"},
		{"parents", "COPY --parents tree/sub /p/"},
		{"metadata after it", "COPY tree/ /app/\nENV A=1\nLABEL x=y"},
	}
	// Directories copied with the metadata the image has already look unchanged in
	// the upper dir: they must stay, their files are in the layer.
	cases = append(cases, struct{ name, steps string }{"dirs the same as the image's", "COPY --from=" + host + "/busybox:latest / /"})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := pendingProject(t, "FROM "+host+"/busybox:latest\n"+tc.steps+"\n")
			fast, slow, out := t.TempDir(), t.TempDir(), t.TempDir()
			mustBuild(t, dir, append(epoch, "--root", fast, "-o", "type=oci,dest="+filepath.Join(out, "fast.tar"), ".")...)
			mustBuild(t, dir, append(epoch, "--root", slow, "-o", "type=oci,dest="+filepath.Join(out, "slow.tar"),
				"-o", "type=local,dest="+filepath.Join(out, "local"), ".")...)
			fastImg, slowImg := readOCI(t, filepath.Join(out, "fast.tar")), readOCI(t, filepath.Join(out, "slow.tar"))
			fd, sd := lastDiffID(t, fastImg), lastDiffID(t, slowImg)
			runs := strings.Count(tc.steps, "RUN ")
			if n := stepSnapshots(t, fast); n != runs {
				t.Errorf("%d step snapshots, want %d: the COPY should have written only its layer", n, runs)
			}
			if n := stepSnapshots(t, slow); n != runs+1 {
				t.Errorf("with a local output the COPY's snapshot is missing (%d step snapshots, want %d)", n, runs+1)
			}
			if fd != sd {
				t.Fatalf("the layer differs from the ordinary COPY's:\n%v\n%v", layerEntries(t, fastImg, -1), layerEntries(t, slowImg, -1))
			}
			fm, _ := fastImg.Digest()
			sm, _ := slowImg.Digest()
			if fm != sm {
				t.Errorf("image digests differ: %s vs %s", fm, sm)
			}
		})
	}

	t.Run("content", func(t *testing.T) {
		dir := pendingProject(t, "FROM "+host+"/busybox:latest\nCOPY --chown=1000:1000 tree/ /app/\n")
		root, out := t.TempDir(), t.TempDir()
		mustBuild(t, dir, "--root", root, "-o", "type=oci,dest="+filepath.Join(out, "img.tar"), ".")
		files := flatten(t, readOCI(t, filepath.Join(out, "img.tar")))
		want := map[string]fileEntry{
			"/app/a.txt":            {typ: '0', mode: 0o755, uid: 1000, gid: 1000, content: "a\n"},
			"/app/empty":            {typ: '0', mode: 0o644, uid: 1000, gid: 1000},
			"/app/sub/b.txt":        {typ: '0', mode: 0o644, uid: 1000, gid: 1000, content: strings.Repeat("b", 300<<10)},
			"/app/sub/deeper/c.txt": {typ: '0', mode: 0o644, uid: 1000, gid: 1000, content: "c\n"},
			"/app/link":             {typ: '2', mode: 0o777, uid: 1000, gid: 1000, link: "a.txt"},
			"/app/emptydir":         {typ: '5', mode: 0o755, uid: 1000, gid: 1000},
			"/etc/passwd":           files["/etc/passwd"],
		}
		for p, w := range want {
			got, ok := files[p]
			if !ok {
				t.Errorf("%s missing", p)
				continue
			}
			if got != w {
				t.Errorf("%s = %+v, want %+v", p, got, w)
			}
		}
		if _, ok := files["/etc/passwd"]; !ok {
			t.Error("/etc/passwd of the base is gone")
		}
	})

	t.Run("files come back when a later build needs them", func(t *testing.T) {
		root, out := t.TempDir(), t.TempDir()
		dir := pendingProject(t, "FROM "+host+"/busybox:latest\nCOPY tree/ /app/\n")
		buildPlain(t, dir, root, "-o", "type=oci,dest="+filepath.Join(out, "1.tar"))
		if stepSnapshots(t, root) != 0 {
			t.Fatal("the COPY committed a snapshot")
		}
		// A step after the COPY: the COPY is cached, its files are unpacked.
		writeFile(t, filepath.Join(dir, "Dockerfile"), "FROM "+host+"/busybox:latest\nCOPY tree/ /app/\nRUN cat /app/sub/deeper/c.txt /app/link > /app/seen\n")
		second := buildPlain(t, dir, root, "-o", "type=oci,dest="+filepath.Join(out, "2.tar"))
		if !strings.Contains(second.log, "CACHED") {
			t.Errorf("the COPY was not reused:\n%s", second.log)
		}
		files := flatten(t, readOCI(t, filepath.Join(out, "2.tar")))
		if got := files["/app/seen"].content; got != "c\na\n" {
			t.Errorf("/app/seen = %q, want the copied files' content", got)
		}
		// A local output of the first Dockerfile, fully cached.
		writeFile(t, filepath.Join(dir, "Dockerfile"), "FROM "+host+"/busybox:latest\nCOPY tree/ /app/\n")
		local := filepath.Join(out, "local")
		mustBuild(t, dir, "--root", root, "-o", "type=local,dest="+local, ".")
		if b, err := os.ReadFile(filepath.Join(local, "app/sub/deeper/c.txt")); err != nil || string(b) != "c\n" {
			t.Errorf("local output: %q, %v", b, err)
		}
		// COPY --from a stage whose last step is such a COPY: not pending (another
		// stage reads it), and the files arrive.
		writeFile(t, filepath.Join(dir, "Dockerfile"), "FROM "+host+"/busybox:latest AS a\nCOPY tree/ /app/\nFROM "+host+"/busybox:latest\nCOPY --from=a /app/sub /got\n")
		mustBuild(t, dir, "--root", root, "-o", "type=oci,dest="+filepath.Join(out, "3.tar"), ".")
		if got := flatten(t, readOCI(t, filepath.Join(out, "3.tar")))["/got/deeper/c.txt"].content; got != "c\n" {
			t.Errorf("COPY --from: /got/deeper/c.txt = %q", got)
		}
	})

	t.Run("errors as before", func(t *testing.T) {
		root := t.TempDir()
		// A directory over a file the same COPY wrote.
		dir := project(t, map[string]string{
			"Dockerfile": "FROM " + host + "/busybox:latest\nCOPY a/ b/ /dst/\n",
			"a/x":        "file",
			"b/x/y":      "in a dir",
		})
		r := kiln(t, dir, "build", "--root", root, "-o", "type=oci,dest="+filepath.Join(t.TempDir(), "x.tar"), ".")
		if r.code == 0 || !strings.Contains(r.stderr, "cannot copy directory") {
			t.Errorf("dir over a copied file: exit %d\n%s", r.code, r.stderr)
		}
		// A file and a link with the same name: the later one wins, as in the
		// ordinary copy (which replaces the file it wrote).
		dir = project(t, map[string]string{"Dockerfile": "FROM " + host + "/busybox:latest\nCOPY a/ b/ /dst/\n", "a/x": "file", "b/y": "y"})
		if err := os.Symlink("y", filepath.Join(dir, "b/x")); err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(t.TempDir(), "x.tar")
		mustBuild(t, dir, "--root", root, "-o", "type=oci,dest="+out, ".")
		if got := flatten(t, readOCI(t, out))["/dst/x"]; got.typ != '2' || got.link != "y" {
			t.Errorf("/dst/x = %+v, want the link that came last", got)
		}
		noKilnMounts(t, root)
	})
}
