package image

import (
	"context"
	"fmt"
	"io"
	"os"

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
	return writeArchiveTo(ctx, "oci", o.Dest, o.Stdout, b, WriteOCIArchive)
}

// DockerArchive writes the image as a docker load tarball (WriteDockerArchive) to
// the file Dest, or to Stdout when Dest is "-".
type DockerArchive struct {
	Dest   string
	Stdout io.Writer
}

func (o DockerArchive) Write(ctx context.Context, b Built) error {
	return writeArchiveTo(ctx, "docker", o.Dest, o.Stdout, b, WriteDockerArchive)
}

// writeArchiveTo writes b with write (an image archive writer) to dest or stdout.
func writeArchiveTo(ctx context.Context, typ, dest string, stdout io.Writer, b Built, write func(context.Context, v1.Image, []string, io.Writer) error) error {
	return wrapOutput(typ, dest, writeTo(dest, stdout, func(w io.Writer) error {
		return write(ctx, b.Image, b.Tags, w)
	}))
}

// RootfsTar writes the image's filesystem as a plain tar, as buildx's tar exporter,
// to the file Dest, or to Stdout when Dest is "-".
type RootfsTar struct {
	Dest   string
	Stdout io.Writer
}

func (o RootfsTar) Write(ctx context.Context, b Built) error {
	return wrapOutput("tar", o.Dest, withRootfs(ctx, b, func(root string) error {
		return writeTo(o.Dest, o.Stdout, func(w io.Writer) error {
			return layers.WriteTree(ctx, root, w, layers.WriteOptions{})
		})
	}))
}

// LocalDir copies the image's filesystem into the directory Dir. A new dir is filled
// under a temp name and renamed; an existing dir is written into, as buildx's local
// exporter does.
type LocalDir struct {
	Dir string
}

func (o LocalDir) Write(ctx context.Context, b Built) error {
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

// writeTo writes to stdout for "-", else atomically to the file dest.
func writeTo(dest string, stdout io.Writer, fn func(io.Writer) error) error {
	if dest == "-" {
		return fn(stdout)
	}
	return atomicfile.Write(dest, 0o644, fn)
}
