package main

import (
	"context"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// memoryLimitFloor is kiln's soft heap limit while the live heap is small. A build's
// live heap is usually tens of MB (buffers are reused and layers stream), but with
// the default GOGC the heap grows to twice the live size before a collection; under
// this limit the collector runs sooner instead. Measured on W2 (COPY of 20,000
// files): peak RSS 78 MB -> 59 MB at 48 MiB, same wall time. 40 MiB (since the
// per-file state of a big COPY shrank) took W6 warm (the digest of 210,000 files)
// from 69 to 63 MB, with W1, W2 and W5 as fast as at 48 (alternated runs).
const memoryLimitFloor = 40 << 20

// memoryLimitHeadroom is the least the limit allows above the live heap. Less costs
// CPU, in proportion to what a build allocates: W6 (a 210,000-file COPY) took 849
// collections and 18 % more CPU at 16 MiB than at 24 while its layer write dropped
// and remade its member buffers (2 GB allocated). Since those are pooled (1.4 GB in
// all, 28 MB live through the layer write) 16 MiB takes about 350 collections
// against 160 and 4 % more CPU, for a peak RSS of 62-64 MiB against 69-74 (12 MiB:
// 25 % more CPU for 1 MB less). Builds whose live heap stays under the floor do not
// see it.
const memoryLimitHeadroom = 16 << 20

// memoryLimitEvery is how often the live heap is read: it changes at the end of a
// collection, a few times a second at most in a build.
const memoryLimitEvery = 50 * time.Millisecond

// startMemoryLimit keeps the soft heap limit at the floor or the live heap plus a
// headroom, whichever is more, until ctx ends. A fixed limit below the live heap
// makes the collector run back to back: a 210,000-file COPY (W6), whose per-file
// state was over 100 MB, spent three quarters of its CPU collecting. Above the live
// heap it never does: each collection comes after about headroom bytes are
// allocated. The default GOGC allows the live heap again; the headroom is a quarter
// of it, and at least memoryLimitHeadroom. GOMEMLIMIT, when set, is used as it is.
func startMemoryLimit(ctx context.Context) {
	if _, set := os.LookupEnv("GOMEMLIMIT"); set {
		return
	}
	debug.SetMemoryLimit(memoryLimitFloor)
	go followLiveHeap(ctx)
}

func followLiveHeap(ctx context.Context) {
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	limit := int64(memoryLimitFloor)
	t := time.NewTicker(memoryLimitEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		metrics.Read(sample)
		if sample[0].Value.Kind() != metrics.KindUint64 {
			return // a runtime without the metric: the floor stays
		}
		live := int64(sample[0].Value.Uint64())
		want := max(int64(memoryLimitFloor), live+max(memoryLimitHeadroom, live/4))
		if want != limit {
			debug.SetMemoryLimit(want)
			limit = want
		}
	}
}
