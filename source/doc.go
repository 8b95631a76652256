// Package source reads the sources of COPY and ADD: the build context directory (with
// its .dockerignore or <Dockerfile>.dockerignore rules) or another stage's or image's
// rootfs. It selects sources by Docker's rules (wildcards per path component, a leading
// "/" meaning the source root, a top-level symlink followed inside the root), copies them
// into a destination rootfs by BuildKit's destination rules (a directory's contents, a
// trailing "/" meaning a directory, missing parents created, every destination path
// resolved inside the rootfs), extracts local archives for ADD through package layers,
// and computes the content digest of exactly what a copy would read, with a metadata
// cache (dev, inode, size, mtime, ctime) so unchanged files are never re-read.
//
// COPY --parents keeps each source's parent directories (below an optional "/./"
// pivot); ADD --unpack=false (KeepArchives) copies archives as they are.
//
// Remote sources are fetched into a scratch dir of the store (TempDirFunc) and copied
// from there: http(s) downloads (http.go: retries, a stall watchdog, --checksum,
// credentials redacted from messages), git repositories (git.go: ls-remote to resolve
// a ref before anything is fetched, then a shallow fetch of the commit), and the
// --build-context values (named.go: ParseNamedContext, FetchNamed). Base images are
// not here: pulling is package image's, unpacking into snapshots the solver's.
//
// A socket is copied as an empty regular file with its permission bits, as BuildKit's
// context transfer sends it (walk.go, asCopied).
//
// Not supported: COPY --link (the solver copies into an empty snapshot; to this
// package it is a plain copy), hard links across two sources of one COPY (as in
// BuildKit, each source is copied on its own; within a source they are kept), and
// user or group names for --chown (the solver resolves them to numbers first). Paths
// are resolved with filepath-securejoin; a concurrent writer renaming directories inside
// the destination rootfs while a copy runs is out of scope, since kiln owns that tree.
package source
