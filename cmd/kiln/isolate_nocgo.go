//go:build !linux || !cgo

package main

// isolatedEarly: without cgo there is no constructor, and exec.Isolate re-executes.
func isolatedEarly() bool { return false }
