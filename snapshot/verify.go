package snapshot

import (
	"context"
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/layers"
)

// TreeDiffID is the diffID of the layer committed snapshot id's tree makes (an
// uncompressed tar written by layers.WriteUpperDiff, read-only): for a step's
// snapshot, whose tree is normalised to its layer when committed or unpacked from it,
// it is the diffID of that layer unless the tree was damaged since.
func (s *Snapshotter) TreeDiffID(ctx context.Context, id string) (v1.Hash, error) {
	if !s.Exists(id) {
		return v1.Hash{}, fmt.Errorf("snapshot %s does not exist", id)
	}
	blob, _, err := layers.WriteUpperDiff(ctx, s.Path(id), io.Discard, layers.WriteOptions{Compression: layers.Uncompressed})
	if err != nil {
		return v1.Hash{}, fmt.Errorf("snapshot %s: %w", id, err)
	}
	return blob.DiffID, nil
}
