package layers

import (
	"github.com/kiln-build/kiln/internal/testenv"
	"github.com/kiln-build/kiln/internal/xattr"

	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

type outcome int

const (
	mustSucceed outcome = iota
	mustFail
	eitherWay // what matters is that nothing escaped
)

// sandbox is a dest dir next to a canary file, inside one t.TempDir().
type sandbox struct {
	parent, dest, canary string
	passwd               [32]byte
	passwdLinks          uint64
}

const canaryContent = "canary"

func newSandbox(t testing.TB) *sandbox {
	parent := t.TempDir()
	s := &sandbox{parent: parent, dest: filepath.Join(parent, "dest"), canary: filepath.Join(parent, "canary")}
	if err := os.Mkdir(s.dest, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.canary, []byte(canaryContent), 0o644); err != nil {
		t.Fatal(err)
	}
	s.passwd, s.passwdLinks = hostFile(t, "/etc/passwd")
	return s
}

func hostFile(t testing.TB, p string) ([32]byte, uint64) {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b), st.Nlink
}

// checkContained fails if anything next to dest changed, or /etc/passwd did.
func (s *sandbox) checkContained(t testing.TB) {
	ents, err := os.ReadDir(s.parent)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	if strings.Join(names, " ") != "canary dest" {
		t.Errorf("files appeared next to dest: %v", names)
	}
	var st unix.Stat_t
	if err := unix.Lstat(s.canary, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG || st.Nlink != 1 {
		t.Errorf("canary replaced or linked: %v mode %o nlink %d", err, st.Mode, st.Nlink)
	} else if b, _ := os.ReadFile(s.canary); string(b) != canaryContent {
		t.Errorf("canary rewritten: %q", b)
	}
	if sum, links := hostFile(t, "/etc/passwd"); sum != s.passwd || links != s.passwdLinks {
		t.Errorf("/etc/passwd changed (links %d -> %d)", s.passwdLinks, links)
	}
}

func TestUnpackHostile(t *testing.T) {
	testenv.RequireRoot(t)
	long := strings.Repeat("n", 300)
	longPath := strings.Repeat(strings.Repeat("p", 200)+"/", 10) + "f"
	tests := []struct {
		name    string
		mode    WhiteoutMode
		prepare func(s *sandbox) // extra content in dest before unpacking
		entries func(s *sandbox) []*tar.Header
		bodies  map[string]string
		want    outcome
		check   func(t *testing.T, s *sandbox)
	}{
		{name: "dotdot name", entries: func(*sandbox) []*tar.Header { return hdrs(hdrReg("../canary"), hdrReg("a/../../../x")) },
			bodies: map[string]string{"../canary": "pwned"}, check: wantFile("canary", "pwned")},
		{name: "absolute name", entries: func(s *sandbox) []*tar.Header { return hdrs(hdrReg(s.canary)) },
			bodies: nil, check: wantHostCanaryInside},
		{name: "symlink to / then file through it", entries: func(*sandbox) []*tar.Header {
			return hdrs(hdrSym("root", "/"), hdrReg("root/etc/passwd"))
		}, check: wantPath("etc/passwd")},
		{name: "absolute symlink to dest's parent", entries: func(s *sandbox) []*tar.Header {
			return hdrs(hdrSym("up", s.parent), hdrReg("up/canary"))
		}, check: wantHostCanaryInside},
		{name: "relative symlink climbing out", entries: func(*sandbox) []*tar.Header {
			return hdrs(hdrSym("up", "../../.."), hdrReg("up/canary"), hdrDir("up/newdir/"))
		}, check: wantPath("canary")},
		{name: "file replaces symlink to outside", entries: func(*sandbox) []*tar.Header {
			return hdrs(hdrSym("c", "../canary"), hdrReg("c"))
		}, bodies: map[string]string{"c": "pwned"}, check: wantFile("c", "pwned")},
		{name: "dir replaces symlink to outside", entries: func(s *sandbox) []*tar.Header {
			return hdrs(hdrSym("d", s.parent), hdrDir("d/"), hdrReg("d/canary"))
		}, check: wantPath("d/canary")},
		// A directory already written into, then replaced by a symlink out: what is
		// written through its name afterwards must follow the link inside dest.
		{name: "symlink replaces a used directory", entries: func(s *sandbox) []*tar.Header {
			return hdrs(hdrDir("d/"), hdrReg("d/a"), hdrSym("d", s.parent), hdrReg("d/canary"))
		}, bodies: map[string]string{"d/canary": "pwned"}, check: func(t *testing.T, s *sandbox) {
			wantFile(filepath.Join(strings.TrimPrefix(s.parent, "/"), "canary"), "pwned")(t, s)
		}},
		{name: "symlink replaces a used nested directory", entries: func(s *sandbox) []*tar.Header {
			return hdrs(hdrDir("d/e/"), hdrReg("d/e/a"), hdrSym("d", "/.."), hdrReg("d/e/b"), hdrReg("d/canary"))
		}, check: func(t *testing.T, s *sandbox) {
			wantPath("e/b")(t, s)
			wantPath("canary")(t, s)
		}},
		{name: "whiteout of a used directory, then a symlink in its place", mode: ApplyWhiteouts, entries: func(s *sandbox) []*tar.Header {
			return hdrs(hdrDir("d/"), hdrReg("d/a"), hdrReg(".wh.d"), hdrSym("d", s.parent), hdrReg("d/canary"))
		}, check: wantHostCanaryInside},
		{name: "symlink chain", entries: func(*sandbox) []*tar.Header {
			return hdrs(hdrSym("l1", "l2"), hdrSym("l2", "l3"), hdrSym("l3", "/.."), hdrReg("l1/x"))
		}, check: wantPath("x")},
		{name: "symlink loop", entries: func(*sandbox) []*tar.Header {
			return hdrs(hdrSym("a", "b"), hdrSym("b", "a"), hdrReg("a/x"))
		}, want: mustFail},
		{name: "hard link to /etc/passwd", entries: func(*sandbox) []*tar.Header {
			return hdrs(hdrLink("pw", "/etc/passwd"))
		}, want: mustFail},
		{name: "hard link out with dotdot", entries: func(*sandbox) []*tar.Header {
			return hdrs(hdrLink("c", "../canary"))
		}, want: mustFail},
		{name: "hard link through planted symlink", entries: func(s *sandbox) []*tar.Header {
			return hdrs(hdrSym("s", s.parent), hdrLink("c", "s/canary"))
		}, want: mustFail},
		{name: "hard link to symlink links the symlink", entries: func(*sandbox) []*tar.Header {
			return hdrs(hdrSym("s", "../canary"), hdrLink("h", "s"))
		}, check: func(t *testing.T, s *sandbox) {
			if target, err := os.Readlink(filepath.Join(s.dest, "h")); err != nil || target != "../canary" {
				t.Errorf("h: %q %v", target, err)
			}
		}},
		{name: "duplicate entries", entries: func(*sandbox) []*tar.Header {
			return hdrs(hdrReg("f"), hdrDir("f/"), hdrReg("f/x"), hdrReg("g"), hdrReg("g"))
		}, bodies: map[string]string{"g": "second"}, check: func(t *testing.T, s *sandbox) {
			wantPath("f/x")(t, s)
			wantFile("g", "second")(t, s)
		}},
		{name: "component over 255 bytes", entries: func(*sandbox) []*tar.Header { return hdrs(hdrReg(long)) }, want: mustFail},
		{name: "long path", entries: func(*sandbox) []*tar.Header { return hdrs(hdrReg(longPath)) }, check: wantPath(longPath)},
		{name: "setuid kept", entries: func(*sandbox) []*tar.Header {
			return hdrs(&tar.Header{Typeflag: tar.TypeReg, Name: "su", Mode: 0o4755})
		}, check: func(t *testing.T, s *sandbox) {
			fi, err := os.Stat(filepath.Join(s.dest, "su"))
			if err != nil || fi.Mode()&os.ModeSetuid == 0 {
				t.Errorf("su: %v %v", fi, err)
			}
		}},
		{name: "device node with dotdot name", entries: func(*sandbox) []*tar.Header {
			return hdrs(&tar.Header{Typeflag: tar.TypeChar, Name: "../null", Devmajor: 1, Devminor: 3})
		}, check: wantPath("null")},
		{name: "whiteouts are plain files with NoWhiteouts", mode: NoWhiteouts,
			prepare: func(s *sandbox) { os.WriteFile(filepath.Join(s.dest, "keep"), nil, 0o644) },
			entries: func(*sandbox) []*tar.Header { return hdrs(hdrReg(".wh.keep"), hdrReg(".wh..wh..opq")) },
			check: func(t *testing.T, s *sandbox) {
				wantPath("keep")(t, s)
				wantPath(".wh.keep")(t, s)
				wantPath(".wh..wh..opq")(t, s)
			}},
		{name: "whiteout of dotdot", mode: ApplyWhiteouts, entries: func(*sandbox) []*tar.Header { return hdrs(hdrReg(".wh..")) }, want: mustFail},
		{name: "whiteout of dot", mode: ApplyWhiteouts, entries: func(*sandbox) []*tar.Header { return hdrs(hdrReg("d/.wh..")) }, want: mustFail},
		{name: "whiteout climbing out", mode: ApplyWhiteouts, entries: func(s *sandbox) []*tar.Header {
			return hdrs(hdrReg("../.wh.canary"), hdrSym("s", s.parent), hdrReg("s/.wh.canary"), hdrSym("u", "../.."), hdrReg("u/.wh.canary"))
		}},
		{name: "overlay whiteout through symlink", mode: OverlayWhiteouts, entries: func(s *sandbox) []*tar.Header {
			return hdrs(hdrSym("s", s.parent), hdrReg("s/.wh.canary"), hdrReg("s/.wh..wh..opq"))
		}, check: wantHostCanaryInside},
		{name: "opaque xattr from the archive is dropped", entries: func(*sandbox) []*tar.Header {
			return hdrs(&tar.Header{Typeflag: tar.TypeDir, Name: "d/", Mode: 0o755, PAXRecords: map[string]string{paxXattr + "trusted.overlay.opaque": "y"}})
		}, check: func(t *testing.T, s *sandbox) {
			if _, ok, _ := xattr.Get(filepath.Join(s.dest, "d"), "trusted.overlay.opaque"); ok {
				t.Error("archive set trusted.overlay.opaque")
			}
		}},
		{name: "opaque in ApplyWhiteouts stays inside", mode: ApplyWhiteouts, entries: func(s *sandbox) []*tar.Header {
			return hdrs(hdrSym("s", s.parent), hdrReg("s/.wh..wh..opq"), hdrSym("u", ".."), hdrReg("u/.wh..wh..opq"))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSandbox(t)
			if tt.prepare != nil {
				tt.prepare(s)
			}
			blob := buildTar(t, tt.entries(s), tt.bodies)
			err := Unpack(context.Background(), bytes.NewReader(blob), s.dest, UnpackOptions{Whiteouts: tt.mode, KeepOwners: true})
			switch {
			case tt.want == mustFail && err == nil:
				t.Error("Unpack succeeded, want an error")
			case tt.want == mustSucceed && err != nil:
				t.Errorf("Unpack: %v", err)
			}
			if err != nil {
				t.Logf("error (fine): %v", err)
			}
			s.checkContained(t)
			if err == nil && tt.check != nil {
				tt.check(t, s)
			}
		})
	}
}

func wantPath(rel string) func(*testing.T, *sandbox) {
	return func(t *testing.T, s *sandbox) {
		t.Helper()
		if _, err := os.Lstat(filepath.Join(s.dest, rel)); err != nil {
			t.Errorf("want %s inside dest: %v", rel, err)
		}
	}
}

// wantHostCanaryInside: the canary's host path, replayed inside dest.
func wantHostCanaryInside(t *testing.T, s *sandbox) {
	t.Helper()
	wantPath(strings.TrimPrefix(s.canary, "/"))(t, s)
}

func wantFile(rel, content string) func(*testing.T, *sandbox) {
	return func(t *testing.T, s *sandbox) {
		t.Helper()
		if b, err := os.ReadFile(filepath.Join(s.dest, rel)); err != nil || string(b) != content {
			t.Errorf("%s = %q (%v), want %q", rel, b, err, content)
		}
	}
}

func FuzzUnpack(f *testing.F) {
	testenv.RequireRoot(f) // device nodes and owners
	f.Add([]byte{})
	f.Add([]byte("not a tar at all"))
	f.Add(buildTar(f, hdrs(hdrSym("up", "../../.."), hdrReg("up/canary"), hdrLink("h", "../canary")), nil))
	f.Add(buildTar(f, hdrs(hdrDir("d/"), hdrReg("d/.wh..wh..opq"), hdrReg(".wh...")), nil))
	f.Add(buildTar(f, hdrs(hdrSym("a", "b"), hdrSym("b", "/"), hdrReg("a/f"), hdrReg("/abs")), map[string]string{"a/f": "data"}))
	var gz bytes.Buffer
	if _, _, err := WriteUpperDiff(context.Background(), f.TempDir(), &gz, WriteOptions{}); err != nil {
		f.Fatal(err)
	}
	f.Add(gz.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		s := newSandbox(t)
		mode := WhiteoutMode(0)
		if len(data) > 0 {
			mode = WhiteoutMode(data[len(data)-1] % 3)
		}
		_ = Unpack(context.Background(), bytes.NewReader(data), s.dest, UnpackOptions{Whiteouts: mode, KeepOwners: true})
		s.checkContained(t)
	})
}
