package main

import (
	"encoding/binary"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kiln-build/kiln/internal/lease"
)

// The store under damage and crashes, end to end (issue 15).

// boltPage is a page that a meta page names: the offset of its id in the meta page.
type boltPage int

const (
	rootPage     boltPage = 32 // offset in a meta page of the root bucket's page id
	freelistPage boltPage = 48 // and of the freelist's
)

const boltPageSize = 4096

// livePage returns the id of a live page of the bbolt file data, read from the newer of
// its two meta pages (bbolt's layout: a 16-byte page header, then magic, version, page
// size and flags, the root bucket, the freelist, the high-water mark and the
// transaction id).
func livePage(t *testing.T, data []byte, which boltPage) int {
	t.Helper()
	meta := data[:boltPageSize]
	if binary.LittleEndian.Uint64(data[boltPageSize+64:]) > binary.LittleEndian.Uint64(data[64:]) {
		meta = data[boltPageSize : 2*boltPageSize]
	}
	id := int(binary.LittleEndian.Uint64(meta[which:]))
	if id < 2 || (id+1)*boltPageSize > len(data) {
		t.Fatalf("meta.db names page %d, outside its %d bytes", id, len(data))
	}
	return id
}

// scribbleIndex writes random bytes over one live page of root/meta.db.
func scribbleIndex(t *testing.T, root string, which boltPage) {
	t.Helper()
	p := filepath.Join(root, "meta.db")
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	id := livePage(t, data, which)
	rand.New(rand.NewSource(int64(id))).Read(data[id*boltPageSize : (id+1)*boltPageSize])
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// truncateIndex cuts root/meta.db just before its root bucket's page: the tail of a
// small index is free pages, whose loss bbolt never notices.
func truncateIndex(t *testing.T, root string) {
	t.Helper()
	p := filepath.Join(root, "meta.db")
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, int64(livePage(t, data, rootPage)*boltPageSize)); err != nil {
		t.Fatal(err)
	}
}

// A damaged meta.db (truncated, or a page scribbled over) made every build panic
// ("invalid freelist page", or a fatal SIGBUS). Now the build sets it aside, says so
// once, rebuilds what it must and makes the same image; the next build is cached.
func TestStoreDamagedIndex(t *testing.T) {
	host := busyboxRegistry(t)
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, root string)
	}{
		{"truncated", truncateIndex},
		{"scribbled freelist", func(t *testing.T, root string) { scribbleIndex(t, root, freelistPage) }},
		{"scribbled root bucket", func(t *testing.T, root string) { scribbleIndex(t, root, rootPage) }},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			root, _ := e2e(t)
			dir := project(t, map[string]string{
				"Dockerfile": fmt.Sprintf("FROM %s/busybox\nCOPY a.txt /a.txt\nRUN echo built > /built.txt\n", host),
				"a.txt":      "a\n",
			})
			epoch := []string{"--build-arg", "SOURCE_DATE_EPOCH=1700000000"}
			first := buildPlain(t, dir, root, epoch...)
			tc.damage(t, root)

			again := buildPlain(t, dir, root, epoch...)
			if again.digest != first.digest {
				t.Errorf("image after damage %s, want %s", again.digest, first.digest)
			}
			if n := strings.Count(again.log, "WARNING: the cache index"); n != 1 {
				t.Errorf("warned %d times about the index, want once:\n%s", n, again.log)
			}
			if aside, _ := filepath.Glob(filepath.Join(root, "meta.db.damaged-*")); len(aside) != 1 {
				t.Errorf("damaged index kept as %v, want one copy", aside)
			}
			third := buildPlain(t, dir, root, epoch...)
			allCached(t, third.steps)
			if strings.Contains(third.log, "WARNING: the cache index") {
				t.Errorf("warned again on a healthy index:\n%s", third.log)
			}
		})
	}
}

// leftover is one path a killed (or a live) build leaves, planted by the test.
type leftover struct {
	path string
	dir  bool
	live bool // leased by this test process, as a live build would hold it
}

// plant creates each leftover, leasing the live ones until the test ends.
func plant(t *testing.T, items []leftover) {
	t.Helper()
	for _, it := range items {
		if err := os.MkdirAll(filepath.Dir(it.path), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		if it.dir {
			err = os.Mkdir(it.path, 0o700)
		} else {
			err = os.WriteFile(it.path, []byte("partial"), 0o600)
		}
		if err != nil {
			t.Fatal(err)
		}
		if it.live {
			l, err := lease.Take(it.path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Release() })
		}
	}
}

// A build that starts removes what killed builds left, and only that: partial pulls
// and scratch dirs in the store's tmp/ (their owner's lease is free), snapshot work
// dirs, the temp file of a killed write to the same output, and step cgroups (with no
// RUN step in the build). The same things held by a live build stay.
func TestStoreStartRemovesLeftovers(t *testing.T) {
	root, out := e2e(t)
	host := busyboxRegistry(t)
	dir := project(t, map[string]string{
		"Dockerfile":     fmt.Sprintf("FROM %s/busybox\nCOPY a.txt /a.txt\n", host),
		"run.Dockerfile": fmt.Sprintf("FROM %s/busybox\nRUN true\n", host),
		"a.txt":          "a\n",
	})
	// The store's layout, and a RUN step's cgroup parents to plant stale cgroups in.
	mustBuild(t, dir, "--root", root, "-f", filepath.Join(dir, "run.Dockerfile"), ".")

	tmp := filepath.Join(root, "tmp")
	const deadID, liveID = "00000000000000d1", "00000000000000a1"
	items := []leftover{
		{path: filepath.Join(tmp, deadID+".owner")},
		{path: filepath.Join(tmp, deadID+"-incoming-1")},
		{path: filepath.Join(tmp, deadID+"-kiln-heredoc-2"), dir: true},
		{path: filepath.Join(tmp, liveID+".owner"), live: true},
		{path: filepath.Join(tmp, liveID+"-incoming-3")},
		{path: filepath.Join(tmp, liveID+"-kiln-bind-rw-4"), dir: true},
		{path: filepath.Join(root, "snapshots", "active", "00000000000000d2"), dir: true},
		{path: filepath.Join(root, "snapshots", "tmp", "00000000000000a2"), dir: true, live: true},
		{path: filepath.Join(out, ".image.tar.kiln-tmp-dead")},
		{path: filepath.Join(out, ".image.tar.kiln-tmp-live"), live: true},
	}
	parents, _ := filepath.Glob("/sys/fs/cgroup/*/kiln")
	if fi, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil && fi.Mode().IsRegular() {
		parents = []string{"/sys/fs/cgroup/kiln"}
	}
	if len(parents) == 0 {
		t.Fatal("no kiln cgroup parent after a RUN step")
	}
	var staleCgroups []string
	for _, p := range parents {
		stale, held := filepath.Join(p, "step-00000000000000d3"), filepath.Join(p, "step-00000000000000a3")
		items = append(items, leftover{path: stale, dir: true}, leftover{path: held, dir: true, live: true})
		staleCgroups = append(staleCgroups, stale)
		t.Cleanup(func() { os.Remove(stale); os.Remove(held) })
	}
	plant(t, items)
	// A killed kiln's cgroup is older than a step's set-up time (a young one with a
	// free lease may be a live step's, between its mkdir and its lease).
	old := time.Now().Add(-time.Hour)
	for _, d := range staleCgroups {
		if err := os.Chtimes(d, old, old); err != nil {
			t.Fatal(err)
		}
	}

	mustBuild(t, dir, "--root", root, "-o", "type=oci,dest="+filepath.Join(out, "image.tar"), ".")
	readOCI(t, filepath.Join(out, "image.tar"))
	liveOwned := map[string]bool{liveID + "-incoming-3": true, liveID + "-kiln-bind-rw-4": true}
	for _, it := range items {
		_, err := os.Stat(it.path)
		switch kept := err == nil; {
		case it.live || liveOwned[filepath.Base(it.path)]:
			if !kept {
				t.Errorf("live build's %s was removed", it.path)
			}
		case kept:
			t.Errorf("leftover %s was not removed", it.path)
		}
	}
}
