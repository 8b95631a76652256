// Package solvertest has fakes of the engine's seams for tests that need no root
// and no bbolt: Store, an in-memory step index, refs, digest memo and last
// inputs, with blobs and scratch dirs in a temp dir (image.StoreLayer reads blobs
// by path), and Executor, a RUN that writes what it saw into the rootfs. With the
// copy snapshotter (snapshot.WithoutOverlay) in a temp dir they make a whole
// engine that runs anywhere.
package solvertest
