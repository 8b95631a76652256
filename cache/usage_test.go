package cache

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	cfs "github.com/containerd/continuity/fs"
)

func TestDiskUsageMatchesContinuity(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "a", "b"), 0o755)
	os.WriteFile(filepath.Join(dir, "a", "f"), make([]byte, 10000), 0o644)
	os.WriteFile(filepath.Join(dir, "a", "b", "g"), make([]byte, 70000), 0o644)
	// A hard link takes no second copy of the space.
	if err := os.Link(filepath.Join(dir, "a", "b", "g"), filepath.Join(dir, "h")); err != nil {
		t.Fatal(err)
	}
	want, err := cfs.DiskUsage(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	got, err := diskUsage(ctx, dir)
	if err != nil || got != want.Size || got < 80000 {
		t.Fatalf("diskUsage = %d, %v; continuity says %d", got, err, want.Size)
	}
	if n, err := diskUsage(ctx, filepath.Join(dir, "missing")); n != 0 || err != nil {
		t.Fatalf("missing dir: %d, %v", n, err)
	}
}

// Builds remove active snapshots while AutoGC measures the store: a vanishing dir must
// not fail the measurement (it did, as "readdirent …/work: no such file or directory").
func TestDiskUsageWhileDirsVanish(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			d := filepath.Join(dir, fmt.Sprint(i%8), "work", "inner")
			os.MkdirAll(d, 0o755)
			for j := range 20 {
				os.WriteFile(filepath.Join(d, fmt.Sprint(j)), []byte("x"), 0o644)
			}
			os.RemoveAll(filepath.Join(dir, fmt.Sprint(i%8)))
		}
	}()
	defer func() { close(stop); wg.Wait() }()
	for range 2000 {
		if _, err := diskUsage(ctx, dir); err != nil {
			t.Fatalf("diskUsage while dirs vanish: %v", err)
		}
	}
}
