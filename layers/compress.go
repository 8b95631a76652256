package layers

import (
	"crypto/sha256"
	"fmt"
	"hash"
	"io"
	"runtime"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
)

// pgzipBlockSize is fixed rather than derived from the machine so that the same tar
// gives the same gzip bytes everywhere: pgzip's output depends on the block size
// (each block is deflated separately, primed with the previous block's tail) but not
// on how many blocks run at once.
const pgzipBlockSize = 1 << 20

// countingWriter counts the bytes that pass through it.
type countingWriter struct{ n int64 }

func (c *countingWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}

// blobWriter is the one streaming pass of a layer: the tar bytes go to the diffID
// hash and to the codec, whose output goes to the caller's writer, the digest hash
// and a byte counter. Nothing is buffered beyond the codec's own window.
type blobWriter struct {
	tar       io.Writer // where the tar writer writes
	codec     io.WriteCloser
	digest    hash.Hash
	diffID    hash.Hash
	size      *countingWriter
	mediaType types.MediaType
}

func newBlobWriter(w io.Writer, opts WriteOptions) (*blobWriter, error) {
	b := &blobWriter{digest: sha256.New(), size: &countingWriter{}}
	compressed := io.MultiWriter(w, b.digest, b.size)
	switch opts.Compression {
	case Gzip, "":
		// pgzip rather than klauspost/compress/gzip: a RUN step's layer is usually
		// megabytes, and deflate is the bottleneck of the commit. pgzip deflates 1 MiB
		// blocks on every core, so on the 2-core machines kiln targets it commits
		// about twice as fast; its output is a standard single-member gzip that every
		// client reads, and it uses klauspost's deflate underneath.
		level := pgzip.DefaultCompression
		if opts.Level != 0 {
			level = opts.Level
		}
		zw, err := pgzip.NewWriterLevel(compressed, level)
		if err != nil {
			return nil, fmt.Errorf("gzip level %d: %w", opts.Level, err)
		}
		if err := zw.SetConcurrency(pgzipBlockSize, runtime.GOMAXPROCS(0)); err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		b.codec, b.mediaType = zw, types.OCILayer
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
	return Blob{
		Digest:    sha256Hash(b.digest),
		DiffID:    sha256Hash(b.diffID),
		Size:      b.size.n,
		MediaType: b.mediaType,
	}, nil
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
