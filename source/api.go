package source

import (
	"crypto/sha256"
	"encoding/hex"
)

// Source is where a COPY/ADD reads from: the context (ignore rules apply) or another
// stage's or image's rootfs (no ignore rules, symlinks resolved inside Root).
type Source struct {
	Root    string
	Context *Context // non-nil when Root is the build context
}

// Owner is a numeric uid/gid pair.
type Owner struct{ UID, GID int }

// CopyOptions is one COPY or ADD, already expanded by the solver.
type CopyOptions struct {
	Sources  []string // as written (wildcards allowed), relative to Source.Root
	Dest     string   // absolute path inside the image, trailing "/" kept
	Chown    *Owner   // nil: files keep their owner for --from, root for the context
	Chmod    *Chmod   // nil: modes kept
	Add      bool     // ADD: local tar archives are extracted
	Excludes []string // --exclude patterns
	Line     int      // Dockerfile line, for errors
	// KeepArchives copies archives as they are even for ADD (ADD --unpack=false, and
	// ADD of a URL without --unpack=true).
	KeepArchives bool
	// Parents is COPY --parents: each source keeps its parent directories relative
	// to the source root, or to the pivot "/./" written in it ("a/./b/c" copies to
	// dest/b/c). The part after the pivot is a pattern ("**" allowed); what it
	// matches and the directories above it are copied into Dest, a directory.
	Parents bool
	// Pending, when set, collects the regular files instead of writing them (see
	// Pending). ADD extracts archives into the rootfs, so it ignores Pending.
	Pending *Pending
}

// HashCache remembers file digests by file metadata so unchanged files are not re-read.
// Implementations must be safe for concurrent use: Digest calls them from several
// goroutines.
type HashCache interface {
	Get(key string) (digest string, ok bool)
	// GetMany looks keys up together (a store answers them in one transaction):
	// digests[i] is keys[i]'s digest, "" where it has none.
	GetMany(keys []string) (digests []string)
	Put(key, digest string)
}

// Sum is the content digest of what one COPY/ADD reads, with the per-file digests it was
// made from (so a cache miss can name the file that changed).
type Sum struct {
	Digest string    // "sha256:..." over all Files in order
	Files  []FileSum // sorted by Path
}

// FileSum is the digest of one copied path (relative to the source root). The digest
// is kept as its 32 bytes: a big context has hundreds of thousands of them.
type FileSum struct {
	Path string
	Sum  [sha256.Size]byte
}

// Digest is the path's digest in "sha256:<hex>" form.
func (f FileSum) Digest() string { return "sha256:" + hex.EncodeToString(f.Sum[:]) }
