package remote

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/kiln-build/kiln/cache"
	"github.com/kiln-build/kiln/image"
	"github.com/kiln-build/kiln/layers"
)

// A cache written with compression= holds every layer in that codec (what BuildKit's
// force-compression=true does; kiln keeps no per-codec variants of a layer to choose
// from, so force-compression=false is refused). A layer in another codec is
// re-encoded from its uncompressed tar, entry by entry unchanged (layers.Rewrite
// without an epoch), so its diff ID and the step's tree stay the same; the result is
// kept in the local store as an entry of its own, so the next export of the layer
// does not encode it again.

// recompressed is layer l of entry layer el in codec c at level (0: the codec's
// default), and its entry layer.
func (s *Store) recompressed(ctx context.Context, l v1.Layer, el *cache.Layer, c layers.Compression, level int) (v1.Layer, *cache.Layer, error) {
	spec, _ := json.Marshal(struct {
		C layers.Compression `json:"c"`
		L int                `json:"l"`
	}{c, level})
	key := "cache-compression:" + recordDigest(el.DiffID+" "+string(spec))
	if e, ok, err := s.Store.GetStep(ctx, key); err == nil && ok && e.Layer != nil {
		if d, err := v1.NewHash(e.Layer.Digest); err == nil && s.Store.HasBlob(d) && e.Layer.DiffID == el.DiffID {
			diffID, _ := v1.NewHash(e.Layer.DiffID)
			return image.StoreLayer(s.Store, d, diffID, e.Layer.Size, types.MediaType(e.Layer.MediaType)), e.Layer, nil
		}
	}
	rc, err := l.Uncompressed()
	if err != nil {
		return nil, nil, fmt.Errorf("layer %s: %w", el.Digest, err)
	}
	defer rc.Close()
	bw, err := s.Store.NewBlobWriter()
	if err != nil {
		return nil, nil, err
	}
	defer bw.Abort()
	blob, err := layers.Rewrite(ctx, rc, bw, layers.WriteOptions{Compression: c, Level: level})
	if err == nil {
		_, err = io.Copy(io.Discard, rc) // to the end, where the blob's digest is checked
	}
	if err != nil {
		return nil, nil, fmt.Errorf("recompress layer %s to %s: %w", el.Digest, c, err)
	}
	if blob.DiffID.String() != el.DiffID {
		return nil, nil, fmt.Errorf("recompress layer %s to %s: its tar came out as %s, not %s", el.Digest, c, blob.DiffID, el.DiffID)
	}
	if err := bw.Commit(blob.Digest, false); err != nil {
		return nil, nil, fmt.Errorf("store layer %s recompressed: %w", el.Digest, err)
	}
	nl := &cache.Layer{Digest: blob.Digest.String(), DiffID: el.DiffID, Size: blob.Size, MediaType: string(blob.MediaType)}
	now := time.Now()
	if err := s.Store.PutStep(ctx, &cache.Entry{Key: key, Created: now, Used: now, Layer: nl}); err != nil {
		return nil, nil, fmt.Errorf("record layer %s recompressed: %w", el.Digest, err)
	}
	return image.StoreLayer(s.Store, blob.Digest, blob.DiffID, blob.Size, blob.MediaType), nl, nil
}

// cacheLayerType is the media type a layer of codec c is written under: OCI's, or
// Docker's with oci-mediatypes=false (which has no zstd: Parse refuses that).
func cacheLayerType(c layers.Compression, oci bool) types.MediaType {
	switch {
	case c == layers.Zstd:
		return types.OCILayerZStd
	case c == layers.Uncompressed && oci:
		return types.OCIUncompressedLayer
	case c == layers.Uncompressed:
		return types.DockerUncompressedLayer
	case oci:
		return types.OCILayer
	}
	return types.DockerLayer
}
