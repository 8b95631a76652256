package layers

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/bzip2"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
	"github.com/ulikunitz/xz"
)

// Magic numbers of the codecs Docker recognises for ADD and that layers may use.
var (
	magicGzip  = []byte{0x1f, 0x8b}
	magicZstd  = []byte{0x28, 0xb5, 0x2f, 0xfd}
	magicBzip2 = []byte("BZh")
	magicXz    = []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}
)

// gunzipBlockSize and gunzipBlocks bound pgzip's read-ahead: 8 MiB in flight. The
// inflating is the slowest stage of a base's unpack, and the file writes after it
// come in bursts (a directory of small files): a deeper read-ahead keeps the
// inflater busy through them. W5 cold on a fresh ext4, medians of 5: 4 MiB 1.63 s,
// 8 MiB 1.57 s (peak RSS 45 → 50 MB), 16 MiB about the same at 60 MB.
const (
	gunzipBlockSize = 1 << 20
	gunzipBlocks    = 8
)

// zstdMaxWindow bounds the window a zstd stream may ask for.
const zstdMaxWindow = 128 << 20

// readCloser pairs a decoder's reader with the function that releases it.
type readCloser struct {
	io.Reader
	close func() error
}

func (r readCloser) Close() error { return r.close() }

func nopClose() error { return nil }

func decompress(r io.Reader) (io.ReadCloser, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	// A short stream is not an error here: it simply matches no magic.
	head, err := br.Peek(len(magicXz))
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read compression magic: %w", err)
	}
	switch {
	case bytes.HasPrefix(head, magicGzip):
		// pgzip inflates on its own goroutine, a few blocks ahead of the reader: the
		// inflating (one core) overlaps the unpacking's file creation (the other).
		zr, err := pgzip.NewReaderN(br, gunzipBlockSize, gunzipBlocks)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		return readCloser{zr, zr.Close}, nil
	case bytes.HasPrefix(head, magicZstd):
		// A frame may ask for a window of up to terabytes; a hostile archive would make
		// kiln allocate it. 128 MiB covers zstd up to --long=27; one decoder per stream
		// keeps memory flat (a layer is read once, in order).
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(zstdMaxWindow))
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		return readCloser{zr, func() error { zr.Close(); return nil }}, nil
	case bytes.HasPrefix(head, magicBzip2):
		return readCloser{bzip2.NewReader(br), nopClose}, nil
	case bytes.HasPrefix(head, magicXz):
		xr, err := xz.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("xz: %w", err)
		}
		return readCloser{xr, nopClose}, nil
	}
	return readCloser{br, nopClose}, nil
}

func isArchive(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, fmt.Errorf("is archive: %w", err)
	}
	defer f.Close()
	rc, err := decompress(f)
	if err != nil {
		// Compression magic with a broken header: Docker copies such a file as is.
		return false, nil
	}
	defer rc.Close()
	_, err = tar.NewReader(rc).Next()
	return err == nil, nil
}
