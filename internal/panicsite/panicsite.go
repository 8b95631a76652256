// Package panicsite tells, while a panic is being recovered, which code raised it, so a
// recover meant for a library's panics (bbolt on a damaged file, buildkit's parser on
// hostile input) can re-raise everything else: a bug in kiln must crash its test or
// fuzzer, not become an error message.
package panicsite

import (
	"runtime"
	"strings"
)

// In reports whether the panic being recovered was raised by code whose function names
// start with one of prefixes (a package or module path, e.g. "go.etcd.io/bbolt"). The
// raiser is the first frame below the runtime's panic machinery outside the standard
// library: an index out of range in package strings, called by a library, is the
// library's. In must be called from the deferred function that called recover, while
// the panicking frames are still on the stack; elsewhere it reports false.
func In(prefixes ...string) bool {
	fn := raiser()
	for _, p := range prefixes {
		if fn == p || strings.HasPrefix(fn, p+".") || strings.HasPrefix(fn, p+"/") {
			return true
		}
	}
	return false
}

// raiser is the function that raised the panic in progress, "" if none is found.
func raiser() string {
	pcs := make([]uintptr, 128)
	frames := runtime.CallersFrames(pcs[:runtime.Callers(1, pcs)])
	inPanic := false
	for {
		fr, more := frames.Next()
		switch {
		case fr.Function == "runtime.gopanic":
			inPanic = true
		case inPanic && !standard(fr.Function):
			return fr.Function
		}
		if !more {
			return ""
		}
	}
}

// standard reports whether fn is in the standard library (runtime included): its
// package path's first element has no dot.
func standard(fn string) bool {
	first, _, _ := strings.Cut(fn, "/")
	if !strings.Contains(fn, "/") {
		first, _, _ = strings.Cut(fn, ".")
	}
	return !strings.Contains(first, ".")
}
