package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/kiln-build/kiln/cache"
	"github.com/kiln-build/kiln/dockerfile"
	"github.com/kiln-build/kiln/image"
	"github.com/kiln-build/kiln/internal/atomicfile"
	"github.com/kiln-build/kiln/snapshot"
)

// builtImage is what the outputs write: the one image of a single-platform build,
// or the image index of a multi-platform one with each platform's image.
func builtImage(plats []v1.Platform, results []*dockerfile.Result, tags []string, store *cache.Store, snaps *snapshot.Snapshotter, prog *progress) (image.Built, error) {
	rootfs := func(res *dockerfile.Result) image.Rootfs {
		return &image.SnapshotRootfs{Image: res.Image, Snapshots: res.Snapshots, Snaps: snaps, Store: store, Warn: prog.Warn}
	}
	if len(results) == 1 {
		return image.Built{Image: results[0].Image, Tags: tags, Rootfs: rootfs(results[0])}, nil
	}
	b := image.Built{Tags: tags, Platforms: make([]image.PlatformImage, len(results))}
	for i, res := range results {
		b.Platforms[i] = image.PlatformImage{Platform: plats[i], Image: res.Image, Rootfs: rootfs(res)}
	}
	idx, err := image.NewIndex(b.Platforms)
	if err != nil {
		return image.Built{}, err
	}
	b.Index = idx
	return b, nil
}

// checkOutputsForPlatforms refuses, before building, an output that cannot hold a
// build's platforms: the docker output and --load hold one image (as in buildx).
func checkOutputsForPlatforms(outs []outputSpec, plats []v1.Platform) error {
	if len(plats) < 2 {
		return nil
	}
	for _, out := range outs {
		if out.Type == "docker" || out.Type == "load" {
			return image.Built{Index: empty.Index, Platforms: platformImages(plats)}.OnePlatform(out.Type)
		}
	}
	return nil
}

func platformImages(plats []v1.Platform) []image.PlatformImage {
	out := make([]image.PlatformImage, len(plats))
	for i, p := range plats {
		out[i].Platform = p
	}
	return out
}

// writeOutputs writes every requested output (package image writes them).
func writeOutputs(ctx context.Context, o buildOptions, outs []outputSpec, built image.Built, store *cache.Store, stdout io.Writer, prog *progress) error {
	for _, out := range outs {
		var tmp string
		if out.Type == "load" {
			dir, err := store.TempDir("load-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(dir)
			tmp = dir
		}
		w := out.writer(o, stdout, tmp)
		if w == nil {
			continue
		}
		b, err := out.image(built)
		if err != nil {
			return err
		}
		done := exportTask(prog, out, b, o.tags)
		err = w.Write(ctx, b)
		done(err)
		if err != nil {
			return err
		}
	}
	return nil
}

// image is the build's image as out writes it: with out's manifest annotations, and
// in an oci or docker tarball under out's name= when it gives one.
func (out outputSpec) image(b image.Built) (image.Built, error) {
	if len(out.Annotations) > 0 && out.Type != "local" && out.Type != "tar" {
		annotate := func(img v1.Image) (v1.Image, error) {
			a, ok := mutate.Annotations(img, out.Annotations).(v1.Image)
			if !ok {
				return nil, fmt.Errorf("annotate the image manifest: not an image")
			}
			return a, nil
		}
		if b.Index == nil {
			img, err := annotate(b.Image)
			if err != nil {
				return b, err
			}
			b.Image = img
		} else {
			// Each platform's manifest is annotated (as BuildKit's manifest:
			// annotations, its default), and the index made again over them.
			ps := slices.Clone(b.Platforms)
			for i := range ps {
				img, err := annotate(ps[i].Image)
				if err != nil {
					return b, err
				}
				ps[i].Image = img
			}
			idx, err := image.NewIndex(ps)
			if err != nil {
				return b, err
			}
			b.Platforms, b.Index = ps, idx
		}
	}
	if out.Name != "" && (out.Type == "oci" || out.Type == "docker") {
		b.Tags = strings.Split(out.Name, ",")
	}
	return b, nil
}

// mergeAnnotations is the --annotation values with an output's own over them.
func mergeAnnotations(flags, own map[string]string) map[string]string {
	if len(flags) == 0 {
		return own
	}
	out := maps.Clone(flags)
	maps.Copy(out, own)
	return out
}

// writer is the image.Output that out asks for, nil for an image output not pushed.
func (out outputSpec) writer(o buildOptions, stdout io.Writer, tmpDir string) image.Output {
	switch out.Type {
	case "load":
		return image.Load{TempDir: tmpDir}
	case "oci":
		return image.OCIArchive{Dest: out.Dest, Stdout: stdout}
	case "docker":
		return image.DockerArchive{Dest: out.Dest, Stdout: stdout}
	case "tar":
		return image.RootfsTar{Dest: out.Dest, Stdout: stdout}
	case "local":
		return image.LocalDir{Dir: out.Dest}
	case "registry", "image":
		if !out.Push {
			return nil
		}
		var names []string
		if out.Name != "" {
			names = []string{out.Name}
		}
		return image.Registry{Names: names, Opts: image.PushOptions{
			InsecureRegistry: o.insecure, Jobs: 4, Client: o.registries,
		}}
	}
	return nil
}

// writeFileAtomic writes dest so that it is either the old file or the complete new
// one, and a kill -9 leaves nothing beside it that the next build would not remove.
func writeFileAtomic(dest string, fn func(io.Writer) error) error {
	return atomicfile.Write(dest, 0o644, fn)
}

// builtDigests are the build's image ID (the config digest; the index's digest for a
// multi-platform build, as buildx) and its manifest's (or index's) digest.
func builtDigests(b image.Built) (id, manifest v1.Hash, err error) {
	idx, err := b.Attested()
	if err != nil {
		return id, manifest, err
	}
	if idx != nil && b.Index == nil {
		// One platform with attestations: the ID is still the image's config, the
		// digest a push names the index's.
		if id, err = b.Image.ConfigName(); err != nil {
			return id, manifest, err
		}
		manifest, err = idx.Digest()
		return id, manifest, err
	}
	if idx != nil {
		d, err := idx.Digest()
		return d, d, err
	}
	if id, err = b.Image.ConfigName(); err != nil {
		return id, manifest, err
	}
	manifest, err = b.Image.Digest()
	return id, manifest, err
}

// writeResultFiles writes --iidfile and --metadata-file. For a multi-platform build
// the image ID is the index's digest, as buildx writes it.
func writeResultFiles(o buildOptions, b image.Built) error {
	cfgDigest, mdigest, err := builtDigests(b)
	if err != nil {
		return err
	}
	if o.iidFile != "" {
		if err := writeFileAtomic(o.iidFile, func(w io.Writer) error {
			_, err := io.WriteString(w, cfgDigest.String())
			return err
		}); err != nil {
			return fmt.Errorf("write --iidfile: %w", err)
		}
	}
	if o.metadataFile != "" {
		md := map[string]any{"containerimage.digest": mdigest.String()}
		if b.Index == nil {
			// As buildx: the config digest of a single-platform image, attested or not.
			md["containerimage.config.digest"] = cfgDigest.String()
		}
		if len(o.tags) > 0 {
			md["image.name"] = strings.Join(o.tags, ",")
		}
		if err := writeFileAtomic(o.metadataFile, func(w io.Writer) error {
			enc := json.NewEncoder(w)
			enc.SetIndent("", "  ")
			return enc.Encode(md)
		}); err != nil {
			return fmt.Errorf("write --metadata-file: %w", err)
		}
	}
	return nil
}
