package testenv

import (
	"os"
	osexec "os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// GoBuild builds the package pkg (an import path of this module) into dir/name with
// the go command that runs the tests, the extra build flags given, and returns the
// binary's path. Tests of what a real install does (kiln beside its kiln-init) need
// the binaries themselves, not the test binary.
func GoBuild(t testing.TB, dir, name, pkg string, flags ...string) string {
	t.Helper()
	gobin, err := osexec.LookPath("go")
	if err != nil {
		gobin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	out := filepath.Join(dir, name)
	args := append([]string{"build", "-o", out}, flags...)
	cmd := osexec.Command(gobin, append(args, pkg)...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	return out
}
