package main

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// The images of the differential cache harness: an imageSnap is what two B images
// must agree on, normalized only where a build legitimately differs (the wall clock).

// buildTime stands for a time at or after the harness started (made by a build).
const buildTime = "<build time>"

// imageSnap is an image, normalized: the manifest's and the config's JSON as
// path → value, the flattened filesystem, and each layer's entries.
type imageSnap struct {
	manifest map[string]string
	config   map[string]string
	files    map[string]*snapEntry
	layers   [][]string // each layer's entries, one line each, in order
}

// snapEntry is one path of the flattened filesystem.
type snapEntry struct {
	typ, mode, owner, names, size, sha, link, xattrs, mtime, atime, ctime, dev, links string

	content string // a regular file's content, for want checks
	layer   int    // the layer the entry comes from
	inode   string // entries that are hard links of each other share it
}

func (e *snapEntry) fields() [][2]string {
	return [][2]string{{"type", e.typ}, {"mode", e.mode}, {"uid:gid", e.owner}, {"uname:gname", e.names},
		{"size", e.size}, {"sha256", e.sha}, {"symlink", e.link}, {"xattrs", e.xattrs}, {"mtime", e.mtime},
		{"atime", e.atime}, {"ctime", e.ctime}, {"device", e.dev}, {"hard links", e.links}}
}

func (e *snapEntry) String() string {
	var parts []string
	for _, f := range e.fields() {
		if f[1] != "" {
			parts = append(parts, f[0]+"="+f[1])
		}
	}
	return strings.Join(parts, " ")
}

func (s *imageSnap) content(p string) string {
	e, ok := s.files[p]
	switch {
	case !ok:
		return "<absent>"
	case e.typ == "dir":
		return "<dir>"
	case e.typ == "symlink":
		return "-> " + e.link
	}
	return e.content
}

// stamp formats a time, or buildTime for one made by a build.
func stamp(tm time.Time) string {
	if tm.IsZero() {
		return ""
	}
	if !tm.Before(cacheCheckStart) {
		return buildTime
	}
	return tm.UTC().Format(time.RFC3339Nano)
}

var tarTypes = map[byte]string{tar.TypeReg: "file", tar.TypeDir: "dir", tar.TypeSymlink: "symlink",
	tar.TypeChar: "char", tar.TypeBlock: "block", tar.TypeFifo: "fifo", tar.TypeLink: "hardlink"}

// snapImage reads an OCI tarball written by kiln.
func snapImage(t *testing.T, tarPath string) *imageSnap {
	t.Helper()
	return snapOf(t, readOCIAnyCompression(t, tarPath))
}

func snapOf(t *testing.T, img v1.Image) *imageSnap {
	t.Helper()
	s := &imageSnap{files: map[string]*snapEntry{}}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	wall := make([]bool, len(layers))
	for i, l := range layers {
		wall[i] = s.addLayer(t, i, l)
	}
	s.linkGroups()
	rawM, err := img.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	rawC, err := img.RawConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	s.manifest = flatJSON(t, rawM, func(p string) bool {
		// A layer with build-time mtimes has bytes of its own in each build.
		var i int
		var field string
		if n, _ := fmt.Sscanf(p, ".layers[%d].%s", &i, &field); n == 2 && i < len(wall) && wall[i] {
			return field == "digest" || field == "size"
		}
		return p == ".config.digest" || p == ".config.size"
	})
	s.config = flatJSON(t, rawC, func(p string) bool {
		var i int
		n, _ := fmt.Sscanf(p, ".rootfs.diff_ids[%d]", &i)
		return n == 1 && i < len(wall) && wall[i]
	})
	return s
}

// withoutMtimes drops what an mtime decides: every entry's mtime, the layer and
// config digests and diff IDs, each layer's entry lines, and the content of the
// files a step wrote from mtimes it saw (observers).
func (s *imageSnap) withoutMtimes(observers []string) {
	for _, e := range s.files {
		e.mtime = ""
	}
	for _, p := range observers {
		if e, ok := s.files[p]; ok {
			e.sha, e.size, e.content = "", "", ""
		}
	}
	for _, m := range []map[string]string{s.manifest, s.config} {
		for k := range m {
			if strings.Contains(k, "digest") || strings.Contains(k, "diff_ids") || strings.HasSuffix(k, ".size") {
				delete(m, k)
			}
		}
	}
	s.layers = nil
}

// addLayer applies layer i (whiteouts included) to the flattened tree, records its
// entries, and says whether any of them has a build-time mtime.
func (s *imageSnap) addLayer(t *testing.T, i int, l v1.Layer) (wall bool) {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	var lines []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("layer %d: %v", i, err)
		}
		name := path.Clean("/" + h.Name)
		e := &snapEntry{typ: tarTypes[h.Typeflag], mode: fmt.Sprintf("%04o", h.Mode&0o7777),
			owner: fmt.Sprintf("%d:%d", h.Uid, h.Gid), names: h.Uname + ":" + h.Gname,
			mtime: stamp(h.ModTime), atime: stamp(h.AccessTime), ctime: stamp(h.ChangeTime), layer: i,
			inode: fmt.Sprintf("%d:%s", i, name)}
		if e.typ == "" {
			e.typ = fmt.Sprintf("type %q", h.Typeflag)
		}
		if e.names == ":" {
			e.names = ""
		}
		if e.mtime == buildTime {
			wall = true
		}
		var xs []string
		for k, v := range h.PAXRecords {
			if x, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
				xs = append(xs, fmt.Sprintf("%s=%q", x, v))
			}
		}
		sort.Strings(xs)
		e.xattrs = strings.Join(xs, ",")
		switch h.Typeflag {
		case tar.TypeReg:
			data, err := io.ReadAll(tr)
			if err != nil {
				t.Fatalf("layer %d %s: %v", i, name, err)
			}
			sum := sha256.Sum256(data)
			e.size, e.sha = fmt.Sprint(len(data)), hex.EncodeToString(sum[:])[:16]
			if len(data) <= 1<<16 {
				e.content = string(data)
			}
		case tar.TypeSymlink:
			e.link = h.Linkname
		case tar.TypeChar, tar.TypeBlock:
			e.dev = fmt.Sprintf("%d,%d", h.Devmajor, h.Devminor)
		case tar.TypeLink:
			e.link = path.Clean("/" + h.Linkname)
		}
		lines = append(lines, name+" "+e.String())

		base, dir := path.Base(name), path.Dir(name)
		switch {
		case base == ".wh..wh..opq":
			s.remove(dir, i, false)
			continue
		case strings.HasPrefix(base, ".wh."):
			s.remove(path.Join(dir, strings.TrimPrefix(base, ".wh.")), i, true)
			continue
		}
		if h.Typeflag == tar.TypeLink {
			target, ok := s.files[e.link]
			if !ok {
				t.Fatalf("layer %d: hard link %s to missing %s", i, name, e.link)
			}
			linked := *target
			linked.layer = i
			e = &linked
		}
		if old, ok := s.files[name]; ok && old.typ == "dir" && e.typ != "dir" {
			s.remove(name, i+1, false)
		}
		s.files[name] = e
	}
	s.layers = append(s.layers, lines)
	return wall
}

// remove deletes what lower layers (before layer i) have under p (and p itself when self).
func (s *imageSnap) remove(p string, i int, self bool) {
	prefix := strings.TrimSuffix(p, "/") + "/"
	for name, e := range s.files {
		if e.layer < i && ((self && name == p) || strings.HasPrefix(name, prefix)) {
			delete(s.files, name)
		}
	}
}

// linkGroups records, for each path, the other paths hard linked to it.
func (s *imageSnap) linkGroups() {
	groups := map[string][]string{}
	for name, e := range s.files {
		groups[e.inode] = append(groups[e.inode], name)
	}
	for _, names := range groups {
		if len(names) < 2 {
			continue
		}
		sort.Strings(names)
		for _, n := range names {
			s.files[n].links = strings.Join(names, ",")
		}
	}
}

// flatJSON decodes a JSON document into path → value, with times made by a build as
// buildTime and the paths for which hide is true as "<differs per build>".
func flatJSON(t *testing.T, raw []byte, hide func(path string) bool) map[string]string {
	t.Helper()
	var doc any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
	out := map[string]string{}
	var walk func(p string, v any)
	walk = func(p string, v any) {
		switch v := v.(type) {
		case map[string]any:
			if len(v) == 0 {
				out[p] = "{}"
			}
			for k, x := range v {
				walk(p+"."+k, x)
			}
		case []any:
			if len(v) == 0 {
				out[p] = "[]"
			}
			for i, x := range v {
				walk(fmt.Sprintf("%s[%d]", p, i), x)
			}
		default:
			if s, ok := v.(string); ok {
				if tm, err := time.Parse(time.RFC3339Nano, s); err == nil && stamp(tm) == buildTime {
					v = buildTime
				}
			}
			if hide(p) {
				v = "<differs per build>"
			}
			b, _ := json.Marshal(v)
			out[p] = string(b)
		}
	}
	walk("", doc)
	return out
}

// diffSnaps lists the differences between B built after A (a) and B built fresh (b).
func diffSnaps(a, b *imageSnap) []string {
	var out []string
	diffMap := func(what string, x, y map[string]string) {
		for _, k := range unionKeys(x, y) {
			vx, okx := x[k]
			vy, oky := y[k]
			if !okx {
				vx = "<absent>"
			}
			if !oky {
				vy = "<absent>"
			}
			if vx != vy {
				out = append(out, fmt.Sprintf("%s %s: A-then-B=%s fresh-B=%s", what, k, vx, vy))
			}
		}
	}
	diffMap("manifest", a.manifest, b.manifest)
	diffMap("config", a.config, b.config)
	for _, p := range unionKeys(a.files, b.files) {
		ea, oka := a.files[p]
		eb, okb := b.files[p]
		switch {
		case !oka:
			out = append(out, fmt.Sprintf("file %s: A-then-B=<absent> fresh-B=%s", p, eb))
		case !okb:
			out = append(out, fmt.Sprintf("file %s: A-then-B=%s fresh-B=<absent>", p, ea))
		default:
			fa, fb := ea.fields(), eb.fields()
			for i := range fa {
				if fa[i][1] != fb[i][1] {
					out = append(out, fmt.Sprintf("file %s: %s: A-then-B=%q fresh-B=%q", p, fa[i][0], fa[i][1], fb[i][1]))
				}
			}
			if ea.typ == "file" && ea.sha != eb.sha {
				out = append(out, contentDiff(p, ea.content, eb.content)...)
			}
		}
	}
	if len(out) == 0 {
		// The same files, but made of different layers?
		if len(a.layers) != len(b.layers) {
			out = append(out, fmt.Sprintf("layers: A-then-B has %d, fresh-B %d", len(a.layers), len(b.layers)))
		}
		for i := 0; i < len(a.layers) && i < len(b.layers); i++ {
			if !slices.Equal(a.layers[i], b.layers[i]) {
				la, lb := diffLines(a.layers[i], b.layers[i])
				out = append(out, fmt.Sprintf("layer %d entries: A-then-B has %q, fresh-B has %q", i, la, lb))
			}
		}
	}
	return out
}

// contentDiff shows how two small contents differ: whole, or the first lines that differ.
func contentDiff(p, a, b string) []string {
	switch {
	case a == "" && b == "":
		return nil // too large to keep, or both empty
	case len(a)+len(b) < 300:
		return []string{fmt.Sprintf("file %s: content: A-then-B=%q fresh-B=%q", p, a, b)}
	}
	la, lb := strings.Split(a, "\n"), strings.Split(b, "\n")
	var out []string
	for i := 0; i < max(len(la), len(lb)) && len(out) < 3; i++ {
		var x, y string
		if i < len(la) {
			x = la[i]
		}
		if i < len(lb) {
			y = lb[i]
		}
		if x != y {
			out = append(out, fmt.Sprintf("file %s: line %d: A-then-B=%q fresh-B=%q", p, i+1, x, y))
		}
	}
	return out
}

// diffLines is the first line of each list that the other does not have.
func diffLines(a, b []string) (string, string) {
	first := func(x, y []string) string {
		for _, l := range x {
			if !slices.Contains(y, l) {
				return l
			}
		}
		return "(same entries, other order)"
	}
	return first(a, b), first(b, a)
}

func unionKeys[V any](x, y map[string]V) []string {
	var keys []string
	for k := range x {
		keys = append(keys, k)
	}
	for k := range y {
		if _, ok := x[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys
}
