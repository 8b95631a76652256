// Package snapshot keeps kiln's layer directories and stacks them with overlayfs.
//
// A committed snapshot is an immutable dir under committed/<id> in overlay's on-disk
// format (whiteouts are 0/0 character devices, opaque dirs carry
// trusted.overlay.opaque=y). Prepare mounts a writable overlay over committed parents;
// Commit renames its upper dir into a new committed snapshot, so a RUN step's layer is
// never copied; the rest of its work dir is removed in the background, and Wait
// waits for that before the process exits. Long parent chains are mounted with the new mount API ("lowerdir+",
// Linux 6.8), with a mount(2) fallback through short symlink names. Where overlay
// cannot mount (probed once in New), a copy-based fallback materialises the stack and
// computes the overlay-format diff itself, at the cost of two rootfs copies per step.
// Every work dir is leased by its owner (package lease: an flock on the dir, dropped by
// the kernel when the owner dies) so several processes can share one root and New only
// clears what dead processes left.
//
// Every committed snapshot is sealed as it is published (seal_linux.go): the digest of
// its entries' lstat, ctime included, which Verify compares with the tree's, so that a
// tree changed after the fact is found before anything builds on it.
//
// Inside a user namespace (rootless kiln) the probe mounts with "userxattr" (Linux >=
// 5.11), so overlay's bookkeeping lives in user.overlay.* instead (internal/xattr
// reads both); Mode says which was chosen and why overlay was not.
//
// Not supported: redirect_dir and
// metacopy (refused on purpose: the layer differ needs plain upper dirs), fsync of
// layer contents (committing survives kill -9, not power loss), and anything about
// Dockerfiles or tar layers, which belong to the solver and package layers.
package snapshot
