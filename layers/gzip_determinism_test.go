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
	write := func(procs int) Blob {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
		b, _, err := writeLayer(context.Background(), dir, io.Discard, WriteOptions{Compression: Gzip}, true)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	one, many := write(1), write(4)
	if one.Digest != many.Digest || one.DiffID != many.DiffID {
		t.Fatalf("digest depends on cores: %s with 1, %s with 4", one.Digest, many.Digest)
	}
}
