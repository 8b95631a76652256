// Package rootpath is kiln's one path-safety helper: it turns an untrusted path
// (from a Dockerfile, a build context, a tar entry or an image's own symlinks) into a
// host path that is guaranteed to lie inside a root directory, the way the path would
// resolve if root were "/" (chroot semantics). Absolute symlinks and ".." are resolved
// against root, never against the host.
//
// It is a thin, documented layer over github.com/cyphar/filepath-securejoin so that
// every package resolves paths the same way. It does not protect against another
// process renaming directories inside root while a caller uses a returned path; kiln
// owns the trees it works on, so that race is out of scope. MkdirAll is Linux-only.
package rootpath
