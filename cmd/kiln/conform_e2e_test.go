package main

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/internal/testenv"
)

// The tests in this file pin behaviours where kiln follows BuildKit (issue 13), each
// by building a real image: BASE in a Dockerfile is the busybox test image.

// conform is one build of a conformance test.
type conform struct {
	t     *testing.T
	root  string
	out   string
	host  string
	umask string // when set, kiln runs under `umask UMASK`
}

func newConform(t *testing.T) *conform {
	t.Helper()
	root, out := e2e(t)
	return &conform{t: t, root: root, out: out, host: busyboxRegistry(t)}
}

// project makes a context whose Dockerfile is dockerfile (BASE replaced) plus files.
func (c *conform) project(dockerfile string, files map[string]string) string {
	c.t.Helper()
	all := map[string]string{"Dockerfile": strings.ReplaceAll(dockerfile, "BASE", c.host+"/busybox:latest")}
	for k, v := range files {
		all[k] = v
	}
	return project(c.t, all)
}

// run runs kiln build on dir into an OCI tarball and returns what kiln printed.
func (c *conform) run(dir string, args ...string) (result, string) {
	c.t.Helper()
	dest := filepath.Join(c.out, strings.NewReplacer("/", "_", " ", "_").Replace(c.t.Name())+".tar")
	args = append([]string{"build", "--root", c.root, "--progress", "plain", "-o", "type=oci,dest=" + dest}, args...)
	args = append(args, ".")
	if c.umask == "" {
		return kiln(c.t, dir, args...), dest
	}
	// The shell sets the umask and execs kiln (this test binary), so nothing else in
	// the test process sees it.
	cmd := osexec.Command("sh", append([]string{"-c", `umask ` + c.umask + ` && exec "$0" "$@"`, os.Args[0]}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "KILN_E2E_MAIN=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var ee *osexec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		c.t.Fatalf("run kiln %v: %v", args, err)
	}
	return r, dest
}

// build builds dir and returns the image; the build must succeed.
func (c *conform) build(dir string, args ...string) v1.Image {
	c.t.Helper()
	r, dest := c.run(dir, args...)
	if r.code != 0 {
		c.t.Fatalf("kiln build: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	return readOCI(c.t, dest)
}

// wantEntry checks one path of a file listing: its type, permission bits and owner.
func wantEntry(t *testing.T, files map[string]fileEntry, p string, typ byte, mode int64, uid, gid int) {
	t.Helper()
	f, ok := files[p]
	if !ok {
		t.Errorf("%s missing", p)
		return
	}
	if f.typ != typ || f.mode != mode || f.uid != uid || f.gid != gid {
		t.Errorf("%s = type %c mode %#o owner %d:%d, want type %c mode %#o owner %d:%d", p, f.typ, f.mode, f.uid, f.gid, typ, mode, uid, gid)
	}
}

// A RUN step runs with umask 0022 whatever the umask kiln was started with, as under
// BuildKit (runc's default): `umask 077; kiln build` must not make 0700 dirs and 0600
// files in the image.
func TestRunUmaskIsDockers(t *testing.T) {
	c := newConform(t)
	c.umask = "077"
	dir := c.project("FROM BASE\nRUN mkdir -p /made/sub && echo x > /made/sub/f && umask > /made/umask\n", nil)
	files := flatten(t, c.build(dir))
	wantEntry(t, files, "/made", tar.TypeDir, 0o755, 0, 0)
	wantEntry(t, files, "/made/sub", tar.TypeDir, 0o755, 0, 0)
	wantEntry(t, files, "/made/sub/f", tar.TypeReg, 0o644, 0, 0)
	if got := files["/made/umask"].content; got != "0022\n" {
		t.Errorf("umask in RUN = %q, want 0022", got)
	}
}

// COPY --chown=UID without a group gives gid UID, as BuildKit's file op does (and
// Docker documents: "a UID without GID will use the same numeric UID as the GID"),
// whether or not /etc/passwd has the uid; a user name gives its primary group.
func TestCopyChownUIDIsGID(t *testing.T) {
	c := newConform(t)
	dir := c.project(`FROM BASE
RUN echo "odd:x:1500:42::/:/bin/sh" >> /etc/passwd
COPY --chown=4242 f /unknown
COPY --chown=1500 f /known
COPY --chown=odd f /byname
COPY --chown=4242:7 f /both
`, map[string]string{"f": "x"})
	files := flatten(t, c.build(dir))
	wantEntry(t, files, "/unknown", tar.TypeReg, 0o644, 4242, 4242)
	wantEntry(t, files, "/known", tar.TypeReg, 0o644, 1500, 1500)
	wantEntry(t, files, "/byname", tar.TypeReg, 0o644, 1500, 42)
	wantEntry(t, files, "/both", tar.TypeReg, 0o644, 4242, 7)
}

// WORKDIR after USER of a user that /etc/passwd lacks works, as in BuildKit, whose
// WORKDIR is a file op that does not fail for an unknown owner: a directory that
// exists is left as it is, one that must be made is made root's (0755). A later RUN
// would fail (the user cannot run), in both.
func TestWorkdirUnknownUser(t *testing.T) {
	c := newConform(t)
	dir := c.project(`FROM BASE
USER nosuchuser
WORKDIR /tmp
WORKDIR /made/here
`, nil)
	img := c.build(dir)
	files := flatten(t, img)
	wantEntry(t, files, "/tmp", tar.TypeDir, 0o1777, 0, 0)
	wantEntry(t, files, "/made", tar.TypeDir, 0o755, 0, 0)
	wantEntry(t, files, "/made/here", tar.TypeDir, 0o755, 0, 0)
	if cf := config(t, img); cf.Config.User != "nosuchuser" || cf.Config.WorkingDir != "/made/here" {
		t.Errorf("config User %q WorkingDir %q", cf.Config.User, cf.Config.WorkingDir)
	}
}

// WORKDIR keeps an absolute path as written, trailing "/" included, in the config and
// the history (BuildKit's NormalizeWorkdir); a relative one is joined and cleaned.
func TestWorkdirTrailingSlash(t *testing.T) {
	c := newConform(t)
	dir := c.project("FROM BASE AS a\nWORKDIR /tmp/\nRUN pwd > /pwd\nCOPY f ./\nFROM a\nWORKDIR sub/\n", map[string]string{"f": "x"})
	img := c.build(dir, "--target", "a")
	cf := config(t, img)
	if cf.Config.WorkingDir != "/tmp/" {
		t.Errorf("WorkingDir = %q, want /tmp/", cf.Config.WorkingDir)
	}
	var workdirs []string
	for _, h := range cf.History {
		if strings.HasPrefix(h.CreatedBy, "WORKDIR") {
			workdirs = append(workdirs, h.CreatedBy)
		}
	}
	if len(workdirs) != 1 || workdirs[0] != "WORKDIR /tmp/" {
		t.Errorf("history WORKDIR entries %q, want [WORKDIR /tmp/]", workdirs)
	}
	files := flatten(t, img)
	if files["/pwd"].content != "/tmp\n" || files["/tmp/f"].content != "x" {
		t.Errorf("/pwd = %q, /tmp/f = %q", files["/pwd"].content, files["/tmp/f"].content)
	}
	if got := config(t, c.build(dir)).Config.WorkingDir; got != "/tmp/sub" {
		t.Errorf("relative WORKDIR sub/ after /tmp/ = %q, want /tmp/sub", got)
	}
}

// WORKDIR makes its path as written, component by component: /srv/./a/../b creates
// /srv/a as well as /srv/b, and stays uncleaned in the config, as BuildKit v0.32
// builds it (measured with buildctl); a COPY destination is cleaned first, so /p/q
// is not made. The pwd is the clean path.
func TestWorkdirMadeAsWritten(t *testing.T) {
	c := newConform(t)
	dir := c.project("FROM BASE\nENV D=/srv\nWORKDIR $D/./a/../b\nRUN pwd > /o\nCOPY f /p/./q/../r/\n", map[string]string{"f": "x"})
	img := c.build(dir)
	files := flatten(t, img)
	for _, p := range []string{"/srv", "/srv/a", "/srv/b", "/p/r"} {
		wantEntry(t, files, p, tar.TypeDir, 0o755, 0, 0)
	}
	if _, ok := files["/p/q"]; ok {
		t.Errorf("COPY f /p/./q/../r/ made /p/q")
	}
	if got := files["/o"].content; got != "/srv/b\n" {
		t.Errorf("pwd = %q, want /srv/b", got)
	}
	if got := config(t, img).Config.WorkingDir; got != "/srv/./a/../b" {
		t.Errorf("WorkingDir = %q, want /srv/./a/../b", got)
	}
}

// A RUN in FROM scratch leaves /dev, /proc and /sys in the image as empty 0755 dirs
// owned by root, as under BuildKit (runc makes them and only other mount points are
// cleaned up); /etc/hosts and /etc/resolv.conf (and /etc) do not stay.
func TestRunFromScratchLeavesRuntimeDirs(t *testing.T) {
	c := newConform(t)
	c.umask = "077"
	bb, err := testenv.BusyboxPath()
	if err != nil {
		t.Fatal(err) // make deps installs busybox-static
	}
	data, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	dir := c.project("FROM scratch\nCOPY --chmod=755 busybox /busybox\nRUN [\"/busybox\", \"true\"]\n", map[string]string{"busybox": string(data)})
	img := c.build(dir)
	layer := layerEntries(t, img, -1)
	for _, d := range []string{"/dev", "/proc", "/sys"} {
		wantEntry(t, layer, d, tar.TypeDir, 0o755, 0, 0)
	}
	for p := range layer {
		if p != "/" && p != "/dev" && p != "/proc" && p != "/sys" {
			t.Errorf("RUN layer has %s", p)
		}
	}
}

// A COPY that mixes a heredoc with ordinary sources copies both (BuildKit copies the
// sources, then the heredocs), from the context or from another stage.
func TestCopyHeredocAndFiles(t *testing.T) {
	c := newConform(t)
	dir := c.project("FROM BASE AS other\nRUN echo staged > /s.txt\n"+
		"FROM BASE\nCOPY <<EOF a.txt /dst/\nhello\nEOF\n"+
		"COPY --from=other <<DOC /s.txt /from/\ndoc\nDOC\n", map[string]string{"a.txt": "from context\n"})
	files := flatten(t, c.build(dir))
	for p, want := range map[string]string{"/dst/EOF": "hello\n", "/dst/a.txt": "from context\n", "/from/DOC": "doc\n", "/from/s.txt": "staged\n"} {
		if f, ok := files[p]; !ok || f.content != want {
			t.Errorf("%s = %q (present %v), want %q", p, f.content, ok, want)
		}
	}
	wantEntry(t, files, "/dst/EOF", tar.TypeReg, 0o644, 0, 0)
}

// What kiln itself writes into an image does not depend on the umask it runs with:
// COPY of context files and heredocs, the parents ADD makes for a tar's entries, the
// dirs WORKDIR and COPY create.
func TestOwnWritesIgnoreUmask(t *testing.T) {
	c := newConform(t)
	c.umask = "077"
	dir := c.project("FROM BASE\nCOPY <<EOF /h\nhi\nEOF\nCOPY f /new/deep/f\nCOPY d /d/\nADD t.tar /add/\nWORKDIR /wd/sub\n",
		map[string]string{"f": "x", "d/g": "y"})
	// A tar that names a file but not its directories.
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	if err := tw.WriteHeader(&tar.Header{Name: "p/q/r", Mode: 0o644, Size: 1, Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write([]byte("r")); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "t.tar"), tb.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	files := flatten(t, c.build(dir))
	for _, p := range []string{"/h", "/new/deep/f", "/d/g", "/add/p/q/r"} {
		wantEntry(t, files, p, tar.TypeReg, 0o644, 0, 0)
	}
	for _, p := range []string{"/new", "/new/deep", "/d", "/add", "/add/p", "/add/p/q", "/wd", "/wd/sub"} {
		wantEntry(t, files, p, tar.TypeDir, 0o755, 0, 0)
	}
}

// A RUN heredoc script with a shebang runs as a non-root USER, under any umask: the
// script and its dir are 0755 as BuildKit's /dev/pipes.
func TestRunHeredocScriptAsUser(t *testing.T) {
	c := newConform(t)
	c.umask = "077"
	dir := c.project("FROM BASE\nUSER app\nRUN <<EOF\n#!/bin/sh\nid -u > /tmp/ran\nEOF\n", nil)
	if got := flatten(t, c.build(dir))["/tmp/ran"].content; got != "1000\n" {
		t.Errorf("/tmp/ran = %q, want 1000", got)
	}
}

// A .dockerignore "!" exception that names a file that does not exist brings nothing
// back, so the excluded directory stays out of every copy, as BuildKit never sends it
// in the context: not copied, not matched by a wildcard, not made by --parents, and
// an error when named.
func TestDockerignoreExceptionOfNothing(t *testing.T) {
	c := newConform(t)
	ctx := map[string]string{".dockerignore": "dir\n!dir/missing\n!dir/sub/missing\n", "dir/a": "a", "dir/sub/b": "b", "keep": "k"}
	dir := c.project("FROM BASE\nCOPY . /all/\nCOPY d* /w/\nCOPY --parents ./di* /p/\n", ctx)
	files := flatten(t, c.build(dir))
	if files["/all/keep"].content != "k" {
		t.Errorf("/all/keep = %q", files["/all/keep"].content)
	}
	for _, p := range []string{"/all/dir", "/w", "/p/dir"} {
		if _, ok := files[p]; ok {
			t.Errorf("%s is in the image; the ignored dir should be absent", p)
		}
	}
	named := c.project("FROM BASE\nCOPY dir /x/\n", ctx)
	if r, _ := c.run(named); r.code == 0 || !strings.Contains(r.stderr, "excluded by .dockerignore") {
		t.Errorf("COPY of the ignored dir: exit %d\n%s", r.code, r.stderr)
	}
}

// COPY onto a destination that is a symlink with an absolute target follows it inside
// the rootfs, never on the host, and makes the target's missing parents (BuildKit's
// prepareTargetDir), for a file and for a directory's contents.
func TestCopyOntoAbsoluteSymlink(t *testing.T) {
	c := newConform(t)
	escape := "/kiln-conform-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	// The last COPY is written straight into its layer (Pending), the others not.
	dir := c.project("FROM BASE\nRUN ln -s "+escape+"/file /tofile && ln -s "+escape+"/d /todir && ln -s "+escape+"/last/f /last\n"+
		"COPY f /tofile\nCOPY d /todir/a/\nRUN cat /tofile /todir/a/g > /both\nCOPY f /last\n", map[string]string{"f": "F", "d/g": "G"})
	files := flatten(t, c.build(dir))
	if got := files["/both"].content; got != "FG" {
		t.Errorf("/both = %q, want FG", got)
	}
	if f := files["/tofile"]; f.typ != tar.TypeSymlink || f.link != escape+"/file" {
		t.Errorf("/tofile = %+v, want the symlink kept", f)
	}
	wantEntry(t, files, escape, tar.TypeDir, 0o755, 0, 0)
	wantEntry(t, files, escape+"/file", tar.TypeReg, 0o644, 0, 0)
	wantEntry(t, files, escape+"/d/a/g", tar.TypeReg, 0o644, 0, 0)
	wantEntry(t, files, escape+"/last/f", tar.TypeReg, 0o644, 0, 0)
	if _, err := os.Lstat(escape); !errors.Is(err, os.ErrNotExist) {
		os.RemoveAll(escape)
		t.Errorf("COPY wrote %s on the host (%v)", escape, err)
	}
}

// COPY keeps hard links between the files it copies (within one source, as
// BuildKit): two context files that are one inode are one file and a hard link to it
// in the layer, and one inode in the image. Checked for a COPY a RUN reads and for a
// last COPY (written straight into its layer).
func TestCopyKeepsHardLinks(t *testing.T) {
	c := newConform(t)
	dir := c.project("FROM BASE\nCOPY src /mid/\nRUN [ $(stat -c %i /mid/a) = $(stat -c %i /mid/sub/b) ] && stat -c %h /mid/a > /nlink\nCOPY src /last/\n",
		map[string]string{"src/a": "same", "src/sub/": "", "src/c": "other"})
	if err := os.Link(filepath.Join(dir, "src/a"), filepath.Join(dir, "src/sub/b")); err != nil {
		t.Fatal(err)
	}
	img := c.build(dir)
	if got := flatten(t, img)["/nlink"].content; got != "2\n" {
		t.Errorf("/mid/a has %q links, want 2", got)
	}
	for i, d := range map[int]string{-3: "/mid", -1: "/last"} {
		layer := layerEntries(t, img, i)
		a, b := layer[d+"/a"], layer[d+"/sub/b"]
		if a.typ != tar.TypeReg || a.content != "same" || b.typ != tar.TypeLink || b.link != strings.TrimPrefix(d, "/")+"/a" {
			t.Errorf("layer of COPY to %s: a = %+v, sub/b = %+v; want a file and a hard link to it", d, a, b)
		}
		if f := layer[d+"/c"]; f.typ != tar.TypeReg {
			t.Errorf("layer of COPY to %s: c = %+v", d, f)
		}
	}
}

// A backslash before a glob character in a COPY source is eaten by the Dockerfile's
// word expansion (BuildKit's shell lexer: `a\*b` becomes `a*b`) before the source is
// matched, so `COPY a\*b` is the pattern a*b in BuildKit as in kiln, matching axb
// too. Docker documents the way to name a glob character literally: a class, `a[*]b`.
func TestCopyGlobCharacterInName(t *testing.T) {
	c := newConform(t)
	dir := c.project("FROM BASE\nCOPY a\\*b /esc/\nCOPY a[*]b /cls/\n", map[string]string{"a*b": "star", "axb": "x"})
	files := flatten(t, c.build(dir))
	for p, want := range map[string]string{"/esc/a*b": "star", "/esc/axb": "x", "/cls/a*b": "star"} {
		if f, ok := files[p]; !ok || f.content != want {
			t.Errorf("%s = %q (present %v), want %q", p, f.content, ok, want)
		}
	}
	if _, ok := files["/cls/axb"]; ok {
		t.Error("COPY a[*]b copied axb")
	}
}

// COPY of several sources (a wildcard's matches, heredocs) to a destination without a
// trailing "/" copies them into it when the image has it as a directory, and
// otherwise each over the one before, as BuildKit v0.32 does: the last one stays.
func TestCopySeveralSources(t *testing.T) {
	c := newConform(t)
	dir := c.project("FROM BASE\nRUN mkdir -p /out/d\nCOPY a b /out/d\nCOPY a* <<EOF /out/d\nheredoc\nEOF\n"+
		// Not spelt as a directory and not one: each source over the one before,
		// the files before the heredocs whatever their order (BuildKit v0.32).
		"COPY a b /new\nRUN touch /file\nCOPY a b /file\nCOPY <<EOF a /heredoc-last\nheredoc\nEOF\n"+
		"COPY a* /wild\nCOPY d a /dir-then-file\n",
		map[string]string{"a": "A", "b": "B", "a2": "A2", "d/x": "X"})
	files := flatten(t, c.build(dir))
	for p, want := range map[string]string{
		"/out/d/a": "A", "/out/d/b": "B", "/out/d/a2": "A2", "/out/d/EOF": "heredoc\n",
		"/new": "B", "/file": "B", "/heredoc-last": "heredoc\n", "/wild": "A2",
		"/dir-then-file/x": "X", "/dir-then-file/a": "A",
	} {
		if got := files[p].content; got != want {
			t.Errorf("%s = %q, want %q", p, got, want)
		}
	}
	r, _ := c.run(c.project("FROM BASE\nCOPY a d /out\n", map[string]string{"a": "A", "d/x": "X"}))
	if r.code == 0 || !strings.Contains(r.stderr, "cannot copy directory d to non-directory /out") {
		t.Errorf("a directory after a file onto one path: exit %d, want the non-directory error\n%s", r.code, r.stderr)
	}
}

// HEALTHCHECK --start-interval is written as the config's Healthcheck.StartInterval,
// as BuildKit writes it, though go-containerregistry's config type has no field for
// it (image.ConfigExtras): a child stage and an image built FROM the pushed one
// inherit it, and a later HEALTHCHECK without the flag (or NONE) drops it.
func TestHealthcheckStartInterval(t *testing.T) {
	c := newConform(t)
	startInterval := func(img v1.Image) (time.Duration, []string) {
		t.Helper()
		raw, err := img.RawConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		var cfg struct {
			Config struct {
				Healthcheck *struct {
					Test          []string
					StartInterval time.Duration
				}
			} `json:"config"`
		}
		if err := json.Unmarshal(raw, &cfg); err != nil {
			t.Fatal(err)
		}
		if cfg.Config.Healthcheck == nil {
			return 0, nil
		}
		return cfg.Config.Healthcheck.StartInterval, cfg.Config.Healthcheck.Test
	}
	dir := c.project("FROM BASE AS a\nHEALTHCHECK --interval=5s --start-interval=2s CMD true\nFROM a AS b\nRUN true\nFROM b AS c\nHEALTHCHECK CMD false\nFROM b AS d\nHEALTHCHECK NONE\n", nil)
	for target, want := range map[string]time.Duration{"a": 2 * time.Second, "b": 2 * time.Second, "c": 0, "d": 0} {
		if got, test := startInterval(c.build(dir, "--target", target)); got != want || test == nil {
			t.Errorf("--target %s: Healthcheck %v StartInterval %v, want %v", target, test, got, want)
		}
	}

	mustBuildLimited(t, dir, "--root", c.root, "--target", "a", "-t", c.host+"/health:v1", "--push", ".")
	child := c.project("FROM "+c.host+"/health:v1\nRUN true\n", nil)
	if got, _ := startInterval(c.build(child)); got != 2*time.Second {
		t.Errorf("FROM the pushed image: StartInterval %v, want 2s", got)
	}
}

// COPY --chown with a name the image's /etc/passwd or /etc/group lacks copies with
// the ids BuildKit v0.32 uses (0 for the user, the user's gid for the group) and says
// so; a name looked up in a file the image does not have fails, as Docker documents.
func TestCopyChownNameNotInImage(t *testing.T) {
	c := newConform(t)
	dir := c.project("FROM BASE\nCOPY --chown=nosuchuser a /a1\nCOPY --chown=app:nosuchgroup a /a2\n"+
		"COPY --chown=1000:nosuchgroup a /a3\nCOPY --chown=nosuchuser:app a /a4\n", map[string]string{"a": "A"})
	r, dest := c.run(dir)
	if r.code != 0 {
		t.Fatalf("kiln build: exit %d\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "COPY --chown=nosuchuser: unable to find user nosuchuser") || !strings.Contains(r.stderr, "the files are owned by 0:0") {
		t.Errorf("no warning about the unknown user:\n%s", r.stderr)
	}
	files := flatten(t, readOCI(t, dest))
	for p, want := range map[string][2]int{"/a1": {0, 0}, "/a2": {1000, 1000}, "/a3": {1000, 1000}, "/a4": {0, 1000}} {
		wantEntry(t, files, p, tar.TypeReg, 0o644, want[0], want[1])
	}

	// The warning is the engine's, not a build check's finding: check=error=true
	// does not fail the build for it.
	r, _ = c.run(c.project("# check=error=true\nFROM BASE\nCOPY --chown=nosuchuser a /checked\n", map[string]string{"a": "A"}))
	if r.code != 0 || !strings.Contains(r.stderr, "unable to find user nosuchuser") {
		t.Errorf("with check=error=true: exit %d, want a warning and success\n%s", r.code, r.stderr)
	}

	r, _ = c.run(c.project("FROM scratch\nCOPY --chown=nosuchuser a /a\n", map[string]string{"a": "A"}))
	if r.code == 0 || !strings.Contains(r.stderr, "COPY --chown=nosuchuser: unable to find user nosuchuser") ||
		!strings.Contains(r.stderr, "no /etc/passwd or /etc/group") {
		t.Errorf("FROM scratch: exit %d, want the error about the missing passwd file\n%s", r.code, r.stderr)
	}
}

// Two stages with one name, as BuildKit v0.32 takes them: a FROM builds on the latest
// earlier stage of the name, COPY --from and --target name the last one, and the build
// warns (DuplicateStageName); reading the later one from a stage before it fails.
func TestDuplicateStageNames(t *testing.T) {
	c := newConform(t)
	dir := c.project("FROM BASE AS dup\nRUN echo one > /which\nFROM dup AS mid\nRUN cp /which /mid\n"+
		"FROM BASE AS dup\nRUN echo two > /which\nFROM scratch\nCOPY --from=mid /mid /mid\nCOPY --from=dup /which /which\n", nil)
	r, dest := c.run(dir)
	if r.code != 0 {
		t.Fatalf("kiln build: exit %d\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, `Duplicate stage name "dup"`) {
		t.Errorf("no DuplicateStageName warning:\n%s", r.stderr)
	}
	files := flatten(t, readOCI(t, dest))
	if files["/mid"].content != "one\n" || files["/which"].content != "two\n" {
		t.Errorf("/mid = %q, /which = %q; want the first dup under mid and the last for --from", files["/mid"].content, files["/which"].content)
	}
	if got := flatten(t, c.build(dir, "--target", "dup"))["/which"].content; got != "two\n" {
		t.Errorf("--target dup: /which = %q, want the last dup's", got)
	}
	r, _ = c.run(c.project("FROM BASE AS dup\nFROM BASE AS mid\nCOPY --from=dup /etc/passwd /p\nFROM BASE AS dup\nFROM mid\n", nil))
	if r.code == 0 || !strings.Contains(r.stderr, `cannot read stage "dup", it is defined after it`) {
		t.Errorf("--from the later dup before it: exit %d, want the stage order error\n%s", r.code, r.stderr)
	}
}

// A proxy build arg reaches RUN in both spellings, as BuildKit's executor sets
// HTTP_PROXY and http_proxy from one value, and never the image's config.
func TestProxyArgsInBothSpellings(t *testing.T) {
	c := newConform(t)
	dir := c.project("FROM BASE\nRUN echo \"[$http_proxy][$HTTP_PROXY][$no_proxy][$NO_PROXY][$ftp_proxy]\" > /p\n", nil)
	img := c.build(dir, "--build-arg", "http_proxy=hp", "--build-arg", "NO_PROXY=np")
	if got := flatten(t, img)["/p"].content; got != "[hp][hp][np][np][]\n" {
		t.Errorf("RUN saw %q, want [hp][hp][np][np][]", got)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range cf.Config.Env {
		if strings.Contains(strings.ToLower(e), "proxy") {
			t.Errorf("a proxy reached the image's Env: %s", e)
		}
	}
}

// The BUILDKIT_SANDBOX_HOSTNAME build arg is every RUN's hostname, in /etc/hosts too,
// as BuildKit's frontend takes it; without it the hostname is buildkitsandbox.
func TestSandboxHostnameArg(t *testing.T) {
	c := newConform(t)
	dir := c.project("FROM BASE\nRUN hostname > /h && grep -c \"$(hostname)\" /etc/hosts > /hosts\n", nil)
	for arg, want := range map[string]string{"foo": "foo\n", "": "buildkitsandbox\n"} {
		var args []string
		if arg != "" {
			args = []string{"--build-arg", "BUILDKIT_SANDBOX_HOSTNAME=" + arg}
		}
		files := flatten(t, c.build(dir, args...))
		if files["/h"].content != want || files["/hosts"].content != "1\n" {
			t.Errorf("hostname arg %q: hostname %q, /etc/hosts lines with it %q; want %q, 1", arg, files["/h"].content, files["/hosts"].content, want)
		}
	}
}
