package snapshottest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// old is the mtime given to every path of the suite's base layers, so that a copy
// that loses times shows.
var old = time.Date(2001, 9, 9, 1, 46, 40, 123456789, time.UTC)

// oldTimes sets every path under root to old, children before their dirs.
func oldTimes(root string) error {
	var paths []string
	err := filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
		paths = append(paths, p)
		return err
	})
	if err != nil {
		return err
	}
	for i := len(paths) - 1; i > 0; i-- { // not the root itself
		rel, _ := filepath.Rel(root, paths[i])
		if err := Chtimes(rel, old)(root); err != nil {
			return err
		}
	}
	return nil
}

// baseTree is a small rootfs: files, nested dirs, a symlink, an empty dir.
var baseTree = []Applier{
	WriteFile("a", "a1", 0o644),
	Mkdir("keep", 0o755), WriteFile("keep/gone", "g", 0o644), WriteFile("keep/stay", "s", 0o600),
	Mkdir("d", 0o755), WriteFile("d/x", "x", 0o644), WriteFile("d/y", "y", 0o644),
	Mkdir("gone-dir", 0o755), Mkdir("gone-dir/sub", 0o700), WriteFile("gone-dir/sub/f", "f", 0o644),
	WriteFile("f2d", "file", 0o644),
	Mkdir("d2f", 0o755), WriteFile("d2f/x", "x", 0o644),
	Mkdir("d2l", 0o755), WriteFile("d2l/x", "x", 0o644),
	WriteFile("mode", "m", 0o644), WriteFile("owner", "o", 0o644),
	Mkdir("deep", 0o755), Mkdir("deep/er", 0o750), Mkdir("deep/er/est", 0o755), WriteFile("deep/er/est/f", "old", 0o644),
	WriteFile("mv-src", "moved", 0o644),
	Mkdir("emptied", 0o755), WriteFile("emptied/x", "x", 0o644),
	Mkdir("untouched", 0o755), WriteFile("untouched/f", "u", 0o644), Mkdir("untouched/empty", 0o755),
	Symlink("link", "a"),
	oldTimes,
}

// Prepare with no parents: Root is an empty rootfs root; what the step writes is the
// diff, the committed snapshot and what a View of it shows.
func testPrepareScratch(e *env) {
	a := e.prepare()
	checkTree(e.t, "Root of Prepare(nil)", describe(e.t, a.Root), Build(e.t))
	step := []Applier{
		WriteFile("f", "hello", 0o644), Mkdir("d", 0o750), WriteFile("d/g", "", 0o600),
		Symlink("l", "d/g"), Chtimes("f", old),
	}
	apply(e.t, a.Root, step...)
	want := Build(e.t, step...)
	seen := describe(e.t, a.Root, WithTimes)
	if err := a.Unmount(e.ctx); err != nil {
		e.t.Fatal(err)
	}
	checkTree(e.t, "Upper", describe(e.t, a.Upper), want)
	if err := a.Commit(e.ctx, "scratch"); err != nil {
		e.t.Fatal(err)
	}
	if got, want := e.s.Path("scratch"), filepath.Join(e.root, "committed", "scratch"); got != want {
		e.t.Errorf("Path = %s, want %s", got, want)
	}
	checkTree(e.t, "committed snapshot", describe(e.t, e.s.Path("scratch")), want)
	checkTree(e.t, "View of the snapshot", describe(e.t, e.view("scratch"), WithTimes), seen)
}

// Prepare on one parent shows exactly the parent's tree, times included. The root is
// always a fresh 0755 root-owned dir whatever the parent's root is: the merged root
// is overlay's upper root (as with Docker's overlay2, a chmod of / does not carry to
// the next step).
func testPrepareOneParent(e *env) {
	e.ingest("base", append(baseTree, Chmod(".", 0o700), Chown(".", 1000, 1000))...)
	parent := describe(e.t, e.s.Path("base"), WithTimes)
	a := e.prepare("base")
	want := append(Tree{}, parent...)
	want[0] = Build(e.t)[0] // "." 0755 0:0
	checkTree(e.t, "Root of Prepare(base)", describe(e.t, a.Root, WithTimes), want)
	checkTree(e.t, "parent after Prepare", describe(e.t, e.s.Path("base"), WithTimes), parent)
	if err := a.Unmount(e.ctx); err != nil {
		e.t.Fatal(err)
	}
	checkTree(e.t, "Upper of a step that changed nothing", describe(e.t, a.Upper), Build(e.t))
}

// Prepare stacks many parents, lowest first: more than fit in one mount(2) option
// page with these ids, so the overlay implementation has to use the new mount API or
// its short-link fallback. Whiteouts and an opaque dir in the middle of the stack
// hide what is below them.
func testPrepareManyParents(e *env) {
	const n = 200
	var parents []string
	var want []Applier
	for i := range n {
		id := fmt.Sprintf("sha256-%058d", i)
		layer := []Applier{WriteFile(fmt.Sprintf("f%03d", i), fmt.Sprint(i), 0o644), WriteFile("top", fmt.Sprint(i), 0o644)}
		switch {
		case i < 100:
			layer = append(layer, Mkdir("o", 0o755), WriteFile(fmt.Sprintf("o/x%03d", i), "x", 0o644))
			want = append(want, layer[:2]...)
		case i == 120:
			layer = append(layer, Whiteout("f050"))
			want = append(want, layer[:2]...)
			want = append(want, Remove("f050"))
		case i == 150:
			layer = append(layer, Mkdir("o", 0o711), Opaque("o"), WriteFile("o/y", "y", 0o644))
			want = append(want, layer[:2]...)
			want = append(want, Mkdir("o", 0o711), WriteFile("o/y", "y", 0o644))
		default:
			want = append(want, layer...)
		}
		e.ingest(id, layer...)
		parents = append(parents, id)
	}
	expected := Build(e.t, want...)
	a := e.prepare(parents...)
	checkTree(e.t, "Root over 200 parents", describe(e.t, a.Root), expected)
	checkTree(e.t, "View of 200 parents", describe(e.t, e.view(parents...)), expected)
}

// overlayMaxStack is the kernel's limit on overlay lower layers (OVL_MAX_STACK).
const overlayMaxStack = 500

// One more parent than overlayfs can stack. The implementations differ here, on
// purpose: overlay refuses the stack with an error that says why (and leaves
// nothing), while the copy fallback has no limit and must show the right tree.
func testPrepareTooManyParents(e *env) {
	var parents []string
	for i := range overlayMaxStack + 1 {
		id := fmt.Sprintf("l%d", i)
		e.ingest(id, WriteFile("top", fmt.Sprint(i), 0o644))
		parents = append(parents, id)
	}
	a, err := e.s.Prepare(e.ctx, parents)
	if e.s.Overlay() {
		if err == nil {
			a.Discard(e.ctx)
			e.t.Fatal("Prepare stacked 501 overlay lowers; the kernel allows 500")
		}
		if !strings.Contains(err.Error(), "500") {
			e.t.Errorf("error does not name the limit: %v", err)
		}
		e.checkEmptyWorkDirs("after the refused Prepare")
		return
	}
	if err != nil {
		e.t.Fatal(err)
	}
	defer a.Discard(e.ctx)
	if b, err := os.ReadFile(filepath.Join(a.Root, "top")); err != nil || string(b) != "500" {
		e.t.Errorf("top = %q, %v; want the topmost parent's 500", b, err)
	}
}

// step is a RUN that touches every kind of change on baseTree.
var step = []Applier{
	WriteFile("new", "n", 0o644), Mkdir("newdir", 0o755), Mkdir("newdir/sub", 0o700), WriteFile("newdir/sub/f", "f", 0o644),
	WriteFile("a", "a2", 0o644),
	Remove("keep/gone"),
	RemoveAll("d"), Mkdir("d", 0o755), WriteFile("d/z", "z", 0o644),
	RemoveAll("gone-dir"),
	Remove("f2d"), Mkdir("f2d", 0o755), WriteFile("f2d/n", "n", 0o644),
	RemoveAll("d2f"), WriteFile("d2f", "now a file", 0o644),
	RemoveAll("d2l"), Symlink("d2l", "keep"),
	Chmod("mode", 0o600), Chown("owner", 1000, 1000),
	WriteFile("deep/er/est/f", "new", 0o644),
	Rename("mv-dst", "mv-src"),
	Remove("emptied/x"),
}

// stepDiff is the overlay-format diff step makes on baseTree: changed and new paths
// whole, their unchanged parent dirs with the parents' metadata, whiteouts for what
// was deleted, and opaque dirs where a dir replaced a deleted dir or a file.
var stepDiff = []Applier{
	WriteFile("new", "n", 0o644), Mkdir("newdir", 0o755), Mkdir("newdir/sub", 0o700), WriteFile("newdir/sub/f", "f", 0o644),
	WriteFile("a", "a2", 0o644),
	Mkdir("keep", 0o755), Whiteout("keep/gone"),
	Mkdir("d", 0o755), Opaque("d"), WriteFile("d/z", "z", 0o644),
	Whiteout("gone-dir"),
	Mkdir("f2d", 0o755), Opaque("f2d"), WriteFile("f2d/n", "n", 0o644),
	WriteFile("d2f", "now a file", 0o644),
	Symlink("d2l", "keep"),
	WriteFile("mode", "m", 0o600), WriteFile("owner", "o", 0o644), Chown("owner", 1000, 1000),
	Mkdir("deep", 0o755), Mkdir("deep/er", 0o750), Mkdir("deep/er/est", 0o755), WriteFile("deep/er/est/f", "new", 0o644),
	Whiteout("mv-src"), WriteFile("mv-dst", "moved", 0o644),
	Mkdir("emptied", 0o755), Whiteout("emptied/x"),
}

// Writes in Root change neither the parents nor a View of them; after Unmount the
// parents are still untouched.
func testWritesLandInUpperOnly(e *env) {
	e.ingest("base", baseTree...)
	e.commit("l1", []string{"base"}, WriteFile("l1", "1", 0o644), Chtimes("l1", old))
	parents := []string{"base", "l1"}
	before := map[string]Tree{}
	for _, id := range parents {
		before[id] = describe(e.t, e.s.Path(id), WithTimes)
	}
	viewRoot := e.view(parents...)
	viewed := describe(e.t, viewRoot, WithTimes)
	a := e.prepare(parents...)
	apply(e.t, a.Root, append(step, Xattr("untouched/f", "user.kiln", "x"), Chtimes("untouched", time.Now()))...)
	check := func(when string) {
		for _, id := range parents {
			checkTree(e.t, fmt.Sprintf("parent %s %s", id, when), describe(e.t, e.s.Path(id), WithTimes), before[id])
		}
		checkTree(e.t, "View "+when, describe(e.t, viewRoot, WithTimes), viewed)
	}
	check("after writes in Root")
	if err := a.Unmount(e.ctx); err != nil {
		e.t.Fatal(err)
	}
	check("after Unmount")
	if err := a.Discard(e.ctx); err != nil {
		e.t.Fatal(err)
	}
	check("after Discard")
}

// After Unmount, Upper holds exactly the step's diff in overlay format, a second
// Unmount changes nothing, and a View of parents + the committed diff shows what the
// step saw in Root, times included.
//
// Upper is only specified after Unmount: overlay writes it as the step runs, the copy
// fallback computes it in Unmount.
func testUnmountDiff(e *env) {
	e.ingest("base", baseTree...)
	a := e.prepare("base")
	apply(e.t, a.Root, step...)
	seen := describe(e.t, a.Root, WithTimes)
	if err := a.Unmount(e.ctx); err != nil {
		e.t.Fatal(err)
	}
	want := Build(e.t, stepDiff...)
	checkTree(e.t, "Upper", describe(e.t, a.Upper), want)
	if err := a.Unmount(e.ctx); err != nil {
		e.t.Fatalf("second Unmount: %v", err)
	}
	checkTree(e.t, "Upper after a second Unmount", describe(e.t, a.Upper), want)
	if err := a.Commit(e.ctx, "l1"); err != nil {
		e.t.Fatal(err)
	}
	checkTree(e.t, "committed diff", describe(e.t, e.s.Path("l1")), want)
	checkTree(e.t, "View(base, l1) against the step's Root", describe(e.t, e.view("base", "l1"), WithTimes), seen)
	b := e.prepare("base", "l1")
	checkTree(e.t, "Prepare(base, l1) against the step's Root", describe(e.t, b.Root, WithTimes), seen)
}

// A dir whose only change is something created and removed inside it, with its
// times put back (RUN's mount-point stubs), is not in the diff; a dir whose mtime,
// mode or xattrs alone the step changed, one removed and recreated (even empty and
// with its old times), and a new empty dir are.
func testUnmountPrunesUnchangedDirs(e *env) {
	e.ingest("base", Mkdir("etc", 0o755), Mkdir("deep", 0o755), Mkdir("deep/er", 0o755),
		Mkdir("touched", 0o755), Mkdir("opaque", 0o755), WriteFile("opaque/f", "x", 0o644),
		Mkdir("chmodded", 0o755), Mkdir("xattred", 0o755), Mkdir("recreated", 0o755), oldTimes)
	a := e.prepare("base")
	apply(e.t, a.Root,
		WriteFile("etc/stub", "", 0o644), Remove("etc/stub"), Chtimes("etc", old),
		WriteFile("deep/er/stub", "", 0o644), Remove("deep/er/stub"), Chtimes("deep/er", old), Chtimes("deep", old),
		WriteFile("touched/tmp", "", 0o644), Remove("touched/tmp"), Chtimes("touched", old.Add(time.Hour)),
		RemoveAll("opaque"), Mkdir("opaque", 0o755),
		Mkdir("new", 0o755),
		Chmod("chmodded", 0o700),
		Xattr("xattred", "user.kiln", "x"),
		Remove("recreated"), Mkdir("recreated", 0o755), Chtimes("recreated", old),
	)
	if err := a.Unmount(e.ctx); err != nil {
		e.t.Fatal(err)
	}
	checkTree(e.t, "Upper", describe(e.t, a.Upper), Build(e.t,
		Mkdir("touched", 0o755), Mkdir("opaque", 0o755), Opaque("opaque"), Mkdir("new", 0o755),
		Mkdir("chmodded", 0o700), Mkdir("xattred", 0o755), Xattr("xattred", "user.kiln", "x"),
		Mkdir("recreated", 0o755), Opaque("recreated")))
}

// KeepDirs keeps a dir in Upper that the step made overlay copy up without changing
// it. The implementations differ: only overlay copies dirs up, so only overlay has
// anything to keep; the copy fallback never puts an unchanged dir in Upper, and KeepDirs
// has no effect there. The solver uses KeepDirs only with overlay (solver/pending.go).
func testKeepDirs(e *env) {
	e.ingest("base", Mkdir("etc", 0o755), Mkdir("usr", 0o755), oldTimes)
	a := e.prepare("base")
	apply(e.t, a.Root,
		WriteFile("etc/stub", "", 0o644), Remove("etc/stub"), Chtimes("etc", old),
		WriteFile("usr/stub", "", 0o644), Remove("usr/stub"), Chtimes("usr", old))
	a.KeepDirs([]string{"etc"})
	if err := a.Unmount(e.ctx); err != nil {
		e.t.Fatal(err)
	}
	want := Build(e.t)
	if e.s.Overlay() {
		want = Build(e.t, Mkdir("etc", 0o755))
	}
	checkTree(e.t, "Upper", describe(e.t, a.Upper), want)
}

// Commit renames Upper into committed/<id>: the same inodes, nothing copied; the
// Active's dirs are gone, its parents untouched, and it cannot be committed again.
func testCommitRenames(e *env) {
	e.ingest("base", baseTree...)
	parent := describe(e.t, e.s.Path("base"), WithTimes)
	a := e.prepare("base")
	apply(e.t, a.Root, WriteFile("new", "n", 0o644), WriteFile("a", "changed", 0o644))
	if err := a.Unmount(e.ctx); err != nil {
		e.t.Fatal(err)
	}
	upperIno, fileIno := inode(e, a.Upper), inode(e, filepath.Join(a.Upper, "new"))
	diff := describe(e.t, a.Upper, WithTimes)
	if err := a.Commit(e.ctx, "l1"); err != nil {
		e.t.Fatal(err)
	}
	if inode(e, e.s.Path("l1")) != upperIno || inode(e, filepath.Join(e.s.Path("l1"), "new")) != fileIno {
		e.t.Error("the committed snapshot is not the renamed upper dir")
	}
	checkTree(e.t, "committed snapshot", describe(e.t, e.s.Path("l1"), WithTimes), diff)
	checkTree(e.t, "parent after Commit", describe(e.t, e.s.Path("base"), WithTimes), parent)
	e.checkEmptyWorkDirs("after Commit")
	e.checkNoMounts("after Commit")
	if err := a.Commit(e.ctx, "l2"); err == nil {
		e.t.Error("a second Commit succeeded")
	}
	if e.s.Exists("l2") {
		e.t.Error("a second Commit created a snapshot")
	}
	if err := a.Discard(e.ctx); err != nil {
		e.t.Errorf("Discard after Commit: %v", err)
	}
	if !e.s.Exists("l1") {
		e.t.Error("Discard after Commit removed the snapshot")
	}
}

func inode(e *env, p string) uint64 {
	e.t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		e.t.Fatal(err)
	}
	return st.Ino
}

// Committing to an id that exists keeps the existing snapshot (another build
// committed that step first) and drops the new diff without an error, also when the
// existing snapshot is empty (a step that changed nothing).
func testCommitExistingID(e *env) {
	for _, first := range [][]Applier{{WriteFile("first", "1", 0o644)}, nil} {
		id := fmt.Sprintf("x%d", len(first))
		e.commit(id, nil, first...)
		committed := describe(e.t, e.s.Path(id), WithTimes)
		a := e.prepare()
		apply(e.t, a.Root, WriteFile("second", "2", 0o644))
		if err := a.Commit(e.ctx, id); err != nil {
			e.t.Errorf("Commit to existing %s: %v", id, err)
		}
		checkTree(e.t, "existing snapshot "+id, describe(e.t, e.s.Path(id), WithTimes), committed)
		e.checkEmptyWorkDirs("after Commit to an existing id")
	}
}
