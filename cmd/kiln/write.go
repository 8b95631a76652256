package main

import (
	"context"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"

	"github.com/kiln-build/kiln/cache"
	"github.com/kiln-build/kiln/image"
	"github.com/kiln-build/kiln/internal/atomicfile"
	"github.com/kiln-build/kiln/snapshot"
	"github.com/kiln-build/kiln/solver"
)

// builtImage is what the outputs write: the one image of a single-platform build,
// or the image index of a multi-platform one with each platform's image.
func builtImage(plats []v1.Platform, results []*solver.Result, tags []string, store *cache.Store, snaps *snapshot.Snapshotter, prog *progress) (image.Built, error) {
	rootfs := func(res *solver.Result) image.Rootfs {
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
// build's platforms: the docker output holds one image (as in buildx).
func checkOutputsForPlatforms(outs []outputSpec, plats []v1.Platform) error {
	if len(plats) < 2 {
		return nil
	}
	for _, out := range outs {
		if out.Type == "docker" {
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
func writeOutputs(ctx context.Context, o buildOptions, outs []outputSpec, built image.Built, stdout io.Writer, prog *progress) error {
	for _, out := range outs {
		w := out.writer(o, stdout, prog)
		if w == nil {
			continue
		}
		done := exportTask(prog, out, built, o.tags)
		err := w.Write(ctx, built)
		done(err)
		if err != nil {
			return err
		}
	}
	return nil
}

// writer is the image.Output that out asks for, nil for an image output not pushed.
func (out outputSpec) writer(o buildOptions, stdout io.Writer, prog *progress) image.Output {
	switch out.Type {
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
			InsecureRegistry: o.insecure, Jobs: 4,
		}}
	}
	return nil
}

// writeFileAtomic writes dest so that it is either the old file or the complete new
// one, and a kill -9 leaves nothing beside it that the next build would not remove.
func writeFileAtomic(dest string, fn func(io.Writer) error) error {
	return atomicfile.Write(dest, 0o644, fn)
}
