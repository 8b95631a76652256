//go:build !linux

package sandboxinit

// Main does nothing where there are no Linux namespaces: no sandbox is ever started.
func Main() {}
