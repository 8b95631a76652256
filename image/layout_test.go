package image

import (
	"context"
	"errors"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/validate"
	"github.com/kiln-build/kiln/internal/testenv"
)

func TestLoadOCILayout(t *testing.T) {
	if _, err := testenv.BusyboxPath(); err != nil {
		t.Fatal(err) // make deps installs busybox-static
	}
	dir := t.TempDir()
	if err := testenv.WriteBusyboxOCILayout(dir); err != nil {
		t.Fatal(err)
	}
	want, _ := testenv.BusyboxImage(t).Digest()
	tests := []struct {
		name, ref, errText string
	}{
		{"only entry", dir, ""},
		{"tag", dir + ":latest", ""},
		{"digest", dir + "@" + want.String(), ""},
		{"missing tag", dir + ":v2", `tag "v2" not found (tags: latest)`},
		{"missing digest", dir + "@sha256:" + strings.Repeat("0", 64), "no manifest"},
		{"not a layout", t.TempDir(), "oci layout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := newTestStore(t)
			p, err := LoadOCILayout(context.Background(), store, tt.ref, PullOptions{})
			if tt.errText != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errText) {
					t.Fatalf("error %v, want %q", err, tt.errText)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.ManifestDigest != want {
				t.Fatalf("loaded %s, want %s", p.ManifestDigest, want)
			}
			checkBlobsVerified(t, store, p.Image)
			if err := validate.Image(p.Image); err != nil {
				t.Fatalf("validate: %v", err)
			}
		})
	}
}

// A layout whose index.json lists one untagged image per platform (as crane and
// ggcr's layout.Write leave a multi-platform image) is that image's index: each
// platform takes its own, a missing one is a NoPlatformError.
func TestLoadOCILayoutPlatformEntries(t *testing.T) {
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]v1.Hash{}
	for _, arch := range []string{"amd64", "arm64"} {
		img, err := random.Image(64, 1)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.AppendImage(img, layout.WithPlatform(v1.Platform{OS: "linux", Architecture: arch})); err != nil {
			t.Fatal(err)
		}
		want[arch], _ = img.Digest()
	}
	for arch, d := range want {
		got, err := LoadOCILayout(context.Background(), newTestStore(t), dir, PullOptions{Platform: v1.Platform{OS: "linux", Architecture: arch}})
		if err != nil || got.ManifestDigest != d {
			t.Errorf("%s: loaded %v (%v), want %s", arch, got, err, d)
		}
	}
	_, err = LoadOCILayout(context.Background(), newTestStore(t), dir, PullOptions{Platform: v1.Platform{OS: "linux", Architecture: "s390x"}})
	var npe *NoPlatformError
	if !errors.As(err, &npe) || !strings.Contains(err.Error(), "linux/amd64, linux/arm64") {
		t.Errorf("s390x: %v, want a NoPlatformError listing amd64 and arm64", err)
	}
}
