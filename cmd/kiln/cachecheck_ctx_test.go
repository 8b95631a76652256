package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"hash/fnv"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The contexts of the differential cache harness: written from a pair's data, with
// every mtime fixed, and changed between A and B by its mutations.

// The fixed mtimes: each path gets its phase's time plus an offset of its own (with
// nanoseconds), so that no two files share an mtime and none is the wall clock.
var (
	phaseCreate = time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	phaseMutate = time.Date(2021, 2, 3, 4, 5, 6, 0, time.UTC)
)

func pathTime(phase time.Time, rel string) time.Time {
	h := fnv.New64a()
	h.Write([]byte(rel))
	n := h.Sum64()
	return phase.Add(time.Duration(n%100000)*time.Second + time.Duration(n>>20%999999999+1))
}

// writeContext writes the context files of a pair (see cachePair.ctx).
func writeContext(t *testing.T, dir, ctx string, files map[string]string, expand func(string) string) {
	t.Helper()
	if err := os.MkdirAll(ctx, 0o755); err != nil {
		t.Fatal(err)
	}
	keys := make([]string, 0, len(files))
	for k := range files {
		keys = append(keys, k)
	}
	// Hard links last: their targets must exist.
	isLink := func(k string) bool {
		_, opts, _ := strings.Cut(k, "|")
		return slices.Contains(strings.Split(opts, ","), "=>")
	}
	slices.SortFunc(keys, func(a, b string) int {
		if la, lb := isLink(a), isLink(b); la != lb {
			if la {
				return 1
			}
			return -1
		}
		return strings.Compare(a, b)
	})
	for _, k := range keys {
		name, optStr, _ := strings.Cut(k, "|")
		var opts []string
		if optStr != "" {
			opts = strings.Split(optStr, ",")
		}
		p := filepath.Join(ctx, name)
		value := expand(files[k])
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		isDir := strings.HasSuffix(name, "/") || slices.Contains(opts, "dir")
		switch {
		case isDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
		case slices.Contains(opts, "->"):
			if err := os.Symlink(value, p); err != nil {
				t.Fatal(err)
			}
		case slices.Contains(opts, "=>"):
			if err := os.Link(filepath.Join(ctx, value), p); err != nil {
				t.Fatal(err)
			}
		default:
			if err := os.WriteFile(p, []byte(genContent(t, value)), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		for _, o := range opts {
			switch {
			case o == "->" || o == "=>" || o == "dir":
			case strings.HasPrefix(o, "xattr:"):
				k, v, _ := strings.Cut(strings.TrimPrefix(o, "xattr:"), "=")
				if err := unix.Lsetxattr(p, k, []byte(v), 0); err != nil {
					t.Fatalf("setxattr %s %s: %v", p, k, err)
				}
			case strings.Contains(o, ":"):
				chownPath(t, p, o)
			default:
				chmodPath(t, p, o)
			}
		}
	}
}

func chmodPath(t *testing.T, p, octal string) {
	t.Helper()
	m, err := strconv.ParseUint(octal, 8, 32)
	if err != nil {
		t.Fatalf("mode %q: %v", octal, err)
	}
	// syscall modes: os.Chmod would drop setuid/setgid/sticky given as plain bits.
	if err := unix.Fchmodat(unix.AT_FDCWD, p, uint32(m), 0); err != nil {
		t.Fatalf("chmod %s: %v", p, err)
	}
}

func chownPath(t *testing.T, p, owner string) {
	t.Helper()
	u, g, _ := strings.Cut(owner, ":")
	uid, err1 := strconv.Atoi(u)
	gid, err2 := strconv.Atoi(g)
	if err1 != nil || err2 != nil {
		t.Fatalf("owner %q: want uid:gid", owner)
	}
	if err := os.Lchown(p, uid, gid); err != nil {
		t.Fatal(err)
	}
}

func writeDockerfile(t *testing.T, ctx, content string) {
	t.Helper()
	if content == "" {
		return
	}
	if err := os.WriteFile(filepath.Join(ctx, "Dockerfile"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// fixMtimes gives every path under dir whose mtime is the wall clock (made by the
// harness just now) its fixed mtime of the phase.
func fixMtimes(t *testing.T, dir string, phase time.Time) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if fi.ModTime().Before(cacheCheckStart) {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		setMtime(t, p, pathTime(phase, rel))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func setMtime(t *testing.T, p string, tm time.Time) {
	t.Helper()
	ts := unix.NsecToTimespec(tm.UnixNano())
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		t.Fatalf("utimes %s: %v", p, err)
	}
}

func mtimeOf(t *testing.T, p string) time.Time {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.ModTime()
}

// applyMut applies one mutation to the context (see ctxMut).
func applyMut(t *testing.T, ctx string, m ctxMut, expand func(string) string) {
	t.Helper()
	p := filepath.Join(ctx, m.path)
	arg := expand(m.arg)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	var err error
	switch m.op {
	case "write":
		err = os.WriteFile(p, []byte(genContent(t, arg)), 0o644)
	case "keep":
		before := mtimeOf(t, p)
		err = os.WriteFile(p, []byte(genContent(t, arg)), 0o644)
		setMtime(t, p, before)
	case "append":
		var f *os.File
		if f, err = os.OpenFile(p, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644); err == nil {
			_, err = f.WriteString(arg)
			f.Close()
		}
	case "touch":
		var tm time.Time
		if d, ok := strings.CutPrefix(arg, "+"); ok {
			dur, perr := time.ParseDuration(d)
			if perr != nil {
				t.Fatalf("touch %q: %v", arg, perr)
			}
			tm = mtimeOf(t, p).Add(dur)
		} else {
			tm = mustTime(t, arg)
		}
		setMtime(t, p, tm)
	case "chmod":
		chmodPath(t, p, arg)
	case "chown":
		chownPath(t, p, arg)
	case "rm":
		err = os.RemoveAll(p)
	case "symlink":
		os.RemoveAll(p)
		err = os.Symlink(arg, p)
	case "hardlink":
		os.RemoveAll(p)
		err = os.Link(filepath.Join(ctx, arg), p)
	case "mkdir":
		err = os.MkdirAll(p, 0o755)
	case "xattr":
		k, v, _ := strings.Cut(arg, "=")
		err = unix.Lsetxattr(p, k, []byte(v), 0)
	case "mv":
		if err = os.MkdirAll(filepath.Dir(filepath.Join(ctx, arg)), 0o755); err == nil {
			err = os.Rename(p, filepath.Join(ctx, arg))
		}
	default:
		t.Fatalf("unknown mutation %q", m.op)
	}
	if err != nil {
		t.Fatalf("mutation %v: %v", m, err)
	}
}

// genContent makes a file's content: "@tar:…", "@tgz:…", "@repeat:N:s" or s as is.
func genContent(t *testing.T, s string) string {
	t.Helper()
	switch {
	case strings.HasPrefix(s, "@tar:"):
		return string(tarOf(t, strings.TrimPrefix(s, "@tar:")))
	case strings.HasPrefix(s, "@tgz:"):
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write(tarOf(t, strings.TrimPrefix(s, "@tgz:")))
		zw.Close()
		return buf.String()
	case strings.HasPrefix(s, "@repeat:"):
		n, pat, _ := strings.Cut(strings.TrimPrefix(s, "@repeat:"), ":")
		size, err := strconv.Atoi(n)
		if err != nil || pat == "" {
			t.Fatalf("content %q: want @repeat:N:s", s)
		}
		return strings.Repeat(pat, size/len(pat)+1)[:size]
	}
	return s
}

// tarOf is a tar of "name=content;…" ("name/" a directory), in that order, with mtime N
// of an optional leading "mtime=N" (else phaseCreate).
func tarOf(t *testing.T, spec string) []byte {
	t.Helper()
	mtime := phaseCreate
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, item := range strings.Split(spec, ";") {
		name, content, _ := strings.Cut(item, "=")
		if name == "mtime" {
			n, err := strconv.ParseInt(content, 10, 64)
			if err != nil {
				t.Fatalf("tar spec %q: %v", spec, err)
			}
			mtime = time.Unix(n, 0)
			continue
		}
		h := &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(content)), ModTime: mtime, Format: tar.FormatPAX}
		if strings.HasSuffix(name, "/") {
			h.Typeflag, h.Mode, h.Size = tar.TypeDir, 0o755, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(content))
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
