package image

import (
	"archive/tar"
	"context"
	"fmt"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"io"
	"path"
	"time"

	"github.com/kiln-build/kiln/layers"
)

// writePlatformsTar writes each platform's filesystem into one tar under its own
// directory (linux_amd64/...), as buildx's tar exporter does for a multi-platform
// build. Each tree is written by layers.WriteTree and streamed through, its names
// (and hard links' targets) moved under the directory.
func writePlatformsTar(ctx context.Context, b Built, w io.Writer) error {
	tw := tar.NewWriter(w)
	dirTime := time.Unix(0, 0)
	if b.SourceDateEpoch != nil {
		dirTime = *b.SourceDateEpoch
	}
	for i, pi := range b.Platforms {
		dir := PlatformDir(pi.Platform)
		err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir + "/", Mode: 0o755,
			ModTime: dirTime, Format: tar.FormatPAX})
		if err != nil {
			return err
		}
		err = withRootfs(ctx, Built{Rootfs: pi.Rootfs}, func(root string) error {
			return streamTree(ctx, root, b.SourceDateEpoch, tw, dir)
		})
		if err == nil {
			err = tarAttestations(tw, dir, b.platformAttestations(i), b.SourceDateEpoch)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", pi.Platform.String(), err)
		}
	}
	return tw.Close()
}

// writeRootfsTar writes one image's filesystem as a tar, its attestations as files
// at the top as BuildKit's tar exporter adds them.
func writeRootfsTar(ctx context.Context, root string, b Built, w io.Writer) error {
	atts := b.platformAttestations(0)
	if len(atts) == 0 {
		return layers.WriteTree(ctx, root, w, layers.WriteOptions{ModTime: b.SourceDateEpoch})
	}
	tw := tar.NewWriter(w)
	if err := streamTree(ctx, root, b.SourceDateEpoch, tw, ""); err != nil {
		return err
	}
	if err := tarAttestations(tw, "", atts, b.SourceDateEpoch); err != nil {
		return err
	}
	return tw.Close()
}

// streamTree writes the tree at root into tw, its names under dir.
func streamTree(ctx context.Context, root string, modTime *time.Time, tw *tar.Writer, dir string) error {
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(layers.WriteTree(ctx, root, pw, layers.WriteOptions{ModTime: modTime}))
	}()
	defer pr.Close()
	return prefixTar(tar.NewReader(pr), tw, dir)
}

// tarAttestations adds each attestation's statement under dir, mode 0600 as
// BuildKit writes them.
func tarAttestations(tw *tar.Writer, dir string, atts []Attestation, modTime *time.Time) error {
	mt := time.Now()
	if modTime != nil {
		mt = *modTime
	}
	for _, a := range atts {
		data, err := a.Statement(nil, v1.Platform{}, v1.Hash{})
		if err != nil {
			return err
		}
		h := &tar.Header{Typeflag: tar.TypeReg, Name: path.Join(dir, a.Path), Mode: 0o600, Size: int64(len(data)),
			ModTime: mt.Truncate(time.Second).UTC(), Format: tar.FormatPAX}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := tw.Write(data); err != nil {
			return err
		}
	}
	return nil
}

// prefixTar copies every entry of tr to tw with its name under dir.
func prefixTar(tr *tar.Reader, tw *tar.Writer, dir string) error {
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if dir == "" {
			if err := tw.WriteHeader(h); err != nil {
				return err
			}
			if _, err := io.Copy(tw, tr); err != nil {
				return err
			}
			continue
		}
		h.Name = path.Join(dir, h.Name)
		if h.Typeflag == tar.TypeDir {
			h.Name += "/"
		}
		if h.Typeflag == tar.TypeLink {
			h.Linkname = path.Join(dir, h.Linkname)
		}
		// The names are the header's: records that would override them go.
		delete(h.PAXRecords, "path")
		delete(h.PAXRecords, "linkpath")
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return err
		}
	}
}
