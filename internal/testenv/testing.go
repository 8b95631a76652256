package testenv

import (
	"os"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// OnCI reports whether the tests run on CI (CI=true), where a missing prerequisite is
// a failure rather than a skip.
func OnCI() bool { return os.Getenv("CI") == "true" }

// skipOrFail skips the test, or fails it on CI.
func skipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	if OnCI() {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// RequireRoot skips the test when not running as root (fails on CI).
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		skipOrFail(t, "test needs root")
	}
}

// BusyboxRootfs writes the busybox rootfs (see MakeBusyboxRootfs) into dir.
func BusyboxRootfs(t testing.TB, dir string) {
	t.Helper()
	if _, err := BusyboxPath(); err != nil {
		skipOrFail(t, "%v", err)
	}
	if err := MakeBusyboxRootfs(dir); err != nil {
		t.Fatalf("busybox rootfs: %v", err)
	}
}

// BusyboxImage is the busybox image (see NewBusyboxImage).
func BusyboxImage(t testing.TB) v1.Image {
	t.Helper()
	if _, err := BusyboxPath(); err != nil {
		skipOrFail(t, "%v", err)
	}
	img, err := NewBusyboxImage()
	if err != nil {
		t.Fatalf("busybox image: %v", err)
	}
	return img
}
