package main

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// mountsProject is a context whose Dockerfile builds on the test registry's busybox.
func mountsProject(t *testing.T, host, dockerfile string) string {
	t.Helper()
	return project(t, map[string]string{"Dockerfile": "FROM " + host + "/busybox\n" + dockerfile})
}

// cacheMountDir is where the store keeps a cache mount of the given identity.
func cacheMountDir(root, identity string) string {
	sum := sha256.Sum256([]byte(identity))
	return filepath.Join(root, "mounts", hex.EncodeToString(sum[:]))
}

// A cache mount keeps what one build wrote for the next, starts from its from/source
// seed, is never part of the image, and kiln prune --all removes it.
func TestCacheMountAcrossBuilds(t *testing.T) {
	root, out := e2e(t)
	host := busyboxRegistry(t)
	dir := project(t, map[string]string{"Dockerfile": "FROM " + host + "/busybox AS src\n" +
		"RUN mkdir /data && echo seed > /data/x\n" +
		"FROM " + host + "/busybox\n" +
		"ARG N\n" +
		"RUN --mount=type=cache,target=/cache if [ -f /cache/mark ]; then cat /cache/mark > /seen; fi; echo run$N > /cache/mark\n" +
		"RUN --mount=type=cache,target=/seeded,from=src,source=/data cat /seeded/x > /seed-copy; echo more >> /seeded/x\n"})
	tar1, tar2 := filepath.Join(out, "1.tar"), filepath.Join(out, "2.tar")
	mustBuild(t, dir, "--root", root, "--build-arg", "N=1", "-o", "type=oci,dest="+tar1, ".")
	mustBuild(t, dir, "--root", root, "--build-arg", "N=2", "-o", "type=oci,dest="+tar2, ".")

	first, second := flatten(t, readOCI(t, tar1)), flatten(t, readOCI(t, tar2))
	if _, ok := first["/seen"]; ok {
		t.Errorf("the first build saw a cache it should not have: %q", first["/seen"].content)
	}
	if got := second["/seen"].content; got != "run1\n" {
		t.Errorf("second build saw %q in the cache mount, want the first build's run1", got)
	}
	for _, img := range []map[string]fileEntry{first, second} {
		for p := range img {
			if strings.HasPrefix(p, "/cache") || strings.HasPrefix(p, "/seeded") {
				t.Errorf("cache mount content in the image: %s", p)
			}
		}
	}
	// The seed is copied in once: the second build reads what the first appended.
	if a, b := first["/seed-copy"].content, second["/seed-copy"].content; a != "seed\n" || b != "seed\nmore\n" {
		t.Errorf("seeded cache read %q then %q, want seed, then seed and the first build's line", a, b)
	}
	if data, err := os.ReadFile(filepath.Join(cacheMountDir(root, "/cache"), "mark")); err != nil || string(data) != "run2\n" {
		t.Errorf("cache dir holds %q, %v; want run2", data, err)
	}

	if r := kiln(t, dir, "prune", "--all", "--root", root); r.code != 0 {
		t.Fatalf("prune --all: %d %s", r.code, r.stderr)
	}
	left, err := os.ReadDir(filepath.Join(root, "mounts"))
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 {
		t.Errorf("prune --all left %d entries in mounts/", len(left))
	}
}

// A secret is readable by its step, as a file (mode 0400 by default) and as an env
// variable, and is nowhere else: not in the image, the store, the progress output,
// nor left behind on /dev/shm.
func TestSecretMount(t *testing.T) {
	root, out := e2e(t)
	host := busyboxRegistry(t)
	var b [16]byte
	rand.Read(b[:])
	secret := "kiln-secret-" + hex.EncodeToString(b[:])
	sum := sha256.Sum256([]byte(secret))
	secretFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(secretFile, []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := mountsProject(t, host, ""+
		"RUN --mount=type=secret,id=tok sha256sum /run/secrets/tok | cut -c1-64 > /hash && stat -c %a /run/secrets/tok > /mode && echo ok > /ok\n"+
		"RUN --mount=type=secret,id=tok,target=/etc/tok,mode=0440,uid=7 stat -c '%a %u' /etc/tok > /custom\n"+
		"RUN --mount=type=secret,id=envtok,env=TOK printf %s \"$TOK\" | sha256sum | cut -c1-64 > /envhash\n"+
		"RUN --mount=type=secret,id=absent test ! -e /run/secrets/absent && echo skipped > /absent\n")
	shmBefore := kilnShmDirs(t)
	// Uncompressed layers and a rootfs tar, so that a leaked value would show as is.
	tarPath := filepath.Join(out, "rootfs.tar")
	r := kilnEnv(t, dir, []string{"SECRET_VALUE=" + secret}, "build", "--root", root, "--progress", "plain",
		"--secret", "id=tok,src="+secretFile, "--secret", "id=envtok,env=SECRET_VALUE",
		"-o", "type=tar,dest="+tarPath+",compression=uncompressed", ".")
	if r.code != 0 {
		t.Fatalf("build: exit %d\n%s", r.code, r.stderr)
	}
	f, err := os.Open(tarPath)
	if err != nil {
		t.Fatal(err)
	}
	files := listTar(t, f)
	f.Close()
	want := map[string]string{"/hash": hex.EncodeToString(sum[:]) + "\n", "/envhash": hex.EncodeToString(sum[:]) + "\n",
		"/mode": "400\n", "/custom": "440 7\n", "/ok": "ok\n", "/absent": "skipped\n"}
	for p, w := range want {
		if got := files[p].content; got != w {
			t.Errorf("%s = %q, want %q", p, got, w)
		}
	}
	for p := range files {
		if strings.HasPrefix(p, "/run/secrets") || p == "/etc/tok" {
			t.Errorf("secret mount point left in the image: %s", p)
		}
	}
	if strings.Contains(r.stdout+r.stderr, secret) {
		t.Error("the secret appears in kiln's output")
	}
	if data, _ := os.ReadFile(tarPath); bytes.Contains(data, []byte(secret)) {
		t.Error("the secret appears in the image's filesystem")
	}
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if data, _ := os.ReadFile(p); bytes.Contains(data, []byte(secret)) {
				t.Errorf("the secret appears in the store: %s", p)
			}
		}
		return nil
	})
	if after := kilnShmDirs(t); len(after) > len(shmBefore) {
		t.Errorf("secret dirs left on /dev/shm: %v (before: %v)", after, shmBefore)
	}
}

func kilnShmDirs(t *testing.T) []string {
	t.Helper()
	m, _ := filepath.Glob("/dev/shm/kiln-secrets-*")
	return m
}

// kilnEnv runs kiln with extra environment variables.
func kilnEnv(t *testing.T, dir string, env []string, args ...string) result {
	t.Helper()
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	return kiln(t, dir, args...)
}

// A required secret that was not given fails the build, naming the secret and the
// flag that gives it.
func TestSecretRequiredMissing(t *testing.T) {
	root, _ := e2e(t)
	host := busyboxRegistry(t)
	dir := mountsProject(t, host, "RUN --mount=type=secret,id=npmrc,required cat /run/secrets/npmrc\n")
	r := kiln(t, dir, "build", "--root", root, ".")
	if r.code != 1 || !strings.Contains(r.stderr, `secret "npmrc" is required`) || !strings.Contains(r.stderr, "--secret id=npmrc") {
		t.Fatalf("exit %d, stderr:\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "Dockerfile:2") {
		t.Errorf("the error does not name the line:\n%s", r.stderr)
	}
}

// An ssh mount puts a socket relaying to the --ssh agent at the target and
// SSH_AUTH_SOCK on it; a required agent not given fails the build.
func TestSSHMount(t *testing.T) {
	root, out := e2e(t)
	host := busyboxRegistry(t)
	sock := filepath.Join(t.TempDir(), "agent.sock")
	fakeSSHAgent(t, sock)

	dir := mountsProject(t, host, ""+
		"RUN --mount=type=ssh test -S \"$SSH_AUTH_SOCK\" && echo \"$SSH_AUTH_SOCK\" > /sock && stat -c %a \"$SSH_AUTH_SOCK\" > /mode\n"+
		"RUN --mount=type=ssh,id=other,target=/tmp/agent,required,mode=0666 test -S /tmp/agent && echo ok > /other\n")
	tarPath := filepath.Join(out, "img.tar")
	mustBuild(t, dir, "--root", root, "--ssh", "default="+sock, "--ssh", "other="+sock, "-o", "type=oci,dest="+tarPath, ".")
	files := flatten(t, readOCI(t, tarPath))
	for p, w := range map[string]string{"/sock": "/run/buildkit/ssh_agent.0\n", "/mode": "600\n", "/other": "ok\n"} {
		if got := files[p].content; got != w {
			t.Errorf("%s = %q, want %q", p, got, w)
		}
	}
	if _, ok := files["/run/buildkit/ssh_agent.0"]; ok {
		t.Error("the agent socket's mount point is in the image")
	}

	r := kiln(t, dir, "build", "--root", root, "--ssh", "default="+sock, ".")
	if r.code != 1 || !strings.Contains(r.stderr, `no ssh agent "other" was given`) {
		t.Fatalf("missing required agent: exit %d\n%s", r.code, r.stderr)
	}
}

// sharing=locked makes concurrent builds on one store take the cache in turn.
func TestCacheMountLockedSerialises(t *testing.T) {
	root, _ := e2e(t)
	host := busyboxRegistry(t)
	dir := mountsProject(t, host, "ARG N\n"+
		"RUN --mount=type=cache,target=/c,sharing=locked echo start$N >> /c/log; sleep 1; echo end$N >> /c/log\n")
	var wg sync.WaitGroup
	results := make([]result, 2)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = kiln(t, dir, "build", "--root", root, "--build-arg", "N="+string(rune('1'+i)), ".")
		}()
	}
	wg.Wait()
	for i, r := range results {
		if r.code != 0 {
			t.Fatalf("build %d: exit %d\n%s", i+1, r.code, r.stderr)
		}
	}
	data, err := os.ReadFile(filepath.Join(cacheMountDir(root, "/c"), "log"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Fields(string(data))
	if len(lines) != 4 || lines[0][len(lines[0])-1] != lines[1][len(lines[1])-1] ||
		!strings.HasPrefix(lines[0], "start") || !strings.HasPrefix(lines[1], "end") {
		t.Errorf("the two steps overlapped in the locked cache: %q", lines)
	}
}

// RUN --security=insecure needs --allow security.insecure; granted, it is refused
// as not implemented rather than run sandboxed.
func TestSecurityInsecure(t *testing.T) {
	root, _ := e2e(t)
	host := busyboxRegistry(t)
	dir := mountsProject(t, host, "RUN --security=insecure true\n")
	r := kiln(t, dir, "build", "--root", root, ".")
	if r.code != 1 || !strings.Contains(r.stderr, "--allow security.insecure") {
		t.Fatalf("without --allow: exit %d\n%s", r.code, r.stderr)
	}
	r = kiln(t, dir, "build", "--root", root, "--allow", "security.insecure", "--allow", "network.host", ".")
	if r.code != 1 || !strings.Contains(r.stderr, "not implemented") {
		t.Fatalf("with --allow: exit %d\n%s", r.code, r.stderr)
	}
	if r := kiln(t, dir, "build", "--root", root, "--allow", "bogus", "."); r.code != 1 || !strings.Contains(r.stderr, "--allow") {
		t.Fatalf("unknown entitlement: exit %d\n%s", r.code, r.stderr)
	}
}

// RUN --network=host needs --allow network.host, as Docker documents and BuildKit
// enforces; granted, the step shares the host's network.
func TestNetworkHostEntitlement(t *testing.T) {
	root, out := e2e(t)
	host := busyboxRegistry(t)
	dir := mountsProject(t, host, "RUN --network=host cat /proc/net/dev > /dev.txt\n")
	r := kiln(t, dir, "build", "--root", root, ".")
	if r.code != 1 || !strings.Contains(r.stderr, "RUN --network=host is not allowed") || !strings.Contains(r.stderr, "--allow network.host") {
		t.Fatalf("without --allow: exit %d\n%s", r.code, r.stderr)
	}
	dest := filepath.Join(out, "img.tar")
	r = kiln(t, dir, "build", "--root", root, "--allow", "network.host", "-o", "type=tar,dest="+dest, ".")
	if r.code != 0 {
		t.Fatalf("with --allow: exit %d\n%s", r.code, r.stderr)
	}
	if f := readTar(t, dest)["/dev.txt"]; !strings.Contains(f.content, "lo:") {
		t.Errorf("the step did not see a network: %q", f.content)
	}
}

// kiln build --check prints each finding with its line and fails; a clean file passes.
func TestBuildCheck(t *testing.T) {
	dir := project(t, map[string]string{
		"Dockerfile": "FROM scratch\nARG API_TOKEN\nCMD echo hi\n",
		"clean":      "FROM scratch\nARG VERSION\nCMD [\"/app\"]\n",
	})
	r := kiln(t, dir, "build", "--check", ".")
	if r.code != 1 {
		t.Fatalf("exit %d, want 1\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"SecretsUsedInArgOrEnv", `Dockerfile:2: Do not use ARG or ENV instructions for sensitive data (ARG "API_TOKEN")`,
		"JSONArgsRecommended", "Dockerfile:3: JSON arguments recommended for CMD"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("--check output lacks %q:\n%s", want, r.stdout)
		}
	}
	if r := kiln(t, dir, "build", "--check", "-f", filepath.Join(dir, "clean"), "."); r.code != 0 {
		t.Errorf("clean Dockerfile: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// fakeSSHAgent listens on sock as an ssh agent stand-in: every connection gets
// "agent here\n" and is closed. It stops when the test ends.
func fakeSSHAgent(t *testing.T, sock string) {
	t.Helper()
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("agent here\n"))
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
}
