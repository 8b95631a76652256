package image

import (
	"context"
	"os"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// BlobStore is the part of the cache store that image needs: content-addressed blobs
// on disk. *cache.Store implements it.
type BlobStore interface {
	BlobPath(h v1.Hash) string
	HasBlob(h v1.Hash) bool
	WriteBlob(b []byte) (v1.Hash, error)
	// CreateTemp creates a temp file, as os.CreateTemp does with pattern, on the
	// filesystem of BlobPath's files (so it can be renamed there) and where the store
	// removes it if the process dies while writing it.
	CreateTemp(pattern string) (*os.File, error)
	GetRef(ctx context.Context, ref string) (string, bool)
	PutRef(ctx context.Context, ref, digest string) error
}

// PullOptions control how a base image is resolved.
type PullOptions struct {
	Platform         v1.Platform // "" fields: the host's
	InsecureRegistry []string    // hosts spoken to over plain HTTP (localhost and 127.0.0.1 always are)
	ForcePull        bool        // fetch the manifest again even when the store has the image
	// Offline uses the image a reference named when it was last pulled, without
	// asking the registry (kiln build --offline).
	Offline  bool
	Progress func(msg string)
	// StallTimeout is how long the registry may send nothing before a request fails
	// (and is retried); 0 means DefaultStallTimeout. A Client has its own.
	StallTimeout time.Duration
	// Client, when set, is the process's registry client, whose connections and
	// tokens the pull reuses; nil: the pull's calls start afresh.
	Client *Client
	// Lazy, when set, makes a pull from a registry fetch the manifest and config
	// only: a layer blob the store lacks is streamed from the registry (verified)
	// whenever something reads it, bounded by Lazy, which must outlive every reader
	// (the build's context: outputs read layers after the solve), and a push to the
	// same registry mounts it without reading it. Nothing is stored (see
	// lazypull.go). A build whose steps all come from a remote cache so never
	// downloads its base for a push, and streams it once for an image tarball.
	Lazy context.Context
	// Stream, for a pull from a registry that is not lazy, returns once the
	// manifest and config are stored: each layer blob the store lacks is stored by
	// its first reader as it reads it from the registry, which must happen within
	// the pull's context, and Pulled.Finish stores the rest and records the image
	// (streampull.go). A build that unpacks its base at once so downloads, inflates
	// and writes the files in one pass.
	Stream bool
}

// Pulled is a base image whose manifest and config are in the store, and its layer
// blobs too unless the pull was lazy (PullOptions.Lazy): then a layer still in the
// registry is fetched when it is read. A streamed pull's (PullOptions.Stream) layers
// are stored as they are read, and the pull is complete only after Finish.
type Pulled struct {
	Ref            string // normalised reference, e.g. index.docker.io/library/busybox:latest
	ManifestDigest v1.Hash
	Image          v1.Image // reads only from the store

	stream *streamPull // a streamed pull's remaining work (Finish)
}

// PushOptions control Push.
type PushOptions struct {
	InsecureRegistry []string
	Jobs             int
	Progress         func(msg string)
	StallTimeout     time.Duration // as in PullOptions
	Client           *Client       // as in PullOptions
}
