package layers

import (
	"context"
	"errors"
	"io"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Compression is the codec of a layer blob.
type Compression string

const (
	Gzip         Compression = "gzip"
	Zstd         Compression = "zstd"
	Uncompressed Compression = "uncompressed"
)

// Blob describes one written layer blob.
type Blob struct {
	Digest    v1.Hash // sha256 of the compressed bytes (what the manifest names)
	DiffID    v1.Hash // sha256 of the uncompressed tar (what the config's rootfs names)
	Size      int64   // compressed size in bytes
	MediaType types.MediaType
	// Members are the gzip members of a gzip blob, for the store to index
	// (MemberSource); ReusedMembers is how many were copied from earlier blobs.
	Members       []Member
	ReusedMembers int
}

// WriteOptions control how a tree becomes a layer blob.
type WriteOptions struct {
	Compression Compression // "" means Gzip
	Level       int         // 0 means the codec's default
	// SourceDateEpoch, when set, clamps every mtime above it down to it.
	SourceDateEpoch *time.Time
	// ModTime, when set, is every entry's mtime: the rootfs outputs with
	// SOURCE_DATE_EPOCH, which BuildKit's local and tar exporters write so.
	ModTime *time.Time
	// Pending are regular files that belong in the layer but were never written to
	// the upper dir (a COPY whose files nothing reads before the layer is made):
	// WriteUpperDiff reads them from their sources and places them in the tar where
	// the walk of the upper dir would have found them. Their directories must be in
	// the upper dir. WriteTree ignores them.
	Pending PendingFiles
	// NormalizeTree makes the tree hold exactly what its layer holds, so that a
	// step's tree is the same whether it was executed or unpacked from its layer:
	// sub-second mtimes are cut to whole seconds in the tree too, sockets (which no
	// layer carries) are removed, and ".wh." names become what readers take them
	// for (whiteoutnames_linux.go). Only for a tree that is about to become
	// a snapshot (an upper dir); never for a tree the writer does not own.
	NormalizeTree bool
	// Below, for NormalizeTree, says whether the layers under the upper dir show
	// something at rel: a ".wh.NAME" the step left becomes a whiteout only where
	// they show NAME, since overlayfs lists a whiteout with nothing under it as a
	// name that cannot be looked up. nil: nothing is under the tree.
	Below func(rel string) (bool, error)
	// Members, when set, gives the compressed bytes of gzip members written before:
	// a member whose uncompressed bytes an earlier layer held is copied, not
	// compressed again (members.go). The blob is the same either way.
	Members MemberSource
}

// PendingFile is a regular file of a layer that is read from elsewhere: a COPY
// source. It is written exactly as the same file in the upper dir would be.
type PendingFile struct {
	Name    string // slash-separated path relative to the upper dir
	Source  string // host path its content is read from (never followed if a link)
	Size    int64  // its size when it was selected; a different size is an error
	Mode    uint32 // permission and special bits, st_mode form (04755)
	UID     int
	GID     int
	ModTime time.Time
	Xattrs  map[string][]byte
}

// ErrReservedName is returned by WriteUpperDiff for a file whose name starts with
// ".wh.", unless NormalizeTree turns it into the whiteout it means: such a name
// cannot be stored in a layer as a file, because readers take it for a whiteout and
// delete its namesake from the layers below.
var ErrReservedName = errors.New(`names starting with ".wh." are reserved for whiteouts in image layers`)

// WriteUpperDiff walks an overlayfs upper dir and writes it as an OCI layer to w,
// compressing and hashing in one streaming pass. Overlay whiteouts (char dev 0/0)
// become ".wh.NAME" entries, opaque dirs (trusted.overlay.opaque=y) get a
// ".wh..wh..opq" entry; trusted.overlay.* xattrs are never written. Entries are in
// sorted, deterministic order. empty is true when the dir holds nothing, in which
// case the caller should discard what was written to w.
func WriteUpperDiff(ctx context.Context, upperDir string, w io.Writer, opts WriteOptions) (b Blob, empty bool, err error) {
	return writeLayer(ctx, upperDir, w, opts, true)
}

// WriteTree writes the plain tree at dir (no whiteout translation) as an uncompressed
// tar to w: used for the rootfs tar output.
//
// opts.Compression and opts.Level are ignored (the output is always a plain tar);
// opts.SourceDateEpoch clamps mtimes as for layers.
func WriteTree(ctx context.Context, dir string, w io.Writer, opts WriteOptions) error {
	opts.Compression = Uncompressed
	_, _, err := writeLayer(ctx, dir, w, opts, false)
	return err
}

// WhiteoutMode says what Unpack does with ".wh." entries.
type WhiteoutMode int

const (
	// OverlayWhiteouts turns ".wh.NAME" into a 0/0 char device and ".wh..wh..opq"
	// into the trusted.overlay.opaque=y xattr: for unpacking a layer into a snapshot dir.
	OverlayWhiteouts WhiteoutMode = iota
	// ApplyWhiteouts deletes the named paths from dest: for flattening layers into one dir.
	ApplyWhiteouts
	// NoWhiteouts treats ".wh." names as ordinary files: for ADD of a user's archive,
	// which must never delete anything.
	NoWhiteouts
)

// UnpackOptions control Unpack.
type UnpackOptions struct {
	Whiteouts WhiteoutMode
	// KeepOwners keeps the uid/gid of the archive entries (true for layers and for ADD).
	KeepOwners bool
}

// Unpack reads a tar stream (plain, gzip, zstd, bzip2 or xz, detected from its first
// bytes) and writes it under dest, safely: no entry, symlink or hard link can make it
// write outside dest; absolute symlink targets are resolved inside dest. Device nodes
// are kept. Directory mtimes are set last.
//
// Entries are applied in archive order; an entry replaces an existing path of another
// type (a directory over a directory merges). trusted.overlay.* xattrs in the archive
// are dropped: only Unpack itself may mark a directory opaque.
func Unpack(ctx context.Context, r io.Reader, dest string, opts UnpackOptions) error {
	return unpack(ctx, r, dest, opts)
}

// Decompress returns a reader of the uncompressed bytes of r, detecting gzip, zstd,
// bzip2 and xz from the magic bytes; any other input is returned as is.
// Closing the result releases the decoder; it does not close r.
func Decompress(r io.Reader) (io.ReadCloser, error) {
	return decompress(r)
}

// IsArchive reports whether the file at path holds a tar stream, possibly compressed
// with one of the codecs Decompress knows (Docker's rule for ADD): the first tar
// header of the decompressed content must parse. A gzip of something that is not a
// tar is not an archive. Only an error opening the file is returned as an error.
func IsArchive(path string) (bool, error) {
	return isArchive(path)
}
