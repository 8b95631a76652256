// Package snapshottest is the test suite every snapshot.Snapshotter implementation
// must pass, as containerd's snapshots/testsuite is for its snapshotters: the overlay
// stacker and the copy fallback run the same subtests, one per behaviour of the
// contract in snapshot/api.go, and compare whole trees (see Describe) rather than a
// few chosen files. Where the two implementations legitimately differ, the subtest
// says so in a comment next to the one branch on Snapshotter.Overlay.
//
// Every subtest gets its own snapshot root in t.TempDir and checks, after all its
// cleanups ran, that no mount is left under its temp dir and that active/ and tmp/
// are empty. The suite needs root (whiteouts, trusted xattrs, chown); it skips
// without it, and fails on CI.
package snapshottest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/testenv"
	"github.com/kiln-build/kiln/snapshot"
)

// NewFunc returns a Snapshotter rooted at root, a dir that does not exist yet.
type NewFunc func(t *testing.T, root string) *snapshot.Snapshotter

// subtests lists the suite, in the order it runs.
var subtests = []struct {
	name string
	fn   func(e *env)
}{
	{"PrepareScratch", testPrepareScratch},
	{"PrepareOneParent", testPrepareOneParent},
	{"PrepareManyParents", testPrepareManyParents},
	{"PrepareTooManyParents", testPrepareTooManyParents},
	{"WritesLandInUpperOnly", testWritesLandInUpperOnly},
	{"UnmountDiff", testUnmountDiff},
	{"UnmountPrunesUnchangedDirs", testUnmountPrunesUnchangedDirs},
	{"KeepDirs", testKeepDirs},
	{"CommitRenames", testCommitRenames},
	{"CommitExistingID", testCommitExistingID},
	{"View", testView},
	{"ViewHidesWhiteouts", testViewHidesWhiteouts},
	{"Ingest", testIngest},
	{"IngestFailingFill", testIngestFailingFill},
	{"IngestExistingID", testIngestExistingID},
	{"IngestLayer", testIngestLayer},
	{"Remove", testRemove},
	{"ListAndExists", testListAndExists},
	{"Usage", testUsage},
	{"InvalidIDs", testInvalidIDs},
	{"DiscardAfterFailure", testDiscardAfterFailure},
	{"RepeatedParent", testRepeatedParent},
	{"Cancellation", testCancellation},
	{"HardLinksXattrsModes", testHardLinksXattrsModes},
	{"ChangeHardLinkedParentFile", testChangeHardLinkedParentFile},
	{"SymlinksNotFollowed", testSymlinksNotFollowed},
	{"NewCleansLeftovers", testNewCleansLeftovers},
}

// Run runs the suite as subtests of t named name, each on a Snapshotter from
// newSnapshotter. The test binary's TestMain must call Main (NewCleansLeftovers runs
// the binary as a second kiln process).
func Run(t *testing.T, name string, newSnapshotter NewFunc) {
	t.Run(name, func(t *testing.T) {
		testenv.RequireRoot(t)
		for _, st := range subtests {
			t.Run(st.name, func(t *testing.T) { st.fn(newEnv(t, newSnapshotter)) })
		}
	})
}

// env is one subtest's snapshotter and the dirs around it.
type env struct {
	t       *testing.T
	ctx     context.Context
	s       *snapshot.Snapshotter
	root    string // the snapshot root
	outside string // a dir next to root, outside it, for symlinks to point at
	newFunc NewFunc
}

func newEnv(t *testing.T, newSnapshotter NewFunc) *env {
	dir := t.TempDir()
	e := &env{t: t, ctx: context.Background(), root: filepath.Join(dir, "snapshots"),
		outside: filepath.Join(dir, "outside"), newFunc: newSnapshotter}
	// Registered first, so it runs after the subtest's own cleanups (Discards and
	// releases) and before t.TempDir's removal.
	t.Cleanup(func() {
		if e.s != nil {
			if err := e.s.Wait(); err != nil {
				t.Errorf("background removals: %v", err)
			}
		}
		checkNothingLeft(t, dir, e.root)
	})
	e.s = newSnapshotter(t, e.root)
	return e
}

// checkNothingLeft fails t if a mount is left under dir (detaching it so the temp dir
// can be removed) or a work dir is left in active/ or tmp/.
func checkNothingLeft(t *testing.T, dir, root string) {
	t.Helper()
	mps, err := snapshot.MountsUnder(dir)
	if err != nil {
		t.Errorf("read mounts: %v", err)
	}
	if len(mps) > 0 {
		t.Errorf("mounts left behind: %v", mps)
		for _, mp := range mps {
			unix.Unmount(mp, unix.MNT_DETACH)
		}
	}
	for _, sub := range []string{"active", "tmp"} {
		if left := entries(t, filepath.Join(root, sub)); len(left) > 0 {
			t.Errorf("left in %s/: %v", sub, left)
		}
	}
}

// entries lists the names in dir ("" for a missing dir).
func entries(t testing.TB, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, len(des))
	for i, d := range des {
		names[i] = d.Name()
	}
	return names
}

// prepare calls Prepare, failing the test on error, and discards the Active at cleanup.
func (e *env) prepare(parents ...string) *snapshot.Active {
	e.t.Helper()
	a, err := e.s.Prepare(e.ctx, parents)
	if err != nil {
		e.t.Fatalf("Prepare(%q): %v", parents, err)
	}
	e.t.Cleanup(func() {
		if err := a.Discard(context.Background()); err != nil {
			e.t.Errorf("Discard: %v", err)
		}
	})
	return a
}

// commit makes snapshot id from a step applying as over parents.
func (e *env) commit(id string, parents []string, as ...Applier) {
	e.t.Helper()
	a := e.prepare(parents...)
	apply(e.t, a.Root, as...)
	if err := a.Commit(e.ctx, id); err != nil {
		e.t.Fatalf("Commit(%s): %v", id, err)
	}
}

// ingest makes snapshot id holding the overlay-format tree as.
func (e *env) ingest(id string, as ...Applier) {
	e.t.Helper()
	if err := e.s.Ingest(e.ctx, id, func(dir string) error { return Apply(dir, as...) }); err != nil {
		e.t.Fatalf("Ingest(%s): %v", id, err)
	}
}

// view calls View, failing the test on error, and releases it at cleanup.
func (e *env) view(parents ...string) string {
	e.t.Helper()
	root, release, err := e.s.View(e.ctx, parents)
	if err != nil {
		e.t.Fatalf("View(%q): %v", parents, err)
	}
	e.t.Cleanup(func() {
		if err := release(); err != nil {
			e.t.Errorf("release view: %v", err)
		}
	})
	return root
}

// checkEmptyWorkDirs fails the test unless active/ and tmp/ are empty now.
func (e *env) checkEmptyWorkDirs(when string) {
	e.t.Helper()
	if err := e.s.Wait(); err != nil {
		e.t.Errorf("%s: background removals: %v", when, err)
	}
	for _, sub := range []string{"active", "tmp"} {
		if left := entries(e.t, filepath.Join(e.root, sub)); len(left) > 0 {
			e.t.Errorf("%s: left in %s/: %v", when, sub, left)
		}
	}
}

// checkNoMounts fails the test if anything is mounted under the snapshot root now.
func (e *env) checkNoMounts(when string) {
	e.t.Helper()
	mps, err := snapshot.MountsUnder(e.root)
	if err != nil {
		e.t.Fatal(err)
	}
	if len(mps) > 0 {
		e.t.Errorf("%s: still mounted: %v", when, mps)
	}
}

// mounted reports whether p is a mount point.
func mounted(t testing.TB, p string) bool {
	t.Helper()
	mps, err := snapshot.MountsUnder(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, mp := range mps {
		if mp == p {
			return true
		}
	}
	return false
}
