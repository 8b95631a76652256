package main

import (
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// damageFile flips one byte of the file rel in the one committed snapshot matching
// glob under root (size kept: damage a build did not cause) and returns its path.
func damageFile(t *testing.T, root, glob, rel string) string {
	t.Helper()
	ps, err := filepath.Glob(filepath.Join(root, "snapshots", "committed", glob, rel))
	if err != nil || len(ps) != 1 {
		t.Fatalf("%s in snapshot %s: %v %v", rel, glob, ps, err)
	}
	data, err := os.ReadFile(ps[0])
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0x20
	if err := os.WriteFile(ps[0], data, 0o644); err != nil {
		t.Fatal(err)
	}
	return ps[0]
}

// readTree lists dir: each regular file's content, each symlink's target.
func readTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		switch {
		case d.Type().IsRegular():
			b, err := os.ReadFile(p)
			files[rel] = string(b)
			return err
		case d.Type()&fs.ModeSymlink != 0:
			l, err := os.Readlink(p)
			files[rel] = "-> " + l
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// -o type=local and type=tar copy the image's files from its snapshots. A snapshot file
// changed after the fact (size kept), in a step's snapshot or a base image's, is
// found before a byte is written: the build says so, rebuilds the snapshot from its
// layer, and writes the right files; the next build is quiet.
func TestDamagedSnapshotIsNotOutput(t *testing.T) {
	host := busyboxRegistry(t)
	epoch := []string{"--build-arg", "SOURCE_DATE_EPOCH=1700000000"}
	for _, tc := range []struct {
		name, glob, rel string
		args            []string
	}{
		{"step snapshot", "s-*", "one.txt", nil},
		{"base snapshot", "l-*", "etc/passwd", nil},
		// The image's layer is the step's with clamped mtimes; the snapshot holds the
		// step's own tree, and is checked against and rebuilt from the step's layer.
		{"step snapshot with SOURCE_DATE_EPOCH", "s-*", "one.txt", epoch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root, out := e2e(t)
			dir := project(t, map[string]string{"Dockerfile": "FROM " + host + "/busybox\nRUN echo one > /one.txt\n"})
			ref := filepath.Join(out, "ref")
			mustBuild(t, dir, append(tc.args, "--root", root, "-o", "type=local,dest="+ref, ".")...)
			want := readTree(t, ref)
			if want["one.txt"] != "one\n" || !strings.Contains(want["etc/passwd"], "root:") {
				t.Fatalf("the first local output lacks the image's files: %q %q", want["one.txt"], want["etc/passwd"])
			}
			refTar := filepath.Join(out, "ref.tar")
			mustBuild(t, dir, append(tc.args, "--root", root, "-o", "type=tar,dest="+refTar, ".")...)
			wantTar := readTar(t, refTar)

			damaged := damageFile(t, root, tc.glob, tc.rel)
			local := filepath.Join(out, "local")
			r := mustBuild(t, dir, append(tc.args, "--root", root, "--progress", "plain", "-o", "type=local,dest="+local, ".")...)
			if !strings.Contains(r.stderr, "was damaged") || !strings.Contains(r.stderr, "rebuilt it from the layer") {
				t.Errorf("the local output did not report the damaged snapshot:\n%s", r.stderr)
			}
			if got := readTree(t, local); !maps.Equal(got, want) {
				t.Errorf("local output after the damage differs: %s = %q, want %q", tc.rel, got[tc.rel], want[tc.rel])
			}
			if b, _ := os.ReadFile(damaged); string(b) != want[tc.rel] {
				t.Errorf("the snapshot was not repaired: %q", b)
			}

			damageFile(t, root, tc.glob, tc.rel)
			tarOut := filepath.Join(out, "fs.tar")
			r = mustBuild(t, dir, append(tc.args, "--root", root, "--progress", "plain", "-o", "type=tar,dest="+tarOut, ".")...)
			if !strings.Contains(r.stderr, "was damaged") {
				t.Errorf("the tar output did not report the damaged snapshot:\n%s", r.stderr)
			}
			if got := readTar(t, tarOut); !maps.Equal(got, wantTar) {
				t.Errorf("tar output after the damage differs: /%s = %q, want %q", tc.rel, got["/"+tc.rel].content, wantTar["/"+tc.rel].content)
			}

			r = mustBuild(t, dir, append(tc.args, "--root", root, "--progress", "plain", "-o", "type=tar,dest="+filepath.Join(out, "again.tar"), ".")...)
			if strings.Contains(r.stderr, "damaged") {
				t.Errorf("the damage came back:\n%s", r.stderr)
			}
		})
	}
}

func readTar(t *testing.T, p string) map[string]fileEntry {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return listTar(t, f)
}

// kiln check verifies a base image's snapshot once an output has recorded what its
// tree makes (the first local or tar output does): damage is reported, --repair
// removes the snapshot, and the next build makes it again from the layer.
func TestCheckFindsDamagedBaseSnapshot(t *testing.T) {
	host := busyboxRegistry(t)
	root, out := e2e(t)
	dir := project(t, map[string]string{"Dockerfile": "FROM " + host + "/busybox\nRUN echo one > /one.txt\n"})
	mustBuild(t, dir, "--root", root, "-o", "type=local,dest="+filepath.Join(out, "ref"), ".")
	if r := kiln(t, dir, "check", "--root", root); r.code != 0 || strings.Contains(r.stdout, "damaged") {
		t.Fatalf("check of a sound store: code %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	damaged := damageFile(t, root, "l-*", "etc/passwd")
	r := kiln(t, dir, "check", "--root", root)
	if r.code == 0 || !strings.Contains(r.stdout, "snapshot l-") || !strings.Contains(r.stdout, "damaged") {
		t.Fatalf("check did not find the damaged base snapshot: code %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := kiln(t, dir, "check", "--root", root, "--repair"); r.code != 0 || !strings.Contains(r.stdout, "damaged, removed") {
		t.Fatalf("check --repair: code %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if _, err := os.Stat(damaged); !os.IsNotExist(err) {
		t.Fatalf("the damaged snapshot is still there: %v", err)
	}
	local := filepath.Join(out, "local")
	mustBuild(t, dir, "--root", root, "-o", "type=local,dest="+local, ".")
	if got := readTree(t, local); !strings.Contains(got["etc/passwd"], "root:") {
		t.Fatalf("the rebuilt base lacks its files: %q", got["etc/passwd"])
	}
	if r := kiln(t, dir, "check", "--root", root); r.code != 0 || strings.Contains(r.stdout, "damaged") {
		t.Fatalf("check after the rebuild: code %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// A step that runs again (its context file changed) over a snapshot changed after the
// fact, in a step's snapshot or a base image's, size and mtime kept, runs over the tree
// the snapshot's layer holds: the build finds the damage from the snapshot's seal, says
// so, rebuilds the snapshot from its layer, and makes the image a fresh root makes.
func TestDamagedLowerIsRebuiltBeforeAStepRunsOverIt(t *testing.T) {
	host := busyboxRegistry(t)
	for _, tc := range []struct{ name, glob, rel string }{
		{"step snapshot", "s-*", "one.txt"},
		{"base snapshot", "l-*", "etc/passwd"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root, out := e2e(t)
			dir := project(t, map[string]string{
				"Dockerfile": "FROM " + host + "/busybox\nRUN echo one > /one.txt\nCOPY c.txt /c.txt\n" +
					"RUN cat /one.txt /c.txt /etc/passwd | sha256sum > /sum\n",
				"c.txt": "first\n",
			})
			args := func(root, dest string) []string {
				return []string{"--root", root, "--progress", "plain", "--build-arg", "SOURCE_DATE_EPOCH=1700000000",
					"-o", "type=oci,dest=" + dest, "."}
			}
			mustBuild(t, dir, args(root, filepath.Join(out, "a.tar"))...)

			// The damage: one byte flipped, the size and the mtime as they were.
			ps, err := filepath.Glob(filepath.Join(root, "snapshots", "committed", tc.glob, tc.rel))
			if err != nil || len(ps) != 1 {
				t.Fatalf("%s in snapshot %s: %v %v", tc.rel, tc.glob, ps, err)
			}
			fi, err := os.Stat(ps[0])
			if err != nil {
				t.Fatal(err)
			}
			good, err := os.ReadFile(ps[0])
			if err != nil {
				t.Fatal(err)
			}
			bad := slices.Clone(good)
			bad[0] ^= 0x20
			if err := os.WriteFile(ps[0], bad, fi.Mode()); err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(ps[0], fi.ModTime(), fi.ModTime()); err != nil {
				t.Fatal(err)
			}

			if err := os.WriteFile(filepath.Join(dir, "c.txt"), []byte("second\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			r := mustBuild(t, dir, args(root, filepath.Join(out, "b.tar"))...)
			if !strings.Contains(r.stderr, "were changed after it was committed") || !strings.Contains(r.stderr, "rebuilt it from the layer") {
				t.Errorf("the build did not report the damaged snapshot:\n%s", r.stderr)
			}
			if b, _ := os.ReadFile(ps[0]); string(b) != string(good) {
				t.Errorf("the snapshot was not rebuilt: %s holds %q, want %q", tc.rel, b, good)
			}
			mustBuild(t, dir, args(filepath.Join(out, "fresh-root"), filepath.Join(out, "fresh.tar"))...)
			got, want := readOCI(t, filepath.Join(out, "b.tar")), readOCI(t, filepath.Join(out, "fresh.tar"))
			gd, _ := got.Digest()
			wd, _ := want.Digest()
			if gd != wd {
				t.Errorf("the image built over the damaged snapshot is %s, a fresh root's is %s", gd, wd)
			}
		})
	}
}
