package image

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/internal/atomicfile"
	"github.com/kiln-build/kiln/layers"
)

// Built is what an Output writes: the image, the names it is written under, and its
// filesystem for the outputs that write files rather than an image.
type Built struct {
	Image  v1.Image
	Tags   []string
	Rootfs Rootfs // nil when no output needs the files

	// Index is the image index of a multi-platform build (NewIndex of Platforms),
	// nil for one platform. Image and Rootfs are then nil: each platform's are in
	// Platforms.
	Index     v1.ImageIndex
	Platforms []PlatformImage
}

// OnePlatform refuses a multi-platform build for an output that holds one image
// (docker).
func (b Built) OnePlatform(typ string) error {
	if b.Index == nil {
		return nil
	}
	names := make([]string, len(b.Platforms))
	for i, p := range b.Platforms {
		names[i] = p.Platform.String()
	}
	return fmt.Errorf("the %s output holds one platform's image and this build made %d (%s): "+
		"build with one --platform, or use type=oci or --push for the image index", typ, len(b.Platforms), strings.Join(names, ", "))
}

// Rootfs is a built image's flattened filesystem.
type Rootfs interface {
	// View makes the filesystem readable at root until release is called. root holds
	// the image's files exactly (a View that cannot vouch for them fails instead).
	View(ctx context.Context) (root string, release func() error, err error)
}

// Output writes a built image somewhere. Files and dirs appear at their destination
// only complete (package atomicfile: an O_TMPFILE linked in when complete, or a leased
// temp name beside it that the next write to it removes if this one is killed), so
// nothing is written to the destination when Write fails.
type Output interface {
	Write(ctx context.Context, b Built) error
}

// OCIArchive writes the image as an OCI image-layout tar (WriteOCIArchive) to the file
// Dest, or to Stdout when Dest is "-".
type OCIArchive struct {
	Dest   string
	Stdout io.Writer
}

func (o OCIArchive) Write(ctx context.Context, b Built) error {
	if b.Index != nil {
		return wrapOutput("oci", o.Dest, writeTo(o.Dest, o.Stdout, func(w io.Writer) error {
			return WriteOCIIndexArchive(ctx, b.Index, b.Tags, w)
		}))
	}
	return writeArchiveTo(ctx, "oci", o.Dest, o.Stdout, b, WriteOCIArchive)
}

// DockerArchive writes the image as a docker load tarball (WriteDockerArchive) to
// the file Dest, or to Stdout when Dest is "-".
type DockerArchive struct {
	Dest   string
	Stdout io.Writer
}

func (o DockerArchive) Write(ctx context.Context, b Built) error {
	if err := b.OnePlatform("docker"); err != nil {
		return wrapOutput("docker", o.Dest, err)
	}
	return writeArchiveTo(ctx, "docker", o.Dest, o.Stdout, b, WriteDockerArchive)
}

// writeArchiveTo writes b with write (an image archive writer) to dest or stdout.
func writeArchiveTo(ctx context.Context, typ, dest string, stdout io.Writer, b Built, write func(context.Context, v1.Image, []string, io.Writer) error) error {
	return wrapOutput(typ, dest, writeTo(dest, stdout, func(w io.Writer) error {
		return write(ctx, b.Image, b.Tags, w)
	}))
}

// RootfsTar writes the image's filesystem as a plain tar, as buildx's tar exporter,
// to the file Dest, or to Stdout when Dest is "-". A multi-platform build's tar has a
// directory per platform (PlatformDir), as buildx's.
type RootfsTar struct {
	Dest   string
	Stdout io.Writer
}

func (o RootfsTar) Write(ctx context.Context, b Built) error {
	if b.Index != nil {
		return wrapOutput("tar", o.Dest, writeTo(o.Dest, o.Stdout, func(w io.Writer) error {
			return writePlatformsTar(ctx, b.Platforms, w)
		}))
	}
	return wrapOutput("tar", o.Dest, withRootfs(ctx, b, func(root string) error {
		return writeTo(o.Dest, o.Stdout, func(w io.Writer) error {
			return layers.WriteTree(ctx, root, w, layers.WriteOptions{})
		})
	}))
}

// LocalDir copies the image's filesystem into the directory Dir. A new dir is filled
// under a temp name and renamed; an existing dir is written into, as buildx's local
// exporter does. A multi-platform build gets a subdirectory per platform, named as
// buildx names them (PlatformDir: linux_amd64, linux_arm64).
type LocalDir struct {
	Dir string
}

func (o LocalDir) Write(ctx context.Context, b Built) error {
	if b.Index != nil {
		return wrapOutput("local", o.Dir, writeLocalPlatforms(ctx, b.Platforms, o.Dir))
	}
	return wrapOutput("local", o.Dir, withRootfs(ctx, b, func(root string) error {
		return writeLocal(ctx, root, o.Dir)
	}))
}

// Registry pushes the image under Names (Push), or under the build's tags when Names
// is empty.
type Registry struct {
	Names []string
	Opts  PushOptions
}

func (o Registry) Write(ctx context.Context, b Built) error {
	names := o.Names
	if len(names) == 0 {
		names = b.Tags
	}
	// Push's errors name the registry and the image already.
	if b.Index != nil {
		return Push(ctx, b.Index, names, o.Opts)
	}
	return Push(ctx, b.Image, names, o.Opts)
}

// wrapOutput names the output and its destination in err.
func wrapOutput(typ, dest string, err error) error {
	if err == nil {
		return nil
	}
	where := dest
	if dest == "-" {
		where = "stdout"
	}
	return fmt.Errorf("write %s output to %s: %w", typ, where, err)
}

// withRootfs views b's filesystem for the duration of fn.
func withRootfs(ctx context.Context, b Built, fn func(root string) error) error {
	if b.Rootfs == nil {
		return fmt.Errorf("internal error: the build kept no filesystem for this output")
	}
	root, release, err := b.Rootfs.View(ctx)
	if err != nil {
		return fmt.Errorf("mount the image's filesystem: %w", err)
	}
	defer release()
	return fn(root)
}

func writeLocal(ctx context.Context, root, dir string) error {
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(layers.WriteTree(ctx, root, pw, layers.WriteOptions{Compression: layers.Uncompressed}))
	}()
	defer pr.Close()
	opts := layers.UnpackOptions{Whiteouts: layers.NoWhiteouts, KeepOwners: true}
	if _, err := os.Stat(dir); err == nil {
		return layers.Unpack(ctx, pr, dir, opts)
	}
	return atomicfile.WriteDir(dir, 0o755, func(tmp string) error {
		return layers.Unpack(ctx, pr, tmp, opts)
	})
}

// writeLocalPlatforms writes each platform's files into its subdirectory of dir: a
// new dir appears whole, an existing one is written into.
func writeLocalPlatforms(ctx context.Context, imgs []PlatformImage, dir string) error {
	fill := func(dir string) error {
		for _, pi := range imgs {
			err := withRootfs(ctx, Built{Rootfs: pi.Rootfs}, func(root string) error {
				return writeLocal(ctx, root, filepath.Join(dir, PlatformDir(pi.Platform)))
			})
			if err != nil {
				return fmt.Errorf("%s: %w", pi.Platform.String(), err)
			}
		}
		return nil
	}
	if _, err := os.Stat(dir); err == nil {
		return fill(dir)
	}
	return atomicfile.WriteDir(dir, 0o755, fill)
}

// writeTo writes to stdout for "-", else atomically to the file dest.
func writeTo(dest string, stdout io.Writer, fn func(io.Writer) error) error {
	if dest == "-" {
		return fn(stdout)
	}
	return atomicfile.Write(dest, 0o644, fn)
}
