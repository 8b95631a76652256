package main

import (
	"archive/tar"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

const callDockerfile = `# GO_VERSION sets the Go toolchain
ARG GO_VERSION=1.22
ARG UNUSED

# build compiles the app
FROM scratch AS build
# VERSION is stamped into the binary
ARG VERSION=dev
RUN --mount=type=secret,id=token --mount=type=ssh,required=true echo $VERSION $GO_VERSION

FROM build AS test
RUN true

# release is the small image
FROM scratch AS release
COPY --from=build /bin/sh /sh
`

// --call targets and outline print what BuildKit's subrequests print, nothing built.
func TestCallTargetsAndOutline(t *testing.T) {
	dir := project(t, map[string]string{"Dockerfile": callDockerfile})
	r := kiln(t, dir, "build", "--call", "targets", ".")
	want := "TARGET            DESCRIPTION\n" +
		"build             compiles the app\n" +
		"test              \n" +
		"release (default) is the small image\n"
	if r.code != 0 || r.stdout != want {
		t.Errorf("--call targets: exit %d\n%s\nwant:\n%s\nstderr: %s", r.code, r.stdout, want, r.stderr)
	}
	r = kiln(t, dir, "build", "--call", "outline", "--target", "test", ".")
	want = "TARGET: test\n\n" +
		"BUILD ARG    VALUE   DESCRIPTION\n" +
		"GO_VERSION   1.22    sets the Go toolchain\n" +
		"VERSION      dev     is stamped into the binary\n\n" +
		"SECRET   REQUIRED\ntoken    \n\n" +
		"SSH       REQUIRED\ndefault   true\n\n"
	if r.code != 0 || r.stdout != want {
		t.Errorf("--call outline: exit %d\n%q\nwant:\n%q\nstderr: %s", r.code, r.stdout, want, r.stderr)
	}
	// Two stages of one name: --target names the last, as the build takes it.
	dup := project(t, map[string]string{"Dockerfile": "FROM scratch AS dup\nARG FIRST=1\nLABEL a=$FIRST\nFROM scratch AS dup\nARG SECOND=2\nLABEL b=$SECOND\nFROM scratch\n"})
	if r := kiln(t, dup, "build", "--call", "outline", "--target", "dup", "."); r.code != 0 ||
		!strings.Contains(r.stdout, "SECOND") || strings.Contains(r.stdout, "FIRST") {
		t.Errorf("--call outline --target of a name two stages have: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := kiln(t, dir, "build", "--call", "frob", "."); r.code == 0 || !strings.Contains(r.stderr, "use build, check, outline or targets") {
		t.Errorf("--call frob: exit %d %s", r.code, r.stderr)
	}
	if r := kiln(t, dir, "build", "--call", "check", "."); !strings.Contains(r.stdout, "Check complete") {
		t.Errorf("--call check is not --check: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// -q prints the image ID and nothing else on stdout.
func TestQuietPrintsImageID(t *testing.T) {
	root, out := e2e(t)
	dir := project(t, map[string]string{"Dockerfile": "FROM scratch\nCOPY a /a\n", "a": "a"})
	iid := filepath.Join(out, "iid")
	r := mustBuild(t, dir, "--root", root, "-q", "--iidfile", iid, ".")
	want, err := os.ReadFile(iid)
	if err != nil {
		t.Fatal(err)
	}
	if r.stdout != string(want)+"\n" || !strings.HasPrefix(r.stdout, "sha256:") {
		t.Errorf("-q stdout %q, want the image ID %q", r.stdout, want)
	}
	if strings.Contains(r.stderr, "#1") {
		t.Errorf("-q printed progress:\n%s", r.stderr)
	}
}

// --load posts a docker tarball to a Docker daemon's /images/load when its socket
// answers; else it copies into containers-storage with skopeo; else it says what to do.
func TestLoad(t *testing.T) {
	root, out := e2e(t)
	dir := project(t, map[string]string{"Dockerfile": "FROM scratch\nCOPY a /a\n", "a": "loaded"})

	// A daemon that answers the ping and records what is loaded.
	sock := filepath.Join(out, "docker.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var tags []string
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/_ping":
			io.WriteString(w, "OK")
		case strings.HasSuffix(r.URL.Path, "/images/load") && r.Method == http.MethodPost:
			tr := tar.NewReader(r.Body)
			for {
				h, err := tr.Next()
				if err != nil {
					break
				}
				if h.Name == "manifest.json" {
					var m []struct{ RepoTags []string }
					json.NewDecoder(tr).Decode(&m)
					mu.Lock()
					for _, e := range m {
						tags = append(tags, e.RepoTags...)
					}
					mu.Unlock()
				}
			}
			io.WriteString(w, `{"stream":"Loaded image: app:v1\n"}`)
		default:
			http.NotFound(w, r)
		}
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	r := kilnEnv(t, dir, []string{"DOCKER_HOST=unix://" + sock}, "build", "--root", root, "-t", "app:v1", "--load", ".")
	if r.code != 0 {
		t.Fatalf("--load into a daemon: exit %d\n%s", r.code, r.stderr)
	}
	mu.Lock()
	if strings.Join(tags, ",") != "app:v1" {
		t.Errorf("the daemon was given tags %v, want app:v1", tags)
	}
	mu.Unlock()

	// No daemon: containers-storage, in a store of the test's own.
	storage := filepath.Join(out, "storage")
	conf := filepath.Join(out, "storage.conf")
	os.WriteFile(conf, []byte("[storage]\ndriver = \"vfs\"\nrunroot = \""+storage+"/run\"\ngraphroot = \""+storage+"/graph\"\n"), 0o644)
	env := []string{"DOCKER_HOST=unix://" + filepath.Join(out, "nodaemon.sock"), "CONTAINERS_STORAGE_CONF=" + conf}
	r = kilnEnv(t, dir, env, "build", "--root", root, "-t", "example.com/app:v2", "--load", ".")
	if r.code != 0 {
		t.Fatalf("--load into containers-storage: exit %d\n%s", r.code, r.stderr)
	}
	cmd := osexec.Command("skopeo", "inspect", "containers-storage:example.com/app:v2")
	cmd.Env = append(os.Environ(), env...)
	if o, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(o), `"Layers"`) {
		t.Errorf("the image is not in containers-storage: %v\n%s", err, o)
	}
	t.Cleanup(func() {
		// vfs layers are plain dirs; the storage is the test's own.
		osexec.Command("umount", "-R", storage+"/graph").Run()
	})

	// Neither: a clear error.
	r = kilnEnv(t, dir, append(env, "PATH=/nonexistent"), "build", "--root", root, "-t", "app:v3", "--load", ".")
	if r.code == 0 || !strings.Contains(r.stderr, "start Docker, install skopeo, or write the image with -o type=docker,dest=FILE") {
		t.Errorf("--load with nowhere to load: exit %d\n%s", r.code, r.stderr)
	}
	if r := kiln(t, dir, "build", "--root", root, "--load", "."); r.code == 0 || !strings.Contains(r.stderr, "--load needs a name for the image") {
		t.Errorf("--load without -t: exit %d\n%s", r.code, r.stderr)
	}
}
