// Package testenv builds what kiln's tests (and `make demo`) run against, offline and
// on this machine only: a busybox rootfs and image made from Debian's busybox-static
// (/bin/busybox), go-containerregistry's in-process registry, Debian's docker-registry
// on a loopback port, and a root check.
//
// Helpers taking a *testing.T clean up after themselves with t.Cleanup and skip when a
// prerequisite is missing, except on CI (CI=true), where a missing prerequisite fails
// the test so that nothing is silently untested. The functions without a *testing.T
// (NewBusyboxImage, MakeBusyboxRootfs, WriteBusyboxOCILayout) are for tools.
//
// Not provided: images for other platforms than the host's, TLS or authenticating
// registries.
package testenv
