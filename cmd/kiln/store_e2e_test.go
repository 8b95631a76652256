package main

import (
	"encoding/binary"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
