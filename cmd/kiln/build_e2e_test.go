package main

import (
	"archive/tar"
	"compress/gzip"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// writeTarGz writes a .tar.gz with the given regular files (name → content).
func writeTarGz(t *testing.T, path string, files map[string]string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz := gzip.NewWriter(f)
	tw := tar.NewWriter(gz)
	for name, content := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o640, Size: int64(len(content)), Uid: 7, Gid: 8, ModTime: time.Unix(1e9, 0), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(content)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
}

const everyInstruction = `# syntax=docker/dockerfile:1
FROM scratch
LABEL org.example.name="demo app" version=1
MAINTAINER someone@example.com
ENV APP=/app GREETING="hello world"
WORKDIR $APP
COPY hello.txt ./
COPY conf/ /etc/app/
ADD bundle.tar.gz /opt/bundle/
EXPOSE 8080 53/udp
VOLUME ["/data", "/logs"]
USER 1000:1000
HEALTHCHECK --interval=5s --timeout=3s --retries=2 CMD ["/app/check"]
STOPSIGNAL SIGINT
ENTRYPOINT ["/app/run"]
CMD ["--port", "8080"]
`

// The foundation issue's done-when: a FROM scratch Dockerfile with COPY, ADD of a
// .tar.gz and every metadata instruction gives an image skopeo and umoci accept, with
// the config Docker would give.
func TestBuildScratchEveryInstruction(t *testing.T) {
	root, out := e2e(t)
	dir := project(t, map[string]string{
		"Dockerfile":    everyInstruction,
		"hello.txt":     "hi\n",
		"conf/app.conf": "port=8080\n",
		"ignored.log":   "secret",
		".dockerignore": "*.log\n",
	})
	writeTarGz(t, filepath.Join(dir, "bundle.tar.gz"), map[string]string{"bin/tool": "#!/bin/sh\n", "README": "read me\n"})
	tarPath := filepath.Join(out, "app.tar")
	iid := filepath.Join(out, "iid")
	meta := filepath.Join(out, "meta.json")
	mustBuild(t, dir, "--root", root, "--progress", "plain", "-t", "app:v1",
		"-o", "type=oci,dest="+tarPath, "--iidfile", iid, "--metadata-file", meta, ".")

	img := readOCI(t, tarPath)
	cf := config(t, img)
	c := cf.Config
	want := v1.Config{
		Env:          []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "APP=/app", "GREETING=hello world"},
		WorkingDir:   "/app",
		User:         "1000:1000",
		Entrypoint:   []string{"/app/run"},
		Cmd:          []string{"--port", "8080"},
		ExposedPorts: map[string]struct{}{"8080/tcp": {}, "53/udp": {}},
		Volumes:      map[string]struct{}{"/data": {}, "/logs": {}},
		Labels:       map[string]string{"org.example.name": "demo app", "version": "1"},
		StopSignal:   "SIGINT",
	}
	for _, f := range []struct {
		name      string
		got, want any
	}{
		{"Env", c.Env, want.Env}, {"WorkingDir", c.WorkingDir, want.WorkingDir}, {"User", c.User, want.User},
		{"Entrypoint", c.Entrypoint, want.Entrypoint}, {"Cmd", c.Cmd, want.Cmd},
		{"ExposedPorts", c.ExposedPorts, want.ExposedPorts}, {"Volumes", c.Volumes, want.Volumes},
		{"Labels", c.Labels, want.Labels}, {"StopSignal", c.StopSignal, want.StopSignal},
	} {
		if !reflect.DeepEqual(f.got, f.want) {
			t.Errorf("config %s = %#v, want %#v", f.name, f.got, f.want)
		}
	}
	if cf.Author != "someone@example.com" {
		t.Errorf("author = %q", cf.Author)
	}
	if h := c.Healthcheck; h == nil || !reflect.DeepEqual(h.Test, []string{"CMD", "/app/check"}) || h.Interval != 5*time.Second || h.Timeout != 3*time.Second || h.Retries != 2 {
		t.Errorf("healthcheck = %+v", c.Healthcheck)
	}
	if cf.OS != "linux" || cf.Architecture == "" {
		t.Errorf("os/arch = %s/%s", cf.OS, cf.Architecture)
	}
	// One layer per COPY/ADD and for WORKDIR; history marks metadata steps empty.
	layers, _ := img.Layers()
	if len(layers) != 4 || len(cf.RootFS.DiffIDs) != 4 {
		t.Errorf("layers = %d, diff_ids = %d, want 4", len(layers), len(cf.RootFS.DiffIDs))
	}
	nonEmpty := 0
	for _, h := range cf.History {
		if !h.EmptyLayer {
			nonEmpty++
		}
	}
	if nonEmpty != 4 {
		t.Errorf("history has %d non-empty entries, want 4: %+v", nonEmpty, cf.History)
	}

	files := flatten(t, img)
	for p, want := range map[string]string{"/app/hello.txt": "hi\n", "/etc/app/app.conf": "port=8080\n", "/opt/bundle/README": "read me\n"} {
		if got := files[p]; got.content != want {
			t.Errorf("%s = %q, want %q", p, got.content, want)
		}
	}
	if f := files["/opt/bundle/bin/tool"]; f.uid != 7 || f.gid != 8 || f.mode != 0o640 {
		t.Errorf("ADD kept owner/mode? got uid %d gid %d mode %o, want 7 8 640", f.uid, f.gid, f.mode)
	}
	if f := files["/app/hello.txt"]; f.uid != 0 || f.gid != 0 {
		t.Errorf("COPY from context should be root-owned, got %d:%d", f.uid, f.gid)
	}
	if _, ok := files["/ignored.log"]; ok {
		t.Error(".dockerignore'd file reached the image")
	}
	if _, ok := files["/bundle.tar.gz"]; ok {
		t.Error("the archive itself was copied")
	}

	// Real clients accept it.
	si := skopeoInspect(t, "oci-archive:"+tarPath)
	if si["Architecture"] != cf.Architecture {
		t.Errorf("skopeo sees architecture %v", si["Architecture"])
	}
	rootfs := umociUnpack(t, tarPath)
	if data, err := os.ReadFile(filepath.Join(rootfs, "app/hello.txt")); err != nil || string(data) != "hi\n" {
		t.Errorf("umoci rootfs app/hello.txt = %q, %v", data, err)
	}

	// --iidfile is the config digest, --metadata-file has the digests and the name.
	cfgDigest, _ := img.ConfigName()
	if data, _ := os.ReadFile(iid); string(data) != cfgDigest.String() {
		t.Errorf("iidfile = %q, want %s", data, cfgDigest)
	}
	var md map[string]string
	data, _ := os.ReadFile(meta)
	if err := json.Unmarshal(data, &md); err != nil {
		t.Fatalf("metadata file: %v\n%s", err, data)
	}
	mdigest, _ := img.Digest()
	if md["containerimage.digest"] != mdigest.String() || md["containerimage.config.digest"] != cfgDigest.String() || md["image.name"] != "app:v1" {
		t.Errorf("metadata = %v", md)
	}
	noKilnMounts(t, root)
}

// Multi-stage: COPY --from by name and index; only the target's stages are built.
func TestBuildMultiStage(t *testing.T) {
	root, out := e2e(t)
	dir := project(t, map[string]string{
		"Dockerfile": `FROM scratch AS assets
COPY a.txt /stage/a.txt
COPY dir /stage/dir

FROM scratch AS unused
COPY does-not-exist /x

FROM scratch
COPY --from=assets /stage/a.txt /final/a.txt
COPY --from=0 /stage/dir/ /final/dir/
`,
		"a.txt": "A", "dir/b.txt": "B",
	})
	tarPath := filepath.Join(out, "img.tar")
	mustBuild(t, dir, "--root", root, "-o", "type=oci,dest="+tarPath, ".")
	files := flatten(t, readOCI(t, tarPath))
	if files["/final/a.txt"].content != "A" || files["/final/dir/b.txt"].content != "B" {
		t.Errorf("files = %v", files)
	}
	if _, ok := files["/stage/a.txt"]; ok {
		t.Error("a file of another stage leaked into the target")
	}

	// --target picks a stage; its image has only its own files.
	tarPath = filepath.Join(out, "assets.tar")
	mustBuild(t, dir, "--root", root, "--target", "assets", "-o", "type=oci,dest="+tarPath, ".")
	if files := flatten(t, readOCI(t, tarPath)); files["/stage/a.txt"].content != "A" {
		t.Errorf("target assets: files = %v", files)
	}
}

// docker, local and tar outputs, and the Dockerfile from stdin.
func TestBuildOutputs(t *testing.T) {
	root, out := e2e(t)
	dir := project(t, map[string]string{"f.txt": "content"})
	df := "FROM scratch\nCOPY f.txt /f.txt\nCMD [\"/f\"]\n"

	dockerTar := filepath.Join(out, "docker.tar")
	localDir := filepath.Join(out, "rootfs")
	rootfsTar := filepath.Join(out, "rootfs.tar")
	r := kilnStdin(t, dir, strings.NewReader(df), "build", "--root", root, "-f", "-", "-t", "example.com/team/app:v2",
		"-o", "type=docker,dest="+dockerTar, "-o", "type=local,dest="+localDir, "-o", "type=tar,dest="+rootfsTar, ".")
	if r.code != 0 {
		t.Fatalf("build: %d\n%s", r.code, r.stderr)
	}
	// skopeo finds the image in the docker archive by its tag.
	si := skopeoInspect(t, "docker-archive:"+dockerTar+":example.com/team/app:v2")
	if si["Name"] != "example.com/team/app" {
		t.Errorf("docker-archive image name = %v", si["Name"])
	}
	var manifest []struct{ RepoTags []string }
	dockerDir := t.TempDir()
	untar(t, dockerTar, dockerDir)
	data, err := os.ReadFile(filepath.Join(dockerDir, "manifest.json"))
	if err != nil || json.Unmarshal(data, &manifest) != nil || len(manifest) != 1 || !reflect.DeepEqual(manifest[0].RepoTags, []string{"example.com/team/app:v2"}) {
		t.Errorf("manifest.json = %s (%v)", data, err)
	}
	if _, err := os.Stat(filepath.Join(dockerDir, "index.json")); err != nil {
		t.Errorf("docker output is not also an OCI layout: %v", err)
	}
	if data, err := os.ReadFile(filepath.Join(localDir, "f.txt")); err != nil || string(data) != "content" {
		t.Errorf("local output f.txt = %q, %v", data, err)
	}
	f, err := os.Open(rootfsTar)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if files := listTar(t, f); files["/f.txt"].content != "content" {
		t.Errorf("tar output = %v", files)
	}

	// stdout.
	r = kilnStdin(t, dir, strings.NewReader(df), "build", "--root", root, "-f", "-", "-o", "type=tar,dest=-", ".")
	if r.code != 0 {
		t.Fatalf("build to stdout: %d\n%s", r.code, r.stderr)
	}
	if files := listTar(t, strings.NewReader(r.stdout)); files["/f.txt"].content != "content" {
		t.Errorf("tar on stdout = %v", files)
	}
}

// A failing build exits non-zero, names the line, and leaves nothing at dest.
func TestBuildFailureWritesNothing(t *testing.T) {
	root, out := e2e(t)
	for _, tc := range []struct {
		name, dockerfile, want string
	}{
		{"unknown instruction", "FROM scratch\nCOPPY a b\n",
			"Dockerfile:2\n--------------------\n   1 |     FROM scratch\n   2 | >>> COPPY a b\n   3 |     \n--------------------\nERROR: unknown instruction: COPPY"},
		{"missing source", "FROM scratch\nCOPY nope.txt /\n", "nope.txt"},
		// ".." stops at the context's root, as in BuildKit: this is the context's
		// etc/passwd, which it does not have, never the host's.
		{"outside context", "FROM scratch\nCOPY ../etc/passwd /\n", "file not found in build context or excluded by .dockerignore: stat etc/passwd"},
		{"flag not allowed", "FROM scratch\nRUN --security=insecure true\n", "RUN --security=insecure is not allowed"},
		{"foreign frontend", "# syntax=example.com/other/frontend:1\nFROM scratch\n", "example.com/other/frontend"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := project(t, map[string]string{"Dockerfile": tc.dockerfile, "a": "a"})
			dest := filepath.Join(out, strings.ReplaceAll(tc.name, " ", "-")+".tar")
			r := kiln(t, dir, "build", "--root", root, "-o", "type=oci,dest="+dest, ".")
			if r.code == 0 {
				t.Fatalf("build succeeded, want failure")
			}
			if !strings.Contains(r.stderr, tc.want) {
				t.Errorf("stderr does not mention %q:\n%s", tc.want, r.stderr)
			}
			entries, _ := os.ReadDir(out)
			for _, e := range entries {
				if strings.Contains(e.Name(), strings.ReplaceAll(tc.name, " ", "-")) {
					t.Errorf("left at dest: %s", e.Name())
				}
			}
		})
	}
	r := kiln(t, out, "build", "--root", root, "--frobnicate", ".")
	if r.code == 0 || !strings.Contains(r.stderr, "frobnicate") {
		t.Errorf("unknown flag: exit %d, stderr %s", r.code, r.stderr)
	}
	// A misspelled flag gets the flags it may have meant, as a misspelled command
	// does.
	r = kiln(t, out, "build", "--root", root, "--pussh", ".")
	if r.code == 0 || !strings.Contains(r.stderr, "unknown flag: --pussh\n\nDid you mean this?\n\t--push\n") {
		t.Errorf("misspelled flag: exit %d, stderr %s", r.code, r.stderr)
	}
}
