package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// cacheRoot reads the root of the type=local cache in dir (tag latest): its media
// type, its layer descriptors and its config descriptor.
func cacheRoot(t *testing.T, dir string) (types.MediaType, []v1.Descriptor, v1.Descriptor) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	var top v1.IndexManifest
	if err := json.Unmarshal(raw, &top); err != nil || len(top.Manifests) != 1 {
		t.Fatalf("index.json of %s: %v, %d entries", dir, err, len(top.Manifests))
	}
	root := top.Manifests[0]
	data, err := os.ReadFile(filepath.Join(dir, "blobs", "sha256", root.Digest.Hex))
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		MediaType types.MediaType `json:"mediaType"`
		Config    v1.Descriptor   `json:"config"`
		Layers    []v1.Descriptor `json:"layers"`
		Manifests []v1.Descriptor `json:"manifests"`
	}
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	if m.MediaType != root.MediaType {
		t.Errorf("%s: index.json says %s, the root says %s", dir, root.MediaType, m.MediaType)
	}
	if m.Manifests == nil {
		return m.MediaType, m.Layers, m.Config
	}
	var ls []v1.Descriptor
	var cfg v1.Descriptor
	for _, d := range m.Manifests {
		if d.MediaType == "application/vnd.buildkit.cacheconfig.v0" {
			cfg = d
		} else {
			ls = append(ls, d)
		}
	}
	return m.MediaType, ls, cfg
}

// stepLayerDigests are the layers the cache's records give to steps (not to the
// output's layer transforms), read from its config.
func stepLayerDigests(t *testing.T, dir string, cfg v1.Descriptor) map[v1.Hash]bool {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "blobs", "sha256", cfg.Digest.Hex))
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Layers []struct {
			Blob v1.Hash `json:"blob"`
		} `json:"layers"`
		Records []struct {
			Results []struct {
				LayerIndex int `json:"layerIndex"`
			} `json:"results"`
			Kiln struct {
				Key      string `json:"key"`
				Snapshot bool   `json:"snapshot"`
			} `json:"kiln"`
		} `json:"records"`
	}
	if err := json.Unmarshal(data, &c); err != nil {
		t.Fatal(err)
	}
	out := map[v1.Hash]bool{}
	for _, r := range c.Records {
		if r.Kiln.Snapshot && len(r.Results) == 1 {
			out[c.Layers[r.Results[0].LayerIndex].Blob] = true
		}
	}
	return out
}

// TestRemoteCacheCompressionMediaTypesImageManifest: compression=zstd re-encodes the
// steps' layers in the cache (zstd blobs, OCI zstd type, the same diff IDs);
// oci-mediatypes=false writes a Docker manifest list with Docker layer types;
// image-manifest=true an OCI image manifest whose config is the cache config. A
// fresh root reads each back with every step CACHED and the image runner 1 built.
func TestRemoteCacheCompressionMediaTypesImageManifest(t *testing.T) {
	_, out := e2e(t)
	host := busyboxRegistry(t)
	dir := lazyProject(t, host)
	caches := t.TempDir()
	zst, docker, manifest := filepath.Join(caches, "zstd"), filepath.Join(caches, "docker"), filepath.Join(caches, "manifest")
	mustBuild(t, dir, "--root", t.TempDir(), "--progress", "plain", "--build-arg", epochArg,
		"--cache-to", "type=local,mode=max,compression=zstd,compression-level=3,dest="+zst,
		"--cache-to", "type=local,mode=max,oci-mediatypes=false,dest="+docker,
		"--cache-to", "type=local,mode=max,image-manifest=true,dest="+manifest,
		"-o", "type=oci,dest="+filepath.Join(out, "1.tar"), ".")
	want := ociDigest(t, filepath.Join(out, "1.tar"))

	mt, ls, cfg := cacheRoot(t, zst)
	if mt != types.OCIImageIndex {
		t.Errorf("zstd cache root is %s, want an OCI index", mt)
	}
	steps := stepLayerDigests(t, zst, cfg)
	if len(steps) < 2 {
		t.Fatalf("zstd cache has %d step layers, want 2 or more", len(steps))
	}
	for _, d := range ls {
		if !steps[d.Digest] {
			continue
		}
		blob, err := os.ReadFile(filepath.Join(zst, "blobs", "sha256", d.Digest.Hex))
		if err != nil {
			t.Fatal(err)
		}
		if d.MediaType != types.OCILayerZStd || !bytes.HasPrefix(blob, []byte{0x28, 0xb5, 0x2f, 0xfd}) {
			t.Errorf("step layer %s in the zstd cache: type %s, magic % x", d.Digest, d.MediaType, blob[:4])
		}
	}

	mt, ls, _ = cacheRoot(t, docker)
	if mt != types.DockerManifestList {
		t.Errorf("oci-mediatypes=false cache root is %s, want a Docker manifest list", mt)
	}
	for _, d := range ls {
		if d.MediaType != types.DockerLayer {
			t.Errorf("oci-mediatypes=false layer %s has type %s", d.Digest, d.MediaType)
		}
	}

	mt, _, cfg = cacheRoot(t, manifest)
	if mt != types.OCIManifestSchema1 || cfg.MediaType != "application/vnd.buildkit.cacheconfig.v0" {
		t.Errorf("image-manifest=true cache root is %s with config %s", mt, cfg.MediaType)
	}

	for _, c := range []string{zst, docker, manifest} {
		r := mustBuild(t, dir, "--root", t.TempDir(), "--progress", "plain", "--build-arg", epochArg,
			"--cache-from", "type=local,src="+c, "-o", "type=oci,dest="+filepath.Join(out, "2.tar"), ".")
		requireAllCached(t, r.stderr)
		if d := ociDigest(t, filepath.Join(out, "2.tar")); d != want {
			t.Errorf("from %s built %s, want %s", filepath.Base(c), d, want)
		}
	}

	// What kiln cannot write is refused by name.
	for spec, msg := range map[string]string{
		"compression=zstd,oci-mediatypes=false":    "compression=zstd needs oci-mediatypes=true",
		"image-manifest=true,oci-mediatypes=false": "image-manifest=true needs oci-mediatypes=true",
		"compression=gzip,force-compression=false": "force-compression=false is not supported",
		"compression-level=5":                      "compression-level= needs compression=",
	} {
		r := kiln(t, dir, "build", "--root", t.TempDir(), "--cache-to", "type=local,dest="+filepath.Join(caches, "x")+","+spec, ".")
		if r.code == 0 || !strings.Contains(r.stderr, msg) {
			t.Errorf("--cache-to %s: exit %d, want an error saying %q:\n%s", spec, r.code, msg, r.stderr)
		}
	}
}
