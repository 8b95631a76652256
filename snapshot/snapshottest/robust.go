package snapshottest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// A snapshot may appear twice in a stack (two steps with one result): the stack
// mounts and shows what applying each layer in turn shows. Here the repeated layer
// has a whiteout and an opaque dir that must hide what the layer between puts there.
func testRepeatedParent(e *env) {
	e.ingest("a", WriteFile("a", "a", 0o644), WriteFile("shared", "from a", 0o644),
		Mkdir("o", 0o755), Opaque("o"), WriteFile("o/a", "a", 0o644), Whiteout("w"))
	e.ingest("b", WriteFile("b", "b", 0o644), WriteFile("shared", "from b", 0o644),
		Mkdir("o", 0o755), WriteFile("o/b", "b", 0o644), WriteFile("w", "w", 0o644))
	want := Build(e.t, WriteFile("a", "a", 0o644), WriteFile("b", "b", 0o644), WriteFile("shared", "from a", 0o644),
		Mkdir("o", 0o755), WriteFile("o/a", "a", 0o644))
	checkTree(e.t, "View(a, b, a)", describe(e.t, e.view("a", "b", "a")), want)
	a := e.prepare("a", "b", "a")
	checkTree(e.t, "Prepare(a, b, a)", describe(e.t, a.Root), want)
	checkTree(e.t, "View(a, a)", describe(e.t, e.view("a", "a")),
		Build(e.t, WriteFile("a", "a", 0o644), WriteFile("shared", "from a", 0o644), Mkdir("o", 0o755), WriteFile("o/a", "a", 0o644)))
}

// An operation started with a cancelled context fails with its error, does no work
// and leaves nothing; a fill that sees its context cancelled leaves no snapshot. Unmount with a
// cancelled context may finish or fail, but either way a second Unmount gives
// exactly the diff.
func testCancellation(e *env) {
	e.ingest("base", baseTree...)
	cancelled, cancel := context.WithCancel(e.ctx)
	cancel()
	if a, err := e.s.Prepare(cancelled, []string{"base"}); !errors.Is(err, context.Canceled) {
		if err == nil {
			a.Discard(e.ctx)
		}
		e.t.Errorf("Prepare with a cancelled context = %v, want context.Canceled", err)
	}
	if _, release, err := e.s.View(cancelled, []string{"base"}); !errors.Is(err, context.Canceled) {
		if err == nil {
			release()
		}
		e.t.Errorf("View with a cancelled context = %v, want context.Canceled", err)
	}
	called := false
	if err := e.s.Ingest(cancelled, "id", func(string) error { called = true; return nil }); !errors.Is(err, context.Canceled) || called {
		e.t.Errorf("Ingest with a cancelled context = %v, fill called %v; want context.Canceled, not called", err, called)
	}
	during, cancel := context.WithCancel(e.ctx)
	err := e.s.Ingest(during, "id", func(dir string) error {
		cancel()
		return Apply(dir, WriteFile("f", "f", 0o644))
	})
	if !errors.Is(err, context.Canceled) {
		e.t.Errorf("Ingest cancelled during fill = %v, want context.Canceled", err)
	}
	if e.s.Exists("id") {
		e.t.Error("a cancelled Ingest created the snapshot")
	}
	e.checkEmptyWorkDirs("after cancelled operations")
	e.checkNoMounts("after cancelled operations")

	a := e.prepare("base")
	// The stub makes overlay copy up untouched/ for nothing, so its Unmount has
	// pruning to do after the cancellation.
	apply(e.t, a.Root, append(step, WriteFile("untouched/stub", "", 0o644), Remove("untouched/stub"), Chtimes("untouched", old))...)
	if err := a.Unmount(cancelled); err != nil && !errors.Is(err, context.Canceled) {
		e.t.Errorf("Unmount with a cancelled context = %v, want nil or context.Canceled", err)
	}
	if err := a.Unmount(e.ctx); err != nil {
		e.t.Fatalf("Unmount after a cancelled one: %v", err)
	}
	checkTree(e.t, "Upper after a cancelled Unmount and a second one", describe(e.t, a.Upper), Build(e.t, stepDiff...))
}

// capNetBindService is a security.capability value (VFS_CAP_REVISION_2, effective)
// granting CAP_NET_BIND_SERVICE, what setcap cap_net_bind_service+ep writes.
const capNetBindService = "\x01\x00\x00\x02\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"

// specialTree holds what a rootfs has besides plain files.
var specialTree = []Applier{
	WriteFile("suid", "suid", 0o4755),
	Mkdir("sgid", 0o2775),
	Mkdir("sticky", 0o1777),
	WriteFile("owned", "owned", 0o640), Chown("owned", 1000, 1000),
	Symlink("lnk", "owned"), Chown("lnk", 1000, 1000), Xattr("lnk", "trusted.kiln", "on a symlink"),
	WriteFile("h1", "h", 0o644), Hardlink("h2", "h1"),
	Mknod("fifo", unix.S_IFIFO, 0o644, 0, 0),
	Mknod("null", unix.S_IFCHR, 0o666, 1, 3),
	Mknod("loop", unix.S_IFBLK, 0o660, 7, 0),
	WriteFile("xf", "x", 0o755), Xattr("xf", "user.kiln", "1"), Xattr("xf", "trusted.kiln", "2"),
	Xattr("xf", "security.capability", capNetBindService),
	Mkdir("xd", 0o755), Xattr("xd", "user.kiln", "d"),
	oldTimes,
}

// Hard links, xattrs (user, trusted, capabilities, on dirs and symlinks), setuid,
// setgid and sticky modes, owners, fifos and devices survive every path: into a
// snapshot, up into Root, into the diff (a new link to a parent's file brings the
// file along, as overlay's copy-up does), and back through a View.
func testHardLinksXattrsModes(e *env) {
	e.ingest("base", specialTree...)
	checkTree(e.t, "ingested", describe(e.t, e.s.Path("base"), WithTimes), buildWithTimes(e, specialTree...))
	a := e.prepare("base")
	want := describe(e.t, e.s.Path("base"), WithTimes)
	want[0] = Build(e.t)[0]
	checkTree(e.t, "Root of Prepare(base)", describe(e.t, a.Root, WithTimes), want)
	apply(e.t, a.Root,
		WriteFile("newsuid", "n", 0o755), Chown("newsuid", 1000, 1000), Chmod("newsuid", 0o4755),
		Chown("suid", 1000, 1000), // clears setuid, as on any filesystem
		WriteFile("n1", "n", 0o644), Hardlink("n2", "n1"),
		Hardlink("owned-link", "owned"),
		Xattr("xf", "user.kiln", "changed"),
		Chmod("sticky", 0o1770),
		Mknod("newfifo", unix.S_IFIFO, 0o600, 0, 0),
		Mkdir("newsgid", 0o2750),
		Xattr("xd", "user.more", "m"),
	)
	seen := describe(e.t, a.Root, WithTimes)
	if err := a.Unmount(e.ctx); err != nil {
		e.t.Fatal(err)
	}
	checkTree(e.t, "Upper", describe(e.t, a.Upper), Build(e.t,
		WriteFile("newsuid", "n", 0o755), Chown("newsuid", 1000, 1000), Chmod("newsuid", 0o4755),
		WriteFile("suid", "suid", 0o4755), Chown("suid", 1000, 1000),
		WriteFile("n1", "n", 0o644), Hardlink("n2", "n1"),
		WriteFile("owned", "owned", 0o640), Chown("owned", 1000, 1000), Hardlink("owned-link", "owned"),
		WriteFile("xf", "x", 0o755), Xattr("xf", "user.kiln", "changed"), Xattr("xf", "trusted.kiln", "2"),
		Xattr("xf", "security.capability", capNetBindService),
		Mkdir("sticky", 0o1770),
		Mknod("newfifo", unix.S_IFIFO, 0o600, 0, 0),
		Mkdir("newsgid", 0o2750),
		Mkdir("xd", 0o755), Xattr("xd", "user.kiln", "d"), Xattr("xd", "user.more", "m"),
	))
	if err := a.Commit(e.ctx, "l1"); err != nil {
		e.t.Fatal(err)
	}
	checkTree(e.t, "View(base, l1) against the step's Root", describe(e.t, e.view("base", "l1"), WithTimes), seen)
}

// Changing one name of a parent's hard-linked file. The implementations differ, as
// overlayfs documents: with index=off (snapshot's overlayOptions) a copy-up breaks
// the link, so overlay's Root and diff change h1 alone and h2 stays the parent's
// file; the copy fallback has one real inode behind both names, so both change and
// the diff has both, still linked. Docker's and BuildKit's overlay do the former.
func testChangeHardLinkedParentFile(e *env) {
	e.ingest("base", WriteFile("h1", "h", 0o644), Hardlink("h2", "h1"))
	a := e.prepare("base")
	apply(e.t, a.Root, Chmod("h1", 0o600))
	if err := a.Unmount(e.ctx); err != nil {
		e.t.Fatal(err)
	}
	want := Build(e.t, WriteFile("h1", "h", 0o600), Hardlink("h2", "h1"))
	if e.s.Overlay() {
		want = Build(e.t, WriteFile("h1", "h", 0o600))
	}
	checkTree(e.t, "Upper", describe(e.t, a.Upper), want)
}

// No operation follows a symlink out of the tree: not stacking a layer whose dir
// replaces a parent's symlink to outside, not diffing a step that replaced dirs with
// such symlinks or chowned and set xattrs on them, not committing, viewing or
// discarding any of it. The dir the links point at is compared before and after.
func testSymlinksNotFollowed(e *env) {
	apply(e.t, filepath.Dir(e.outside), Mkdir("outside", 0o700), WriteFile("outside/secret", "s", 0o600),
		Mkdir("outside/sub", 0o755), Xattr("outside/sub", "user.kiln", "o"), func(string) error { return oldTimes(e.outside) })
	outside := describe(e.t, e.outside, WithTimes)
	rel := strings.Repeat("../", 40) + strings.TrimPrefix(e.outside, "/")
	e.ingest("l1", Symlink("abs", e.outside), Symlink("rel", rel), Symlink("dirlink", e.outside),
		Mkdir("dd", 0o755), WriteFile("dd/f", "f", 0o644))
	// (No whiteout below l2's abs: overlay lists a whiteout in a dir it does not merge
	// with a lower one, and stat then fails on it. No kiln layer has one there.)
	e.ingest("l2", Mkdir("dirlink", 0o755), WriteFile("dirlink/f", "inside", 0o644),
		Mkdir("abs", 0o755), Mkdir("dirlink/sub", 0o755))
	checkOutside := func(when string) {
		e.t.Helper()
		checkTree(e.t, "outside dir "+when, describe(e.t, e.outside, WithTimes), outside)
	}
	stacked := Build(e.t, Mkdir("abs", 0o755), Symlink("rel", rel), Mkdir("dirlink", 0o755),
		WriteFile("dirlink/f", "inside", 0o644), Mkdir("dirlink/sub", 0o755), Mkdir("dd", 0o755), WriteFile("dd/f", "f", 0o644))
	checkTree(e.t, "View(l1, l2)", describe(e.t, e.view("l1", "l2")), stacked)
	a := e.prepare("l1", "l2")
	checkTree(e.t, "Prepare(l1, l2)", describe(e.t, a.Root), stacked)
	checkOutside("after Prepare")

	apply(e.t, a.Root, RemoveAll("dd"), Symlink("dd", e.outside), Chown("rel", 1000, 1000),
		Xattr("rel", "trusted.kiln", "x"), RemoveAll("dirlink"), Symlink("dirlink", rel), WriteFile("abs/new", "n", 0o644))
	seen := describe(e.t, a.Root, WithTimes)
	if err := a.Unmount(e.ctx); err != nil {
		e.t.Fatal(err)
	}
	checkTree(e.t, "Upper", describe(e.t, a.Upper), Build(e.t, Symlink("dd", e.outside),
		Symlink("rel", rel), Chown("rel", 1000, 1000), Xattr("rel", "trusted.kiln", "x"),
		Symlink("dirlink", rel), Mkdir("abs", 0o755), WriteFile("abs/new", "n", 0o644)))
	if err := a.Commit(e.ctx, "l3"); err != nil {
		e.t.Fatal(err)
	}
	checkOutside("after Commit")
	checkTree(e.t, "View(l1, l2, l3)", describe(e.t, e.view("l1", "l2", "l3"), WithTimes), seen)

	// A later layer puts dirs back where the links are.
	b := e.prepare("l1", "l2", "l3")
	apply(e.t, b.Root, Remove("dd"), Mkdir("dd", 0o755), WriteFile("dd/g", "g", 0o644), Remove("dirlink"), Mkdir("dirlink", 0o700))
	if err := b.Unmount(e.ctx); err != nil {
		e.t.Fatal(err)
	}
	checkTree(e.t, "Upper of the second step", describe(e.t, b.Upper), Build(e.t,
		Mkdir("dd", 0o755), Opaque("dd"), WriteFile("dd/g", "g", 0o644), Mkdir("dirlink", 0o700), Opaque("dirlink")))
	if err := b.Commit(e.ctx, "l4"); err != nil {
		e.t.Fatal(err)
	}
	e.view("l1", "l2", "l3", "l4")
	c := e.prepare("l1", "l2", "l3", "l4")
	if err := c.Discard(e.ctx); err != nil {
		e.t.Fatal(err)
	}
	checkOutside("after everything")
	if _, err := os.Lstat(filepath.Join(e.outside, "g")); err == nil {
		e.t.Error("a file was written through a symlink")
	}
}
