package source

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// mapCache is the simplest concurrent HashCache, standing in for the bbolt-backed one.
type mapCache struct{ m sync.Map }

func (c *mapCache) Get(k string) (string, bool) {
	v, ok := c.m.Load(k)
	if !ok {
		return "", false
	}
	return v.(string), true
}
func (c *mapCache) GetMany(ks []string) []string {
	out := make([]string, len(ks))
	for i, k := range ks {
		out[i], _ = c.Get(k)
	}
	return out
}
func (c *mapCache) Put(k, v string) { c.m.Store(k, v) }

func benchTree(b *testing.B, n int) string {
	dir := b.TempDir()
	for i := range n {
		d := filepath.Join(dir, "src", fmt.Sprintf("d%03d", i%200))
		if i < 200 {
			if err := os.MkdirAll(d, 0o755); err != nil {
				b.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("f%05d.go", i)), []byte(fmt.Sprintf("package p // %d\n", i)), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	return dir
}

// BenchmarkDigestWarm is the W2 rebuild: 20,000 unchanged files, warm hash cache.
func BenchmarkDigestWarm(b *testing.B) { benchDigest(b, &mapCache{}) }

// BenchmarkDigestCold is an ephemeral runner's first digest of the W2 tree: 20,000
// files, no hash cache, so every byte is read.
func BenchmarkDigestCold(b *testing.B) { benchDigest(b, nil) }

// benchDigest times Digest of a 20,000-file context with hc, filled by one digest
// first when it is not nil.
func benchDigest(b *testing.B, hc HashCache) {
	dir := benchTree(b, 20000)
	c, err := Open(dir, "")
	if err != nil {
		b.Fatal(err)
	}
	src, opts := Source{Root: dir, Context: c}, CopyOptions{Sources: []string{"."}, Dest: "/app/"}
	if hc != nil {
		if _, err := Digest(context.Background(), src, opts, hc); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for range b.N {
		if _, err := Digest(context.Background(), src, opts, hc); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCopy copies 5,000 small files into an empty rootfs.
func BenchmarkCopy(b *testing.B) {
	dir := benchTree(b, 5000)
	c, err := Open(dir, "")
	if err != nil {
		b.Fatal(err)
	}
	src, opts := Source{Root: dir, Context: c}, CopyOptions{Sources: []string{"src"}, Dest: "/app/"}
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		root := b.TempDir()
		b.StartTimer()
		if err := Copy(context.Background(), src, root, opts); err != nil {
			b.Fatal(err)
		}
	}
}
