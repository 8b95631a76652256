package main

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"io/fs"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Issue 20, item 1: with SOURCE_DATE_EPOCH, two builds whose roots differ in umask,
// hostname, TMPDIR, --jobs, the CPUs kiln may use, the store's filesystem (tmpfs
// against the disk) and the context's checkout (its path and every file's times)
// give the same index (image and provenance), the same rootfs tar byte for byte and
// the same local tree.
func TestReproducibleAcrossRoots(t *testing.T) {
	t.Parallel()
	e2e(t)
	host := busyboxRegistry(t)
	files := map[string]string{
		"Dockerfile": "FROM " + host + "/busybox AS build\n" +
			"COPY src /src\n" +
			"RUN mkdir -p /out && cd /src && for f in *.txt sub/*.txt; do cat $f >> /out/all; done && touch /out/stamp\n" +
			"FROM " + host + "/busybox\n" +
			"WORKDIR /app\n" +
			"COPY --from=build /out /app/out\n" +
			"COPY src/a.txt ./\n" +
			// What a RUN sees of the files, without their times (a COPY keeps the
			// context's mtimes, as Docker's does: a step that prints them is not
			// reproducible across checkouts by anyone) or directory sizes (the
			// store's filesystem's own).
			"RUN find /app -type f -exec stat -c '%n %s %a %u' {} + | sort > /tmp/l && mv /tmp/l /app/listing\n",
		"src/a.txt": "a\n", "src/b.txt": "b\n", "src/sub/c.txt": "c\n",
	}
	ctxA := project(t, files)
	ctxB := project(t, files)
	// Checked out at another time: every file and dir of B's context is dated
	// 2024, A's now. Both are after the epoch (the commit's time, at which a
	// checkout is never older): the layers clamp both to it, as BuildKit's
	// rewrite-timestamp does.
	old := time.Date(2024, 6, 1, 4, 5, 6, 0, time.UTC)
	if err := filepath.WalkDir(ctxB, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Chtimes(p, old, old)
	}); err != nil {
		t.Fatal(err)
	}

	// B's store is on a tmpfs of its own.
	tmpfsDir := t.TempDir()
	if err := unix.Mount("tmpfs", tmpfsDir, "tmpfs", 0, "size=512m"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(tmpfsDir, unix.MNT_DETACH) })

	type run struct {
		ctx, root, tmp string
		prefix         []string // the command kiln runs under
		jobs           string
		umask          int
	}
	a := run{ctx: ctxA, root: t.TempDir(), tmp: t.TempDir(), jobs: "1", umask: 0o022,
		prefix: []string{"taskset", "-c", "0"}}
	b := run{ctx: ctxB, root: filepath.Join(tmpfsDir, "root"), tmp: t.TempDir(), jobs: "8", umask: 0o077,
		prefix: []string{"unshare", "--uts", "sh", "-c", `hostname kiln-other-host && exec "$0" "$@"`}}
	outs := map[string][3]string{}
	for name, r := range map[string]run{"a": a, "b": b} {
		out := t.TempDir()
		oci, tarOut, local := filepath.Join(out, "i.tar"), filepath.Join(out, "fs.tar"), filepath.Join(out, "fs")
		args := append(append([]string{}, r.prefix...), os.Args[0], "build", "--root", r.root, "--jobs", r.jobs,
			"--progress", "quiet", "--build-arg", "SOURCE_DATE_EPOCH=1700000000", "--provenance=mode=max",
			"-t", "example.com/repro:v1",
			"-o", "type=oci,dest="+oci, "-o", "type=tar,dest="+tarOut, "-o", "type=local,dest="+local, r.ctx)
		cmd := osexec.Command(args[0], args[1:]...)
		cmd.Dir = r.ctx
		cmd.Env = append(os.Environ(), "KILN_E2E_MAIN=1", "TMPDIR="+r.tmp)
		old := syscall.Umask(r.umask)
		outb, err := cmd.CombinedOutput()
		syscall.Umask(old)
		if err != nil {
			t.Fatalf("build %s: %v\n%s", name, err, outb)
		}
		outs[name] = [3]string{oci, tarOut, local}
	}
	ia := readAttested(t, outs["a"][0])
	ib := readAttested(t, outs["b"][0])
	if ia.image != ib.image {
		imgA, _ := ia.index.Image(ia.image)
		imgB, _ := ib.index.Image(ib.image)
		why, err := firstDifference(imgA, imgB)
		t.Errorf("the images differ: %s, %s: %s (%v)", ia.image, ib.image, why, err)
	}
	if da, db := digestOf(t, ia.index), digestOf(t, ib.index); da != db {
		t.Errorf("the indexes differ (%s, %s): %s", da, db, indexDifference(t, ia.index, ib.index))
	}
	if ha, hb := fileDigest(t, outs["a"][1]), fileDigest(t, outs["b"][1]); ha != hb {
		t.Errorf("the rootfs tars differ: %s, %s", ha, hb)
	}
	if la, lb := treeListing(t, outs["a"][2]), treeListing(t, outs["b"][2]); la != lb {
		t.Errorf("the local trees differ:\n%s\n---\n%s", la, lb)
	}
	// The local tree's files are dated the epoch, as BuildKit's local exporter dates them.
	if fi, err := os.Lstat(filepath.Join(outs["a"][2], "app", "listing")); err != nil || fi.ModTime().Unix() != 1700000000 {
		t.Errorf("/app/listing in the local output: %v (%v)", fi, err)
	}
}

func fileDigest(t *testing.T, p string) string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// treeListing is every entry under dir with its type, mode, owner, size, time and
// content digest, one per line.
func treeListing(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		rel, _ := filepath.Rel(dir, p)
		sum := ""
		if fi.Mode().IsRegular() {
			sum = fileDigest(t, p)
		}
		b.WriteString(strings.Join([]string{rel, fi.Mode().String(), strconv.Itoa(int(st.Uid)), strconv.Itoa(int(st.Gid)),
			strconv.Itoa(int(fi.Size())), strconv.Itoa(int(fi.ModTime().Unix())), sum}, " ") + "\n")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// SOURCE_DATE_EPOCH=context takes the time of the context's commit, as a build arg
// or in the environment; outside a git checkout it is an error that says so.
func TestSourceDateEpochFromContextCommit(t *testing.T) {
	t.Parallel()
	root, out := e2e(t)
	host := busyboxRegistry(t)
	dir := project(t, map[string]string{"Dockerfile": "FROM " + host + "/busybox\nCOPY f /f\n", "f": "f\n"})
	git := func(args ...string) {
		cmd := osexec.Command("git", append([]string{"-C", dir}, args...)...)
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_DATE=@1600000000 +0000", "GIT_COMMITTER_DATE=@1600000000 +0000",
			"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, b)
		}
	}
	nogit := project(t, map[string]string{"Dockerfile": "FROM " + host + "/busybox\n"})
	git("init", "-q")
	git("add", ".")
	git("commit", "-qm", "one")

	arg := filepath.Join(out, "arg.tar")
	mustBuild(t, dir, "--root", root, "--build-arg", "SOURCE_DATE_EPOCH=context", "-o", "type=oci,dest="+arg, ".")
	if c := config(t, readOCI(t, arg)).Created.Unix(); c != 1600000000 {
		t.Errorf("created %d, want the commit's time 1600000000", c)
	}
	env := filepath.Join(out, "env.tar")
	if r := kilnWithEnv(t, dir, []string{"SOURCE_DATE_EPOCH=context"}, "build", "--root", root, "-o", "type=oci,dest="+env, "."); r.code != 0 {
		t.Fatalf("SOURCE_DATE_EPOCH=context in the environment: %s", r.stderr)
	}
	if da, de := fileDigest(t, arg), fileDigest(t, env); da != de {
		t.Errorf("build arg and environment give different images")
	}
	r := kiln(t, nogit, "build", "--root", root, "--build-arg", "SOURCE_DATE_EPOCH=context", ".")
	if r.code == 0 || !strings.Contains(r.stderr, "is not a git checkout with a commit") {
		t.Errorf("outside git: exit %d\n%s", r.code, r.stderr)
	}
}
