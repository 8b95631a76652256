package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/testenv"
)

// containerDockerfile builds in the unprivileged container what the root build on
// the host builds too; its RUN prints (to the progress only) the seccomp mode and
// id map the step runs with.
const containerDockerfile = `FROM busybox
RUN echo hi > /hi && grep Seccomp: /proc/self/status && cat /proc/self/uid_map
COPY --chown=1000:1000 f /f
RUN chown 1000:1000 /hi
`

// unprivilegedContainer is an OCI bundle for runc that mirrors a Kubernetes pod with
// hostUsers: false: the container's ids 0-65535 are host ids from hostID on, the
// container's root is kiln's user, no capability beyond caps, noNewPrivileges, runc's
// default masked and read-only /proc paths unless unmasked (procMount: Unmasked), and
// the seccomp profile of examples/rootless/seccomp.json. Its rootfs is read-only:
// the host's /usr, an /etc/passwd, and /work (kiln, the base, the context, the
// store and the output) bound read-write and owned by the container's root.
type unprivilegedContainer struct {
	bundle, work string
	hostID       int
}

func newUnprivilegedContainer(t *testing.T) *unprivilegedContainer {
	t.Helper()
	testenv.RequireRoot(t)
	if _, err := exec.LookPath("runc"); err != nil {
		t.Fatalf("runc not installed: run make deps (scripts/install-deps.sh installs Debian's runc)")
	}
	c := &unprivilegedContainer{bundle: sharedTempDir(t, "kiln-bundle-"), work: sharedTempDir(t, "kiln-container-"), hostID: 1<<30 + (os.Getpid()%1000)*65536}
	root := filepath.Join(c.bundle, "rootfs")
	for _, d := range []string{"usr", "proc", "dev", "sys", "tmp", "etc", "work"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, l := range []string{"bin", "lib", "lib64", "sbin"} {
		if err := os.Symlink("usr/"+l, filepath.Join(root, l)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "etc", "passwd"), []byte("root:x:0:0:root:/root:/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	work := c.work
	if err := testenv.WriteBusyboxOCILayout(filepath.Join(work, "busybox")); err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{"ctx/Dockerfile": containerDockerfile, "ctx/f": "data\n"} {
		p := filepath.Join(work, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, "kiln"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	owner := fmt.Sprintf("%d:%d", c.hostID, c.hostID)
	if out, err := exec.Command("chown", "-R", owner, work).CombinedOutput(); err != nil {
		t.Fatalf("chown: %v: %s", err, out)
	}
	return c
}

// sharedTempDir is a temp dir that others may enter, removed after the test: not
// t.TempDir, whose parent is private to root, since runc's init and the container's
// root are unprivileged host ids.
func sharedTempDir(t *testing.T, prefix string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// run runs kiln build in the container and returns its output and error.
func (c *unprivilegedContainer) run(t *testing.T, name string, caps []string, unmasked bool) (string, error) {
	t.Helper()
	cfgPath := filepath.Join(c.bundle, "config.json")
	if err := os.RemoveAll(cfgPath); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("runc", "spec", "--bundle", c.bundle).CombinedOutput(); err != nil {
		t.Fatalf("runc spec: %v: %s", err, out)
	}
	var cfg map[string]any
	b, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	seccomp, err := os.ReadFile("../../examples/rootless/seccomp.json")
	if err != nil {
		t.Fatal(err)
	}
	var profile any
	if err := json.Unmarshal(seccomp, &profile); err != nil {
		t.Fatalf("examples/rootless/seccomp.json: %v", err)
	}
	proc := cfg["process"].(map[string]any)
	proc["terminal"] = false
	proc["noNewPrivileges"] = true
	proc["args"] = []string{"/work/kiln", "build", "--root", "/work/store-" + name, "--progress", "plain",
		"--iidfile", "/work/" + name + ".iid", "--build-context", "busybox=oci-layout:///work/busybox",
		"-o", "type=oci,dest=/work/" + name + ".tar", "/work/ctx"}
	proc["env"] = []string{"PATH=/usr/bin:/bin:/usr/sbin:/sbin", "KILN_E2E_MAIN=1", "SOURCE_DATE_EPOCH=1700000000", "HOME=/tmp"}
	set := map[string]any{"bounding": caps, "effective": caps, "permitted": caps, "inheritable": []string{}}
	proc["capabilities"] = set
	cfg["root"] = map[string]any{"path": "rootfs", "readonly": true}
	mounts := cfg["mounts"].([]any)
	mounts = append(mounts,
		map[string]any{"destination": "/usr", "type": "bind", "source": "/usr", "options": []string{"rbind", "ro"}},
		map[string]any{"destination": "/work", "type": "bind", "source": c.work, "options": []string{"rbind", "rw"}},
		map[string]any{"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": []string{"nosuid", "nodev", "mode=1777"}})
	cfg["mounts"] = mounts
	linux := cfg["linux"].(map[string]any)
	linux["namespaces"] = append(linux["namespaces"].([]any), map[string]any{"type": "user"})
	idMap := []map[string]int{{"containerID": 0, "hostID": c.hostID, "size": 65536}}
	linux["uidMappings"], linux["gidMappings"] = idMap, idMap
	linux["seccomp"] = profile
	if unmasked {
		delete(linux, "maskedPaths")
		delete(linux, "readonlyPaths")
	}
	if b, err = json.MarshalIndent(cfg, "", " "); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfgPath, b, 0o644); err != nil {
		t.Fatal(err)
	}
	id := fmt.Sprintf("kiln-test-%d-%s", os.Getpid(), name)
	t.Cleanup(func() { _ = exec.Command("runc", "delete", "--force", id).Run() })
	cmd := exec.Command("runc", "run", "--bundle", c.bundle, id)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// kiln as root of a container like a pod with hostUsers: false, without
// CAP_SYS_ADMIN, under a seccomp profile, nests a user namespace of its own, says
// which sandbox it could build, and builds the image the root build on the host
// builds. With runc's default masked /proc it binds the container's /proc and says
// why and what to change; unmasked, RUN steps get a fresh /proc. Without any
// capability no user namespace can map the container's root, and kiln says which
// capabilities to add.
func TestRootlessInUnprivilegedContainer(t *testing.T) {
	c := newUnprivilegedContainer(t)
	want := filepath.Join(t.TempDir(), "root.iid")
	rootID := func() string {
		cmd := rootCmd(filepath.Join(c.work, "kiln"), "build", "--root", filepath.Join(c.bundle, "rootstore"), "--progress", "quiet",
			"--iidfile", want, "--build-context", "busybox=oci-layout://"+filepath.Join(c.work, "busybox"), filepath.Join(c.work, "ctx"))
		cmd.Env = append(cmd.Env, "SOURCE_DATE_EPOCH=1700000000")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("root build: %v\n%s", err, out)
		}
		b, err := os.ReadFile(want)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}()
	podCaps := []string{"CAP_SETUID", "CAP_SETGID", "CAP_SETFCAP"}
	for _, tc := range []struct {
		name     string
		unmasked bool
		want     []string
	}{
		{"masked", false, []string{"bound /proc", "procMount: Unmasked", "maskedPaths"}},
		{"unmasked", true, []string{"fresh /proc"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := c.run(t, tc.name, podCaps, tc.unmasked)
			if err != nil {
				t.Fatalf("kiln in the container: %v\n%s", err, out)
			}
			for _, w := range append(tc.want, "sandbox: user namespace (uids 0-65535→0-65535), new mount/pid/uts/ipc namespaces",
				"snapshots by overlay (userxattr)", "Seccomp:\t2", "0          0      65536") {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			got, err := os.ReadFile(filepath.Join(c.work, tc.name+".iid"))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != rootID {
				t.Errorf("the container's image %s differs from the root build's %s", got, rootID)
			}
			img := readOCI(t, filepath.Join(c.work, tc.name+".tar"))
			if e := flatten(t, img)["/hi"]; e.content != "hi\n" || e.uid != 1000 || e.gid != 1000 {
				t.Errorf("/hi = %+v, want hi owned by 1000:1000", e)
			}
		})
	}
	// With CAP_SETFCAP alone kiln maps uid 0 only: the build gets as far as that
	// allows (the base, COPY --chown), and the RUN chown 1000 fails saying which
	// capabilities map every id.
	t.Run("setfcap-only", func(t *testing.T) {
		out, err := c.run(t, "setfcap", []string{"CAP_SETFCAP"}, false)
		if err == nil {
			t.Fatalf("RUN chown 1000 succeeded with uid 0 mapped alone:\n%s", out)
		}
		for _, w := range []string{"uids 0→0)", "maps only uid and gid 0", "Dockerfile:4", "give the container the capabilities SETUID and SETGID"} {
			if !strings.Contains(out, w) {
				t.Errorf("output lacks %q:\n%s", w, out)
			}
		}
	})
	t.Run("nocaps", func(t *testing.T) {
		out, err := c.run(t, "nocaps", []string{}, false)
		if err == nil {
			t.Fatalf("kiln built in a container without capabilities:\n%s", out)
		}
		for _, w := range []string{"without CAP_SETFCAP", "SETFCAP, SETUID and SETGID"} {
			if !strings.Contains(out, w) {
				t.Errorf("output lacks %q:\n%s", w, out)
			}
		}
	})
}
