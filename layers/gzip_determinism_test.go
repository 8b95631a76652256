package layers

import (
	"context"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// Parallel gzip must not make digests depend on the machine: the same tree written
// with one core and with several gives the same blob.
func TestGzipDigestIndependentOfCores(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < 3; i++ {
		data := make([]byte, 3<<20) // several pgzip blocks, partly compressible
		rng.Read(data[:1<<20])
		if err := os.WriteFile(filepath.Join(dir, "f"+string(rune('a'+i))), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write := func(procs int) (Blob, int) {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
		b, _, err := writeLayer(context.Background(), dir, io.Discard, WriteOptions{Compression: Gzip}, true)
		if err != nil {
			t.Fatal(err)
		}
		return b, gzipBlocks()
	}
	one, oneBlocks := write(1)
	many, manyBlocks := write(4)
	if oneBlocks == manyBlocks {
		t.Fatalf("both writes compressed %d blocks at once: the test compares nothing", oneBlocks)
	}
	if one.Digest != many.Digest || one.DiffID != many.DiffID {
		t.Fatalf("digest depends on cores: %s with %d blocks, %s with %d", one.Digest, oneBlocks, many.Digest, manyBlocks)
	}
}

// The blocks in flight follow GOMAXPROCS (what a CPU quota sets), within 2 and 8.
func TestGzipBlocksFollowGOMAXPROCS(t *testing.T) {
	for procs, want := range map[int]int{1: 2, 3: 3, 4: 4, 16: 8} {
		func() {
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
			if got := gzipBlocks(); got != want {
				t.Errorf("GOMAXPROCS %d: %d blocks, want %d", procs, got, want)
			}
		}()
	}
}
