package main

import (
	"archive/tar"
	"bytes"
	"io"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// The differential harness's own comparison, on images made here (no root, no kiln):
// what it normalizes (build-time mtimes and timestamps) and what it must not (every
// other mtime to the nanosecond, links, xattrs, whiteouts).
func TestCacheDifferentialHarness(t *testing.T) {
	cacheCheckStart = time.Now().Add(-time.Second)
	old := time.Date(2020, 1, 2, 3, 4, 5, 123456789, time.UTC)
	type ent struct {
		name, content, link string
		typ                 byte
		mtime               time.Time
		xattr               string
	}
	layer := func(es ...ent) v1.Layer {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for _, e := range es {
			h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: 0o644, ModTime: e.mtime, Linkname: e.link,
				Size: int64(len(e.content)), Format: tar.FormatPAX}
			if e.typ == 0 {
				h.Typeflag = tar.TypeReg
			}
			if h.Typeflag != tar.TypeReg {
				h.Size = 0
			}
			if e.xattr != "" {
				k, v, _ := strings.Cut(e.xattr, "=")
				h.PAXRecords = map[string]string{"SCHILY.xattr." + k: v}
			}
			if err := tw.WriteHeader(h); err != nil {
				t.Fatal(err)
			}
			io.WriteString(tw, e.content)
		}
		tw.Close()
		// LayerFromOpener, not LayerFromReader: that one buffers the layer in a
		// temp file of its own in $TMPDIR and never removes it.
		b := buf.Bytes()
		l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	image := func(now time.Time, aMtime time.Time, opaque bool) v1.Image {
		img, err := mutate.Append(empty.Image,
			mutate.Addendum{Layer: layer(
				ent{name: "d/", typ: tar.TypeDir, mtime: old},
				ent{name: "d/a", content: "a\n", mtime: aMtime},
				ent{name: "d/b", typ: tar.TypeLink, link: "d/a", mtime: aMtime},
				ent{name: "gone", content: "g\n", mtime: old},
				ent{name: "l", typ: tar.TypeSymlink, link: "d/a", mtime: old},
				ent{name: "x", content: "x\n", mtime: old, xattr: "user.k=v"},
			), History: v1.History{Created: v1.Time{Time: old}, CreatedBy: "one"}},
			mutate.Addendum{Layer: layer(
				ent{name: ".wh.gone", mtime: old},
				ent{name: "new", content: "n\n", mtime: now},
			), History: v1.History{Created: v1.Time{Time: now}, CreatedBy: "two"}})
		if err != nil {
			t.Fatal(err)
		}
		if opaque {
			if img, err = mutate.AppendLayers(img, layer(ent{name: "d/.wh..wh..opq", mtime: old}, ent{name: "d/c", content: "c\n", mtime: old})); err != nil {
				t.Fatal(err)
			}
		}
		return img
	}
	now := time.Now()
	base := snapOf(t, image(now, old, false))

	if got := base.files["/gone"]; got != nil {
		t.Errorf("whiteout not applied: /gone is %s", got)
	}
	if got := base.files["/d/b"]; got == nil || got.links != "/d/a,/d/b" || got.typ != "file" || base.files["/d/a"].links != got.links {
		t.Errorf("hard link group: /d/b is %v", got)
	}
	if got := base.files["/x"].xattrs; got != `user.k="v"` {
		t.Errorf("xattrs of /x: %q", got)
	}
	if got := base.files["/d/a"].mtime; got != "2020-01-02T03:04:05.123456789Z" {
		t.Errorf("mtime of /d/a: %q", got)
	}
	if got := base.files["/new"].mtime; got != buildTime {
		t.Errorf("build-time mtime of /new: %q", got)
	}
	if base.content("/l") != "-> d/a" || base.content("/new") != "n\n" || base.content("/nope") != "<absent>" {
		t.Errorf("content: %q %q %q", base.content("/l"), base.content("/new"), base.content("/nope"))
	}

	// Another build, at another wall-clock time: the same.
	if diffs := diffSnaps(base, snapOf(t, image(now.Add(3*time.Second), old, false))); len(diffs) != 0 {
		t.Errorf("images that differ only in build times differ:\n%s", formatReport(diffs))
	}
	// One nanosecond of a file's mtime: a difference, for both names of the file.
	diffs := diffSnaps(base, snapOf(t, image(now, old.Add(time.Nanosecond), false)))
	if joined := strings.Join(diffs, "\n"); !strings.Contains(joined, "file /d/a: mtime") || !strings.Contains(joined, "file /d/b: mtime") {
		t.Errorf("a 1ns mtime change is not reported:\n%s", joined)
	}
	// An opaque dir hides what lower layers had in it.
	op := snapOf(t, image(now, old, true))
	if op.files["/d/a"] != nil || op.files["/d/c"] == nil || op.files["/d"] == nil {
		t.Errorf("opaque whiteout: /d/a %v, /d/c %v, /d %v", op.files["/d/a"], op.files["/d/c"], op.files["/d"])
	}
	diffs = diffSnaps(base, op)
	if joined := strings.Join(diffs, "\n"); !strings.Contains(joined, "file /d/a: A-then-B=type=file") || !strings.Contains(joined, "manifest .layers[2].digest: A-then-B=<absent>") {
		t.Errorf("an added layer is not reported:\n%s", joined)
	}
}
