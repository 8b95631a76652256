// Package solver is the build engine: it knows ops, not Dockerfile instructions.
// A front end (package dockerfile) turns instructions into ops, plain values, and
// hands each one to an Engine (engine.go) with the State it applies to and its
// execution inputs (a RUN's resolved mounts, a COPY's sources); the engine keys the
// op, looks it up in the Store and, on a miss, executes it over a snapshot and
// commits its upper dir as a layer, then returns the new State. One Engine serves
// one build and is safe to call from one goroutine per stage: Options.Jobs bounds
// how many ops execute at once across all of them. A build of several platforms uses
// one Engine and a view of it per platform (ForPlatform): the views share the --jobs
// bound, step numbers, base images and the ops resolved so far, and an op two solves
// reach with the same state key is resolved once (merge.go), as BuildKit merges
// identical vertices.
//
// Identity: every filesystem op is an Op (op.go), a plain value holding all that can
// change what the op leaves or sees: RUN's argv, env, user, workdir, network,
// security, limits and every mount option; COPY/ADD's sources, the digests of exactly
// what each part selects, destination and flags; WORKDIR's path and user; the
// platform; and the parent's identity (the engine fills in parent, platform and the
// sandbox limits). The op's key is the sha256 of its versioned canonical encoding.
// After an op the state's key is the op key and the layer's diffID; the committed
// tree is normalised to its layer (whole-second mtimes, no sockets), so a tree
// executed, cached or unpacked from its layer is one tree. Snapshots are named by
// the op key and the execution, never by layer digest. A linked COPY runs on
// nothing and is keyed without its parent (link.go). What an output wants of a
// layer (another codec, SOURCE_DATE_EPOCH) is an export transform of the cached
// layer (export.go), never part of a key. Base images are pulled and unpacked once
// per build (base.go).
//
// Seams: the engine reaches the store, the snapshotter and the sandbox through the
// Store, Snapshotter and Executor interfaces (seams.go); solvertest has fakes.
//
// The engine never prints: progress goes out as Events to a Progress func. Errors
// of an op go through Step.Annotate (the front end adds the Dockerfile line) before
// they are reported and returned.
package solver
