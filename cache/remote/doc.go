// Package remote keeps kiln's step cache outside the machine, for CI runners that
// start with an empty --root: --cache-to exports the step entries a build used, with
// their layer blobs, and --cache-from reads them back in front of the local store.
//
// The format is BuildKit's cache container: an OCI image manifest (image-manifest=true)
// or index whose config is application/vnd.buildkit.cacheconfig.v0, the layers as
// blobs, and records linking keys to layers. The keys are kiln's own versioned step
// keys, so any registry that stores BuildKit caches stores kiln's, but BuildKit cannot
// read kiln's records (nor kiln BuildKit's). kiln's fields ride in "kiln" members that
// BuildKit's decoder ignores.
//
// Supported stores: type=registry (any OCI registry), type=local (an OCI layout
// directory) and type=s3 (BuildKit's PREFIX/blobs and PREFIX/manifests layout, with
// the AWS SDK), and type=inline for --cache-to (the records in the image's config,
// as BuildKit's inline cache; --cache-from type=registry,ref=IMAGE reads them, see
// inline.go). With cache-mounts=true the RUN --mount=type=cache dirs travel too
// (mounts.go). The selection digests COPY --from is keyed by travel with a
// registry, local or s3 cache (not inline), so an empty root need not unpack a
// source stage to key a step that then hits (selections.go). compression= and
// oci-mediatypes= shape the written cache (compress.go).
//
// A hit's layer stays remote until something reads it (lazylayer.go): a push to the
// cache's registry mounts it, an output that reads it whole (an image tarball)
// streams it and keeps it in the local store on the way (lazystream.go), and a step
// that reads its files waits for it to be downloaded into the store.
//
// The remote is untrusted input: a blob is verified against its digest as it is
// fetched, before the local store keeps it (a mismatch is a *image.CorruptBlobError,
// which also fails the stream that reached it, and the digest is not used again),
// records of another key version are skipped with a note, snapshot names are made
// here and never read from the remote, a record pointing at a missing blob is a
// miss, and a cache mount's tar is unpacked with the safe unpack into its own dir.
package remote
