package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Issue 9, modern Dockerfile syntax: ADD of URLs and git repositories, --checksum,
// --unpack, --keep-git-dir, --build-context with a URL or a repository, COPY --parents,
// --exclude, and COPY --link.

// fileServer serves named files with a fixed Last-Modified; files can be replaced
// while it runs.
type fileServer struct {
	mu      sync.Mutex
	files   map[string][]byte
	modTime time.Time
	srv     *httptest.Server
}

func newFileServer(t *testing.T, files map[string][]byte) *fileServer {
	t.Helper()
	fs := &fileServer{files: files, modTime: time.Date(2021, 3, 4, 5, 6, 7, 0, time.UTC)}
	fs.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fs.mu.Lock()
		data, ok := fs.files[r.URL.Path]
		mod := fs.modTime
		fs.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Last-Modified", mod.Format(http.TimeFormat))
		w.Write(data)
	}))
	t.Cleanup(fs.srv.Close)
	return fs
}

func (fs *fileServer) set(name string, data []byte) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.files[name] = data
}

func sha256Hex(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// tarGz returns a .tar.gz holding the given files.
func tarGz(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for name, content := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(content)), ModTime: time.Unix(1e9, 0), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(content))
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	gz.Close()
	return buf.Bytes()
}

// statFile describes a path of a type=local output: content, permission bits, owner
// and mtime.
type statFile struct {
	content  string
	mode     os.FileMode
	uid, gid uint32
	mtime    time.Time
	isDir    bool
	isLink   bool
}

func statOut(t *testing.T, root, p string) (statFile, bool) {
	t.Helper()
	full := filepath.Join(root, p)
	fi, err := os.Lstat(full)
	if os.IsNotExist(err) {
		return statFile{}, false
	}
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	f := statFile{mode: fi.Mode().Perm(), uid: st.Uid, gid: st.Gid, mtime: fi.ModTime().UTC(), isDir: fi.IsDir(), isLink: fi.Mode()&os.ModeSymlink != 0}
	if fi.Mode().IsRegular() {
		data, err := os.ReadFile(full)
		if err != nil {
			t.Fatal(err)
		}
		f.content = string(data)
	}
	return f, true
}

func mustStat(t *testing.T, root, p string) statFile {
	t.Helper()
	f, ok := statOut(t, root, p)
	if !ok {
		t.Fatalf("%s missing from the output", p)
	}
	return f
}

func TestAddURL(t *testing.T) {
	root, out := e2e(t)
	archive := tarGz(t, map[string]string{"pkg/a.txt": "from the archive\n"})
	srv := newFileServer(t, map[string][]byte{
		"/files/hello.txt":  []byte("hello over http\n"),
		"/files/app.tar.gz": archive,
	})
	u := srv.srv.URL
	hello := sha256Hex([]byte("hello over http\n"))
	dir := project(t, map[string]string{"Dockerfile": fmt.Sprintf(`FROM scratch
ADD --checksum=sha256:%[2]s %[1]s/files/hello.txt /sum/
ADD %[1]s/files/hello.txt /dl/
ADD %[1]s/files/hello.txt /named.txt
ADD --chmod=0755 --chown=7:8 %[1]s/files/hello.txt /x/
ADD %[1]s/files/app.tar.gz /packed/
ADD --unpack=true %[1]s/files/app.tar.gz /unpacked/
`, u, hello)})
	local := filepath.Join(out, "rootfs")
	first := buildPlain(t, dir, root, "-o", "type=local,dest="+local)

	f := mustStat(t, local, "dl/hello.txt")
	if f.content != "hello over http\n" || f.mode != 0o600 || f.uid != 0 || f.gid != 0 {
		t.Errorf("/dl/hello.txt = %+v, want the content, mode 0600, root", f)
	}
	if !f.mtime.Equal(srv.modTime) {
		t.Errorf("/dl/hello.txt mtime = %v, want Last-Modified %v", f.mtime, srv.modTime)
	}
	if f := mustStat(t, local, "named.txt"); f.content != "hello over http\n" || f.isDir {
		t.Errorf("/named.txt = %+v", f)
	}
	if f := mustStat(t, local, "x/hello.txt"); f.mode != 0o755 || f.uid != 7 || f.gid != 8 {
		t.Errorf("--chmod/--chown: /x/hello.txt = %+v", f)
	}
	if f := mustStat(t, local, "sum/hello.txt"); f.content != "hello over http\n" {
		t.Errorf("--checksum: /sum/hello.txt = %+v", f)
	}
	if f := mustStat(t, local, "packed/app.tar.gz"); f.content != string(archive) {
		t.Errorf("a URL archive must not be extracted without --unpack")
	}
	if f := mustStat(t, local, "unpacked/pkg/a.txt"); f.content != "from the archive\n" {
		t.Errorf("--unpack=true: /unpacked/pkg/a.txt = %+v", f)
	}
	if _, ok := statOut(t, local, "unpacked/app.tar.gz"); ok {
		t.Errorf("--unpack=true left the archive itself")
	}

	// Unchanged content: every step from the cache. Changed content: the steps that
	// download it rerun; the --checksum one is keyed by its checksum, so it stays
	// cached without downloading (the download would not match it any more).
	second := buildPlain(t, dir, root)
	allCached(t, second.steps)
	if second.digest != first.digest {
		t.Errorf("rebuild digest %s, want %s", second.digest, first.digest)
	}
	srv.set("/files/hello.txt", []byte("changed\n"))
	third := buildPlain(t, dir, root, "-o", "type=local,dest="+filepath.Join(out, "third"))
	wantStates(t, third.steps, map[string]string{
		"--checksum":                         "CACHED",
		"ADD " + u + "/files/hello.txt /dl/": "DONE",
	})
	if s := findStep(t, third.steps, "/dl/"); !strings.Contains(s.miss, "/files/hello.txt changed") {
		t.Errorf("cache miss reason %q does not name the URL", s.miss)
	}
	if f := mustStat(t, filepath.Join(out, "third"), "dl/hello.txt"); f.content != "changed\n" {
		t.Errorf("after the change /dl/hello.txt = %q", f.content)
	}
}

func TestAddURLErrors(t *testing.T) {
	root, _ := e2e(t)
	srv := newFileServer(t, map[string][]byte{"/f": []byte("content\n")})
	u := srv.srv.URL
	actual := "sha256:" + sha256Hex([]byte("content\n"))
	wrong := "sha256:" + strings.Repeat("0", 64)
	for _, tc := range []struct {
		name, dockerfile string
		want             []string
	}{
		{"checksum mismatch", "FROM scratch\nADD --checksum=" + wrong + " " + u + "/f /f\n", []string{"digest mismatch", actual, wrong}},
		{"not found", "FROM scratch\nADD " + u + "/missing /f\n", []string{"404"}},
		{"COPY of a URL", "FROM scratch\nCOPY " + u + "/f /f\n", []string{"source can't be a URL for COPY"}},
		{"checksum on a local file", "FROM scratch\nADD --checksum=" + actual + " Dockerfile /f\n", []string{"checksum requires HTTP(S) or Git sources"}},
		{"bad checksum", "FROM scratch\nADD --checksum=md5:abc " + u + "/f /f\n", []string{"invalid checksum"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := project(t, map[string]string{"Dockerfile": tc.dockerfile})
			r := kiln(t, dir, "build", "--root", root, "--progress", "plain", ".")
			if r.code != 1 {
				t.Fatalf("exit %d, want 1\n%s", r.code, r.stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr does not mention %q:\n%s", w, r.stderr)
				}
			}
		})
	}
}

// gitServer makes a repository with the git binary and serves it with git daemon on
// 127.0.0.1, so the test goes through the real git:// transport that kiln's ADD uses
// for a remote (dfgitutil, like BuildKit, accepts no file:// URLs).
type gitServer struct {
	url     string // git://127.0.0.1:PORT/repo.git
	commits map[string]string
}

func newGitServer(t *testing.T) *gitServer {
	t.Helper()
	if _, err := osexec.LookPath("git"); err != nil {
		t.Skip("git is not installed")
	}
	base := t.TempDir()
	work := filepath.Join(base, "work")
	g := func(args ...string) string {
		t.Helper()
		cmd := osexec.Command("git", args...)
		cmd.Dir = work
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com",
			"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com", "GIT_CONFIG_NOSYSTEM=1", "HOME="+base)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	os.MkdirAll(filepath.Join(work, "sub"), 0o755)
	writeFile(t, filepath.Join(work, "README"), "version 1\n")
	writeFile(t, filepath.Join(work, "sub", "inner.txt"), "inner\n")
	if err := os.WriteFile(filepath.Join(work, "run.sh"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	g("init", "-q", "-b", "main")
	g("add", ".")
	g("commit", "-q", "-m", "one")
	g("tag", "-a", "v1", "-m", "release 1")
	s := &gitServer{commits: map[string]string{"v1": g("rev-parse", "v1^{commit}")}}
	writeFile(t, filepath.Join(work, "README"), "version 2\n")
	g("commit", "-q", "-am", "two")
	s.commits["main"] = g("rev-parse", "HEAD")
	g("clone", "-q", "--bare", work, filepath.Join(base, "repo.git"))

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	daemon := osexec.Command("git", "daemon", "--reuseaddr", "--export-all", "--listen=127.0.0.1",
		fmt.Sprintf("--port=%d", port), "--base-path="+base, base)
	if err := daemon.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		daemon.Process.Kill()
		daemon.Wait()
	})
	s.url = fmt.Sprintf("git://127.0.0.1:%d/repo.git", port)
	for i := 0; ; i++ {
		if osexec.Command("git", "ls-remote", s.url).Run() == nil {
			break
		}
		if i == 50 {
			t.Fatal("git daemon did not come up")
		}
		time.Sleep(100 * time.Millisecond)
	}
	return s
}

func TestAddGit(t *testing.T) {
	root, out := e2e(t)
	gs := newGitServer(t)
	v1 := gs.commits["v1"]
	dir := project(t, map[string]string{"Dockerfile": fmt.Sprintf(`FROM scratch
ADD %[1]s#v1 /src/
ADD %[1]s#v1:sub /sub
ADD --keep-git-dir=true %[1]s#v1 /kept/
ADD --checksum=%[2]s %[1]s#v1 /pinned/
ADD %[1]s /head/
ADD %[1]s#%[3]s /bycommit/
`, gs.url, v1[:10], v1)})
	local := filepath.Join(out, "rootfs")
	first := buildPlain(t, dir, root, "-o", "type=local,dest="+local)

	if f := mustStat(t, local, "src/README"); f.content != "version 1\n" || f.mode != 0o644 {
		t.Errorf("/src/README at v1 = %+v, want version 1, 0644", f)
	}
	if f := mustStat(t, local, "src/run.sh"); f.mode != 0o755 {
		t.Errorf("/src/run.sh mode = %v, want 0755", f.mode)
	}
	if _, ok := statOut(t, local, "src/.git"); ok {
		t.Errorf("/src/.git kept without --keep-git-dir")
	}
	if f := mustStat(t, local, "sub/inner.txt"); f.content != "inner\n" {
		t.Errorf("subdir: /sub/inner.txt = %+v", f)
	}
	if _, ok := statOut(t, local, "sub/README"); ok {
		t.Errorf("subdir: /sub holds the whole repository")
	}
	if f := mustStat(t, local, "kept/.git"); !f.isDir {
		t.Errorf("--keep-git-dir: /kept/.git is not a directory")
	}
	if f := mustStat(t, local, "kept/.git/HEAD"); !strings.Contains(f.content, v1) {
		t.Errorf("--keep-git-dir: HEAD = %q, want %s", f.content, v1)
	}
	if f := mustStat(t, local, "pinned/README"); f.content != "version 1\n" {
		t.Errorf("--checksum: /pinned/README = %q", f.content)
	}
	if f := mustStat(t, local, "head/README"); f.content != "version 2\n" {
		t.Errorf("no ref: /head/README = %q, want the default branch", f.content)
	}
	if f := mustStat(t, local, "bycommit/README"); f.content != "version 1\n" {
		t.Errorf("commit ref: /bycommit/README = %q", f.content)
	}
	// A rebuild resolves the refs again (ls-remote) and finds every step cached.
	second := buildPlain(t, dir, root)
	allCached(t, second.steps)
	if second.digest != first.digest {
		t.Errorf("rebuild digest %s, want %s", second.digest, first.digest)
	}

	bad := project(t, map[string]string{"Dockerfile": fmt.Sprintf("FROM scratch\nADD --checksum=%s %s#v1 /x/\n", gs.commits["main"][:12], gs.url)})
	r := kiln(t, bad, "build", "--root", root, ".")
	if r.code != 1 || !strings.Contains(r.stderr, v1) || !strings.Contains(r.stderr, gs.commits["main"][:12]) {
		t.Errorf("checksum mismatch: exit %d, stderr:\n%s", r.code, r.stderr)
	}
	bad = project(t, map[string]string{"Dockerfile": fmt.Sprintf("FROM scratch\nCOPY %s#v1 /x/\n", gs.url)})
	if r := kiln(t, bad, "build", "--root", root, "."); r.code != 1 || !strings.Contains(r.stderr, "source can't be a git ref for COPY") {
		t.Errorf("COPY of a git ref: exit %d, stderr:\n%s", r.code, r.stderr)
	}
}

func TestBuildContextURLAndGit(t *testing.T) {
	root, out := e2e(t)
	srv := newFileServer(t, map[string][]byte{"/data.bin": []byte("named context file\n")})
	gs := newGitServer(t)
	dir := project(t, map[string]string{"Dockerfile": `FROM scratch
COPY --from=dl context /from-url
COPY --from=repo inner.txt /from-git/
`})
	local := filepath.Join(out, "rootfs")
	buildPlain(t, dir, root, "-o", "type=local,dest="+local,
		"--build-context", "dl="+srv.srv.URL+"/data.bin",
		"--build-context", "repo="+gs.url+"#v1:sub")
	if f := mustStat(t, local, "from-url"); f.content != "named context file\n" {
		t.Errorf("/from-url = %+v", f)
	}
	if f := mustStat(t, local, "from-git/inner.txt"); f.content != "inner\n" {
		t.Errorf("/from-git/inner.txt = %+v", f)
	}
}

func TestCopyParentsExcludeUnpack(t *testing.T) {
	root, out := e2e(t)
	dir := project(t, map[string]string{
		"Dockerfile": `FROM scratch
COPY --parents x/a.txt y/a.txt /parents/
COPY --parents ./src/./app/**/*.go /pivot/
COPY --exclude=*.log --exclude=tmp logs/ /copied/
ADD --exclude=*.md docs/ /added/
ADD --chmod=0751 tool.sh /bin/tool
ADD --unpack=false bundle.tar.gz /kept/
ADD bundle.tar.gz /extracted/
`,
		"x/a.txt": "xa", "y/a.txt": "ya",
		"src/app/main.go": "main", "src/app/pkg/util.go": "util", "src/app/README.md": "readme",
		"logs/keep.txt": "keep", "logs/drop.log": "drop", "logs/tmp/t.txt": "tmp",
		"docs/guide.txt": "guide", "docs/notes.md": "notes",
		"tool.sh": "#!/bin/sh\n",
	})
	writeTarGz(t, filepath.Join(dir, "bundle.tar.gz"), map[string]string{"inside.txt": "in"})
	local := filepath.Join(out, "rootfs")
	buildPlain(t, dir, root, "-o", "type=local,dest="+local)
	for p, want := range map[string]string{
		"parents/x/a.txt": "xa", "parents/y/a.txt": "ya",
		"pivot/app/main.go": "main", "pivot/app/pkg/util.go": "util",
		"copied/keep.txt": "keep", "added/guide.txt": "guide",
		"extracted/inside.txt": "in",
	} {
		if f, ok := statOut(t, local, p); !ok || f.content != want {
			t.Errorf("/%s = %q (present %v), want %q", p, f.content, ok, want)
		}
	}
	for _, p := range []string{"pivot/src", "pivot/app/README.md", "copied/drop.log", "copied/tmp", "added/notes.md", "kept/inside.txt"} {
		if _, ok := statOut(t, local, p); ok {
			t.Errorf("/%s should not be there", p)
		}
	}
	if f := mustStat(t, local, "bin/tool"); f.mode != 0o751 {
		t.Errorf("ADD --chmod=0751: mode %v", f.mode)
	}
	if f := mustStat(t, local, "kept/bundle.tar.gz"); f.isDir || len(f.content) == 0 {
		t.Errorf("ADD --unpack=false: /kept/bundle.tar.gz = %+v", f)
	}
}

// COPY --link: the layer does not depend on the stage below it, so a change there
// leaves the step cached and its layer digest the same; a symlink in the base on the
// destination path is not followed.
func TestCopyLink(t *testing.T) {
	root, out := e2e(t)
	host := busyboxRegistry(t)
	dir := project(t, map[string]string{
		"Dockerfile": fmt.Sprintf(`FROM %s/busybox
ARG BASE=A
RUN echo $BASE > /base.txt && mkdir /data && ln -s /data /linked && ln -s /data /plain
COPY --link app.txt /app/
COPY --link app.txt /linked/
COPY app.txt /plain/
`, host),
		"app.txt": "app\n",
	})
	linkLayer := func(tarPath string) (string, string) {
		img := readOCI(t, tarPath)
		ls, err := img.Layers()
		if err != nil {
			t.Fatal(err)
		}
		// The layers of the two COPY --link steps are the second and third from the end.
		a, _ := ls[len(ls)-3].Digest()
		b, _ := ls[len(ls)-2].Digest()
		return a.String(), b.String()
	}
	tarA, tarB := filepath.Join(out, "a.tar"), filepath.Join(out, "b.tar")
	local := filepath.Join(out, "rootfs")
	buildPlain(t, dir, root, "--build-arg", "BASE=A", "-o", "type=oci,dest="+tarA)
	b := buildPlain(t, dir, root, "--build-arg", "BASE=B", "-o", "type=oci,dest="+tarB, "-o", "type=local,dest="+local)
	wantStates(t, b.steps, map[string]string{
		"RUN echo":                     "DONE",
		"COPY --link app.txt /app/":    "CACHED",
		"COPY --link app.txt /linked/": "CACHED",
		"COPY app.txt /plain/":         "DONE",
	})
	a1, a2 := linkLayer(tarA)
	b1, b2 := linkLayer(tarB)
	if a1 != b1 || a2 != b2 {
		t.Errorf("COPY --link layers changed with the base: %s %s, then %s %s", a1, a2, b1, b2)
	}
	if f := mustStat(t, local, "base.txt"); f.content != "B\n" {
		t.Errorf("/base.txt = %q, want the new base", f.content)
	}
	if f := mustStat(t, local, "app/app.txt"); f.content != "app\n" {
		t.Errorf("/app/app.txt = %+v", f)
	}
	// --link does not follow /linked -> /data: /linked becomes a directory.
	if f := mustStat(t, local, "linked"); !f.isDir {
		t.Errorf("/linked = %+v, want a directory brought by the linked layer", f)
	}
	if _, ok := statOut(t, local, "data/app.txt"); !ok {
		t.Errorf("COPY without --link should follow /plain -> /data")
	}
	if f := mustStat(t, local, "linked/app.txt"); f.content != "app\n" {
		t.Errorf("/linked/app.txt = %+v", f)
	}

	bad := project(t, map[string]string{"Dockerfile": fmt.Sprintf("FROM %s/busybox\nCOPY --link --chown=nobody app.txt /x\n", host), "app.txt": "x"})
	if r := kiln(t, bad, "build", "--root", root, "."); r.code != 1 || !strings.Contains(r.stderr, "can't be resolved when used with --link") {
		t.Errorf("--link --chown=name: exit %d, stderr:\n%s", r.code, r.stderr)
	}
}
