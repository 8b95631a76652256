package snapshottest

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/snapshot"
)

// View shows the stacked tree of its parents, cannot change them, and its release
// leaves nothing mounted and nothing in active/; releasing twice is harmless.
func testView(e *env) {
	e.ingest("base", baseTree...)
	e.commit("l1", []string{"base"}, step...)
	want := Build(e.t, append(append([]Applier{}, baseTree...), step...)...)
	parents := map[string]Tree{}
	for _, id := range []string{"base", "l1"} {
		parents[id] = describe(e.t, e.s.Path(id), WithTimes)
	}
	root, release, err := e.s.View(e.ctx, []string{"base", "l1"})
	if err != nil {
		e.t.Fatal(err)
	}
	released := false
	e.t.Cleanup(func() {
		if !released {
			release()
		}
	})
	checkTree(e.t, "View(base, l1)", describe(e.t, root), want)

	// The implementations differ: an overlay view is mounted read-only, a copy-mode
	// view is a private copy whose changes release throws away (documented on View).
	err = os.WriteFile(filepath.Join(root, "a"), []byte("written"), 0o644)
	if e.s.Overlay() && !errors.Is(err, unix.EROFS) {
		e.t.Errorf("write to an overlay view: %v, want EROFS", err)
	}
	os.RemoveAll(filepath.Join(root, "keep"))
	released = true
	if err := release(); err != nil {
		e.t.Fatal(err)
	}
	if err := release(); err != nil {
		e.t.Errorf("second release: %v", err)
	}
	for id, tree := range parents {
		checkTree(e.t, "parent "+id+" after the view", describe(e.t, e.s.Path(id), WithTimes), tree)
	}
	if _, err := os.Lstat(root); !errors.Is(err, fs.ErrNotExist) {
		e.t.Errorf("view root still there after release: %v", err)
	}
	e.checkNoMounts("after release")
	e.checkEmptyWorkDirs("after release")
}

// A View of nothing is an empty dir, and a View of a layer alone never shows its
// whiteout devices or opaque xattrs: only stacking gives them meaning.
func testViewHidesWhiteouts(e *env) {
	e.ingest("w", WriteFile("f", "f", 0o644), Whiteout("gone"), Mkdir("o", 0o755), Opaque("o"), WriteFile("o/x", "x", 0o644))
	checkTree(e.t, "View(nil)", describe(e.t, e.view()), Build(e.t))
	checkTree(e.t, "View(w)", describe(e.t, e.view("w")),
		Build(e.t, WriteFile("f", "f", 0o644), Mkdir("o", 0o755), WriteFile("o/x", "x", 0o644)))
}

// Ingest fills an empty dir outside committed/ and renames it into place: the id
// does not exist while fill runs, and afterwards holds exactly what fill wrote.
func testIngest(e *env) {
	tree := append([]Applier{WriteFile("f", "x", 0o644), Mkdir("d", 0o700), Whiteout("d/w"), Mkdir("o", 0o755), Opaque("o")}, oldTimes)
	var filled uint64
	err := e.s.Ingest(e.ctx, "id", func(dir string) error {
		filled = inode(e, dir)
		if got := entries(e.t, dir); len(got) != 0 {
			e.t.Errorf("fill got a dir holding %v", got)
		}
		if strings.HasPrefix(dir, filepath.Join(e.root, "committed")) {
			e.t.Errorf("fill dir %s is under committed/", dir)
		}
		if err := Apply(dir, tree...); err != nil {
			return err
		}
		if e.s.Exists("id") || len(entries(e.t, filepath.Join(e.root, "committed"))) > 0 {
			e.t.Error("the snapshot is visible before fill returned")
		}
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	if !e.s.Exists("id") {
		e.t.Fatal("Ingest did not create the snapshot")
	}
	if inode(e, e.s.Path("id")) != filled {
		e.t.Error("the snapshot is not the renamed fill dir")
	}
	checkTree(e.t, "ingested snapshot", describe(e.t, e.s.Path("id"), WithTimes), buildWithTimes(e, tree...))
	e.checkEmptyWorkDirs("after Ingest")
}

// buildWithTimes is Build, described WithTimes (the appliers must set every time).
func buildWithTimes(e *env, as ...Applier) Tree {
	e.t.Helper()
	dir := filepath.Join(e.t.TempDir(), "tree")
	if err := os.Mkdir(dir, 0o755); err != nil {
		e.t.Fatal(err)
	}
	apply(e.t, dir, as...)
	return describe(e.t, dir, WithTimes)
}

var errFill = errors.New("fill failed")

// A failing fill leaves nothing behind, and Ingest returns its error.
func testIngestFailingFill(e *env) {
	err := e.s.Ingest(e.ctx, "id", func(dir string) error {
		if err := Apply(dir, WriteFile("half", "written", 0o644), Mkdir("d", 0o755)); err != nil {
			return err
		}
		return errFill
	})
	if !errors.Is(err, errFill) {
		e.t.Errorf("Ingest = %v, want the fill's error", err)
	}
	if e.s.Exists("id") {
		e.t.Error("a failed Ingest created the snapshot")
	}
	if got := entries(e.t, filepath.Join(e.root, "committed")); len(got) > 0 {
		e.t.Errorf("committed/ holds %v after a failed Ingest", got)
	}
	e.checkEmptyWorkDirs("after a failed Ingest")
}

// Ingesting an id that exists does nothing: fill is not called.
func testIngestExistingID(e *env) {
	e.ingest("id", WriteFile("first", "1", 0o644))
	before := describe(e.t, e.s.Path("id"), WithTimes)
	called := false
	err := e.s.Ingest(e.ctx, "id", func(dir string) error {
		called = true
		return Apply(dir, WriteFile("second", "2", 0o644))
	})
	if err != nil || called {
		e.t.Errorf("Ingest of an existing id = %v, fill called %v; want nil, not called", err, called)
	}
	checkTree(e.t, "existing snapshot", describe(e.t, e.s.Path("id"), WithTimes), before)
	e.checkEmptyWorkDirs("after Ingest of an existing id")
}

// Remove deletes one snapshot (read-only dirs in it too) and nothing else; removing
// a missing id is not an error.
func testRemove(e *env) {
	e.ingest("a", Mkdir("ro", 0o555), WriteFile("ro/f", "f", 0o444), Chmod("ro", 0o555))
	e.ingest("b", WriteFile("b", "b", 0o644))
	b := describe(e.t, e.s.Path("b"), WithTimes)
	if err := e.s.Remove(e.ctx, "a"); err != nil {
		e.t.Fatal(err)
	}
	if e.s.Exists("a") {
		e.t.Error("a exists after Remove")
	}
	if _, err := os.Lstat(filepath.Join(e.root, "committed", "a")); !errors.Is(err, fs.ErrNotExist) {
		e.t.Errorf("committed/a after Remove: %v", err)
	}
	if ids, err := e.s.List(); err != nil || !slices.Equal(ids, []string{"b"}) {
		e.t.Errorf("List = %q, %v; want [b]", ids, err)
	}
	checkTree(e.t, "other snapshot", describe(e.t, e.s.Path("b"), WithTimes), b)
	if err := e.s.Remove(e.ctx, "a"); err != nil {
		e.t.Errorf("Remove of a missing id: %v", err)
	}
	e.checkEmptyWorkDirs("after Remove")
}

// List returns the committed ids, sorted, and neither Actives nor stray files;
// Exists agrees with it.
func testListAndExists(e *env) {
	if ids, err := e.s.List(); err != nil || len(ids) != 0 {
		e.t.Errorf("List of an empty root = %q, %v", ids, err)
	}
	for _, id := range []string{"c", "a", "b"} {
		e.ingest(id)
	}
	a := e.prepare("a")
	apply(e.t, a.Root, WriteFile("f", "", 0o644))
	if err := os.WriteFile(filepath.Join(e.root, "committed", "stray"), nil, 0o644); err != nil {
		e.t.Fatal(err)
	}
	defer os.Remove(filepath.Join(e.root, "committed", "stray"))
	ids, err := e.s.List()
	if err != nil || !slices.Equal(ids, []string{"a", "b", "c"}) {
		e.t.Errorf("List = %q, %v; want [a b c]", ids, err)
	}
	for id, want := range map[string]bool{"a": true, "b": true, "c": true, "d": false, "stray": false} {
		if got := e.s.Exists(id); got != want {
			e.t.Errorf("Exists(%s) = %v, want %v", id, got, want)
		}
	}
}

// Usage is the disk space of a snapshot's files, hard links counted once.
func testUsage(e *env) {
	big := strings.Repeat("k", 1<<20)
	e.ingest("one", WriteFile("f", big, 0o644))
	e.ingest("linked", WriteFile("f", big, 0o644), Hardlink("g", "f"))
	e.ingest("two", WriteFile("f", big, 0o644), WriteFile("g", big, 0o644))
	usage := map[string]int64{}
	for _, id := range []string{"one", "linked", "two"} {
		u, err := e.s.Usage(e.ctx, id)
		if err != nil {
			e.t.Fatal(err)
		}
		usage[id] = u
	}
	if usage["one"] < 1<<20 || usage["one"] > 1<<20+64<<10 {
		e.t.Errorf("Usage of a 1 MiB file = %d", usage["one"])
	}
	if usage["linked"] != usage["one"] {
		e.t.Errorf("Usage with a hard link = %d, want %d (counted once)", usage["linked"], usage["one"])
	}
	if usage["two"] < usage["one"]+1<<20 {
		e.t.Errorf("Usage of two 1 MiB files = %d", usage["two"])
	}
	if _, err := e.s.Usage(e.ctx, "missing"); !errors.Is(err, fs.ErrNotExist) {
		e.t.Errorf("Usage of a missing id = %v, want ErrNotExist", err)
	}
}

// Every method refuses an id that cannot name a dir or go into mount options, and
// touches nothing when it does.
func testInvalidIDs(e *env) {
	e.ingest("ok")
	long := strings.Repeat("a", 255)
	if err := snapshot.ValidateID(long); err != nil {
		e.t.Errorf("ValidateID of 255 bytes: %v", err)
	}
	e.ingest(long)
	for _, id := range []string{"", ".", "..", "a/b", "../ok", "/abs", "a:b", "a,b", "a\x00b", long + "a"} {
		if snapshot.ValidateID(id) == nil {
			e.t.Errorf("ValidateID(%q) accepted", id)
		}
		if e.s.Exists(id) || e.s.Path(id) != "" {
			e.t.Errorf("Exists(%q) = %v, Path = %q", id, e.s.Exists(id), e.s.Path(id))
		}
		if a, err := e.s.Prepare(e.ctx, []string{"ok", id}); err == nil {
			a.Discard(e.ctx)
			e.t.Errorf("Prepare with parent %q accepted", id)
		}
		if _, release, err := e.s.View(e.ctx, []string{id}); err == nil {
			release()
			e.t.Errorf("View of %q accepted", id)
		}
		called := false
		if err := e.s.Ingest(e.ctx, id, func(string) error { called = true; return nil }); err == nil || called {
			e.t.Errorf("Ingest(%q) = %v, fill called %v", id, err, called)
		}
		if err := e.s.Remove(e.ctx, id); err == nil {
			e.t.Errorf("Remove(%q) accepted", id)
		}
		if _, err := e.s.Usage(e.ctx, id); err == nil {
			e.t.Errorf("Usage(%q) accepted", id)
		}
	}
	a := e.prepare("ok")
	if err := a.Commit(e.ctx, "a/b"); err == nil {
		e.t.Error("Commit(a/b) accepted")
	}
	if err := a.Commit(e.ctx, "committed-after-refusal"); err != nil {
		e.t.Errorf("Commit after a refused id: %v", err)
	}
	if _, err := e.s.Prepare(e.ctx, []string{"missing"}); !errors.Is(err, fs.ErrNotExist) {
		e.t.Errorf("Prepare on a missing parent = %v, want ErrNotExist", err)
	}
	if ids, _ := e.s.List(); !slices.Equal(ids, []string{long, "committed-after-refusal", "ok"}) {
		e.t.Errorf("List = %q", ids)
	}
	e.checkEmptyWorkDirs("after refused ids")
}

// Discard removes everything an Active made, whatever state a failure left it in,
// and leaves its parents as they were.
func testDiscardAfterFailure(e *env) {
	e.ingest("base", baseTree...)
	parent := describe(e.t, e.s.Path("base"), WithTimes)
	for _, tc := range []struct {
		name string
		fail func(a *snapshot.Active) // what happened before Discard
	}{
		{"a step that failed halfway", func(a *snapshot.Active) { apply(e.t, a.Root, step[:8]...) }},
		{"after Unmount", func(a *snapshot.Active) {
			apply(e.t, a.Root, step...)
			if err := a.Unmount(e.ctx); err != nil {
				e.t.Fatal(err)
			}
		}},
		{"after a refused Commit", func(a *snapshot.Active) {
			apply(e.t, a.Root, step...)
			if err := a.Commit(e.ctx, "bad/id"); err == nil {
				e.t.Fatal("Commit(bad/id) accepted")
			}
		}},
		{"a busy Root", func(a *snapshot.Active) {
			// A process spawned by the step may still hold a file in Root.
			f, err := os.Open(filepath.Join(a.Root, "a"))
			if err != nil {
				e.t.Fatal(err)
			}
			e.t.Cleanup(func() { f.Close() })
		}},
	} {
		a, err := e.s.Prepare(e.ctx, []string{"base"})
		if err != nil {
			e.t.Fatal(err)
		}
		tc.fail(a)
		if err := a.Discard(e.ctx); err != nil {
			e.t.Errorf("%s: Discard: %v", tc.name, err)
		}
		if err := a.Discard(e.ctx); err != nil {
			e.t.Errorf("%s: second Discard: %v", tc.name, err)
		}
		if err := a.Commit(e.ctx, "after-discard"); err == nil || e.s.Exists("after-discard") {
			e.t.Errorf("%s: Commit after Discard = %v", tc.name, err)
		}
		e.checkEmptyWorkDirs(tc.name)
		e.checkNoMounts(tc.name)
		checkTree(e.t, tc.name+": parent", describe(e.t, e.s.Path("base"), WithTimes), parent)
	}
	if ids, _ := e.s.List(); !slices.Equal(ids, []string{"base"}) {
		e.t.Errorf("List = %q after discards", ids)
	}
}
