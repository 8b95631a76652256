package image

import (
	"context"
	"strings"
	"testing"

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
