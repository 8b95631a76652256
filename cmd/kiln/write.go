package main

import (
	"context"
	"io"

	"github.com/kiln-build/kiln/cache"
	"github.com/kiln-build/kiln/image"
	"github.com/kiln-build/kiln/internal/atomicfile"
	"github.com/kiln-build/kiln/snapshot"
	"github.com/kiln-build/kiln/solver"
)

// writeOutputs writes every requested output (package image writes them).
func writeOutputs(ctx context.Context, o buildOptions, outs []outputSpec, res *solver.Result, store *cache.Store, snaps *snapshot.Snapshotter, stdout io.Writer, prog *progress) error {
	built := image.Built{Image: res.Image, Tags: o.tags, Rootfs: &image.SnapshotRootfs{
		Image: res.Image, Snapshots: res.Snapshots, Snaps: snaps, Store: store, Warn: prog.Warn,
	}}
	for _, out := range outs {
		w := out.writer(o, stdout, prog)
		if w == nil {
			continue
		}
		done := exportTask(prog, out, res.Image, o.tags)
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
