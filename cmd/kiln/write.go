package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

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
		done := exportTask(prog, out, b.Image, o.tags)
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
		img, ok := mutate.Annotations(b.Image, out.Annotations).(v1.Image)
		if !ok {
			return b, fmt.Errorf("annotate the image manifest: not an image")
		}
		b.Image = img
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
