package remote

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	ggcrtypes "github.com/google/go-containerregistry/pkg/v1/types"
)

// s3Backend is a cache in an S3 bucket, laid out as BuildKit's s3 cache:
// PREFIX/blobs/<digest> and PREFIX/manifests/<name>, the root's media type in its
// Content-Type.
type s3Backend struct {
	client         *s3.Client
	bucket, prefix string
	name           string
}

func newS3Backend(ctx context.Context, s Spec) (*s3Backend, error) {
	opts := []func(*config.LoadOptions) error{config.WithRegion(s.S3.Region)}
	if s.S3.AccessKeyID != "" {
		opts = append(opts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(s.S3.AccessKeyID, s.S3.SecretAccessKey, s.S3.SessionToken)))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("cache %s: %w", s, err)
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		if s.S3.Endpoint != "" {
			o.BaseEndpoint = aws.String(s.S3.Endpoint)
		}
		o.UsePathStyle = s.S3.PathStyle || s.S3.Endpoint != ""
	})
	return &s3Backend{client: client, bucket: s.S3.Bucket, prefix: s.S3.Prefix, name: s.S3.Name}, nil
}

func (b *s3Backend) blobKey(d v1.Hash) string { return path.Join(b.prefix, "blobs", d.String()) }
func (b *s3Backend) rootKey() string          { return path.Join(b.prefix, "manifests", b.name) }

func (b *s3Backend) manifest(ctx context.Context) ([]byte, ggcrtypes.MediaType, error) {
	out, err := b.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &b.bucket, Key: aws.String(b.rootKey())})
	if err != nil {
		var nk *types.NoSuchKey
		if errors.As(err, &nk) {
			return nil, "", errNoCache
		}
		return nil, "", fmt.Errorf("s3 bucket %s: read %s: %w", b.bucket, b.rootKey(), err)
	}
	defer out.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(out.Body, maxConfigSize))
	if err != nil {
		return nil, "", fmt.Errorf("s3 bucket %s: read %s: %w", b.bucket, b.rootKey(), err)
	}
	return raw, ggcrtypes.MediaType(aws.ToString(out.ContentType)), nil
}

// verifiesBlobs: an object's body is what the bucket sends.
func (b *s3Backend) verifiesBlobs() bool { return false }

func (b *s3Backend) blob(ctx context.Context, d v1.Hash) (io.ReadCloser, error) {
	out, err := b.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &b.bucket, Key: aws.String(b.blobKey(d))})
	if err != nil {
		return nil, fmt.Errorf("s3 bucket %s: blob %s: %w", b.bucket, d, err)
	}
	return out.Body, nil
}

func (b *s3Backend) hasBlob(ctx context.Context, d v1.Hash) bool {
	_, err := b.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &b.bucket, Key: aws.String(b.blobKey(d))})
	return err == nil
}

// putLayer spools the layer to a temp file first: the SDK signs and checksums a
// body it can seek, and a layer is never held in memory.
func (b *s3Backend) putLayer(ctx context.Context, l v1.Layer, d v1.Hash) error {
	rc, err := l.Compressed()
	if err != nil {
		return err
	}
	defer rc.Close()
	f, err := os.CreateTemp("", "kiln-s3-")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if _, err := io.Copy(f, rc); err != nil {
		return fmt.Errorf("s3 bucket %s: blob %s: %w", b.bucket, d, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	return b.put(ctx, b.blobKey(d), f, "application/octet-stream")
}

func (b *s3Backend) putBlob(ctx context.Context, d v1.Hash, data []byte) error {
	return b.put(ctx, b.blobKey(d), bytes.NewReader(data), string(ConfigMediaType))
}

func (b *s3Backend) putManifest(ctx context.Context, raw []byte, mt ggcrtypes.MediaType) error {
	return b.put(ctx, b.rootKey(), bytes.NewReader(raw), string(mt))
}

func (b *s3Backend) put(ctx context.Context, key string, body io.ReadSeeker, contentType string) error {
	_, err := b.client.PutObject(ctx, &s3.PutObjectInput{Bucket: &b.bucket, Key: aws.String(key), Body: body, ContentType: aws.String(contentType)})
	if err != nil {
		return fmt.Errorf("s3 bucket %s: write %s: %w", b.bucket, key, err)
	}
	return nil
}

func (b *s3Backend) mountSource() string { return "" }
