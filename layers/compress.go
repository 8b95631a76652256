package layers

import (
	"archive/tar"
	"crypto/sha256"
	"fmt"
	"hash"
	"io"
	"runtime"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// gzipBlocks is how many gzip members are compressed at once: one per core kiln may use
// (at least two, so reading the next member overlaps compressing one). More than the
// cores buy nothing but memory (measured with pgzip's blocks of the same size on W2,
// COPY of 20,000 files, 2 cores: 4 at once 4.0-4.8 s, 64 MB peak RSS; 2 at once 3.2 s,
// 59 MB): near the soft heap limit the extra live heap is paid in collections. The cores
// are GOMAXPROCS, not NumCPU: on a CI runner with a CPU quota the runtime sets it to the
// quota, while NumCPU counts every core of the host.
func gzipBlocks() int { return min(max(runtime.GOMAXPROCS(0), 2), 8) }

// countingWriter counts the bytes that pass through it.
type countingWriter struct{ n int64 }

func (c *countingWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}

// A Digester is a writer that hashes what it is given, from its first byte: a
// layer written to one (the store's cache.BlobWriter) takes its digest from it
// instead of hashing the compressed bytes a second time.
type Digester interface {
	io.Writer
	// Digest is the sha256 of everything written so far.
	Digest() v1.Hash
}

// hashDigester is a Digester's Digest over a hash the layer computed itself.
type hashDigester struct{ h hash.Hash }

func (d hashDigester) Write(p []byte) (int, error) { return d.h.Write(p) }
func (d hashDigester) Digest() v1.Hash             { return sha256Hash(d.h) }

// blobWriter is the one streaming pass of a layer: the tar bytes go to the diffID
// hash and to the codec, whose output goes to the caller's writer, the digest hash
// and a byte counter. Nothing is buffered beyond the codec's own window.
type blobWriter struct {
	tar       io.Writer // where the tar writer writes
	codec     io.WriteCloser
	digest    hash.Hash // nil when digester hashes the blob
	digester  Digester
	diffID    hash.Hash
	size      *countingWriter
	mediaType types.MediaType
	members   *memberWriter // the gzip codec, which cuts at entries; nil for the others
}

func newBlobWriter(w io.Writer, opts WriteOptions) (*blobWriter, error) {
	b := &blobWriter{size: &countingWriter{}}
	compressed := io.MultiWriter(w, b.size)
	if d, ok := w.(Digester); ok {
		// The store's blob writer hashes the bytes it writes: the same hash of the
		// same bytes again would be a whole second pass (W4: 600 MB).
		b.digester = d
	} else {
		b.digest = sha256.New()
		compressed = io.MultiWriter(w, b.digest, b.size)
	}
	switch opts.Compression {
	case Gzip, "":
		// A series of gzip members cut at file boundaries (members.go): compressed
		// on every core, and reused from earlier layers through opts.Members.
		level := gzip.DefaultCompression
		if opts.Level != 0 {
			level = opts.Level
		}
		mw, err := newMemberWriter(compressed, level, opts.Members)
		if err != nil {
			return nil, err
		}
		// The member writer hashes the tar itself, on its output goroutine.
		b.codec, b.members, b.mediaType = mw, mw, types.OCILayer
		b.tar, b.diffID = mw, mw.diffID
		return b, nil
	case Zstd:
		level := zstd.SpeedDefault
		if opts.Level != 0 {
			level = zstd.EncoderLevelFromZstd(opts.Level)
		}
		zw, err := zstd.NewWriter(compressed, zstd.WithEncoderLevel(level))
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		b.codec, b.mediaType = zw, types.OCILayerZStd
	case Uncompressed:
		// digest and diffID are the same hash of the same bytes: compute it once.
		if b.digest == nil {
			b.digest = sha256.New()
			compressed = io.MultiWriter(w, b.digest, b.size)
			b.digester = nil
		}
		b.tar, b.diffID, b.mediaType = compressed, b.digest, types.OCIUncompressedLayer
		return b, nil
	default:
		return nil, fmt.Errorf("unknown layer compression %q (want gzip, zstd or uncompressed)", opts.Compression)
	}
	b.diffID = sha256.New()
	b.tar = io.MultiWriter(b.codec, b.diffID)
	return b, nil
}

// close flushes the codec and returns the description of the written blob.
func (b *blobWriter) close() (Blob, error) {
	if b.codec != nil {
		if err := b.codec.Close(); err != nil {
			return Blob{}, fmt.Errorf("flush %s: %w", b.mediaType, err)
		}
	}
	digest := b.digester
	if digest == nil {
		digest = hashDigester{b.digest}
	}
	blob := Blob{
		Digest:    digest.Digest(),
		DiffID:    sha256Hash(b.diffID),
		Size:      b.size.n,
		MediaType: b.mediaType,
	}
	if b.members != nil {
		blob.Members, blob.ReusedMembers = b.members.result()
	}
	return blob, nil
}

// newTar is the tar writer of the layer: it shows the codec where entries begin.
func (b *blobWriter) newTar() *layerTar {
	return &layerTar{Writer: tar.NewWriter(b.tar), members: b.members}
}

// abort releases the codec's goroutines after a failed write.
func (b *blobWriter) abort() {
	if b.codec != nil {
		_ = b.codec.Close()
	}
}

func sha256Hash(h hash.Hash) v1.Hash {
	return v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", h.Sum(nil))}
}
