package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// inlineRecords decodes the inline cache of a pushed image's config as BuildKit's
// importer does: a byte string (base64) holding the JSON array of records, whose
// results name the image's layers.
func inlineRecords(t *testing.T, ref string) []map[string]any {
	t.Helper()
	img := remoteImage(t, ref, true)
	raw, err := img.RawConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Cache []byte `json:"moby.buildkit.cache.v0"`
	}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatalf("config of %s: %v", ref, err)
	}
	if cfg.Cache == nil {
		t.Fatalf("config of %s has no moby.buildkit.cache.v0:\n%s", ref, raw)
	}
	var recs []map[string]any
	if err := json.Unmarshal(cfg.Cache, &recs); err != nil {
		t.Fatalf("inline cache of %s is not BuildKit's records array: %v", ref, err)
	}
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if d, _ := r["digest"].(string); !strings.HasPrefix(d, "sha256:") {
			t.Errorf("record without a digest: %v", r)
		}
		for _, x := range asList(r["results"]) {
			i, ok := x.(map[string]any)["layerIndex"].(float64)
			if !ok || int(i) < 0 || int(i) >= len(ls) {
				t.Errorf("record result %v does not name one of the image's %d layers", x, len(ls))
			}
		}
	}
	return recs
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

// TestRemoteCacheInline: --cache-to type=inline puts BuildKit's inline cache in the
// pushed image's config; a runner with an empty root reads it with --cache-from
// type=registry,ref=IMAGE, every step is CACHED and, pushing with inline again, it
// pushes the identical image (SOURCE_DATE_EPOCH set, so every step layer in the image
// is a clamped form of the step's own). A build with another SOURCE_DATE_EPOCH does
// not take the clamped layers for its steps.
func TestRemoteCacheInline(t *testing.T) {
	_, out := e2e(t)
	host := busyboxRegistry(t)
	dir := lazyProject(t, host)
	v1Ref, v2Ref := host+"/app:v1", host+"/app:v2"
	r := mustBuildLimited(t, dir, "--root", t.TempDir(), "--progress", "plain", "--build-arg", epochArg,
		"--cache-to", "type=inline", "-t", v1Ref, "--push", ".")
	if !strings.Contains(r.stderr, "cache-to inline: ") {
		t.Errorf("progress does not report the inline cache:\n%s", r.stderr)
	}
	if recs := inlineRecords(t, v1Ref); len(recs) < 4 {
		t.Errorf("inline cache holds %d records, want one per step (4) and more", len(recs))
	}
	want, _ := remoteImage(t, v1Ref, true).Digest()

	r = mustBuildLimited(t, dir, "--root", t.TempDir(), "--progress", "plain", "--build-arg", epochArg,
		"--cache-from", "type=registry,ref="+v1Ref, "--cache-to", "type=inline", "-t", v2Ref, "--push", ".")
	requireAllCached(t, r.stderr)
	img := remoteImage(t, v2Ref, true)
	if err := validate.Image(img); err != nil {
		t.Fatalf("image pushed from the inline cache: %v", err)
	}
	if d, _ := img.Digest(); d != want {
		t.Errorf("from the inline cache pushed %s, runner 1 pushed %s", d, want)
	}

	// Another SOURCE_DATE_EPOCH: the RUN and COPY layers in the image are clamped to
	// the first one, so those steps run again; the result is still right.
	r = mustBuildLimited(t, dir, "--root", t.TempDir(), "--progress", "plain", "--build-arg", "SOURCE_DATE_EPOCH=1600000000",
		"--cache-from", "type=registry,ref="+v1Ref, "-o", "type=oci,dest="+filepath.Join(out, "other.tar"), ".")
	for step, cached := range cachedSteps(t, r.stderr) {
		if cached && !strings.HasPrefix(step, "ENV") {
			t.Errorf("with another SOURCE_DATE_EPOCH step %q was CACHED from clamped layers", step)
		}
	}
	if got := flatten(t, readOCI(t, filepath.Join(out, "other.tar")))["/both.txt"].content; got != "from the context\nhello\n" {
		t.Errorf("/both.txt is %q", got)
	}
}
