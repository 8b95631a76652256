package buildctx

import (
	"context"
	"errors"
	"io/fs"
)

// Context is a build context directory with its ignore rules loaded.
type Context struct {
	Dir string
}

// Open loads dir as a build context. dockerfile is the path of the Dockerfile (may be
// outside dir); "<dockerfile name>.dockerignore" beside it wins over dir/.dockerignore.
func Open(dir, dockerfile string) (*Context, error) {
	return nil, errors.New("buildctx: Open not implemented")
}

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
	Sources  []string     // as written (wildcards allowed), relative to Source.Root
	Dest     string       // absolute path inside the image, trailing "/" kept
	Chown    *Owner       // nil: files keep their owner for --from, root for the context
	Chmod    *fs.FileMode // nil: modes kept
	Add      bool         // ADD: local tar archives are extracted
	Excludes []string     // --exclude patterns
	Line     int          // Dockerfile line, for errors
}

// Copy performs a COPY/ADD from src into the rootfs at destRoot (an Active snapshot's
// Root), by Docker's rules, with every path resolved inside destRoot.
func Copy(ctx context.Context, src Source, destRoot string, opts CopyOptions) error {
	return errors.New("buildctx: Copy not implemented")
}

// HashCache remembers file digests by file metadata so unchanged files are not re-read.
type HashCache interface {
	Get(key string) (digest string, ok bool)
	Put(key, digest string)
}

// Sum is the content digest of what one COPY/ADD reads, with the per-file digests it was
// made from (so a cache miss can name the file that changed).
type Sum struct {
	Digest string    // "sha256:..." over all Files in order
	Files  []FileSum // sorted by Path
}

// FileSum is the digest of one copied path (relative to the source root).
type FileSum struct {
	Path   string
	Digest string
}

// Digest is the content digest of exactly what Copy would copy for opts (paths, types,
// modes, owners, xattrs, link targets, contents; never mtimes). hc may be nil.
func Digest(ctx context.Context, src Source, opts CopyOptions, hc HashCache) (*Sum, error) {
	return nil, errors.New("buildctx: Digest not implemented")
}
