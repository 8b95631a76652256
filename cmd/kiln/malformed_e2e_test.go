package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Malformed input gets a clear error and never a Go panic (issue: hostile input).
func TestMalformedInput(t *testing.T) {
	root, out := e2e(t)
	long := "FROM scratch\nLABEL x=" + strings.Repeat("a", 70<<10) + "\n"
	cases := []struct {
		name       string
		dockerfile string                                  // written as the Dockerfile unless setup replaces it
		setup      func(t *testing.T, dir string) []string // extra args; may change dir
		want       string                                  // stderr must contain this (case-insensitive)
		ok         bool                                    // the build must succeed instead
	}{
		{name: "binary garbage", dockerfile: "\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x03\x00>\x00", want: "binary"},
		{name: "empty", dockerfile: "", want: "no instructions"},
		{name: "only comments", dockerfile: "# nothing here\n\n", want: "no instructions"},
		{name: "instruction before from", dockerfile: "RUN true\nFROM scratch\n", want: "Dockerfile:1"},
		{name: "invalid json form", dockerfile: "FROM scratch\nCMD [\"unterminated\n", ok: true},
		{name: "unknown instruction flag", dockerfile: "FROM scratch\nCOPY --frob=1 a /a\n", want: "frob"},
		{name: "invalid from reference", dockerfile: "FROM UPPER/Case:::bad\n", want: "Dockerfile:1"},
		// BuildKit's parser refuses such lines too; the error must say so, not panic.
		{name: "line over 64KiB", dockerfile: long, want: "max allowed size"},
		{name: "dockerfile is a directory", setup: func(t *testing.T, dir string) []string {
			os.Remove(filepath.Join(dir, "Dockerfile"))
			os.Mkdir(filepath.Join(dir, "Dockerfile"), 0o755)
			return nil
		}, want: "directory"},
		{name: "missing dockerfile", setup: func(t *testing.T, dir string) []string {
			return []string{"-f", filepath.Join(dir, "nope.Dockerfile")}
		}, want: "nope.Dockerfile"},
		{name: "missing context", setup: func(t *testing.T, dir string) []string {
			return []string{"-f", filepath.Join(dir, "Dockerfile"), filepath.Join(dir, "no-such-context")}
		}, dockerfile: "FROM scratch\n", want: "no-such-context"},
		{name: "build arg with newline", dockerfile: "FROM scratch\nARG A\nLABEL a=$A\n", setup: func(t *testing.T, dir string) []string {
			return []string{"--build-arg", "A=one\ntwo"}
		}, ok: true},
		{name: "invalid output", dockerfile: "FROM scratch\n", setup: func(t *testing.T, dir string) []string {
			return []string{"-o", "type=weird,dest=x"}
		}, want: "type=weird"},
		{name: "invalid memory", dockerfile: "FROM scratch\n", setup: func(t *testing.T, dir string) []string {
			return []string{"--memory", "lots"}
		}, want: "--memory"},
		{name: "target not found", dockerfile: "FROM scratch AS a\n", setup: func(t *testing.T, dir string) []string {
			return []string{"--target", "b"}
		}, want: "b"},
		{name: "non-utf8 file names copy fine", dockerfile: "FROM scratch\nCOPY . /ctx/\n", setup: func(t *testing.T, dir string) []string {
			if err := os.WriteFile(filepath.Join(dir, "caf\xe9-\xff.txt"), []byte("latin1"), 0o644); err != nil {
				t.Fatal(err)
			}
			return nil
		}, ok: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := project(t, map[string]string{"Dockerfile": tc.dockerfile, "a": "a"})
			var extra []string
			if tc.setup != nil {
				extra = tc.setup(t, dir)
			}
			args := []string{"build", "--root", root, "--progress", "plain", "-o", "type=oci,dest=" + filepath.Join(out, "img.tar")}
			args = append(args, extra...)
			if !strings.Contains(tc.name, "missing context") {
				args = append(args, ".")
			}
			r := kiln(t, dir, args...)
			if strings.Contains(r.stderr, "panic:") || strings.Contains(r.stderr, "goroutine ") {
				t.Fatalf("kiln panicked:\n%s", r.stderr)
			}
			if tc.ok {
				if r.code != 0 {
					t.Fatalf("want success, got exit %d:\n%s", r.code, r.stderr)
				}
				return
			}
			if r.code == 0 {
				t.Fatalf("want failure mentioning %q, build succeeded", tc.want)
			}
			if !strings.Contains(strings.ToLower(r.stderr), strings.ToLower(tc.want)) {
				t.Errorf("stderr does not mention %q:\n%s", tc.want, r.stderr)
			}
		})
	}
}
