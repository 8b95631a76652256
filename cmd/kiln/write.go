package main

import (
	"context"
	"fmt"
	"io"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/image"
	"github.com/kiln-build/kiln/internal/atomicfile"
	"github.com/kiln-build/kiln/layers"
	"github.com/kiln-build/kiln/snapshot"
	"github.com/kiln-build/kiln/solver"
)

// writeOutputs writes every requested output. Files and dirs appear at dest only
// complete (package atomicfile: an O_TMPFILE linked in when complete, or a leased temp
// name beside dest that the next build to dest removes if this one is killed).
func writeOutputs(ctx context.Context, o buildOptions, outs []outputSpec, res *solver.Result, snaps *snapshot.Snapshotter, stdout io.Writer, prog *progress) error {
	for _, out := range outs {
		var err error
		switch out.Type {
		case "oci":
			err = writeTo(out.Dest, stdout, func(w io.Writer) error {
				return image.WriteOCIArchive(ctx, res.Image, o.tags, w)
			})
		case "docker":
			err = writeTo(out.Dest, stdout, func(w io.Writer) error {
				return image.WriteDockerArchive(ctx, res.Image, o.tags, w)
			})
		case "tar":
			err = withRootfs(ctx, snaps, res, func(root string) error {
				return writeTo(out.Dest, stdout, func(w io.Writer) error {
					return layers.WriteTree(ctx, root, w, layers.WriteOptions{})
				})
			})
		case "local":
			err = withRootfs(ctx, snaps, res, func(root string) error {
				return writeLocal(ctx, root, out.Dest)
			})
		case "registry", "image":
			if !out.Push {
				continue
			}
			names := o.tags
			if out.Name != "" {
				names = []string{out.Name}
			}
			err = image.Push(ctx, res.Image, names, image.PushOptions{
				InsecureRegistry: o.insecure, Jobs: 4, Progress: prog.Info,
			})
		}
		if err != nil {
			if out.Push {
				return err // image.Push names the registry and the image already
			}
			return fmt.Errorf("write %s output to %s: %w", out.Type, destName(out), err)
		}
	}
	return nil
}

func destName(out outputSpec) string {
	if out.Dest == "-" {
		return "stdout"
	}
	if out.Dest == "" {
		return "the registry"
	}
	return out.Dest
}

// withRootfs mounts the final image's filesystem read-only for the duration of fn.
func withRootfs(ctx context.Context, snaps *snapshot.Snapshotter, res *solver.Result, fn func(root string) error) error {
	root, release, err := snaps.View(ctx, res.Snapshots)
	if err != nil {
		return fmt.Errorf("mount the image's filesystem: %w", err)
	}
	defer release()
	return fn(root)
}

// writeLocal copies the rootfs to dir. A new dir is filled under a temp name and
// renamed; an existing dir is written into, as buildx's local exporter does.
func writeLocal(ctx context.Context, root, dir string) error {
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(layers.WriteTree(ctx, root, pw, layers.WriteOptions{Compression: layers.Uncompressed}))
	}()
	defer pr.Close()
	if _, err := os.Stat(dir); err == nil {
		return layers.Unpack(ctx, pr, dir, layers.UnpackOptions{Whiteouts: layers.NoWhiteouts, KeepOwners: true})
	}
	return atomicfile.WriteDir(dir, 0o755, func(tmp string) error {
		return layers.Unpack(ctx, pr, tmp, layers.UnpackOptions{Whiteouts: layers.NoWhiteouts, KeepOwners: true})
	})
}

// writeTo writes to stdout for "-", else atomically to the file dest.
func writeTo(dest string, stdout io.Writer, fn func(io.Writer) error) error {
	if dest == "-" {
		return fn(stdout)
	}
	return writeFileAtomic(dest, fn)
}

// writeFileAtomic writes dest so that it is either the old file or the complete new
// one, and a kill -9 leaves nothing beside it that the next build would not remove.
func writeFileAtomic(dest string, fn func(io.Writer) error) error {
	return atomicfile.Write(dest, 0o644, fn)
}

func pullOptions(o buildOptions) image.PullOptions {
	return image.PullOptions{InsecureRegistry: o.insecure, ForcePull: o.pull, Offline: o.offline}
}

// targetPlatform is --platform, or the host's.
func (o buildOptions) targetPlatform() (v1.Platform, error) {
	if o.platform == "" {
		return v1.Platform{OS: "linux", Architecture: hostArch()}, nil
	}
	p, err := v1.ParsePlatform(o.platform)
	if err != nil {
		return v1.Platform{}, fmt.Errorf("--platform %s: %w", o.platform, err)
	}
	if p.OS != "linux" || p.Architecture != hostArch() {
		return v1.Platform{}, fmt.Errorf("--platform %s: kiln builds only for the host's platform (linux/%s); emulation is not supported", o.platform, hostArch())
	}
	return *p, nil
}
