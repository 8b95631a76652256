// Package cache is kiln's local store under --root: content-addressed blobs, the
// step-cache index and other metadata in bbolt (meta.db), the dirs behind
// RUN --mount=type=cache, and garbage collection. It is built to be shared by several
// kiln processes and to survive kill -9 at any instant: blobs are written to tmp/,
// fsynced and renamed into place; metadata changes are bbolt transactions; meta.db is
// opened per operation so no process holds its lock for a whole build; a shared flock
// on gc.lock held by every open Store keeps Prune from collecting what a running build
// has written but not yet recorded. Each open Store leases tmp/<owner>.owner (package
// lease) and names its temp files and scratch dirs (TempDir, CreateTemp) after it, so
// Open removes what killed builds left there and never a live build's. Step entries
// are checked on every hit (blob present
// with the right size, snapshot dir present) and dropped when they are not usable. A
// meta.db that bbolt cannot read (truncated, scribbled: bbolt panics or faults on such
// pages) is set aside as meta.db.damaged-<time> and replaced by an empty index; the
// caller hears of it through WithWarnings, the package never prints.
//
// Not supported: digests other than sha256; detecting damage bbolt itself does not see
// (it checksums only its meta pages, so a flipped byte inside a value reads as that
// value: a digest read so names a blob that is absent or checked, a file hash only
// misses the cache); rebuilding the index from the blobs and snapshots; protection against power loss of snapshot
// contents (package snapshot does not fsync layer files); sharing a root across hosts
// (flock on network filesystems is unreliable); a Prune that runs while a build is in
// progress (it waits for the build to close its Store).
package cache
