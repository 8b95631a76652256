package image

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"path"
	"time"

	"github.com/kiln-build/kiln/layers"
)

// writePlatformsTar writes each platform's filesystem into one tar under its own
// directory (linux_amd64/...), as buildx's tar exporter does for a multi-platform
// build. Each tree is written by layers.WriteTree and streamed through, its names
// (and hard links' targets) moved under the directory.
func writePlatformsTar(ctx context.Context, imgs []PlatformImage, w io.Writer) error {
	tw := tar.NewWriter(w)
	for _, pi := range imgs {
		dir := PlatformDir(pi.Platform)
		err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir + "/", Mode: 0o755,
			ModTime: time.Unix(0, 0), Format: tar.FormatPAX})
		if err != nil {
			return err
		}
		err = withRootfs(ctx, Built{Rootfs: pi.Rootfs}, func(root string) error {
			pr, pw := io.Pipe()
			go func() {
				pw.CloseWithError(layers.WriteTree(ctx, root, pw, layers.WriteOptions{}))
			}()
			defer pr.Close()
			return prefixTar(tar.NewReader(pr), tw, dir)
		})
		if err != nil {
			return fmt.Errorf("%s: %w", pi.Platform.String(), err)
		}
	}
	return tw.Close()
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
