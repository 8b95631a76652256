package main

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// hostileEntry is one member of a crafted archive.
type hostileEntry struct {
	name, link string
	typ        byte
	body       string
	mode       int64
}

func hostileTar(t *testing.T, entries []hostileEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		mode := e.mode
		if mode == 0 {
			mode = 0o644
		}
		h := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: mode, Size: int64(len(e.body))}
		if e.typ != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			tw.Write([]byte(e.body))
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func hashFile(t *testing.T, p string) [32]byte {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(data)
}

// ADD of hostile archives: every case fails clearly or stays inside the image; files
// outside (a canary beside the context, the host's /etc/passwd) are never touched.
func TestHostileArchivesThroughADD(t *testing.T) {
	root, out := e2e(t)
	host := busyboxRegistry(t)
	passwd := hashFile(t, "/etc/passwd")
	cases := []struct {
		name    string
		entries []hostileEntry
		inside  map[string]string // image path → content that must be there, if it built
	}{
		{"dot-dot names", []hostileEntry{{name: "../../../../canary", typ: tar.TypeReg, body: "pwned"}}, nil},
		{"absolute names", []hostileEntry{{name: "/etc/passwd", typ: tar.TypeReg, body: "pwned"}}, nil},
		{"write through planted relative symlink", []hostileEntry{
			{name: "up", typ: tar.TypeSymlink, link: "../../../../../../"},
			{name: "up/canary", typ: tar.TypeReg, body: "pwned"}}, nil},
		{"write through planted absolute symlink", []hostileEntry{
			{name: "etc", typ: tar.TypeSymlink, link: "/etc"},
			{name: "etc/passwd", typ: tar.TypeReg, body: "pwned"}}, nil},
		{"hard link to host file", []hostileEntry{{name: "hl", typ: tar.TypeLink, link: "/etc/passwd"}}, nil},
		{"hard link out of the archive", []hostileEntry{{name: "hl", typ: tar.TypeLink, link: "../../../../etc/passwd"}}, nil},
		{"symlink loop", []hostileEntry{
			{name: "a", typ: tar.TypeSymlink, link: "b"}, {name: "b", typ: tar.TypeSymlink, link: "a"},
			{name: "a/x", typ: tar.TypeReg, body: "x"}}, nil},
		// A file named .wh.* cannot be stored in a layer (every reader takes it for a
		// whiteout), so the build refuses it rather than delete anything.
		{"whiteout names never delete", []hostileEntry{
			{name: ".wh.bin", typ: tar.TypeReg}, {name: "etc/.wh..wh..opq", typ: tar.TypeReg}}, nil},
		{"setuid kept inside", []hostileEntry{{name: "suid", typ: tar.TypeReg, body: "#!/bin/sh\n", mode: 0o4755}}, map[string]string{"/x/suid": "#!/bin/sh\n"}},
		{"duplicate entries", []hostileEntry{{name: "d", typ: tar.TypeReg, body: "one"}, {name: "d", typ: tar.TypeReg, body: "two"}}, map[string]string{"/x/d": "two"}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			parent := t.TempDir()
			canary := filepath.Join(parent, "canary")
			os.WriteFile(canary, []byte("safe"), 0o644)
			ctxDir := filepath.Join(parent, "a", "b", "c", "ctx")
			os.MkdirAll(ctxDir, 0o755)
			os.WriteFile(filepath.Join(ctxDir, "evil.tar"), hostileTar(t, tc.entries), 0o644)
			os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), []byte("FROM "+host+"/busybox:latest\nADD evil.tar /x/\n"), 0o644)
			dest := filepath.Join(out, "h"+string(rune('a'+i))+".tar")
			r := kiln(t, ctxDir, "build", "--root", root, "-o", "type=oci,dest="+dest, ".")
			if data, _ := os.ReadFile(canary); string(data) != "safe" {
				t.Fatalf("canary outside the context was changed: %q", data)
			}
			if hashFile(t, "/etc/passwd") != passwd {
				t.Fatal("the host's /etc/passwd changed")
			}
			if strings.Contains(r.stderr, "panic:") {
				t.Fatalf("panic:\n%s", r.stderr)
			}
			if r.code != 0 {
				if !strings.Contains(r.stderr, "Dockerfile:2") {
					t.Errorf("failure does not name the ADD line:\n%s", r.stderr)
				}
				return
			}
			files := flatten(t, readOCI(t, dest))
			if f := files["/etc/passwd"]; !strings.Contains(f.content, "app:x:1000") {
				t.Errorf("the image's /etc/passwd was overwritten: %q", f.content)
			}
			if _, ok := files["/bin/busybox"]; !ok {
				t.Error("a whiteout-looking name deleted /bin from the image")
			}
			for p, want := range tc.inside {
				if f, ok := files[p]; !ok || f.content != want {
					t.Errorf("%s = %q (present %v), want %q", p, f.content, ok, want)
				}
			}
			if f, ok := files["/x/suid"]; ok && f.mode&0o4000 == 0 {
				t.Errorf("setuid bit lost: %o", f.mode)
			}
		})
	}
}

// Symlinks in the context and in images are resolved inside their own root, never on
// the host: COPY copies links as links, destinations through image symlinks land in
// the image, COPY --from through a planted "/" link reads the stage, WORKDIR through a
// symlink creates the dir in the image.
func TestSymlinkBreakouts(t *testing.T) {
	root, out := e2e(t)
	host := busyboxRegistry(t)
	dir := project(t, map[string]string{
		"Dockerfile": "FROM " + host + `/busybox:latest AS planter
RUN ln -s / /evil && ln -s /etc /etcl && mkdir -p /data && echo stage > /data/f
FROM planter
COPY ctx/ /copied/
COPY note.txt /etcl/note.txt
COPY --from=planter /evil/etc/passwd /from-stage-passwd
COPY --from=planter /evil/data/f /from-stage-f
RUN ln -s / /w
WORKDIR /w/made-by-workdir
`,
		"note.txt":        "note",
		"ctx/regular.txt": "r",
	})
	if err := os.Symlink("/etc/passwd", filepath.Join(dir, "ctx", "hostpasswd")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../../../../../etc/shadow", filepath.Join(dir, "ctx", "dotdot")); err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(out, "sym.tar")
	mustBuild(t, dir, "--root", root, "-o", "type=oci,dest="+dest, ".")
	img := readOCI(t, dest)
	files := flatten(t, img)
	copied := layerEntries(t, img, 2) // planter's RUN is layer 1 over busybox, COPY ctx/ is next
	if f := copied["/copied/hostpasswd"]; f.typ != tar.TypeSymlink || f.link != "/etc/passwd" {
		t.Errorf("context symlink was not copied as a link: %+v", f)
	}
	if f := copied["/copied/dotdot"]; f.typ != tar.TypeSymlink || f.link != "../../../../../../etc/shadow" {
		t.Errorf("context symlink out of the context was followed: %+v", f)
	}
	if files["/etc/note.txt"].content != "note" {
		t.Errorf("COPY through an image symlink did not land in the image's /etc: %v", files["/etc/note.txt"])
	}
	if _, err := os.Stat("/etc/note.txt"); err == nil {
		t.Fatal("COPY wrote to the host's /etc")
	}
	if !strings.Contains(files["/from-stage-passwd"].content, "app:x:1000") {
		t.Errorf("COPY --from through a planted / link did not read the stage: %q", files["/from-stage-passwd"].content)
	}
	if files["/from-stage-f"].content != "stage\n" {
		t.Errorf("from-stage-f = %q", files["/from-stage-f"].content)
	}
	if f, ok := files["/made-by-workdir"]; !ok || f.typ != tar.TypeDir {
		t.Errorf("WORKDIR through a symlink did not create the dir in the image: %+v", f)
	}
	if _, err := os.Stat("/made-by-workdir"); err == nil {
		t.Fatal("WORKDIR created a dir on the host")
	}
}

// A file named .wh.NAME that a step leaves (a RUN's, a context file a COPY brings,
// an ADDed archive's entry) is what every reader takes it for, as in BuildKit's
// image: NAME is gone from the image and so is the file. kiln's later steps see the
// image's files too: the step's tree is what its layer holds. A ".wh." name with
// nothing under it leaves no trace.
func TestWhiteoutNamesAreWhiteouts(t *testing.T) {
	root, out := e2e(t)
	host := busyboxRegistry(t)
	var archive bytes.Buffer
	tw := tar.NewWriter(&archive)
	for _, name := range []string{"tgone/", "tgone/.wh.f", ".wh.tfile"} {
		h := &tar.Header{Name: name, Mode: 0o644, Typeflag: tar.TypeReg}
		if strings.HasSuffix(name, "/") {
			h.Typeflag, h.Mode = tar.TypeDir, 0o755
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
	}
	tw.Close()
	dir := project(t, map[string]string{
		"Dockerfile": "FROM " + host + `/busybox:latest
RUN echo r > /victim && echo k > /keep && mkdir -p /whd /tgone && echo old > /whd/gone && echo f > /tgone/f && echo t > /tfile
RUN touch /.wh.victim /.wh.nothing /whd/.wh.gone && mkdir -p /opq && touch /opq/.wh..wh..opq
COPY ctx/ /
ADD wh.tar /
RUN ls -a / /whd /tgone > /seen.txt
`,
		"ctx/.wh.keep": "",
		"ctx/ok":       "ok\n",
		"wh.tar":       archive.String(),
	})
	dest := filepath.Join(out, "wh.tar")
	mustBuild(t, dir, "--root", root, "-o", "type=oci,dest="+dest, ".")
	img := readOCI(t, dest)
	files := flatten(t, img)
	for _, p := range []string{"/victim", "/keep", "/whd/gone", "/tgone/f", "/tfile", "/.wh.victim", "/.wh.nothing", "/.wh.keep",
		"/whd/.wh.gone", "/opq/.wh..wh..opq", "/tgone/.wh.f", "/.wh.tfile", "/nothing"} {
		if f, ok := files[p]; ok {
			t.Errorf("the image has %s (%+v)", p, f)
		}
	}
	for _, p := range []string{"/bin/sh", "/ok", "/whd", "/opq", "/tgone"} {
		if _, ok := files[p]; !ok {
			t.Errorf("the image lacks %s", p)
		}
	}
	seen := map[string]bool{}
	for _, name := range strings.Fields(files["/seen.txt"].content) {
		seen[name] = true
	}
	for name := range seen {
		if strings.HasPrefix(name, ".wh.") {
			t.Errorf("the last RUN saw %s", name)
		}
	}
	for _, name := range []string{"victim", "keep", "gone", "f", "tfile", "nothing"} {
		if seen[name] {
			t.Errorf("the last RUN saw %s: %q", name, files["/seen.txt"].content)
		}
	}
	if !seen["ok"] || !seen["bin"] {
		t.Errorf("the last RUN did not see /ok and /bin: %q", files["/seen.txt"].content)
	}
	// The RUN's layer holds the whiteouts, as the overlay made them for an rm, and
	// nothing for the name with nothing under it.
	run := layerEntries(t, img, 2)
	for _, p := range []string{"/.wh.victim", "/whd/.wh.gone", "/opq/.wh..wh..opq"} {
		if f, ok := run[p]; !ok || f.typ != tar.TypeReg || f.content != "" {
			t.Errorf("the RUN's layer lacks the whiteout %s: %+v", p, f)
		}
	}
	if _, ok := run["/.wh.nothing"]; ok {
		t.Error("the RUN's layer has a whiteout of a name nothing below has")
	}
}
