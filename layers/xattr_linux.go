package layers

// paxXattr is the PAX record prefix that GNU tar, BuildKit and containerd use for
// extended attributes.
const paxXattr = "SCHILY.xattr."

// overlayfs's private metadata (internal/xattr.IsOverlay: trusted.overlay.* as root,
// user.overlay.* under userxattr) describes the upper dir to the kernel and must
// never travel in a layer, nor be accepted from one.
