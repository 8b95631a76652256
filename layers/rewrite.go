package layers

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Rewrite copies the layer tar read from r (uncompressed) to w through opts' codec,
// clamping every mtime above opts.SourceDateEpoch down to it: the export transform
// of a cached layer. A step's own layer keeps the mtimes of its tree, so the tree
// and its layer stay one thing; what an output asks for (a codec, reproducible
// mtimes) is made from that layer here, once, and kept beside it.
//
// Entries are written in the order read, with the header fields the layer writer
// uses (PAX, no access or change times); xattrs are kept. Without an epoch the tar
// is copied entry by entry unchanged, so only the compression differs.
func Rewrite(ctx context.Context, r io.Reader, w io.Writer, opts WriteOptions) (Blob, error) {
	bw, err := newBlobWriter(w, opts)
	if err != nil {
		return Blob{}, err
	}
	blob, err := rewrite(ctx, r, bw, opts.SourceDateEpoch)
	if err != nil {
		bw.abort()
		return Blob{}, fmt.Errorf("rewrite layer: %w", err)
	}
	return blob, nil
}

func rewrite(ctx context.Context, r io.Reader, bw *blobWriter, epoch *time.Time) (Blob, error) {
	tr := tar.NewReader(r)
	tw := bw.newTar()
	for {
		if err := ctx.Err(); err != nil {
			return Blob{}, err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return Blob{}, err
		}
		out := &tar.Header{
			Typeflag: hdr.Typeflag, Name: hdr.Name, Linkname: hdr.Linkname, Size: hdr.Size,
			Mode: hdr.Mode, Uid: hdr.Uid, Gid: hdr.Gid, Uname: hdr.Uname, Gname: hdr.Gname,
			ModTime: hdr.ModTime, Devmajor: hdr.Devmajor, Devminor: hdr.Devminor,
			Format: tar.FormatPAX,
		}
		for k, v := range hdr.PAXRecords {
			if strings.HasPrefix(k, "SCHILY.xattr.") {
				if out.PAXRecords == nil {
					out.PAXRecords = map[string]string{}
				}
				out.PAXRecords[k] = v
			}
		}
		if epoch != nil {
			if e := epoch.Truncate(time.Second); out.ModTime.After(e) {
				out.ModTime = e
			}
		}
		out.ModTime = out.ModTime.UTC()
		if err := tw.WriteHeader(out); err != nil {
			return Blob{}, fmt.Errorf("%s: %w", hdr.Name, err)
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return Blob{}, fmt.Errorf("%s: %w", hdr.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return Blob{}, err
	}
	return bw.close()
}

// CompressionOf is the codec a layer media type names.
func CompressionOf(mt string) Compression {
	switch {
	case strings.Contains(mt, "zstd"):
		return Zstd
	case strings.Contains(mt, "gzip"), strings.HasSuffix(mt, ".tar.gzip"):
		return Gzip
	}
	return Uncompressed
}
