package remote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/match"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// annotationRefName names an index.json entry, as OCI layouts tag images.
const annotationRefName = "org.opencontainers.image.ref.name"

// layoutBackend is a cache in an OCI layout directory (type=local), the entry of
// index.json annotated with tag.
type layoutBackend struct {
	dir, tag string
}

func (b *layoutBackend) manifest(ctx context.Context) ([]byte, types.MediaType, error) {
	p, err := layout.FromPath(b.dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, "", errNoCache
		}
		return nil, "", fmt.Errorf("cache %s: %w", b.dir, err)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		return nil, "", fmt.Errorf("cache %s: %w", b.dir, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, "", fmt.Errorf("cache %s: %w", b.dir, err)
	}
	for _, d := range im.Manifests {
		if d.Annotations[annotationRefName] != b.tag {
			continue
		}
		raw, err := p.Bytes(d.Digest)
		if err != nil {
			return nil, "", fmt.Errorf("cache %s: %w", b.dir, err)
		}
		return raw, d.MediaType, nil
	}
	return nil, "", errNoCache
}

// verifiesBlobs: a layout's blob is a plain file.
func (b *layoutBackend) verifiesBlobs() bool { return false }

func (b *layoutBackend) blob(ctx context.Context, d v1.Hash) (io.ReadCloser, error) {
	rc, err := layout.Path(b.dir).Blob(d)
	if err != nil {
		return nil, fmt.Errorf("cache %s: blob %s: %w", b.dir, d, err)
	}
	return rc, nil
}

// open makes the layout if it is not there.
func (b *layoutBackend) open() (layout.Path, error) {
	if p, err := layout.FromPath(b.dir); err == nil {
		return p, nil
	}
	if err := os.MkdirAll(b.dir, 0o755); err != nil {
		return "", fmt.Errorf("cache %s: %w", b.dir, err)
	}
	p, err := layout.Write(b.dir, empty.Index)
	if err != nil {
		return "", fmt.Errorf("cache %s: %w", b.dir, err)
	}
	return p, nil
}

func (b *layoutBackend) hasBlob(ctx context.Context, d v1.Hash) bool {
	rc, err := layout.Path(b.dir).Blob(d)
	if err != nil {
		return false
	}
	rc.Close()
	return true
}

func (b *layoutBackend) putLayer(ctx context.Context, l v1.Layer, d v1.Hash) error {
	p, err := b.open()
	if err != nil {
		return err
	}
	rc, err := l.Compressed()
	if err != nil {
		return err
	}
	defer rc.Close()
	// ggcr's WriteBlob writes a temp file and renames it: a layout never holds
	// half a blob under its name.
	if err := p.WriteBlob(d, rc); err != nil {
		return fmt.Errorf("cache %s: write blob %s: %w", b.dir, d, err)
	}
	return nil
}

func (b *layoutBackend) putBlob(ctx context.Context, d v1.Hash, data []byte) error {
	p, err := b.open()
	if err != nil {
		return err
	}
	return p.WriteBlob(d, io.NopCloser(bytesReader(data)))
}

func (b *layoutBackend) putManifest(ctx context.Context, raw []byte, mt types.MediaType) error {
	p, err := b.open()
	if err != nil {
		return err
	}
	d, size, err := v1.SHA256(bytesReader(raw))
	if err != nil {
		return err
	}
	if err := p.WriteBlob(d, io.NopCloser(bytesReader(raw))); err != nil {
		return fmt.Errorf("cache %s: %w", b.dir, err)
	}
	desc := v1.Descriptor{MediaType: mt, Digest: d, Size: size, Annotations: map[string]string{annotationRefName: b.tag}}
	// The old root's blobs stay: another tag may share them, and a CI system that
	// saves the directory keeps what it wants.
	if err := p.RemoveDescriptors(match.Annotation(annotationRefName, b.tag)); err != nil {
		return fmt.Errorf("cache %s: %w", b.dir, err)
	}
	if err := p.AppendDescriptor(desc); err != nil {
		return fmt.Errorf("cache %s: %w", b.dir, err)
	}
	return nil
}

func (b *layoutBackend) mountSource() string { return "" }
