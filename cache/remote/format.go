package remote

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Media types and annotations of BuildKit's cache container.
const (
	// ConfigMediaType is the cache config's media type (BuildKit's v1.CacheConfigMediaTypeV0).
	ConfigMediaType types.MediaType = "application/vnd.buildkit.cacheconfig.v0"
	// annotationDiffID carries a layer's uncompressed digest, as BuildKit writes it.
	annotationDiffID = "containerd.io/uncompressed"
	// annotationCreated is when the layer was made (BuildKit's buildkit/createdat).
	annotationCreated = "buildkit/createdat"
	// formatVersion is the version of kiln's fields in the config.
	formatVersion = 1
)

// cacheConfig is the config blob: BuildKit's layers and records, with kiln's fields
// in members BuildKit ignores.
type cacheConfig struct {
	Layers  []cacheLayer  `json:"layers"`
	Records []cacheRecord `json:"records"`
	Kiln    *kilnConfig   `json:"kiln,omitempty"`
}

// kilnConfig says which keys the records hold, and which cache mounts the cache
// carries (cache-mounts=true).
type kilnConfig struct {
	Format     int         `json:"format"`
	KeyVersion string      `json:"keyVersion"`
	Mounts     []kilnMount `json:"mounts,omitempty"`
	// Memos are selection digests the build used, by digest-cache key
	// (selections.go).
	Memos map[string]string `json:"memos,omitempty"`
}

// kilnMount is the content of one RUN --mount=type=cache dir: ID is the sha256 of
// its identity, as the local store names the dir (never a path), LayerIndex the
// blob of its tar among the cache's layers.
type kilnMount struct {
	ID         string `json:"id"`
	LayerIndex int    `json:"layerIndex"`
	DiffID     string `json:"diffID"`
}

// cacheLayer is one blob in the manifest's layers; Parent is -1 because a kiln entry
// holds its own layer, not a chain.
type cacheLayer struct {
	Blob   string `json:"blob"`
	Parent int    `json:"parent"`
}

// cacheRecord is one step entry. Digest is BuildKit's record identity (the digest of
// kiln's key, which is not always a digest itself); Kiln holds the entry.
type cacheRecord struct {
	Digest  string        `json:"digest"`
	Results []cacheResult `json:"results,omitempty"`
	Kiln    *kilnRecord   `json:"kiln,omitempty"`
}

type cacheResult struct {
	LayerIndex int       `json:"layerIndex"`
	CreatedAt  time.Time `json:"createdAt"`
}

// kilnRecord is what a cache.Entry holds that a remote build needs: never its Inputs
// (the op's record, build args included, kept only to explain a local miss) nor local
// names (snapshots, GC keeps).
type kilnRecord struct {
	Key       string          `json:"key"`
	MediaType types.MediaType `json:"mediaType,omitempty"`
	Size      int64           `json:"size,omitempty"`
	DiffID    string          `json:"diffID,omitempty"`
	Config    json.RawMessage `json:"config,omitempty"`
	History   v1.History      `json:"history"`
	Created   time.Time       `json:"created"`
	// Snapshot says the step's tree is a snapshot of its own (a build step, not an
	// export transform of a layer).
	Snapshot bool `json:"snapshot,omitempty"`
	// KeyVersion is the records' key version in an inline cache, which has no
	// cache config to say it (kilnConfig.KeyVersion elsewhere).
	KeyVersion string `json:"keyVersion,omitempty"`
	// Epoch, in an inline cache, says the layer is not the step's own but the
	// image's: the step's tree with mtimes clamped to this SOURCE_DATE_EPOCH (unix
	// seconds), the only form of it the image holds. DiffID stays the step's own,
	// which later steps are keyed by (inline.go).
	Epoch *int64 `json:"epoch,omitempty"`
}

// recordDigest is a record's BuildKit identity for key.
func recordDigest(key string) string {
	sum := sha256.Sum256([]byte(key))
	return "sha256:" + hex.EncodeToString(sum[:])
}
