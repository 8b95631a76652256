package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// --add-host, --shm-size and --ulimit reach every RUN's sandbox, are part of its
// key (another value reruns it, the same one hits), and bad values are refused.
func TestSandboxFlags(t *testing.T) {
	root, out := e2e(t)
	host := busyboxRegistry(t)
	dir := project(t, map[string]string{"Dockerfile": "FROM " + host + "/busybox\n" +
		"RUN (grep -w db /etc/hosts; df -k /dev/shm | tail -1 | awk '{print $2}'; ulimit -n; ulimit -Hn; ls -a /dev | grep -c kiln) > /probe || true\n"})
	flags := []string{"--add-host", "db:10.1.2.3", "--shm-size", "128m", "--ulimit", "nofile=1000:2000"}
	tarPath := filepath.Join(out, "img.tar")
	b := buildPlain(t, dir, root, append(flags, "-o", "type=oci,dest="+tarPath)...)
	got := flatten(t, readOCI(t, tarPath))["/probe"].content
	if want := "10.1.2.3\tdb\n131072\n1000\n2000\n0\n"; got != want {
		t.Errorf("the step saw:\n%q\nwant:\n%q", got, want)
	}
	if s := findStep(t, b.steps, "RUN (grep"); s.state != "DONE" {
		t.Fatalf("first build: %s", s.state)
	}
	if s := findStep(t, buildPlain(t, dir, root, flags...).steps, "RUN (grep"); s.state != "CACHED" {
		t.Errorf("the same flags missed the cache: %s %s", s.state, s.miss)
	}
	for _, other := range [][]string{
		{"--add-host", "db:10.9.9.9", "--shm-size", "128m", "--ulimit", "nofile=1000:2000"},
		{"--add-host", "db:10.1.2.3", "--shm-size", "64m", "--ulimit", "nofile=1000:2000"},
		{"--add-host", "db:10.1.2.3", "--shm-size", "128m", "--ulimit", "nofile=1001:2000"},
	} {
		if s := findStep(t, buildPlain(t, dir, root, other...).steps, "RUN (grep"); s.state != "DONE" {
			t.Errorf("%v reused the step built with %v", other, flags)
		}
	}
	for _, bad := range [][]string{
		{"--add-host", "db"}, {"--add-host", "db:notanip"}, {"--add-host", "db:host-gateway"},
		{"--shm-size", "lots"}, {"--ulimit", "nofile"}, {"--ulimit", "bogus=1:2"},
	} {
		r := kiln(t, dir, append(append([]string{"build", "--root", root}, bad...), ".")...)
		if r.code == 0 || !strings.Contains(r.stderr, bad[0]) {
			t.Errorf("%v: exit %d, want a refusal naming the flag:\n%s", bad, r.code, r.stderr)
		}
	}
}
