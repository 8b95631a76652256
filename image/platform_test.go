package image

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// Which manifest of an index a platform takes: containerd's matcher, as BuildKit.
func TestSelectPlatform(t *testing.T) {
	d := func(hex, plat string) v1.Descriptor {
		desc := v1.Descriptor{MediaType: types.OCIManifestSchema1, Digest: v1.Hash{Algorithm: "sha256", Hex: hex}}
		if plat != "" {
			p, err := v1.ParsePlatform(plat)
			if err != nil {
				t.Fatal(err)
			}
			desc.Platform = p
		}
		return desc
	}
	attest := d("att", "unknown/unknown")
	for _, tc := range []struct {
		name  string
		index []v1.Descriptor
		want  string
		pick  string // hex of the manifest picked; "" wants a NoPlatformError
		have  string // the platforms a NoPlatformError lists
	}{
		{name: "exact", index: []v1.Descriptor{d("a", "linux/amd64"), d("b", "linux/arm64"), attest}, want: "linux/arm64", pick: "b"},
		{name: "arm64 variant v8 is arm64", index: []v1.Descriptor{d("a", "linux/amd64"), d("b", "linux/arm64/v8")}, want: "linux/arm64", pick: "b"},
		{name: "arm v7 preferred over v6 for v7", index: []v1.Descriptor{d("6", "linux/arm/v6"), d("7", "linux/arm/v7")}, want: "linux/arm/v7", pick: "7"},
		{name: "arm v6 serves v7", index: []v1.Descriptor{d("6", "linux/arm/v6")}, want: "linux/arm/v7", pick: "6"},
		{name: "arm v7 does not serve v6", index: []v1.Descriptor{d("7", "linux/arm/v7")}, want: "linux/arm/v6", have: "linux/arm/v7"},
		{name: "missing lists what it has", index: []v1.Descriptor{d("b", "linux/arm64"), d("a", "linux/amd64"), attest}, want: "linux/s390x", have: "linux/amd64, linux/arm64"},
		{name: "attestation only", index: []v1.Descriptor{attest}, want: "linux/amd64", have: "none"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want, err := v1.ParsePlatform(tc.want)
			if err != nil {
				t.Fatal(err)
			}
			got, err := selectPlatform("busybox", &v1.IndexManifest{Manifests: tc.index}, *want)
			if tc.pick != "" {
				if err != nil || got.Digest.Hex != tc.pick {
					t.Fatalf("picked %s (%v), want %s", got.Digest.Hex, err, tc.pick)
				}
				return
			}
			var npe *NoPlatformError
			if !errors.As(err, &npe) {
				t.Fatalf("got %v (%s), want a NoPlatformError", err, got.Digest.Hex)
			}
			if msg := err.Error(); !strings.Contains(msg, "busybox has no image for "+tc.want) || !strings.Contains(msg, "its index has: "+tc.have+")") {
				t.Errorf("error %q", msg)
			}
		})
	}
}

// A multi-platform build's index as an OCI tarball: one index.json entry (the
// index), every manifest and blob, valid by ggcr's validator, the same bytes twice.
func TestWriteOCIIndexArchive(t *testing.T) {
	var imgs []PlatformImage
	for _, arch := range []string{"amd64", "arm64"} {
		img, err := random.Image(256, 2)
		if err != nil {
			t.Fatal(err)
		}
		cf, _ := img.ConfigFile()
		cf = cf.DeepCopy()
		cf.OS, cf.Architecture = "linux", arch
		if img, err = mutate.ConfigFile(img, cf); err != nil {
			t.Fatal(err)
		}
		imgs = append(imgs, PlatformImage{Platform: v1.Platform{OS: "linux", Architecture: arch}, Image: img})
	}
	idx, err := NewIndex(imgs)
	if err != nil {
		t.Fatal(err)
	}
	var a, b bytes.Buffer
	for _, w := range []*bytes.Buffer{&a, &b} {
		if err := WriteOCIIndexArchive(context.Background(), idx, []string{"app:v1"}, w); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("two writes of the same index differ")
	}
	dir := t.TempDir()
	tarPath := filepath.Join(dir, "x.tar")
	if err := os.WriteFile(tarPath, a.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, "tar", "-xf", tarPath, "-C", dir)
	top, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	m, err := top.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	want, _ := idx.Digest()
	if len(m.Manifests) != 1 || m.Manifests[0].Digest != want || m.Manifests[0].MediaType != types.OCIImageIndex ||
		m.Manifests[0].Annotations[annotationRefName] != "v1" {
		t.Fatalf("index.json %+v, want the index %s tagged v1", m.Manifests, want)
	}
	got, err := top.ImageIndex(want)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Index(got); err != nil {
		t.Fatal(err)
	}
	im, _ := got.IndexManifest()
	for i, d := range im.Manifests {
		if d.Platform == nil || d.Platform.Architecture != imgs[i].Platform.Architecture {
			t.Errorf("manifest %d: platform %v, want %s", i, d.Platform, imgs[i].Platform.Architecture)
		}
	}
	if PlatformDir(v1.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}) != "linux_arm_v7" {
		t.Error("PlatformDir does not name directories as buildx")
	}
}
