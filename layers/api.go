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
}

// WriteOptions control how a tree becomes a layer blob.
type WriteOptions struct {
	Compression Compression // "" means Gzip
	Level       int         // 0 means the codec's default
	// SourceDateEpoch, when set, clamps every mtime above it down to it.
	SourceDateEpoch *time.Time
}

// WriteUpperDiff walks an overlayfs upper dir and writes it as an OCI layer to w,
// compressing and hashing in one streaming pass. Overlay whiteouts (char dev 0/0)
// become ".wh.NAME" entries, opaque dirs (trusted.overlay.opaque=y) get a
// ".wh..wh..opq" entry; trusted.overlay.* xattrs are never written. Entries are in
// sorted, deterministic order. empty is true when the dir holds nothing, in which
// case the caller should discard what was written to w.
func WriteUpperDiff(ctx context.Context, upperDir string, w io.Writer, opts WriteOptions) (b Blob, empty bool, err error) {
	return Blob{}, false, errors.New("layers: WriteUpperDiff not implemented")
}

// WriteTree writes the plain tree at dir (no whiteout translation) as an uncompressed
// tar to w: used for the rootfs tar output.
func WriteTree(ctx context.Context, dir string, w io.Writer, opts WriteOptions) error {
	return errors.New("layers: WriteTree not implemented")
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
func Unpack(ctx context.Context, r io.Reader, dest string, opts UnpackOptions) error {
	return errors.New("layers: Unpack not implemented")
}

// Decompress returns a reader of the uncompressed bytes of r, detecting gzip, zstd,
// bzip2 and xz from the magic bytes; any other input is returned as is.
func Decompress(r io.Reader) (io.ReadCloser, error) {
	return nil, errors.New("layers: Decompress not implemented")
}

// IsArchive reports whether the first bytes of r are those of a tar stream, possibly
// compressed with one of the codecs Decompress knows (Docker's rule for ADD).
func IsArchive(path string) (bool, error) {
	return false, errors.New("layers: IsArchive not implemented")
}
