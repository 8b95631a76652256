package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/testenv"
)

// rootlessProject writes, under u's home, the busybox base as an OCI layout and a
// context dir with the Dockerfile df and files, all owned by u, and returns the
// context dir and the --build-context flag value for the base.
func rootlessProject(t *testing.T, u testenv.TestUser, name, df string, files map[string]string) (ctx, base string) {
	t.Helper()
	base = filepath.Join(u.Home, "busybox")
	if _, err := os.Stat(base); err != nil {
		if err := testenv.WriteBusyboxOCILayout(base); err != nil {
			t.Fatal(err)
		}
	}
	ctx = filepath.Join(u.Home, name)
	files["Dockerfile"] = df
	for n, c := range files {
		p := filepath.Join(ctx, n)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	chownTree(t, u.Home, u)
	return ctx, "busybox=oci-layout://" + base
}

// A user without /etc/subuid ranges builds with a single-id map (0 → the user). The
// busybox base (whose /home/app is 1000:1000) unpacks, and COPY --chown=1000:1000
// writes 1000:1000 into the layer's tar headers, for a file and for the directories
// it creates, also after a RUN rewrote the copied files: the image is byte for byte
// the root build's. A step that needs another id (a chown in RUN, USER 1000) fails
// with the Dockerfile line and how to add ranges.
func TestRootlessSingleID(t *testing.T) {
	u := testenv.NewTestUser(t, testenv.WithoutSubIDs())
	kilnBin := rootlessKiln(t, u)
	df := `FROM busybox
COPY --chown=1000:1000 f /f
COPY --chown=1000:1000 d /opt/d
RUN echo more >> /opt/d/g && echo hi > /hi
`
	ctx, base := rootlessProject(t, u, "ok", df, map[string]string{"f": "data\n", "d/g": "g\n", "d/sub/h": "h\n"})
	build := func(rootless bool, dir string) (string, string) {
		t.Helper()
		out, iid := filepath.Join(dir, "img.tar"), filepath.Join(dir, "iid")
		args := []string{"build", "--root", filepath.Join(dir, "store"), "--progress", "plain", "--iidfile", iid,
			"--build-context", base, "-o", "type=oci,dest=" + out, ctx}
		cmd := rootCmd(kilnBin, args...)
		if rootless {
			cmd = rootlessCmd(u, kilnBin, args...)
		}
		cmd.Env = append(cmd.Env, "SOURCE_DATE_EPOCH=1700000000")
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("build (rootless %v): %v\n%s", rootless, err, b)
		}
		id, err := os.ReadFile(iid)
		if err != nil {
			t.Fatal(err)
		}
		return out, string(b) + "\x00" + string(id)
	}
	rlDir := filepath.Join(u.Home, "rl")
	if err := os.MkdirAll(rlDir, 0o755); err != nil {
		t.Fatal(err)
	}
	chownTree(t, rlDir, u)
	rlTar, rlRes := build(true, rlDir)
	rlOut, rlID, _ := strings.Cut(rlRes, "\x00")
	for _, want := range []string{"sandbox: user namespace (uids 0→", "maps only uid and gid 0", "usermod --add-subuids"} {
		if !strings.Contains(rlOut, want) {
			t.Errorf("single-id build output lacks %q:\n%s", want, rlOut)
		}
	}
	img := readOCI(t, rlTar)
	copyFile, copyDir, runLayer := layerEntries(t, img, -3), layerEntries(t, img, -2), layerEntries(t, img, -1)
	for _, c := range []struct {
		layer map[string]fileEntry
		path  string
	}{{copyFile, "/f"}, {copyDir, "/opt"}, {copyDir, "/opt/d"}, {copyDir, "/opt/d/g"}, {copyDir, "/opt/d/sub/h"}, {runLayer, "/opt/d"}, {runLayer, "/opt/d/g"}} {
		e, ok := c.layer[c.path]
		if !ok {
			t.Errorf("%s missing from its layer", c.path)
			continue
		}
		if e.uid != 1000 || e.gid != 1000 {
			t.Errorf("%s is %d:%d in the layer, want 1000:1000 (the --chown owner)", c.path, e.uid, e.gid)
		}
	}
	if e := runLayer["/hi"]; e.uid != 0 || e.gid != 0 {
		t.Errorf("/hi written by RUN is %d:%d, want 0:0", e.uid, e.gid)
	}
	if e := flatten(t, img)["/home/app"]; e.uid != 1000 || e.gid != 1000 {
		t.Errorf("the base's /home/app is %d:%d, want 1000:1000", e.uid, e.gid)
	}
	_, rtRes := build(false, t.TempDir())
	_, rtID, _ := strings.Cut(rtRes, "\x00")
	if rlID != rtID {
		t.Errorf("single-id rootless image %s differs from the root image %s", rlID, rtID)
	}

	for _, c := range []struct{ name, df, line string }{
		{"chown", "FROM busybox\nRUN touch /x && chown 1000 /x\n", "RUN touch /x && chown 1000 /x"},
		{"user", "FROM busybox\nUSER 1000\nRUN true\n", "RUN true"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, base := rootlessProject(t, u, c.name, c.df, map[string]string{})
			out, err := rootlessCmd(u, kilnBin, "build", "--root", filepath.Join(u.Home, "store-"+c.name), "--progress", "plain",
				"--build-context", base, ctx).CombinedOutput()
			if err == nil {
				t.Fatalf("a step needing uid 1000 succeeded under a single-id map:\n%s", out)
			}
			for _, want := range []string{c.line, "Dockerfile:", "usermod --add-subuids", "/etc/subuid", "--add-subgids 100000-165535 " + u.Name} {
				if !strings.Contains(string(out), want) {
					t.Errorf("error lacks %q:\n%s", want, out)
				}
			}
		})
	}
}
