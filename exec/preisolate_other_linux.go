//go:build linux && !cgo

package exec

// isolatedAtStart is false without cgo: there is no constructor (see
// preisolate_cgo_linux.go), so isolate re-executes kiln.
func isolatedAtStart() bool { return false }
