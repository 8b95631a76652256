// Package cache is kiln's local store under --root: content-addressed blobs, the
// step-cache index and other metadata in bbolt (meta.db), the dirs behind
// RUN --mount=type=cache, and garbage collection. It is built to be shared by several
// kiln processes and to survive kill -9 at any instant: blobs are written to tmp/,
// fsynced and renamed into place; metadata changes are bbolt transactions; meta.db is
// opened per operation so no process holds its lock for a whole build; a shared flock
// on gc.lock held by every open Store keeps Prune from collecting what a running build
// has written but not yet recorded. Step entries are checked on every hit (blob present
// with the right size, snapshot dir present) and dropped when they are not usable.
//
// Not supported: digests other than sha256; protection against power loss of snapshot
// contents (package snapshot does not fsync layer files); sharing a root across hosts
// (flock on network filesystems is unreliable); a Prune that runs while a build is in
// progress (it waits for the build to close its Store).
package cache
