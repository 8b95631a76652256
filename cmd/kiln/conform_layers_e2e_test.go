package main

import (
	"archive/tar"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The two empty-tar digests every builder agrees on: the tar of no entries (1024
// zero bytes) and that tar as Go's compress/gzip, BuildKit and Docker write it.
const (
	emptyTarDiffID    = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"
	emptyGzipLayerSum = "sha256:4f4fb700ef54461cfa02571ae0db9a0dc1e0cdb5577484a6d75e68dc38e8acc1"
)

// A RUN, COPY or WORKDIR that changes nothing still adds a layer, the empty one, and
// a history entry that is not empty_layer, as BuildKit v0.32 builds this Dockerfile
// (measured with buildctl): only WORKDIR / and the config instructions add no layer.
// Tools that count layers or pair them with the history see the same image; a warm
// rebuild from the cache gives it byte for byte.
func TestNoChangeStepsAddEmptyLayer(t *testing.T) {
	c := newConform(t)
	dir := c.project(`FROM BASE
RUN true
COPY nomatch* /x/
WORKDIR /
WORKDIR /tmp
RUN --mount=type=cache,target=/c echo x > /c/x
ENV X=1
RUN echo a > /a
`, nil)
	img := c.build(dir)
	cf := config(t, img)
	var steps []string // the history of this Dockerfile: the base's comes first
	i := 0
	for _, h := range cf.History {
		if !h.EmptyLayer {
			i++
		}
		if h.Comment == "buildkit.dockerfile.v0" {
			kind := "layer"
			if h.EmptyLayer {
				kind = "none"
			}
			steps = append(steps, kind+" "+strings.TrimSuffix(h.CreatedBy, " # buildkit"))
		}
	}
	want := []string{
		"layer RUN /bin/sh -c true",
		"layer COPY nomatch* /x/",
		"none WORKDIR /",
		"layer WORKDIR /tmp",
		"layer RUN /bin/sh -c echo x > /c/x",
		"none ENV X=1",
		"layer RUN /bin/sh -c echo a > /a",
	}
	if strings.Join(steps, "\n") != strings.Join(want, "\n") {
		t.Fatalf("history:\n%s\nwant:\n%s", strings.Join(steps, "\n"), strings.Join(want, "\n"))
	}
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(ls) != i || len(cf.RootFS.DiffIDs) != i {
		t.Fatalf("%d layers, %d diff_ids, %d history entries with a layer", len(ls), len(cf.RootFS.DiffIDs), i)
	}
	base := len(ls) - 5
	for j, l := range ls[base : base+4] {
		d, _ := l.Digest()
		diffID, _ := l.DiffID()
		if d.String() != emptyGzipLayerSum || diffID.String() != emptyTarDiffID {
			t.Errorf("layer %d of the no-change steps: digest %s diff_id %s, want the empty layer %s (%s)", j, d, diffID, emptyGzipLayerSum, emptyTarDiffID)
		}
	}
	wantEntry(t, layerEntries(t, img, -1), "/a", tar.TypeReg, 0o644, 0, 0)

	cold, _ := img.Digest()
	warm, _ := c.build(dir).Digest()
	if cold != warm {
		t.Errorf("warm rebuild %s, cold build %s", warm, cold)
	}
}

// COPY --chmod gives its mode to the directories the copy creates, the destination
// and its missing parents, as BuildKit v0.32 does (measured with buildctl: /d5 and
// /d5/sub are 0640 below); a directory that exists keeps its mode. --chown owns them.
func TestCopyChmodCreatedDirs(t *testing.T) {
	c := newConform(t)
	dir := c.project(`FROM BASE
COPY d /plain
COPY --chmod=0640 d /d2
RUN mkdir -m 711 /d3
COPY --chmod=0640 d /d3
COPY --chmod=640 d /d5/sub/
COPY --chmod=640 --chown=7:8 d /d6/sub/
COPY --chmod=640 d/x /d7/new/
`, map[string]string{"d/x": "x", "d/s/y": "y"})
	files := flatten(t, c.build(dir))
	wantEntry(t, files, "/plain", tar.TypeDir, 0o755, 0, 0)
	wantEntry(t, files, "/d2", tar.TypeDir, 0o640, 0, 0)
	wantEntry(t, files, "/d2/s", tar.TypeDir, 0o640, 0, 0)
	wantEntry(t, files, "/d2/x", tar.TypeReg, 0o640, 0, 0)
	wantEntry(t, files, "/d3", tar.TypeDir, 0o711, 0, 0)
	wantEntry(t, files, "/d5", tar.TypeDir, 0o640, 0, 0)
	wantEntry(t, files, "/d5/sub", tar.TypeDir, 0o640, 0, 0)
	wantEntry(t, files, "/d6", tar.TypeDir, 0o640, 7, 8)
	wantEntry(t, files, "/d6/sub", tar.TypeDir, 0o640, 7, 8)
	wantEntry(t, files, "/d7", tar.TypeDir, 0o640, 0, 0)
	wantEntry(t, files, "/d7/new", tar.TypeDir, 0o640, 0, 0)
	wantEntry(t, files, "/d7/new/x", tar.TypeReg, 0o640, 0, 0)
}

// A symbolic COPY --chmod (chmod(1) syntax, umask 0) changes each copied entry's own
// mode, X by whether it is a directory, and leaves the directories the copy creates
// 0755. The modes are BuildKit v0.32's for this Dockerfile and context, measured with
// buildctl. A mode that is neither octal nor symbolic names the line.
func TestCopyChmodSymbolic(t *testing.T) {
	c := newConform(t)
	dir := c.project(`FROM BASE
COPY --chmod=u+x,g-r f /f
COPY --chmod=go-w,a+X d /d/
COPY --chmod=u=rwx,g=rx,o= f /new/deep/f
COPY --chmod=+t d /st/
COPY --chmod=g+s f /gs
COPY --chmod=+w f /w
COPY --chmod=o=u f /ou
COPY --chmod=u-x+s d /us/
`, map[string]string{"f": "f", "d/x": "x", "d/sub/y": "y"})
	for p, m := range map[string]os.FileMode{"f": 0o644, "d": 0o755, "d/x": 0o755, "d/sub": 0o750, "d/sub/y": 0o600} {
		if err := os.Chmod(filepath.Join(dir, p), m); err != nil {
			t.Fatal(err)
		}
	}
	files := flatten(t, c.build(dir))
	for p, mode := range map[string]int64{
		"/f": 0o704, "/d": 0o755, "/d/x": 0o755, "/d/sub": 0o751, "/d/sub/y": 0o600,
		"/new": 0o755, "/new/deep": 0o755, "/new/deep/f": 0o750,
		"/st": 0o755, "/st/x": 0o1755, "/st/sub": 0o1750, "/gs": 0o2644,
		"/w": 0o666, "/ou": 0o646, "/us": 0o755, "/us/x": 0o4655, "/us/sub": 0o4650,
	} {
		typ := byte(tar.TypeReg)
		if f, ok := files[p]; ok && f.typ == tar.TypeDir {
			typ = tar.TypeDir
		}
		wantEntry(t, files, p, typ, mode, 0, 0)
	}

	bad := c.project("FROM BASE\nCOPY --chmod=u+q f /f\n", map[string]string{"f": "f"})
	r, _ := c.run(bad)
	if r.code == 0 || !strings.Contains(r.stderr, "Dockerfile:2") || !strings.Contains(r.stderr, `"u+q" is neither an octal mode`) {
		t.Errorf("COPY --chmod=u+q: exit %d\n%s", r.code, r.stderr)
	}
}
