package main

import (
	"context"
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

// The soft heap limit follows a live heap above the floor (and a headroom), so a big
// build never collects back to back, and comes back to the floor when it shrinks.
func TestMemoryLimitFollowsLiveHeap(t *testing.T) {
	old := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(old) })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	t.Setenv("GOMEMLIMIT", "") // set: startMemoryLimit leaves the limit alone
	debug.SetMemoryLimit(12345 << 10)
	startMemoryLimit(ctx)
	if got := debug.SetMemoryLimit(-1); got != 12345<<10 {
		t.Fatalf("with GOMEMLIMIT set the limit became %d", got)
	}

	go followLiveHeap(ctx)
	const live = 128 << 20
	keep := make([][]byte, 0, live>>20)
	for range live >> 20 {
		b := make([]byte, 1<<20)
		b[0] = 1
		keep = append(keep, b)
	}
	wait := func(ok func(int64) bool, what string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			runtime.GC()
			got := debug.SetMemoryLimit(-1)
			if ok(got) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("limit %d MiB, want %s", got>>20, what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	wait(func(l int64) bool { return l >= live+live/4 && l < live+live/2 }, "the 128 MiB live heap and a quarter of it, not twice it")
	runtime.KeepAlive(keep)
	keep = nil
	wait(func(l int64) bool { return l == memoryLimitFloor }, "the floor once the heap is freed")
}
