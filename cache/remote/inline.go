package remote

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// An inline cache (--cache-to type=inline) is BuildKit's: the image's own config
// carries the records under InlineField, as the JSON of a byte string (so base64)
// holding the JSON array of the records; their layers are the image's layers, layer
// i standing for the chain of layers 0..i, so a record's result names the image
// layer of its step. --cache-from type=registry,ref=IMAGE reads it back. kiln's
// records ride in "kiln" members as in a cache config, with the key version in each.
//
// With SOURCE_DATE_EPOCH set the image's step layers are export transforms of the
// steps' own (mtimes clamped), and the image holds no other form of them: a step's
// record then names the image's layer and says so (kilnRecord.Epoch). Such a record
// is a hit only for a build with the same SOURCE_DATE_EPOCH (its outputs get that
// very layer), and is never written to the local store, whose entries must hold the
// step's own layer. A step that misses after it runs on the clamped tree.

// InlineField is the image config member of BuildKit's inline cache.
const InlineField = "moby.buildkit.cache.v0"

// InlineOptions configure InlineCache.
type InlineOptions struct {
	KeyVersion      string
	SourceDateEpoch *time.Time // the build's, which made the image's layers
}

// InlineCache is the value of InlineField for an image whose layers are, as the
// steps made them, stepDiffIDs and, as the image has them, imageDiffIDs: a record for
// each key (sorted, so that two builds of one image write one config) whose entry's
// layer is in the image. It returns the value and how many records it holds.
func InlineCache(ctx context.Context, src Entries, keys []string, stepDiffIDs, imageDiffIDs []v1.Hash, o InlineOptions) (json.RawMessage, int, error) {
	if len(stepDiffIDs) != len(imageDiffIDs) {
		return nil, 0, fmt.Errorf("inline cache: %d step layers but %d image layers", len(stepDiffIDs), len(imageDiffIDs))
	}
	keys = slices.Clone(keys)
	slices.Sort(keys)
	keys = slices.Compact(keys)
	var recs []cacheRecord
	for _, key := range keys {
		e, ok, err := src.GetStep(ctx, key)
		if err != nil {
			return nil, 0, fmt.Errorf("inline cache: %w", err)
		}
		if !ok {
			continue
		}
		rec := cacheRecord{Digest: recordDigest(key), Kiln: &kilnRecord{
			Key: key, Config: json.RawMessage(e.Config), History: e.History, Created: e.Created, KeyVersion: o.KeyVersion,
		}}
		if len(e.Config) == 0 {
			rec.Kiln.Config = nil
		}
		if e.Layer != nil {
			d, err := v1.NewHash(e.Layer.DiffID)
			if err != nil {
				continue
			}
			i := slices.Index(imageDiffIDs, d)
			if i < 0 {
				if i = slices.Index(stepDiffIDs, d); i < 0 || o.SourceDateEpoch == nil {
					continue // not in the image (another stage's): no blob to point at
				}
				ep := o.SourceDateEpoch.Unix()
				rec.Kiln.Epoch = &ep
			}
			rec.Results = []cacheResult{{LayerIndex: i, CreatedAt: e.Created}}
			rec.Kiln.DiffID = e.Layer.DiffID
			rec.Kiln.Snapshot = e.Layer.Snapshot != ""
		}
		recs = append(recs, rec)
	}
	if recs == nil {
		recs = []cacheRecord{}
	}
	raw, err := json.Marshal(recs)
	if err != nil {
		return nil, 0, err
	}
	val, err := json.Marshal(raw) // a byte string: base64, as BuildKit writes it
	return val, len(recs), err
}

// inlineImage is the part of an image config an inline cache is read from.
type inlineImage struct {
	RootFS struct {
		DiffIDs []v1.Hash `json:"diff_ids"`
	} `json:"rootfs"`
	Cache []byte `json:"moby.buildkit.cache.v0"`
}

// loadInline reads the inline cache of the image whose manifest is m into src: its
// config (verified), the kiln records of keyVersion in it, each pointing at one of
// the image's layers. A record whose layer is clamped to another SOURCE_DATE_EPOCH
// than epoch's (or for a build without one) is left out.
func loadInline(ctx context.Context, src *source, m *v1.Manifest, keyVersion string, epoch *time.Time, note func(string)) error {
	if m.Config.Size > maxConfigSize {
		return fmt.Errorf("image config of %d bytes is over the limit of %d", m.Config.Size, maxConfigSize)
	}
	rc, err := src.be.blob(ctx, m.Config.Digest)
	if err != nil {
		return err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, maxConfigSize+1))
	if err != nil {
		return fmt.Errorf("read image config: %w", err)
	}
	sum := sha256.Sum256(data)
	if got := "sha256:" + hex.EncodeToString(sum[:]); got != m.Config.Digest.String() {
		return fmt.Errorf("image config %s is corrupt (its bytes hash to %s); refused", m.Config.Digest, got)
	}
	var img inlineImage
	if err := json.NewDecoder(bytes.NewReader(data)).Decode(&img); err != nil {
		return fmt.Errorf("read image config: %w", err)
	}
	if img.Cache == nil {
		note(fmt.Sprintf("cache-from %s: an image without an inline cache (push it with --cache-to type=inline); nothing to read", src.spec))
		return nil
	}
	if len(img.RootFS.DiffIDs) != len(m.Layers) {
		return fmt.Errorf("image config has %d diff_ids for %d layers; refused", len(img.RootFS.DiffIDs), len(m.Layers))
	}
	var recs []cacheRecord
	if err := json.Unmarshal(img.Cache, &recs); err != nil {
		return fmt.Errorf("read inline cache: %w", err)
	}
	for _, l := range m.Layers {
		src.layers[l.Digest] = l
	}
	skipped := 0
	for _, r := range recs {
		k := r.Kiln
		if k == nil || k.Key == "" || recordDigest(k.Key) != r.Digest {
			continue
		}
		if k.KeyVersion != keyVersion || (k.Epoch != nil && (epoch == nil || epoch.Unix() != *k.Epoch)) {
			skipped++
			continue
		}
		rec := &record{kiln: *k}
		if len(r.Results) > 0 {
			i := r.Results[0].LayerIndex
			if i < 0 || i >= len(m.Layers) {
				continue
			}
			if _, err := v1.NewHash(k.DiffID); err != nil {
				continue
			}
			// The image's diff ID vouches for the layer unless the record says it
			// is a clamped form of the step's.
			if k.Epoch == nil && img.RootFS.DiffIDs[i].String() != k.DiffID {
				continue
			}
			d := m.Layers[i]
			rec.layer = &d
		}
		src.records[k.Key] = rec
	}
	if len(src.records) == 0 && len(recs) > 0 {
		note(fmt.Sprintf("cache-from %s: none of its %d inline records is for this kiln's step keys (%s) and SOURCE_DATE_EPOCH (%d skipped)", src.spec, len(recs), keyVersion, skipped))
	}
	return nil
}
