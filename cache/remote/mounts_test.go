package remote

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// hostileMountCache writes a layout cache in dir whose only content is the cache
// mount of identity, with the tar entries given (name: content).
func hostileMountCache(t *testing.T, dir, identity string, entries []string) {
	t.Helper()
	ctx := context.Background()
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	for _, n := range entries {
		if err := tw.WriteHeader(&tar.Header{Name: n, Typeflag: tar.TypeReg, Mode: 0o644, Size: 4}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte("evil"))
	}
	tw.Close()
	diffID, _, _ := v1.SHA256(bytes.NewReader(raw.Bytes()))
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(raw.Bytes())
	zw.Close()
	l := static.NewLayer(gz.Bytes(), types.OCILayer)
	d, _ := l.Digest()
	be := &layoutBackend{dir: dir, tag: "latest"}
	if err := be.putLayer(ctx, l, d); err != nil {
		t.Fatal(err)
	}
	cfg := cacheConfig{
		Layers: []cacheLayer{{Blob: d.String(), Parent: -1}},
		Kiln: &kilnConfig{Format: formatVersion, KeyVersion: "v1",
			Mounts: []kilnMount{{ID: mountID(identity), LayerIndex: 0, DiffID: diffID.String()}}},
	}
	rawCfg, _ := json.Marshal(cfg)
	cd, csize, _ := v1.SHA256(bytes.NewReader(rawCfg))
	if err := be.putBlob(ctx, cd, rawCfg); err != nil {
		t.Fatal(err)
	}
	size := int64(gz.Len())
	root, mt, err := rootManifest(false, true, v1.Descriptor{MediaType: ConfigMediaType, Digest: cd, Size: csize},
		[]v1.Descriptor{{MediaType: types.OCILayer, Digest: d, Size: size}})
	if err != nil {
		t.Fatal(err)
	}
	if err := be.putManifest(ctx, root, mt); err != nil {
		t.Fatal(err)
	}
}

// TestRestoreCacheMountUntrusted: a cache mount's tar comes from an untrusted cache;
// entries that climb out of the dir are refused and nothing lands outside it, while
// a well-formed one is restored.
func TestRestoreCacheMountUntrusted(t *testing.T) {
	ctx := context.Background()
	for name, tc := range map[string]struct {
		entries []string
		ok      bool
	}{
		"plain":    {entries: []string{"a/file"}, ok: true},
		"dotdot":   {entries: []string{"../../escape"}},
		"absolute": {entries: []string{"/escape-abs"}},
	} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "cache")
			hostileMountCache(t, dir, "/root/.cache", tc.entries)
			local := emptyLocal(t)
			s, err := Open(ctx, local, []Spec{{Type: "local", Dir: dir, Tag: "latest"}}, StoreOptions{KeyVersion: "v1"})
			if err != nil {
				t.Fatal(err)
			}
			mdir, err := local.CacheMountDir(ctx, "/root/.cache")
			if err != nil {
				t.Fatal(err)
			}
			err = s.RestoreCacheMount(ctx, "/root/.cache")
			if tc.ok {
				if err != nil {
					t.Fatal(err)
				}
				if b, err := os.ReadFile(filepath.Join(mdir, "a", "file")); err != nil || string(b) != "evil" {
					t.Errorf("restored file: %q, %v", b, err)
				}
				return
			}
			// Refused, or kept inside the dir: never written outside it.
			var found []string
			filepath.Walk(filepath.Dir(filepath.Dir(mdir)), func(p string, fi os.FileInfo, err error) error {
				if err == nil && strings.HasPrefix(fi.Name(), "escape") && !strings.HasPrefix(p, mdir+"/") {
					found = append(found, p)
				}
				return nil
			})
			if _, err := os.Stat("/escape-abs"); err == nil {
				found = append(found, "/escape-abs")
			}
			if len(found) > 0 {
				t.Errorf("a hostile cache mount wrote outside its dir: %v (restore error: %v)", found, err)
			}
		})
	}
}
