package image

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/kiln-build/kiln/internal/atomicfile"
	"github.com/kiln-build/kiln/internal/bgwrite"
)

// Annotation keys of index.json, as BuildKit's (containerd's) exporters write them.
const (
	annotationImageName = "io.containerd.image.name"
	annotationRefName   = "org.opencontainers.image.ref.name"
)

// WriteOCIArchive writes img as an OCI image-layout tar to w; each tag is recorded as
// org.opencontainers.image.ref.name (and io.containerd.image.name) in index.json.
//
// As in BuildKit's oci exporter, each tag gets its own index.json entry (the same
// manifest), with the full name (docker.io/library/app:v1) and the tag part (v1).
// The tar is deterministic: entries sorted by name, mtime 0, owner 0:0.
func WriteOCIArchive(ctx context.Context, img v1.Image, tags []string, w io.Writer) error {
	return writeArchive(ctx, img, tags, w, false)
}

// WriteDockerArchive writes the hybrid tarball of BuildKit's docker exporter: an OCI
// layout plus a docker manifest.json with RepoTags, accepted by docker/podman load and
// skopeo docker-archive:.
func WriteDockerArchive(ctx context.Context, img v1.Image, tags []string, w io.Writer) error {
	return writeArchive(ctx, img, tags, w, true)
}

// dockerManifestEntry is one element of docker save's manifest.json.
type dockerManifestEntry struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// archiveNames are the tags as index.json records them, without duplicates.
func archiveNames(tags []string) ([]dockerName, error) {
	names := make([]dockerName, 0, len(tags))
	seen := map[string]bool{}
	for _, t := range tags {
		n, err := normaliseTag(t)
		if err != nil {
			return nil, err
		}
		if !seen[n.Full] { // app:v1 and docker.io/library/app:v1 are one name
			seen[n.Full] = true
			names = append(names, n)
		}
	}
	return names, nil
}

func writeArchive(ctx context.Context, img v1.Image, tags []string, w io.Writer, docker bool) error {
	names, err := archiveNames(tags)
	if err != nil {
		return err
	}
	m, err := img.Manifest()
	if err != nil {
		return fmt.Errorf("write archive: manifest: %w", err)
	}
	rawManifest, err := img.RawManifest()
	if err != nil {
		return fmt.Errorf("write archive: manifest: %w", err)
	}
	digest, err := img.Digest()
	if err != nil {
		return fmt.Errorf("write archive: manifest: %w", err)
	}
	mt, err := img.MediaType()
	if err != nil {
		return fmt.Errorf("write archive: manifest: %w", err)
	}
	rawCfg, err := img.RawConfigFile()
	if err != nil {
		return fmt.Errorf("write archive: config: %w", err)
	}

	small := map[string][]byte{
		"oci-layout":              []byte(`{"imageLayoutVersion":"1.0.0"}`),
		blobName(digest):          rawManifest,
		blobName(m.Config.Digest): rawCfg,
	}
	if small["index.json"], err = indexJSON(digest, int64(len(rawManifest)), mt, names); err != nil {
		return err
	}
	layerByName := map[string]archiveLayer{}
	for _, d := range m.Layers {
		layerByName[blobName(d.Digest)] = archiveLayer{img: img, desc: d}
	}
	if docker {
		entry := dockerManifestEntry{Config: blobName(m.Config.Digest), RepoTags: []string{}, Layers: []string{}}
		for _, n := range names {
			entry.RepoTags = append(entry.RepoTags, n.Familiar)
		}
		for _, d := range m.Layers {
			entry.Layers = append(entry.Layers, blobName(d.Digest))
		}
		if small["manifest.json"], err = json.Marshal([]dockerManifestEntry{entry}); err != nil {
			return err
		}
	}
	return writeLayoutTar(ctx, w, small, layerByName)
}

// archiveLayer is a layer blob of an archive and the image it is read through.
type archiveLayer struct {
	img  v1.Image
	desc v1.Descriptor
}

// writeLayoutTar writes an OCI layout as a tar: the small files (index.json,
// manifests, configs) and the layer blobs, by name, sorted.
func writeLayoutTar(ctx context.Context, w io.Writer, small map[string][]byte, layerByName map[string]archiveLayer) error {
	files := make([]string, 0, len(small)+len(layerByName))
	for n := range small {
		files = append(files, n)
	}
	for n := range layerByName {
		if _, dup := small[n]; !dup {
			files = append(files, n)
		}
	}
	sort.Strings(files)

	tw := tar.NewWriter(w)
	for _, dir := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(tarHeader(dir, tar.TypeDir, 0o755, 0)); err != nil {
			return fmt.Errorf("write archive: %w", err)
		}
	}
	for _, n := range files {
		if err := ctx.Err(); err != nil {
			return err
		}
		if b, ok := small[n]; ok {
			if err := tw.WriteHeader(tarHeader(n, tar.TypeReg, 0o644, int64(len(b)))); err != nil {
				return fmt.Errorf("write archive: %w", err)
			}
			if _, err := tw.Write(b); err != nil {
				return fmt.Errorf("write archive: %w", err)
			}
			continue
		}
		l := layerByName[n]
		if err := writeLayer(ctx, tw, w, l.img, n, l.desc); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("write archive: %w", err)
	}
	return nil
}

// writeLayer streams one layer blob into the tar, never holding it in memory, and
// refuses a blob whose length is not the manifest's. raw is what tw writes to.
func writeLayer(ctx context.Context, tw *tar.Writer, raw io.Writer, img v1.Image, path string, d v1.Descriptor) error {
	l, err := img.LayerByDigest(d.Digest)
	if err != nil {
		return fmt.Errorf("write archive: layer %s: %w", d.Digest, err)
	}
	rc, err := l.Compressed()
	if err != nil {
		return fmt.Errorf("write archive: layer %s: %w", d.Digest, err)
	}
	defer rc.Close()
	vb, srcIsFile := rc.(*verifiedBlob)
	dst, dstIsFile := raw.(*os.File)
	if srcIsFile && dstIsFile {
		verified := vb.verifyFile(ctx, d.Size)
		err := copyLayerFile(ctx, tw, dst, vb.f, path, d)
		if verr := <-verified; verr != nil {
			return fmt.Errorf("write archive: layer %s: %w", d.Digest, verr)
		}
		return err
	}
	if dstIsFile {
		// A blob streamed from elsewhere (a lazily pulled base layer): written as
		// a file's, with its writeback started as it goes, then read to its end,
		// where the verifying reader checks the digest.
		if err := copyLayerFile(ctx, tw, dst, rc, path, d); err != nil {
			return err
		}
		if extra, err := io.Copy(io.Discard, io.LimitReader(rc, 1)); err != nil || extra > 0 {
			if err == nil {
				err = fmt.Errorf("longer than the %d bytes the manifest says", d.Size)
			}
			return fmt.Errorf("write archive: layer %s: %w", d.Digest, err)
		}
		return nil
	}
	if err := tw.WriteHeader(tarHeader(path, tar.TypeReg, 0o644, d.Size)); err != nil {
		return fmt.Errorf("write archive: %w", err)
	}
	// One byte more than the size, so that a verifying reader reaches its end.
	n, err := io.Copy(tw, ctxReader{ctx: ctx, r: io.LimitReader(rc, d.Size+1)})
	if err != nil {
		return fmt.Errorf("write archive: layer %s: %w", d.Digest, err)
	}
	if n != d.Size {
		return fmt.Errorf("write archive: layer %s: %d bytes, manifest says %d", d.Digest, n, d.Size)
	}
	return nil
}

// copyLayerFile is writeLayer from a blob (a file, or a stream) into an archive file:
// the header goes through a tar.Writer of its own, the content is copied (file to
// file with copy_file_range, so the bytes never pass through kiln; a stream with its
// writes beside its reads), then the padding. tw is flushed first, so the file is at
// a block boundary, and it carries on after the entry as if it had written it: a
// tar.Writer keeps no offsets.
func copyLayerFile(ctx context.Context, tw *tar.Writer, dst *os.File, src io.Reader, path string, d v1.Descriptor) error {
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write archive: %w", err)
	}
	var hdr bytes.Buffer
	if err := tar.NewWriter(&hdr).WriteHeader(tarHeader(path, tar.TypeReg, 0o644, d.Size)); err != nil {
		return fmt.Errorf("write archive: %w", err)
	}
	if _, err := dst.Write(hdr.Bytes()); err != nil {
		return fmt.Errorf("write archive: %w", err)
	}
	start, _ := dst.Seek(0, io.SeekCurrent)
	var n int64
	var err error
	if _, isFile := src.(*os.File); isFile {
		n, err = copyFileChunks(ctx, dst, src, start, d.Size)
	} else {
		n, err = copyStream(ctx, dst, src, start, d.Size)
	}
	if err != nil && err != io.EOF {
		return fmt.Errorf("write archive: layer %s: %w", d.Digest, err)
	}
	if n != d.Size {
		return fmt.Errorf("write archive: layer %s: %d bytes, manifest says %d", d.Digest, n, d.Size)
	}
	if pad := (blockSize - d.Size%blockSize) % blockSize; pad > 0 {
		if _, err := dst.Write(make([]byte, pad)); err != nil {
			return fmt.Errorf("write archive: %w", err)
		}
	}
	return nil
}

// writebackChunk is how much of a layer is copied between writeback hints: the
// fsync that ends the archive then waits for less.
const writebackChunk = 16 << 20

// copyFileChunks copies size bytes of the blob file src into dst at start, file to
// file (copy_file_range), checking for cancellation and starting each chunk's
// writeback between chunks. It returns io.EOF if src ends early.
func copyFileChunks(ctx context.Context, dst *os.File, src io.Reader, start, size int64) (int64, error) {
	var n int64
	for n < size {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		m, err := io.CopyN(dst, src, min(writebackChunk, size-n))
		atomicfile.StartWriteback(dst, start+n, m)
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// copyStream copies size bytes of a blob that streams from elsewhere (a download,
// verified as it is read) into dst at start. The file writes run on a goroutine of
// their own, beside the reads and their hashing: one after the other, W5's 95 MB
// base layer came from a registry on this host at about 330 MB/s, and the output
// waited for it. It returns io.EOF if src ends early.
func copyStream(ctx context.Context, dst *os.File, src io.Reader, start, size int64) (int64, error) {
	bw := bgwrite.New(&writebackFile{f: dst, start: start})
	n, err := io.CopyN(bw, ctxReader{ctx: ctx, r: src}, size)
	if cerr := bw.Close(); cerr != nil && (err == nil || err == io.EOF) {
		err = cerr
	}
	return n, err
}

// writebackFile writes to f from offset start on, starting the writeback of every
// writebackChunk as it is written.
type writebackFile struct {
	f              *os.File
	start, n, sent int64
}

func (w *writebackFile) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.n += int64(n)
	if w.n-w.sent >= writebackChunk {
		atomicfile.StartWriteback(w.f, w.start+w.sent, w.n-w.sent)
		w.sent = w.n
	}
	return n, err
}

// blockSize is the tar block size: every entry's content is padded to it.
const blockSize = 512

// indexJSON is the layout's index.json: one descriptor of the manifest per tag (one
// without annotations when there is no tag).
func indexJSON(digest v1.Hash, size int64, mt types.MediaType, names []dockerName) ([]byte, error) {
	idx := v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex}
	desc := v1.Descriptor{MediaType: mt, Size: size, Digest: digest}
	if len(names) == 0 {
		idx.Manifests = []v1.Descriptor{desc}
	}
	for _, n := range names {
		d := desc
		d.Annotations = map[string]string{annotationImageName: n.Full, annotationRefName: n.Tag}
		idx.Manifests = append(idx.Manifests, d)
	}
	b, err := json.Marshal(&idx)
	if err != nil {
		return nil, fmt.Errorf("write archive: index.json: %w", err)
	}
	return b, nil
}

func blobName(h v1.Hash) string { return "blobs/" + h.Algorithm + "/" + h.Hex }

func tarHeader(name string, typ byte, mode, size int64) *tar.Header {
	return &tar.Header{
		Typeflag: typ,
		Name:     name,
		Mode:     mode,
		Size:     size,
		ModTime:  time.Unix(0, 0),
		Format:   tar.FormatUSTAR,
	}
}
