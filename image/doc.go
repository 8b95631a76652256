// Package image moves OCI images between registries, OCI layout directories, kiln's
// content store and output archives, using go-containerregistry for every protocol and
// format detail.
//
// Pull resolves a reference (docker.io normalised) for one platform (an index's
// manifest chosen by containerd's matcher; a missing platform is a NoPlatformError
// listing those the index has) and copies the
// manifest, config and every compressed layer blob, verified against its digest, into
// a BlobStore; the image it returns reads only from that store, so a resolved base never
// needs the network again unless ForcePull. A lazy pull (PullOptions.Lazy, kiln's
// --cache-from builds) copies nothing but the config check: its layers stream from the
// registry, verified, when read, and a push to that registry mounts them (lazypull.go).
// A streamed pull (PullOptions.Stream, every other build's) stores each layer blob as
// its first reader, the base's unpack, reads it, and Pulled.Finish stores the rest and
// records the image, so the download, the inflating and the file writes overlap
// (streampull.go).
// LoadOCILayout does the same from an OCI
// layout directory. StoreLayer exposes a stored blob as a v1.Layer without reading it
// for its metadata. Assemble builds the output image (OCI manifest, config serialised
// once) from a config and layers; WriteOCIArchive and WriteDockerArchive stream it as
// the tarballs BuildKit's oci and docker exporters write; Push uploads it with
// existing-blob skipping and cross-repository mounts. A multi-platform build's
// NewIndex is written by WriteOCIIndexArchive and Push, and a directory per platform
// (PlatformDir) by the local and tar outputs.
//
// Not supported: Docker schema 1 manifests (refused with an error), a multi-platform
// index in the docker output (refused: it holds one image), foreign/non-distributable layer URLs
// (their blobs are fetched like any other), image signatures and attestations.
package image
