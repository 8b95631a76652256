package image

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

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

	// Attestations are each platform's attestations (provenance, SBOM), in
	// Platforms' order; index 0 is the one image's. An image output writes them
	// in attestation manifests of the index (Attested); a local output as files.
	Attestations [][]Attestation

	// SourceDateEpoch, when set, is every file's time in the outputs that write the
	// filesystem (local, tar), as BuildKit's local and tar exporters write them.
	SourceDateEpoch *time.Time
}

// Attested is the index an image output (oci, a push) writes: Index, or with
// attestations an index of the images and their attestation manifests (for one
// platform too, as BuildKit). nil for one image without attestations: the image is
// written as it is.
func (b Built) Attested() (v1.ImageIndex, error) {
	if !b.HasAttestations() {
		return b.Index, nil
	}
	imgs := b.Platforms
	if b.Index == nil {
		p, err := imagePlatform(b.Image)
		if err != nil {
			return nil, err
		}
		imgs = []PlatformImage{{Platform: p, Image: b.Image, Rootfs: b.Rootfs}}
	}
	return NewAttestedIndex(imgs, b.Attestations, b.Tags)
}

// HasAttestations says some platform has an attestation.
func (b Built) HasAttestations() bool {
	for _, a := range b.Attestations {
		if len(a) > 0 {
			return true
		}
	}
	return false
}

// imagePlatform is the platform an image's config names.
func imagePlatform(img v1.Image) (v1.Platform, error) {
	cfg, err := img.ConfigFile()
	if err != nil {
		return v1.Platform{}, fmt.Errorf("read image config: %w", err)
	}
	if p := cfg.Platform(); p != nil {
		return *p, nil
	}
	return v1.Platform{OS: cfg.OS, Architecture: cfg.Architecture}, nil
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
	idx, err := b.Attested()
	if err != nil {
		return wrapOutput("oci", o.Dest, err)
	}
	if idx != nil {
		return wrapOutput("oci", o.Dest, writeTo(o.Dest, o.Stdout, func(w io.Writer) error {
			return WriteOCIIndexArchive(ctx, idx, b.Tags, w)
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
			return writePlatformsTar(ctx, b, w)
		}))
	}
	return wrapOutput("tar", o.Dest, withRootfs(ctx, b, func(root string) error {
		return writeTo(o.Dest, o.Stdout, func(w io.Writer) error {
			return writeRootfsTar(ctx, root, b, w)
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
		return wrapOutput("local", o.Dir, writeLocalPlatforms(ctx, b.Platforms, b.platformAttestations, b.SourceDateEpoch, o.Dir))
	}
	return wrapOutput("local", o.Dir, withRootfs(ctx, b, func(root string) error {
		return writeLocal(ctx, root, o.Dir, b.platformAttestations(0), b.SourceDateEpoch)
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
	idx, err := b.Attested()
	if err != nil {
		return fmt.Errorf("push: %w", err)
	}
	if idx != nil {
		return Push(ctx, idx, names, o.Opts)
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

// platformAttestations are platform i's attestations (none when there are none).
func (b Built) platformAttestations(i int) []Attestation {
	if i < len(b.Attestations) {
		return b.Attestations[i]
	}
	return nil
}

// writeAttestationFiles writes each attestation's statement into dir under its
// Path, as BuildKit's local exporter does. A file output has no image manifest to
// name, so the statements have no subjects.
func writeAttestationFiles(dir string, atts []Attestation, modTime *time.Time) error {
	for _, a := range atts {
		data, err := a.Statement(nil, v1.Platform{}, v1.Hash{})
		if err != nil {
			return err
		}
		p := filepath.Join(dir, a.Path)
		if err := atomicfile.Write(p, 0o600, func(w io.Writer) error {
			_, err := w.Write(data)
			return err
		}); err != nil {
			return fmt.Errorf("write attestation %s: %w", a.Path, err)
		}
		if modTime != nil {
			if err := os.Chtimes(p, *modTime, *modTime); err != nil {
				return fmt.Errorf("write attestation %s: %w", a.Path, err)
			}
		}
	}
	return nil
}

func writeLocal(ctx context.Context, root, dir string, atts []Attestation, modTime *time.Time) error {
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(layers.WriteTree(ctx, root, pw, layers.WriteOptions{Compression: layers.Uncompressed, ModTime: modTime}))
	}()
	defer pr.Close()
	opts := layers.UnpackOptions{Whiteouts: layers.NoWhiteouts, KeepOwners: true}
	if _, err := os.Stat(dir); err == nil {
		if err := layers.Unpack(ctx, pr, dir, opts); err != nil {
			return err
		}
		return writeAttestationFiles(dir, atts, modTime)
	}
	return atomicfile.WriteDir(dir, 0o755, func(tmp string) error {
		if err := layers.Unpack(ctx, pr, tmp, opts); err != nil {
			return err
		}
		return writeAttestationFiles(tmp, atts, modTime)
	})
}

// writeLocalPlatforms writes each platform's files into its subdirectory of dir: a
// new dir appears whole, an existing one is written into.
func writeLocalPlatforms(ctx context.Context, imgs []PlatformImage, atts func(int) []Attestation, modTime *time.Time, dir string) error {
	fill := func(dir string) error {
		for i, pi := range imgs {
			err := withRootfs(ctx, Built{Rootfs: pi.Rootfs}, func(root string) error {
				return writeLocal(ctx, root, filepath.Join(dir, PlatformDir(pi.Platform)), atts(i), modTime)
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
