package main

import (
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"time"
)

// startProfiles writes CPU and heap profiles of a build when KILN_CPUPROFILE or
// KILN_MEMPROFILE name files, and an execution trace when KILN_TRACE does: the
// evidence behind performance work (go tool pprof, go tool trace; a trace shows
// where a build waits, which a CPU profile cannot).
// It runs after Isolate, in the process that does the build.
func startProfiles() (stop func(), err error) {
	var cpu *os.File
	if p := os.Getenv("KILN_CPUPROFILE"); p != "" {
		if cpu, err = os.Create(p); err != nil {
			return nil, fmt.Errorf("KILN_CPUPROFILE: %w", err)
		}
		if err := pprof.StartCPUProfile(cpu); err != nil {
			cpu.Close()
			return nil, fmt.Errorf("KILN_CPUPROFILE: %w", err)
		}
	}
	var tr *os.File
	if p := os.Getenv("KILN_TRACE"); p != "" {
		if tr, err = os.Create(p); err != nil {
			return nil, fmt.Errorf("KILN_TRACE: %w", err)
		}
		if err := trace.Start(tr); err != nil {
			tr.Close()
			return nil, fmt.Errorf("KILN_TRACE: %w", err)
		}
	}
	if p, after := os.Getenv("KILN_MEMPROFILE"), os.Getenv("KILN_MEMPROFILE_AFTER"); p != "" && after != "" {
		// A heap profile in the middle of a build: what is live then, where the one
		// at the end shows only what survived it.
		d, err := time.ParseDuration(after)
		if err != nil {
			return nil, fmt.Errorf("KILN_MEMPROFILE_AFTER: %w", err)
		}
		time.AfterFunc(d, func() {
			if f, err := os.Create(p + ".mid"); err == nil {
				_ = pprof.WriteHeapProfile(f)
				f.Close()
			}
		})
	}
	return func() {
		if tr != nil {
			trace.Stop()
			tr.Close()
		}
		if cpu != nil {
			pprof.StopCPUProfile()
			cpu.Close()
		}
		if p := os.Getenv("KILN_MEMPROFILE"); p != "" {
			if f, err := os.Create(p); err == nil {
				runtime.GC()
				_ = pprof.WriteHeapProfile(f)
				f.Close()
			}
		}
	}, nil
}
