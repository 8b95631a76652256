package main

import (
	"fmt"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/image"
)

// exportTask shows writing one output as a step of its own, named and detailed as
// BuildKit's exporters show theirs ("#9 exporting to oci image format", "#9 exporting
// manifest sha256:… done", "#9 sending tarball 0.2s done"). It returns the function
// that ends it with the write's result. A multi-platform build lists each platform's
// manifest and config, then the index ("exporting manifest list sha256:…").
func exportTask(prog *progress, out outputSpec, b image.Built, tags []string) func(error) {
	title := "exporting to image"
	switch out.Type {
	case "oci":
		title = "exporting to oci image format"
	case "docker", "load":
		title = "exporting to docker image format"
	case "tar":
		title = "exporting to client tarball"
	case "local":
		title = "exporting to client directory"
	}
	task := prog.Task(title)
	start := time.Now()
	imgs := []v1.Image{b.Image}
	if b.Index != nil {
		imgs = imgs[:0]
		for _, p := range b.Platforms {
			imgs = append(imgs, p.Image)
		}
	}
	// top is the digest a push names: the image's, or the index's.
	top := func() (v1.Hash, error) {
		if idx, err := b.Attested(); err != nil || idx != nil {
			if err != nil {
				return v1.Hash{}, err
			}
			return idx.Digest()
		}
		return b.Image.Digest()
	}
	manifests := func() bool {
		for _, img := range imgs {
			manifest, merr := img.Digest()
			config, cerr := img.ConfigName()
			if merr != nil || cerr != nil {
				return false
			}
			task.Status(fmt.Sprintf("exporting manifest %s", manifest), time.Time{})
			task.Status(fmt.Sprintf("exporting config %s", config), time.Time{})
		}
		if idx, err := b.Attested(); err == nil && idx != nil {
			if im, err := idx.IndexManifest(); err == nil {
				for _, d := range im.Manifests {
					if image.IsAttestation(d) {
						task.Status(fmt.Sprintf("exporting attestation manifest %s", d.Digest), time.Time{})
					}
				}
			}
			d, err := idx.Digest()
			if err != nil {
				return false
			}
			task.Status(fmt.Sprintf("exporting manifest list %s", d), time.Time{})
		}
		return true
	}
	return func(err error) {
		if err != nil {
			task.Done(err)
			return
		}
		switch out.Type {
		case "oci", "docker", "load":
			manifests()
			task.Status("sending tarball", start)
			if out.Type == "load" {
				for _, n := range tags {
					task.Status(fmt.Sprintf("naming to %s", n), time.Time{})
				}
			}
		case "tar", "local":
			task.Status("copying files", start)
		default: // a push
			names := tags
			if out.Name != "" {
				names = []string{out.Name}
			}
			manifests()
			for _, n := range names {
				task.Status(fmt.Sprintf("naming to %s", n), time.Time{})
			}
			task.Status("pushing layers", start)
			if d, err := top(); err == nil {
				for _, n := range names {
					task.Status(fmt.Sprintf("pushing manifest for %s@%s", n, d), time.Time{})
				}
			}
		}
		task.Done(nil)
	}
}
