package snapshottest

import (
	"archive/tar"
	"bytes"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// layerOf is an uncompressed layer of the given tar entries (name → content; a
// name ending in / is a directory).
func layerOf(e *env, files []tar.Header, contents map[string]string) v1.Layer {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range files {
		h.Size = int64(len(contents[h.Name]))
		if err := tw.WriteHeader(&h); err != nil {
			e.t.Fatal(err)
		}
		if _, err := io.WriteString(tw, contents[h.Name]); err != nil {
			e.t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		e.t.Fatal(err)
	}
	data := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return l
}

// A snapshot whose files live in a layer: IngestLayer makes it hold the layer's
// tree (whiteouts and opaque dirs in the snapshotter's own form, as Ingest of the
// same tree would), leaves an existing snapshot as it is, and a layer that cannot
// be read leaves no snapshot.
func testIngestLayer(e *env) {
	l := layerOf(e, []tar.Header{
		{Name: "f", Typeflag: tar.TypeReg, Mode: 0o644},
		{Name: "d/", Typeflag: tar.TypeDir, Mode: 0o700},
		{Name: "d/.wh.w", Typeflag: tar.TypeReg, Mode: 0o644},
		{Name: "o/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "o/.wh..wh..opq", Typeflag: tar.TypeReg, Mode: 0o644},
	}, map[string]string{"f": "x"})
	if err := e.s.IngestLayer(e.ctx, "id", l); err != nil {
		e.t.Fatal(err)
	}
	if !e.s.Exists("id") {
		e.t.Fatal("IngestLayer did not create the snapshot")
	}
	want := Build(e.t, WriteFile("f", "x", 0o644), Mkdir("d", 0o700), Whiteout("d/w"), Mkdir("o", 0o755), Opaque("o"))
	checkTree(e.t, "snapshot of the layer", describe(e.t, e.s.Path("id")), want)

	other := layerOf(e, []tar.Header{{Name: "g", Typeflag: tar.TypeReg, Mode: 0o644}}, nil)
	if err := e.s.IngestLayer(e.ctx, "id", other); err != nil {
		e.t.Fatal(err)
	}
	checkTree(e.t, "snapshot after a second IngestLayer", describe(e.t, e.s.Path("id")), want)

	broken := cutLayer{l}
	if err := e.s.IngestLayer(e.ctx, "broken", broken); err == nil {
		e.t.Fatal("IngestLayer of an unreadable layer succeeded")
	}
	if e.s.Exists("broken") {
		e.t.Error("an unreadable layer left a snapshot")
	}
	e.checkEmptyWorkDirs("after IngestLayer")
}

// cutLayer is a layer whose stream breaks after its first tar header, as a
// download cut off or a blob that fails its check does.
type cutLayer struct{ v1.Layer }

func (c cutLayer) Compressed() (io.ReadCloser, error) {
	rc, err := c.Layer.Compressed()
	if err != nil {
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{io.MultiReader(io.LimitReader(rc, 600), failingReader{}), rc}, nil
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }
