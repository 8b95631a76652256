package snapshot

import (
	"context"
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/layers"
)

// A snapshot can be named before its files exist: a base image's layer, or a COPY
// that wrote only its layer (no later step read its files), is recorded by the
// engine with the id of the snapshot it will be, and IngestLayer makes that
// snapshot from the layer the first time something needs the files (a later step
// over it, a local or tar output). The layer is the source of truth; the snapshot
// is a cache of its tree.

// IngestLayer makes committed snapshot id hold layer l's tree, unless it exists.
func (s *Snapshotter) IngestLayer(ctx context.Context, id string, l v1.Layer) error {
	if s.Exists(id) {
		return nil
	}
	return s.Ingest(ctx, id, func(dir string) error { return UnpackLayer(ctx, l, dir) })
}

// UnpackLayer unpacks layer l into dir as a snapshot's tree (overlay whiteouts,
// owners kept), reading its blob to the end, where a verifying reader (the store's
// blobs, a remote cache's) checks the digest: the tar ends before the stream does.
// When the unpack fails, the rest is read too and its error preferred: damage usually
// breaks the decompressor first, and the reader's error names the damaged blob, which
// the build can repair, where the decompressor's would only say the layer is bad.
func UnpackLayer(ctx context.Context, l v1.Layer, dir string) error {
	d, err := l.Digest()
	if err != nil {
		return err
	}
	rc, err := l.Compressed()
	if err != nil {
		return fmt.Errorf("open layer %s: %w", d, err)
	}
	defer rc.Close()
	if err := layers.Unpack(ctx, rc, dir, layers.UnpackOptions{Whiteouts: layers.OverlayWhiteouts, KeepOwners: true}); err != nil {
		if _, derr := io.Copy(io.Discard, rc); derr != nil && ctx.Err() == nil {
			err = derr
		}
		return fmt.Errorf("unpack layer %s: %w", d, err)
	}
	if _, err := io.Copy(io.Discard, rc); err != nil {
		return fmt.Errorf("unpack layer %s: %w", d, err)
	}
	return nil
}
