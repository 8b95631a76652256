package testenv

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// RequireBusyboxArm64 skips the test when the arm64 busybox test binary is missing
// (fails on CI, where scripts/install-deps.sh must have fetched it).
func RequireBusyboxArm64(t testing.TB) {
	t.Helper()
	if _, err := BusyboxArm64Path(); err != nil {
		skipOrFail(t, "%v", err)
	}
}

// BusyboxArm64Path is Debian's busybox-static:arm64 binary, which
// scripts/install-deps.sh extracts to $KILN_TESTDATA/busybox-arm64 (default
// /var/lib/kiln-testdata).
func BusyboxArm64Path() (string, error) {
	dir := os.Getenv("KILN_TESTDATA")
	if dir == "" {
		dir = "/var/lib/kiln-testdata"
	}
	p := filepath.Join(dir, "busybox-arm64")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("the arm64 busybox test binary: %w (run scripts/install-deps.sh as root)", err)
	}
	return p, nil
}

// NewBusyboxArm64Image is the busybox test image for linux/arm64: the same rootfs as
// NewBusyboxImage with Debian's arm64 busybox-static binary.
func NewBusyboxArm64Image() (v1.Image, error) {
	bin, err := BusyboxArm64Path()
	if err != nil {
		return nil, err
	}
	es, err := busyboxEntriesOf(bin)
	if err != nil {
		return nil, err
	}
	return newBusyboxImage(es, "arm64")
}

// NewBusyboxIndex is a two-platform index of the busybox test images, linux/amd64 and
// linux/arm64, as a multi-platform base on a registry is. The host must be amd64.
func NewBusyboxIndex() (v1.ImageIndex, error) {
	if runtime.GOARCH != "amd64" {
		return nil, errors.New("the two-platform busybox index is made on an amd64 host")
	}
	amd, err := NewBusyboxImage()
	if err != nil {
		return nil, err
	}
	arm, err := NewBusyboxArm64Image()
	if err != nil {
		return nil, err
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	return mutate.AppendManifests(idx,
		mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}},
	), nil
}

// BusyboxIndex is NewBusyboxIndex, failing t on error.
func BusyboxIndex(t testing.TB) v1.ImageIndex {
	t.Helper()
	idx, err := NewBusyboxIndex()
	if err != nil {
		t.Fatal(err)
	}
	return idx
}

// WriteBusyboxIndexLayout writes the two-platform busybox index as an OCI layout in
// dir, tagged "latest", for --build-context NAME=oci-layout://DIR.
func WriteBusyboxIndexLayout(dir string) error {
	idx, err := NewBusyboxIndex()
	if err != nil {
		return err
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return fmt.Errorf("oci layout %s: %w", dir, err)
	}
	if err := p.AppendIndex(idx, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": "latest",
	})); err != nil {
		return fmt.Errorf("oci layout %s: %w", dir, err)
	}
	return nil
}
