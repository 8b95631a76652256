package image

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

func TestStoreLayerUncompressed(t *testing.T) {
	var plain bytes.Buffer
	tw := tar.NewWriter(&plain)
	tw.WriteHeader(&tar.Header{Name: "f", Mode: 0o644, Size: 2, Typeflag: tar.TypeReg})
	tw.Write([]byte("hi"))
	tw.Close()

	gz := func() []byte {
		var b bytes.Buffer
		w := gzip.NewWriter(&b)
		w.Write(plain.Bytes())
		w.Close()
		return b.Bytes()
	}
	zs := func() []byte {
		var b bytes.Buffer
		w, _ := zstd.NewWriter(&b)
		w.Write(plain.Bytes())
		w.Close()
		return b.Bytes()
	}
	tests := []struct {
		name string
		blob []byte
		mt   types.MediaType
	}{
		{"gzip", gz(), types.OCILayer},
		{"zstd", zs(), types.OCILayerZStd},
		{"plain", plain.Bytes(), types.OCIUncompressedLayer},
		{"plain labelled gzip", plain.Bytes(), types.DockerLayer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := newTestStore(t)
			d, size, _ := v1.SHA256(bytes.NewReader(tt.blob))
			if err := writeBlobStream(context.Background(), store, d, size, bytes.NewReader(tt.blob)); err != nil {
				t.Fatal(err)
			}
			diffID, _, _ := v1.SHA256(bytes.NewReader(plain.Bytes()))
			l := StoreLayer(store, d, diffID, size, tt.mt)
			if got, _ := l.Digest(); got != d {
				t.Errorf("digest %s", got)
			}
			if got, _ := l.MediaType(); got != tt.mt {
				t.Errorf("media type %s", got)
			}
			rc, err := l.Uncompressed()
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			got, err := io.ReadAll(rc)
			if err != nil || !bytes.Equal(got, plain.Bytes()) {
				t.Fatalf("uncompressed differs (%v)", err)
			}
		})
	}
}

// A stored zstd layer whose frame asks for a 256 MiB window (above the 128 MiB cap
// package layers puts on every other zstd stream, within the library's default) is
// refused instead of decoded: every path decompresses with layers.Decompress.
func TestStoreLayerRefusesHugeZstdWindow(t *testing.T) {
	// Magic, frame descriptor 0x00 (window descriptor, no checksum, dict or content
	// size), window descriptor 0x90 (2^28 bytes), one empty raw last block.
	blob := []byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x90, 0x01, 0x00, 0x00}
	store := newTestStore(t)
	d, size, _ := v1.SHA256(bytes.NewReader(blob))
	if err := writeBlobStream(context.Background(), store, d, size, bytes.NewReader(blob)); err != nil {
		t.Fatal(err)
	}
	diffID, _, _ := v1.SHA256(bytes.NewReader(nil))
	rc, err := StoreLayer(store, d, diffID, size, types.OCILayerZStd).Uncompressed()
	if err == nil {
		_, err = io.ReadAll(rc)
		rc.Close()
	}
	if err == nil {
		t.Fatal("a stored zstd layer asking for a 256 MiB window was decoded")
	}
}

func TestWriteBlobStreamRejectsWrongDigest(t *testing.T) {
	store := newTestStore(t)
	d, size, _ := v1.SHA256(bytes.NewReader([]byte("right")))
	err := writeBlobStream(context.Background(), store, d, size, bytes.NewReader([]byte("wrong")))
	if err == nil || store.HasBlob(d) {
		t.Fatalf("wrong bytes stored under %s (err %v)", d, err)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(store.BlobPath(d)), ".incoming-*")); len(left) != 0 {
		t.Fatalf("temp files left behind: %v", left)
	}
}
