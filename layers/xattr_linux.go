package layers

// paxXattr is the PAX record prefix that GNU tar, BuildKit and containerd use for
// extended attributes.
const paxXattr = "SCHILY.xattr."

// overlayXattrPrefix marks overlayfs's private metadata: it describes the upper dir
// to the kernel and must never travel in a layer, nor be accepted from one.
const overlayXattrPrefix = "trusted.overlay."
