// Package image moves OCI images between registries, OCI layout directories, kiln's
// content store and output archives, using go-containerregistry for every protocol and
// format detail.
//
// Pull resolves a reference (docker.io normalised) for one platform and copies the
// manifest, config and every compressed layer blob, verified against its digest, into
// a BlobStore; the image it returns reads only from that store, so a resolved base never
// needs the network again unless ForcePull. A lazy pull (PullOptions.Lazy, kiln's
// --cache-from builds) copies nothing but the config check: its layers stream from the
// registry, verified, when read, and a push to that registry mounts them (lazypull.go).
// LoadOCILayout does the same from an OCI
// layout directory. StoreLayer exposes a stored blob as a v1.Layer without reading it
// for its metadata. Assemble builds the output image (OCI manifest, config serialised
// once) from a config and layers; WriteOCIArchive and WriteDockerArchive stream it as
// the tarballs BuildKit's oci and docker exporters write; Push uploads it with
// existing-blob skipping and cross-repository mounts.
//
// Not supported: Docker schema 1 manifests (refused with an error), pulling or writing
// multi-platform indexes (one platform per build), foreign/non-distributable layer URLs
// (their blobs are fetched like any other), image signatures and attestations.
package image
