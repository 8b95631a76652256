// Package layers turns directory trees into OCI layer blobs and layer blobs back into
// directories.
//
// WriteUpperDiff walks an overlayfs upper dir in lexical order and writes a PAX tar
// (mtimes truncated to seconds as containerd and BuildKit do, optionally clamped to
// SOURCE_DATE_EPOCH; no atime, ctime, user or group names) through gzip, zstd
// or no codec, computing digest, diffID and size in the same streaming pass. Gzip
// layers are written as gzip members cut at file boundaries, so that the members an
// earlier layer shares are copied, not compressed again (members.go).
// Overlay whiteouts become ".wh.NAME" entries and opaque dirs a ".wh..wh..opq"
// entry; overlayfs's own trusted.overlay.* xattrs never leave the machine. Hard links
// are detected by inode within the tree. WriteTree does the same without whiteout
// translation or compression. Unpack is a linear apply loop in the style of
// containerd's: every name is cleaned and every parent resolved inside the
// destination with internal/rootpath, so no entry, symlink or hard link writes
// outside it; whiteouts become overlay whiteouts, deletions, or plain files.
//
// Not supported: overlay upper dirs that use redirect_dir or metacopy (refused with an
// error, as BuildKit's overlay differ refuses them); user.overlay.* (userxattr) whiteout
// xattrs; sparse files (written dense); unpacking as a non-root user into trees with
// read-only directories, device nodes or foreign owners; ID-mapped unpacking. Unpack
// does not defend against another process changing dest while it runs. The code that
// touches the filesystem is Linux-only.
package layers
