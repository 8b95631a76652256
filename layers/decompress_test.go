package layers

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/dsnet/compress/bzip2"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/kiln-build/kiln/internal/testenv"
)

// compressWith encodes data with one of the codecs Decompress must recognise.
func compressWith(t *testing.T, codec string, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	var w io.WriteCloser
	var err error
	switch codec {
	case "plain":
		return data
	case "gzip":
		w = gzip.NewWriter(&buf)
	case "zstd":
		w, err = zstd.NewWriter(&buf)
	case "bzip2":
		w, err = bzip2.NewWriter(&buf, nil)
	case "xz":
		w, err = xz.NewWriter(&buf)
	}
	must(t, err)
	_, err = w.Write(data)
	must(t, err)
	must(t, w.Close())
	return buf.Bytes()
}

func TestDecompressAndIsArchive(t *testing.T) {
	tarball := buildTar(t, hdrs(hdrReg("hello.txt")), map[string]string{"hello.txt": "hi"})
	text := []byte("just some text, long enough to not be mistaken for anything at all\n")
	dir := t.TempDir()
	for _, codec := range []string{"plain", "gzip", "zstd", "bzip2", "xz"} {
		t.Run(codec, func(t *testing.T) {
			for _, c := range []struct {
				name    string
				content []byte
				archive bool
			}{
				{"tar", tarball, true},
				{"text", text, false},
			} {
				blob := compressWith(t, codec, c.content)
				rc, err := Decompress(bytes.NewReader(blob))
				must(t, err)
				got, err := io.ReadAll(rc)
				must(t, err)
				must(t, rc.Close())
				if !bytes.Equal(got, c.content) {
					t.Errorf("%s: Decompress gave %d bytes, want %d", c.name, len(got), len(c.content))
				}
				p := filepath.Join(dir, codec+"-"+c.name)
				must(t, os.WriteFile(p, blob, 0o644))
				if ok, err := IsArchive(p); err != nil || ok != c.archive {
					t.Errorf("%s: IsArchive = %v, %v; want %v", c.name, ok, err, c.archive)
				}
			}
		})
	}
	t.Run("edge cases", func(t *testing.T) {
		for name, content := range map[string][]byte{
			"empty":       nil,
			"short":       {0x1f},
			"broken gzip": {0x1f, 0x8b, 0, 0},
			"empty tar":   make([]byte, 1024),
		} {
			p := filepath.Join(dir, name)
			must(t, os.WriteFile(p, content, 0o644))
			if ok, err := IsArchive(p); err != nil || ok {
				t.Errorf("%s: IsArchive = %v, %v; want false", name, ok, err)
			}
		}
		if _, err := IsArchive(filepath.Join(dir, "missing")); err == nil {
			t.Error("IsArchive of a missing file: no error")
		}
	})
}

// TestUnpackCompressedUserArchive: ADD of a user's .tar.xz keeps names, modes and
// contents, and honours KeepOwners=false.
func TestUnpackCompressedUserArchive(t *testing.T) {
	testenv.RequireRoot(t)
	tarball := buildTar(t, hdrs(
		&tar.Header{Typeflag: tar.TypeDir, Name: "pkg/", Mode: 0o755, Uid: 42},
		&tar.Header{Typeflag: tar.TypeReg, Name: "pkg/run", Mode: 0o755, Uid: 42},
	), map[string]string{"pkg/run": "#!/bin/sh\n"})
	dest := t.TempDir()
	must(t, Unpack(t.Context(), bytes.NewReader(compressWith(t, "xz", tarball)), dest, UnpackOptions{Whiteouts: NoWhiteouts}))
	fi, err := os.Stat(filepath.Join(dest, "pkg/run"))
	must(t, err)
	if fi.Mode().Perm() != 0o755 || fi.Size() != 10 {
		t.Errorf("pkg/run: %v", fi)
	}
	if got := describeTree(t, dest); bytes.Contains([]byte(got), []byte("uid=42")) {
		t.Errorf("owners kept without KeepOwners:\n%s", got)
	}
}

func TestUnpackCancelled(t *testing.T) {
	tarball := buildTar(t, hdrs(hdrReg("f")), nil)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := Unpack(ctx, bytes.NewReader(tarball), t.TempDir(), UnpackOptions{}); err == nil {
		t.Error("cancelled unpack succeeded")
	}
}

// A zstd frame that asks for a huge window is refused instead of allocated.
func TestZstdHugeWindowRefused(t *testing.T) {
	// Frame header: magic, descriptor 0x00 (window descriptor present, no checksum,
	// no dict, no content size), window descriptor 0x90: a 2^28-byte (256 MiB)
	// window, above kiln's cap but within the library's default; then one empty raw
	// last block, so the frame is otherwise valid.
	frame := []byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x90, 0x01, 0x00, 0x00}
	rc, err := Decompress(bytes.NewReader(frame))
	if err == nil {
		_, err = io.ReadAll(rc)
		rc.Close()
	}
	if err == nil {
		t.Fatal("a zstd frame asking for a 256 MiB window was decoded")
	}
}
