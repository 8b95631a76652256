package dockerfile

import (
	"context"
	"encoding/json"

	"github.com/kiln-build/kiln/source"
)

// selectionDigest is the content digest of exactly what opts selects in src, the
// value a COPY --from, a bind mount or a cache mount's seed is keyed by: BuildKit keys
// them by the selected content too, so a change elsewhere in the source stage does
// not rerun the step.
//
// A stage's or an image's tree never changes under its identity (src.content), so
// the digest of a selection in it is memoised in the store's digest cache by
// (identity, selection): a warm build does not read the files again. The context and
// other directories have no such identity; they are hashed through the file-metadata
// cache as for COPY, and their per-file digests come back to explain a miss.
func (b *build) selectionDigest(ctx context.Context, src *copySource, opts source.CopyOptions) (*source.Sum, error) {
	hc := b.eng.HashCache()
	memo := selectionMemo(src, opts)
	if memo != "" {
		if d, ok := hc.Get(memo); ok {
			return &source.Sum{Digest: d}, nil
		}
	}
	// A stage's files are seen through a fresh mount each time (new device, new
	// paths): their metadata would only fill the file cache with entries no later
	// build can hit, so they are hashed without it.
	fileCache := hc
	if memo != "" {
		fileCache = nil
	}
	sum, err := source.Digest(ctx, src.src, opts, fileCache)
	if err != nil {
		return nil, err
	}
	if memo != "" {
		hc.Put(memo, sum.Digest)
	}
	return sum, nil
}

// SelectionMemoPrefix begins the digest-cache keys of selection digests: a remote
// cache carries those (they are not tied to one machine's files).
const SelectionMemoPrefix = "selection:"

// selectionMemo is the digest-cache key of the selection opts in src, "" when src
// has no identity to memoise by.
func selectionMemo(src *copySource, opts source.CopyOptions) string {
	if src.content == "" {
		return ""
	}
	sel := struct {
		Tree, Dest         string
		Sources, Excludes  []string
		Add, Keep, Parents bool
	}{src.content, opts.Dest, opts.Sources, opts.Excludes, opts.Add, opts.KeepArchives, opts.Parents}
	data, _ := json.Marshal(sel)
	return SelectionMemoPrefix + digestOf(string(data))
}
